/**
 * `name=value&...` text: HTML form bodies, URL query strings, and the same shapes nested in values.
 * Also splits URLs (the request URL and URLs passed in parameters) into path segments and query.
 */
import type { DecodeContext } from '../context';
import type { Decoder, DecoderOutput, Entry, Payload } from '../registry';
import { percentDecode } from '../text';

/** Keys as apps write them (`imei`, `data[device][id]`, `a.b`, `x-y`, percent-escapes); not prose, JSON or `;` lists. */
const FORM_KEY = '[A-Za-z0-9_.\\-\\[\\]%*+:@$!~|]+';
const FORM_SHAPE = new RegExp(`^${FORM_KEY}=[^&\\s]*(?:&+${FORM_KEY}(?:=[^&\\s]*)?)*&*$`);

/** Nameless parameters at least this long are read as values (encoded blobs), shorter ones as flags. */
const BARE_VALUE_MIN = 8;

export function splitPairs(text: string, type: string, plusIsSpace = true): Entry[] {
  const entries: Entry[] = [];
  const chain = [type];
  const parts = text.split('&');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (!part) continue;
    const eq = part.indexOf('=');
    if (eq < 0 && part.length >= BARE_VALUE_MIN) {
      /* `?eyJpbWVpIjoi...`: a bare blob with no name is a value, not a key. */
      entries.push({ segment: `${type}:#${i}`, groupSegment: type, chain, key: null, keyPath: [], value: percentDecode(part, plusIsSpace) });
      continue;
    }
    const rawKey = eq >= 0 ? part.slice(0, eq) : part;
    const rawValue = eq >= 0 ? part.slice(eq + 1) : '';
    const key = percentDecode(rawKey, plusIsSpace);
    entries.push({
      segment: `${type}:${key}`,
      groupSegment: type,
      chain,
      key,
      keyPath: [key],
      value: percentDecode(rawValue, plusIsSpace),
    });
  }
  return entries;
}

function looksLikeForm(text: string): boolean {
  if (text.length < 3 || !FORM_SHAPE.test(text)) return false;
  if (text.includes('&')) return true;
  const eq = text.indexOf('=');
  /* A single pair: `k=v` with a real value and no second '=' (base64 padding `abc=` is not a form). */
  return eq > 0 && eq < text.length - 1 && !text.includes('=', eq + 1);
}

export const formDecoder: Decoder = {
  type: 'form',
  accepts: 'text',
  decode(input: Payload): DecoderOutput | null {
    if (typeof input !== 'string' || input.indexOf('=') < 0) return null;
    const text = input.trim();
    /* Declared or not, the text must have the shape of a form: apps also send JSON or base64 as "form" bodies. */
    if (!looksLikeForm(text)) return null;
    const entries = splitPairs(text, 'form');
    return entries.length ? { kind: 'fields', entries } : null;
  },
  explain: () => 'form fields (name=value&...), read one by one',
};

/** Splits a URL (absolute or path-only) into its non-empty path segments and query parameters. */
export function urlEntries(url: string, prefix: string[]): Entry[] {
  const hashAt = url.indexOf('#');
  const noFragment = hashAt >= 0 ? url.slice(0, hashAt) : url;
  const q = noFragment.indexOf('?');
  const beforeQuery = q >= 0 ? noFragment.slice(0, q) : noFragment;
  const query = q >= 0 ? noFragment.slice(q + 1) : '';
  const schemeEnd = beforeQuery.indexOf('://');
  const afterAuthority = schemeEnd >= 0 ? beforeQuery.indexOf('/', schemeEnd + 3) : beforeQuery.indexOf('/');
  const path = afterAuthority >= 0 ? beforeQuery.slice(afterAuthority) : '';
  const entries: Entry[] = [];
  const seg = (s: string) => [...prefix, s].join('>');
  const segments = path.split('/');
  let index = 0;
  for (const raw of segments) {
    if (!raw) continue;
    const value = percentDecode(raw, false);
    entries.push({ segment: seg(`path:${index}`), groupSegment: seg('path'), chain: [...prefix, 'path'], key: null, keyPath: [], value });
    index++;
  }
  for (const e of splitPairs(query, 'query')) {
    entries.push({ ...e, segment: seg(e.segment), groupSegment: seg(e.groupSegment), chain: [...prefix, 'query'] });
  }
  return entries;
}

/** Unambiguous on purpose (authority, then an optional path/query): no backtracking blow-up on hostile text. */
const NESTED_URL = /^[a-z][a-z0-9+.-]{1,15}:\/\/[^\s/?#]+(?:[/?#]\S*)?$/i;
/** Nested URLs and pair lists longer than this are not sniffed (no real one is that long). */
const MAX_SNIFFED_TEXT = 64 * 1024;

const PAIR_START = /^\s*[A-Za-z0-9_.\-[\]]+=/;

/** `name=value; name2=value2` lists (custom headers, cookie-like strings): two or more pairs, checked part by part. */
function pairParts(text: string): string[] | null {
  const parts = text.split(';');
  if (parts.length && !parts[parts.length - 1].trim()) parts.pop();
  if (parts.length < 2) return null;
  for (const part of parts) if (!PAIR_START.test(part)) return null;
  return parts;
}

export const semicolonPairsDecoder: Decoder = {
  type: 'pairs',
  accepts: 'text',
  decode(input: Payload): DecoderOutput | null {
    if (typeof input !== 'string' || input.length > MAX_SNIFFED_TEXT || input.indexOf(';') < 0 || input.indexOf('=') < 0) return null;
    const parts = pairParts(input);
    if (!parts) return null;
    const entries: Entry[] = [];
    for (const part of parts) {
      const eq = part.indexOf('=');
      if (eq < 0) continue;
      const key = part.slice(0, eq).trim();
      const value = part.slice(eq + 1).trim();
      entries.push({ segment: `pairs:${key}`, groupSegment: 'pairs', chain: ['pairs'], key, keyPath: [key], value: percentDecode(value, false) });
    }
    return entries.length ? { kind: 'fields', entries } : null;
  },
  explain: () => 'name=value pairs separated by semicolons, read one by one',
};

export const urlDecoder: Decoder = {
  type: 'url',
  accepts: 'text',
  decode(input: Payload): DecoderOutput | null {
    if (typeof input !== 'string' || input.length > MAX_SNIFFED_TEXT || input.indexOf('://') < 0 || !NESTED_URL.test(input)) return null;
    const entries = urlEntries(input, ['url']);
    return entries.length ? { kind: 'fields', entries } : null;
  },
  explain: () => 'a URL passed inside a parameter; its path and query were read',
};
