/**
 * Why: a profile match is certain — it is the phone's own value, however it was dressed (hashed,
 * reformatted, cut). Each field is looked up whole and token by token, one Map lookup per token.
 */
import type { DecodedField } from '../types';
import type { CompiledProfile } from '../profile';
import { matchProfileText } from '../profile';
import type { Candidate } from './candidate';

type Emit = (c: Omit<Candidate, 'field' | 'subject'> & { subject?: Candidate['subject'] }) => void;

/** Token shapes beyond plain alphanumeric runs, each tried only when the text holds the punctuation it needs. */
const TOKENIZERS: Array<{ needs: RegExp; tokens: RegExp }> = [
  { needs: /[+\/_=\-]/, tokens: /[A-Za-z0-9+\/_\-]+={0,2}/g }, // base64 / base64url digests
  { needs: /[+@.\-]/, tokens: /\+?[A-Za-z0-9@._\-]+/g }, // emails, +phones, dotted MACs
  { needs: /[:\-]/, tokens: /(?:[0-9A-Fa-f]{2}[:\-]){5}[0-9A-Fa-f]{2}/g }, // separated MACs
];

const PHONE_LIKE = /^(?=(?:\D*\d){7})[+\d\s\-().\/]{7,24}$/;

/** Fields longer than this are matched whole only (token scans of megabyte blobs find nothing useful). */
const MAX_TOKENIZED_LENGTH = 64 * 1024;

/** One profile hit of a text, independent of the field it was found in. */
interface ProfileHit {
  type: Candidate['type'];
  value: string;
  span: string;
  evidence: string;
}

/** Per-flow memo: a flow repeats the same values in every record of a batch ("TA-1046", the ad ID...). */
export type ProfileMatchCache = Map<string, ProfileHit[]>;

export function detectProfileValues(field: DecodedField, profile: CompiledProfile, emit: Emit, cache?: ProfileMatchCache): void {
  const whole = field.value.trim();
  let hits = cache?.get(whole);
  if (!hits) {
    hits = profileHits(whole, profile);
    cache?.set(whole, hits);
  }
  for (const h of hits) emit({ type: h.type, value: h.value, detector: 'profile', confidence: 1, span: h.span, evidence: h.evidence });
}

function profileHits(whole: string, profile: CompiledProfile): ProfileHit[] {
  const hits: ProfileHit[] = [];
  const tryText = (text: string): void => {
    const match = matchProfileText(profile, text);
    if (!match) return;
    /* Several tokenizers find the same token: its first reading stands. */
    for (const h of hits) if (h.span === text) return;
    const evidence = ['matches your device profile', match.variant].filter(Boolean).join(', ');
    hits.push({ type: match.type, value: match.value, span: text, evidence });
  };
  tryText(whole);
  // Phone numbers are written with any grouping ("+47 912 34 567", "(0)91-23-45-67"): compare their digits.
  if (PHONE_LIKE.test(whole)) tryText(whole.replace(/[\s\-().\/]/g, ''));
  if (whole.length > MAX_TOKENIZED_LENGTH || whole.length <= profile.minVariantLength) return hits;
  const { minVariantLength: min, maxVariantLength: max } = profile;
  forEachAlphanumericRun(whole, min, max, tryText);
  for (const { needs, tokens } of TOKENIZERS) {
    if (!needs.test(whole)) continue;
    for (const m of whole.matchAll(tokens)) {
      if (m[0].length >= min && m[0].length <= max) tryText(m[0]);
    }
  }
  return hits;
}

/** The runs of [A-Za-z0-9] (digits, hex digests, serials) with a length in [min, max], without a regex's match objects. */
function forEachAlphanumericRun(text: string, min: number, max: number, visit: (run: string) => void): void {
  let start = -1;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 0;
    const alnum = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
    if (alnum) {
      if (start < 0) start = i;
    } else if (start >= 0) {
      const n = i - start;
      if (n >= min && n <= max) visit(text.slice(start, i));
      start = -1;
    }
  }
}
