/**
 * `name=value&...` text: HTML form bodies, URL query strings, and the same shapes nested in values.
 * A body declared as a form is read leniently, as servers read it; undeclared text only when it has
 * the strict shape apps write (precision). Also splits URLs (the request URL and URLs passed in
 * parameters) into path segments and query.
 */
import type { DecodeContext } from '../context';
import { fieldsOutput, makeEntry, streamOutput, type Decoder, type DecoderOutput, type Entry, type Hint, type Payload } from '../registry';
import { hasGzipMagic, hasZlibMagic, noStrings, percentDecode, percentDecodeRange, PRINTABLE_SCAN_BYTES, PRINTABLE_SHARE } from '../text';
import { FormPairs, splitPairs } from './form-pairs';

export { splitPairs } from './form-pairs';

/**
 * Without a declared Content-Type, text is read as a form only in the strict shape apps write
 * (`imei=...&model=...`): keys of [A-Za-z0-9_.-[]%*+:@$!~|], values without whitespace. Prose, JSON,
 * `;` lists and base64 padding are not forms. (Checked in one pass: the equivalent regular
 * expression ran out of stack on bodies of some megabytes.)
 */
export function isStrictFormShape(text: string): boolean {
  const n = text.length;
  if (n === 0 || text.charCodeAt(0) === AMPERSAND) return false;
  let first = true;
  for (let from = 0; from < n; ) {
    let to = text.indexOf('&', from);
    if (to < 0) to = n;
    if (to > from) {
      let i = from;
      while (i < to && isFormKeyChar(text.charCodeAt(i))) i++;
      if (i === from) return false;
      if (i < to) {
        if (text.charCodeAt(i) !== EQUALS) return false;
        for (let j = i + 1; j < to; j++) if (isJsWhitespace(text.charCodeAt(j))) return false;
      } else if (first) return false;
      first = false;
    }
    from = to + 1;
  }
  return true;
}

const AMPERSAND = 0x26;
const EQUALS = 0x3d;

/** [A-Za-z0-9_.\-\[\]%*+:@$!~|] */
function isFormKeyChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x5f || c === 0x2e || c === 0x2d || c === 0x5b || c === 0x5d
    || c === 0x25 || c === 0x2a || c === 0x2b || c === 0x3a || c === 0x40 || c === 0x24 || c === 0x21 || c === 0x7e || c === 0x7c;
}

/** What `\s` matches in a JavaScript regular expression. */
function isJsWhitespace(c: number): boolean {
  if (c <= 0x20) return c === 0x20 || (c >= 0x09 && c <= 0x0d);
  if (c < 0xa0) return false;
  return c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;
}

function looksLikeForm(text: string): boolean {
  if (text.length < 3 || !isStrictFormShape(text)) return false;
  if (text.includes('&')) return true;
  const eq = text.indexOf('=');
  /* A single pair: `k=v` with a real value and no second '=' (base64 padding `abc=` is not a form). */
  return eq > 0 && eq < text.length - 1 && !text.includes('=', eq + 1);
}

/**
 * A body declared as a form is read as one however its names are written (`a(b)`, `it's`, spaces:
 * servers accept them), unless it is another document sent under that type — JSON, XML, a quoted
 * string, a single base64 token whose only '=' are its padding, text without any '=' — which the
 * other decoders then read.
 */
function readsAsDeclaredForm(text: string): boolean {
  const c = text.charCodeAt(0);
  if (c === 0x7b || c === 0x5b || c === 0x3c || c === 0x22) return false;
  const eq = text.indexOf('=');
  return eq >= 0 && !onlyPaddingFrom(text, eq);
}

function onlyPaddingFrom(text: string, eq: number): boolean {
  if (text.indexOf('&') >= 0) return false;
  for (let i = eq; i < text.length; i++) if (text.charCodeAt(i) !== EQUALS) return false;
  return true;
}

/**
 * Forms this long or longer (characters, or bytes of a body) are read pair by pair as the walk goes,
 * a body from its bytes without ever becoming one string; shorter ones are split at once (cheaper per
 * pair: the split is on every request's path).
 */
const STREAM_MIN_LENGTH = 1024 * 1024;

function formOutput(text: string, ctx: DecodeContext): DecoderOutput | null {
  if (text.length >= STREAM_MIN_LENGTH) return streamOutput(FormPairs.ofText(text, 'form', true, ctx));
  const entries = splitPairs(text, 'form');
  return entries.length ? fieldsOutput(entries) : null;
}

export const formDecoder: Decoder = {
  type: 'form',
  accepts: 'text',
  decode(input: Payload, ctx: DecodeContext, hint: Hint): DecoderOutput | null {
    if (typeof input !== 'string' || input.indexOf('=') < 0) return null;
    const text = input.trim();
    if (hint.declared ? !readsAsDeclaredForm(text) : !looksLikeForm(text)) return null;
    return formOutput(text, ctx);
  },
  explain: () => 'form fields (name=value&...), read one by one',
};

/** Bytes that say they are text: few control characters in the first PRINTABLE_SCAN_BYTES (UTF-8 validity is not asked: bad sequences become U+FFFD). */
function textLike(bytes: Buffer, from: number, to: number): boolean {
  const n = Math.min(to, from + PRINTABLE_SCAN_BYTES);
  const allowed = (n - from) * (1 - PRINTABLE_SHARE);
  let bad = 0;
  for (let i = from; i < n; i++) {
    const b = bytes[i];
    if ((b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) || b === 0x7f) {
      if (++bad > allowed) return false;
    }
  }
  return true;
}


function isAsciiSpace(b: number): boolean {
  return b === 0x20 || (b >= 0x09 && b <= 0x0d);
}

/**
 * A declared form body read straight from its bytes, pair by pair as the walker asks (see
 * form-pairs.ts): nothing of a big body is converted before its first pairs are walked. Bodies that
 * are something else under that type (see readsAsDeclaredForm), compressed or binary are declined.
 */
export const formBytesDecoder: Decoder = {
  type: 'form',
  accepts: 'bytes',
  decode(input: Payload, ctx: DecodeContext, hint: Hint): DecoderOutput | null {
    if (typeof input === 'string' || !hint.declared || hasGzipMagic(input) || hasZlibMagic(input)) return null;
    let from = input.length >= 3 && input[0] === 0xef && input[1] === 0xbb && input[2] === 0xbf ? 3 : 0;
    let to = input.length;
    while (from < to && isAsciiSpace(input[from])) from++;
    while (to > from && isAsciiSpace(input[to - 1])) to--;
    if (from === to || !textLike(input, from, to)) return null;
    const c = input[from];
    if (c === 0x7b || c === 0x5b || c === 0x3c || c === 0x22) return null;
    const eq = input.indexOf(EQUALS, from);
    if (eq < 0 || eq >= to) return null;
    const amp = input.indexOf(AMPERSAND, from);
    if (amp < 0 || amp >= to) {
      let padding = true;
      for (let i = eq; i < to && padding; i++) padding = input[i] === EQUALS;
      if (padding) return null;
    }
    /* Most bodies are small: one conversion, then cheap slices of the text; big ones are read from their bytes as they are walked. */
    if (to - from < STREAM_MIN_LENGTH) return formOutput(input.toString('utf8', from, to), ctx);
    return streamOutput(FormPairs.ofBytes(input, from, to, ctx));
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
