/**
 * Why: a profile match is certain — it is the phone's own value, however it was dressed (hashed,
 * reformatted, cut). Each field is looked up whole and token by token, one Map lookup per token;
 * a precomputed signature set turns away almost every token before it is cut out or hashed, so a
 * batch of random IDs and hashes costs one Set lookup per token.
 */
import type { DecodedField } from '../types';
import type { CompiledProfile } from '../profile';
import { matchProfileText } from '../profile';
import type { Candidate } from './candidate';

type Emit = (c: Omit<Candidate, 'field' | 'subject'> & { subject?: Candidate['subject'] }) => void;

/*
 * Token shapes, as the regexes they replace: alphanumeric runs [A-Za-z0-9]+; base64 / base64url
 * digests [A-Za-z0-9+/_-]+={0,2}; emails, +phones and dotted MACs \+?[A-Za-z0-9@._-]+; separated
 * MACs. Each shape beyond the first is tried only when the text holds the punctuation it needs.
 */
const ALNUM = 1;
const DIGEST = 2;
const CONTACT = 4;
const NEEDED_BY_DIGEST = 8; // + / _ = -
const NEEDED_BY_CONTACT = 16; // + @ . -
const NEEDED_BY_MAC = 32; // : -
const CHAR_CLASS = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9]/.test(ch)) CHAR_CLASS[c] |= ALNUM | DIGEST | CONTACT;
  if (/[+\/_\-]/.test(ch)) CHAR_CLASS[c] |= DIGEST;
  if (/[@._\-]/.test(ch)) CHAR_CLASS[c] |= CONTACT;
  if (/[+\/_=\-]/.test(ch)) CHAR_CLASS[c] |= NEEDED_BY_DIGEST;
  if (/[+@.\-]/.test(ch)) CHAR_CLASS[c] |= NEEDED_BY_CONTACT;
  if (/[:\-]/.test(ch)) CHAR_CLASS[c] |= NEEDED_BY_MAC;
}
const SEPARATED_MAC = /(?:[0-9A-Fa-f]{2}[:\-]){5}[0-9A-Fa-f]{2}/g;

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

const NO_HITS: ProfileHit[] = [];

export function detectProfileValues(field: DecodedField, profile: CompiledProfile, emit: Emit, cache?: ProfileMatchCache): void {
  const whole = field.value.trim();
  /* Texts no longer than the shortest variant are not cut into tokens: cheaper to look up than to memoize. */
  const memo = cache && whole.length > profile.minVariantLength ? cache : undefined;
  let hits = memo?.get(whole);
  if (!hits) {
    hits = profileHits(whole, profile);
    memo?.set(whole, hits);
  }
  for (const h of hits) emit({ type: h.type, value: h.value, detector: 'profile', confidence: 1, span: h.span, evidence: h.evidence });
}

/**
 * A profile's variants reduced to (length, first, second and last character, case-folded): a text
 * whose signature is not in this set cannot be a variant. Computed once per compiled profile.
 */
const signatureSets = new WeakMap<CompiledProfile, Set<number>>();

function signaturesOf(profile: CompiledProfile): Set<number> {
  let set = signatureSets.get(profile);
  if (!set) {
    set = new Set();
    for (const k of profile.variants.keys()) set.add(signature(k, 0, k.length));
    signatureSets.set(profile, set);
  }
  return set;
}

function fold(c: number): number {
  if (c >= 0x41 && c <= 0x5a) return c | 0x20;
  return c < 0x80 ? c : 0x80;
}

function signature(text: string, start: number, end: number): number {
  const n = Math.min(end - start, 4095);
  return ((n * 129 + fold(text.charCodeAt(start))) * 129 + fold(text.charCodeAt(start + 1))) * 129 + fold(text.charCodeAt(end - 1));
}

function hasNonAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) >= 0x80) return true;
  return false;
}

/** Cheap part of PHONE_LIKE: its length, and a first character it allows. */
function mightBePhoneLike(text: string): boolean {
  if (text.length < 7 || text.length > 24) return false;
  const c = text.charCodeAt(0);
  return (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x28 || c === 0x29 || c === 0x2d || c === 0x2e || c === 0x2f || c === 0x20 || (c >= 0x09 && c <= 0x0d) || c > 0x7f;
}

function profileHits(whole: string, profile: CompiledProfile): ProfileHit[] {
  const { minVariantLength: min, maxVariantLength: max } = profile;
  const signatures = signaturesOf(profile);
  let hits = NO_HITS;
  const tryText = (text: string): void => {
    const match = matchProfileText(profile, text);
    if (!match) return;
    /* Several tokenizers find the same token: its first reading stands. */
    for (const h of hits) if (h.span === text) return;
    const evidence = ['matches your device profile', match.variant].filter(Boolean).join(', ');
    if (hits === NO_HITS) hits = [];
    hits.push({ type: match.type, value: match.value, span: text, evidence });
  };
  /* Lower-casing may change the length of non-ASCII text, so only ASCII text is judged by its signature. */
  if (whole.length >= min && whole.length <= max && (signatures.has(signature(whole, 0, whole.length)) || hasNonAscii(whole))) tryText(whole);
  // Phone numbers are written with any grouping ("+47 912 34 567", "(0)91-23-45-67"): compare their digits.
  if (mightBePhoneLike(whole) && PHONE_LIKE.test(whole)) tryText(whole.replace(/[\s\-().\/]/g, ''));
  if (whole.length > MAX_TOKENIZED_LENGTH || whole.length <= min) return hits;
  /* Tokens are ASCII: folding never changes their length, and the signature decides. */
  const tryToken = (start: number, end: number): void => {
    const n = end - start;
    if (n >= min && n <= max && signatures.has(signature(whole, start, end))) tryText(whole.slice(start, end));
  };
  const punctuation = forEachRun(whole, ALNUM, tryToken);
  if (punctuation & NEEDED_BY_DIGEST) forEachRun(whole, DIGEST, tryToken);
  if (punctuation & NEEDED_BY_CONTACT) forEachRun(whole, CONTACT, tryToken);
  if (punctuation & NEEDED_BY_MAC && hasMacSkeleton(whole)) {
    for (const m of whole.matchAll(SEPARATED_MAC)) tryToken(m.index!, m.index! + m[0].length);
  }
  return hits;
}

/**
 * Visits the maximal runs of one character class, as the global regex of that shape would match
 * them (digest runs take up to two '=' of padding, contact runs a leading '+'), without match
 * objects. Returns the NEEDED_BY_* flags of the characters seen, so the caller knows which other
 * shapes can occur.
 */
function forEachRun(text: string, cls: number, visit: (start: number, end: number) => void): number {
  let seen = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    const flags = c < 0x80 ? CHAR_CLASS[c]! : 0;
    seen |= flags;
    if (!(flags & cls)) {
      i++;
      continue;
    }
    const start = cls === CONTACT && i > 0 && text.charCodeAt(i - 1) === 0x2b ? i - 1 : i;
    for (i++; i < n; i++) {
      const d = text.charCodeAt(i);
      if (d >= 0x80 || !(CHAR_CLASS[d]! & cls)) break;
    }
    if (cls === DIGEST) for (let pad = 0; pad < 2 && text.charCodeAt(i) === 0x3d; pad++) i++;
    visit(start, i);
  }
  return seen;
}

/** Separators (':' or '-') 3, 6, 9 and 12 characters after one another: the skeleton of a separated MAC. */
function hasMacSkeleton(text: string): boolean {
  for (let i = 2; i + 12 < text.length; i++) {
    if (isMacSeparator(text.charCodeAt(i)) && isMacSeparator(text.charCodeAt(i + 3)) && isMacSeparator(text.charCodeAt(i + 6)) && isMacSeparator(text.charCodeAt(i + 9)) && isMacSeparator(text.charCodeAt(i + 12))) return true;
  }
  return false;
}

function isMacSeparator(c: number): boolean {
  return c === 0x3a || c === 0x2d;
}
