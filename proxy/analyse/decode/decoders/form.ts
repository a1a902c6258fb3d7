/**
 * `name=value&...` text: HTML form bodies, URL query strings, and the same shapes nested in values.
 * Also splits URLs (the request URL and URLs passed in parameters) into path segments and query.
 */
import type { DecodeContext } from '../context';
import { fieldsOutput, makeEntry, type Decoder, type DecoderOutput, type Entry, type Payload } from '../registry';
import { noStrings, percentDecode, percentDecodeRange } from '../text';

/** Keys as apps write them (`imei`, `data[device][id]`, `a.b`, `x-y`, percent-escapes); not prose, JSON or `;` lists. */
const FORM_KEY = '[A-Za-z0-9_.\\-\\[\\]%*+:@$!~|]+';
const FORM_SHAPE = new RegExp(`^${FORM_KEY}=[^&\\s]*(?:&+${FORM_KEY}(?:=[^&\\s]*)?)*&*$`);

/** Nameless parameters at least this long are read as values (encoded blobs), shorter ones as flags. */
const BARE_VALUE_MIN = 8;

export function splitPairs(text: string, type: string, plusIsSpace = true): Entry[] {
  const entries: Entry[] = [];
  const chain = [type];
  /* What text.split('&') gives, part by part, without the array or the parts (keys and values are cut from the text). */
  for (let i = 0, from = 0; from <= text.length; i++) {
    let to = text.indexOf('&', from);
    if (to < 0) to = text.length;
    const start = from;
    from = to + 1;
    if (to === start) continue;
    let eq = text.indexOf('=', start);
    if (eq >= to) eq = -1;
    if (eq < 0 && to - start >= BARE_VALUE_MIN) {
      /* `?eyJpbWVpIjoi...`: a bare blob with no name is a value, not a key. */
      entries.push(makeEntry(`${type}:#${i}`, type, chain, null, noStrings(), percentDecodeRange(text, start, to, plusIsSpace)));
      continue;
    }
    const key = percentDecodeRange(text, start, eq >= 0 ? eq : to, plusIsSpace);
    entries.push(makeEntry(`${type}:${key}`, type, chain, key, [key], eq >= 0 ? percentDecodeRange(text, eq + 1, to, plusIsSpace) : ''));
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
    return entries.length ? fieldsOutput(entries) : null;
  },
  explain: () => 'form fields (name=value&...), read one by one',
};

/** Chains and group segments of URL entries, per prefix ('' for the request URL, 'url' nested): built once, shared by every entry. */
interface UrlParts {
  pathChain: string[];
  pathGroup: string;
  queryChain: string[];
  queryGroup: string;
  head: string;
}

const URL_PARTS = new Map<string, UrlParts>();

/** The request URL's parts (no prefix), the most asked for. */
let rootParts: UrlParts | undefined;

function urlParts(prefix: string[]): UrlParts {
  if (prefix.length === 0) return (rootParts ??= partsOf(prefix));
  return partsOf(prefix);
}

function partsOf(prefix: string[]): UrlParts {
  const name = prefix.join('>');
  let parts = URL_PARTS.get(name);
  if (!parts) {
    const head = name ? `${name}>` : '';
    parts = { pathChain: [...prefix, 'path'], pathGroup: `${head}path`, queryChain: [...prefix, 'query'], queryGroup: `${head}query`, head };
    if (URL_PARTS.size < 16) URL_PARTS.set(name, parts);
  }
  return parts;
}

/** `path:0`, `path:1`... built once. */
const PATH_SEGMENTS: string[] = [];

function pathSegment(index: number): string {
  return index < 64 ? (PATH_SEGMENTS[index] ??= `path:${index}`) : `path:${index}`;
}

/** Splits a URL (absolute or path-only) into its non-empty path segments and query parameters. */
export function urlEntries(url: string, prefix: string[]): Entry[] {
  const hashAt = url.indexOf('#');
  const end = hashAt >= 0 ? hashAt : url.length;
  const qAt = url.indexOf('?');
  const q = qAt >= 0 && qAt < end ? qAt : -1;
  const pathEnd = q >= 0 ? q : end;
  const schemeEnd = url.indexOf('://');
  const afterAuthority = schemeEnd >= 0 && schemeEnd < pathEnd ? url.indexOf('/', schemeEnd + 3) : url.indexOf('/');
  const parts = urlParts(prefix);
  const entries: Entry[] = [];
  if (afterAuthority >= 0 && afterAuthority < pathEnd) {
    let index = 0;
    let from = afterAuthority + 1;
    while (from <= pathEnd) {
      let to = url.indexOf('/', from);
      if (to < 0 || to > pathEnd) to = pathEnd;
      if (to > from) {
        const value = percentDecodeRange(url, from, to, false);
        entries.push(makeEntry(parts.head + pathSegment(index), parts.pathGroup, parts.pathChain, null, noStrings(), value));
        index++;
      }
      from = to + 1;
    }
  }
  if (q >= 0 && q + 1 < end) {
    for (const e of splitPairs(url.slice(q + 1, end), 'query')) {
      if (parts.head) e.segment = parts.head + e.segment;
      e.groupSegment = parts.queryGroup;
      e.chain = parts.queryChain;
      entries.push(e);
    }
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
      entries.push(makeEntry(`pairs:${key}`, 'pairs', ['pairs'], key, [key], percentDecode(value, false)));
    }
    return entries.length ? fieldsOutput(entries) : null;
  },
  explain: () => 'name=value pairs separated by semicolons, read one by one',
};

export const urlDecoder: Decoder = {
  type: 'url',
  accepts: 'text',
  decode(input: Payload): DecoderOutput | null {
    if (typeof input !== 'string' || input.length > MAX_SNIFFED_TEXT || input.indexOf('://') < 0 || !NESTED_URL.test(input)) return null;
    const entries = urlEntries(input, ['url']);
    return entries.length ? fieldsOutput(entries) : null;
  },
  explain: () => 'a URL passed inside a parameter; its path and query were read',
};
