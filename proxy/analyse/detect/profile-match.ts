/**
 * Why: a profile match is certain — it is the phone's own value, however it was dressed (hashed,
 * reformatted, cut). Each field is looked up whole and token by token, one Map lookup per token.
 */
import type { DecodedField } from '../types';
import type { CompiledProfile } from '../profile';
import { matchProfileText } from '../profile';
import type { Candidate } from './candidate';

type Emit = (c: Omit<Candidate, 'field' | 'subject'> & { subject?: Candidate['subject'] }) => void;

/** Token shapes, each tried only when the text holds the punctuation it needs. */
const TOKENIZERS: Array<{ needs: RegExp | null; tokens: RegExp }> = [
  { needs: null, tokens: /[A-Za-z0-9]+/g }, // digits, hex digests, serials
  { needs: /[+\/_=\-]/, tokens: /[A-Za-z0-9+\/_\-]+={0,2}/g }, // base64 / base64url digests
  { needs: /[+@.\-]/, tokens: /\+?[A-Za-z0-9@._\-]+/g }, // emails, +phones, dotted MACs
  { needs: /[:\-]/, tokens: /(?:[0-9A-Fa-f]{2}[:\-]){5}[0-9A-Fa-f]{2}/g }, // separated MACs
];

const PHONE_LIKE = /^(?=(?:\D*\d){7})[+\d\s\-().\/]{7,24}$/;

/** Fields longer than this are matched whole only (token scans of megabyte blobs find nothing useful). */
const MAX_TOKENIZED_LENGTH = 64 * 1024;

export function detectProfileValues(field: DecodedField, profile: CompiledProfile, emit: Emit): void {
  const whole = field.value.trim();
  const seen = new Set<string>();
  const tryText = (text: string): void => {
    if (seen.has(text)) return;
    seen.add(text);
    const match = matchProfileText(profile, text);
    if (!match) return;
    const evidence = ['matches your device profile', match.variant].filter(Boolean).join(', ');
    emit({ type: match.type, value: match.value, detector: 'profile', confidence: 1, span: text, evidence });
  };
  tryText(whole);
  // Phone numbers are written with any grouping ("+47 912 34 567", "(0)91-23-45-67"): compare their digits.
  if (PHONE_LIKE.test(whole)) tryText(whole.replace(/[\s\-().\/]/g, ''));
  if (whole.length > MAX_TOKENIZED_LENGTH || whole.length <= profile.minVariantLength) return;
  for (const { needs, tokens } of TOKENIZERS) {
    if (needs && !needs.test(whole)) continue;
    for (const m of whole.matchAll(tokens)) {
      if (m[0].length >= profile.minVariantLength && m[0].length <= profile.maxVariantLength) tryText(m[0]);
    }
  }
}
