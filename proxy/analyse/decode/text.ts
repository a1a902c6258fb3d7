/** Byte and text plausibility checks shared by decoders: "is this readable text or noise?". */
import { isUtf8 } from 'node:buffer';

/** Share of characters that must be printable for decoded bytes to count as text. */
export const PRINTABLE_SHARE = 0.95;

/** Control characters are counted in this much of a payload; the rest is only checked to be UTF-8. */
export const PRINTABLE_SCAN_BYTES = 64 * 1024;

/** True when the bytes are valid UTF-8 and almost all printable (tabs and newlines allowed). */
export function isMostlyPrintable(bytes: Buffer): boolean {
  if (bytes.length === 0) return false;
  const n = Math.min(bytes.length, PRINTABLE_SCAN_BYTES);
  const allowed = n * (1 - PRINTABLE_SHARE);
  let bad = 0;
  let high = n < bytes.length;
  for (let i = 0; i < n; i++) {
    /* One table read and one test per plain byte: the comparisons for control characters, which the first bodies never reached, had no type feedback, and the first control byte threw the optimized code away. */
    const kind = BYTE_KIND[bytes[i]];
    if (kind !== PLAIN) {
      if (kind === HIGH) high = true;
      else if (++bad > allowed) return false;
    }
  }
  return !high || isUtf8(bytes);
}

const PLAIN = 0;
const HIGH = 1;
const CONTROL = 2;
/** Per byte value: PLAIN (printable ASCII, tab, LF, CR), HIGH (part of a UTF-8 sequence) or CONTROL. */
const BYTE_KIND = ((): Uint8Array => {
  const t = new Uint8Array(256);
  for (let b = 0; b < 256; b++) t[b] = b >= 0x80 ? HIGH : (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) || b === 0x7f ? CONTROL : PLAIN;
  return t;
})();

/** True when every byte is printable ASCII/UTF-8 with no control characters at all (not even newlines). */
export function isStrictlyPrintable(bytes: Buffer): boolean {
  if (bytes.length === 0) return false;
  let high = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b >= 0x80) high = true;
    else if (b < 0x20 || b === 0x7f) return false;
  }
  return !high || isUtf8(bytes);
}

export function hasGzipMagic(bytes: Buffer): boolean {
  return bytes.length >= 10 && bytes[0] === 0x1f && bytes[1] === 0x8b && bytes[2] === 0x08;
}

/** zlib header: deflate method, 32K window or less, header checksum, no preset dictionary. */
export function hasZlibMagic(bytes: Buffer): boolean {
  if (bytes.length < 6) return false;
  const cmf = bytes[0];
  const flg = bytes[1];
  return (cmf & 0x0f) === 8 && cmf >> 4 <= 7 && (cmf * 256 + flg) % 31 === 0 && (flg & 0x20) === 0;
}

/** First non-whitespace character code of a string, or -1. */
export function firstSignificant(text: string): number {
  /* The index moves on inside the loop's body, which every call runs: most texts start with a significant character, and a loop step never taken had no type feedback (the optimized code was thrown away at the first leading space). */
  for (let i = 0; i < text.length; ) {
    const c = text.charCodeAt(i++);
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d && c !== 0xfeff) return c;
  }
  return -1;
}

/** percentDecode of text[from, to), cutting the text only once when nothing needs decoding (most keys and values). */
export function percentDecodeRange(text: string, from: number, to: number, plusIsSpace: boolean): string {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x25 || (c === 0x2b && plusIsSpace)) return percentDecode(text.slice(from, to), plusIsSpace);
  }
  return text.slice(from, to);
}

/** Lenient percent-decoding: valid %XX sequences become bytes, anything else stays as written. */
export function percentDecode(text: string, plusIsSpace: boolean): string {
  const src = plusIsSpace && text.includes('+') ? text.replace(/\+/g, ' ') : text;
  if (!src.includes('%')) return src;
  try {
    return decodeURIComponent(src);
  } catch {
    const bytes = Buffer.from(src, 'utf8');
    return percentDecodeBytes(bytes, 0, bytes.length, false);
  }
}

/** Reused for the decoded bytes of one text (grown when a longer one comes). */
let scratch = Buffer.allocUnsafe(256);

/**
 * bytes[from, to) percent-decoded as the WHATWG URL standard does it: %XX (two hex digits) is a
 * byte, anything else stays as written, '+' is a space when asked; then UTF-8 (bad sequences U+FFFD).
 */
export function percentDecodeBytes(bytes: Buffer, from: number, to: number, plusIsSpace: boolean): string {
  if (scratch.length < to - from) scratch = Buffer.allocUnsafe(Math.max(to - from, scratch.length * 2));
  const out = scratch;
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = bytes[i];
    if (c === 0x2b && plusIsSpace) out[n++] = 0x20;
    else if (c === 0x25 && i + 2 < to && isHexChar(bytes[i + 1]) && isHexChar(bytes[i + 2])) {
      out[n++] = (hexDigit(bytes[i + 1]) << 4) | hexDigit(bytes[i + 2]);
      i += 2;
    } else out[n++] = c;
  }
  return out.toString('utf8', 0, n);
}

function hexDigit(c: number): number {
  return c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x57;
}

export function isHexChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

/** True when the text has no character outside the base64 alphabets (both), '=' and line breaks (and spaces, if allowed). */
export function onlyBase64Chars(text: string, from: number, to: number, allowSpace = false): boolean {
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    const ok = (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 43 || c === 47 || c === 45 || c === 95 || c === 61 || c === 10 || c === 13 || (allowSpace && c === 32);
    if (!ok) return false;
  }
  return true;
}

/**
 * An empty string array stored the way filled ones are (V8's PACKED_ELEMENTS; a bare `[]` starts as
 * PACKED_SMI_ELEMENTS): chains and key paths are spread into new ones, and a spread optimized for
 * one kind of array was thrown away at the first array of the other kind.
 */
export function noStrings(): string[] {
  const a = [''];
  a.length = 0;
  return a;
}
