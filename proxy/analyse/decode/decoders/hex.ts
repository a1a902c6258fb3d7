/**
 * Hex-encoded text or compressed data ("7b22696d6569223a..."), accepted only when it decodes to
 * something readable. Most hex an app sends is a hash, a token or a random ID that decodes to
 * noise; that answer is reached reading the digits in place, so declining allocates nothing.
 */
import type { DecodeContext } from '../context';
import { transformed, type Decoder, type DecoderOutput, type Payload } from '../registry';
import { PRINTABLE_SCAN_BYTES, PRINTABLE_SHARE } from '../text';

/** Value of each hex digit's character code; -1 for every other code below 128. */
const DIGIT = new Int8Array(128).fill(-1);
for (let c = 0; c < 10; c++) DIGIT[0x30 + c] = c;
for (let c = 0; c < 6; c++) DIGIT[0x61 + c] = DIGIT[0x41 + c] = 10 + c;

/** Same as /^(?:[0-9a-fA-F]{2}){4,}$/: an even number, eight or more, of hex digits. */
function isEvenHex(text: string): boolean {
  const n = text.length;
  if (n < 8 || n % 2 !== 0) return false;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c >= 128 || DIGIT[c] < 0) return false;
  }
  return true;
}

/** The byte written at pair `k` of the hex digits starting at `from` (already checked to be hex digits). */
function byteAt(text: string, from: number, k: number): number {
  return (DIGIT[text.charCodeAt(from + 2 * k)] << 4) | DIGIT[text.charCodeAt(from + 2 * k + 1)];
}

/**
 * What `isMostlyPrintable(bytes) || hasGzipMagic(bytes) || hasZlibMagic(bytes)` says of the bytes
 * the hex text stands for, read from the text itself in one pass: control characters are counted
 * among the first PRINTABLE_SCAN_BYTES, and every byte from 0x80 up must start or continue a
 * well-formed UTF-8 character (Unicode table 3-7, what Buffer's isUtf8 checks). Invalid UTF-8
 * answers no at once, which is where the random bytes of a hash or an ID usually stop.
 */
function decodesToSomething(text: string, from: number, to: number): boolean {
  const n = (to - from) / 2;
  const b0 = byteAt(text, from, 0);
  const b1 = byteAt(text, from, 1);
  if (n >= 10 && b0 === 0x1f && b1 === 0x8b && byteAt(text, from, 2) === 0x08) return true;
  if (n >= 6 && (b0 & 0x0f) === 8 && b0 >> 4 <= 7 && (b0 * 256 + b1) % 31 === 0 && (b1 & 0x20) === 0) return true;
  const scan = Math.min(n, PRINTABLE_SCAN_BYTES);
  const allowed = scan * (1 - PRINTABLE_SHARE);
  let bad = 0;
  let k = 0;
  while (k < n) {
    const b = byteAt(text, from, k);
    if (b < 0x80) {
      if (k < scan && ((b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) || b === 0x7f) && ++bad > allowed) return false;
      k++;
      continue;
    }
    /* A multi-byte character: its continuation bytes are never control characters. */
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0;
      else if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90;
      else if (b === 0xf4) hi = 0x8f;
    } else return false;
    if (k + need >= n) return false;
    const second = byteAt(text, from, k + 1);
    if (second < lo || second > hi) return false;
    for (let j = 2; j <= need; j++) {
      const c = byteAt(text, from, k + j);
      if (c < 0x80 || c > 0xbf) return false;
    }
    k += need + 1;
  }
  return true;
}

/** True when hexDecoder declines the text (read in place: hashes and random IDs become leaves without the decoder loop). */
export function hexDeclines(text: string, ctx: DecodeContext): boolean {
  return !isEvenHex(text) || evenHexDeclines(text, ctx);
}

/** hexDeclines for text already known to be an even number, eight or more, of hex digits. */
export function evenHexDeclines(text: string, ctx: DecodeContext): boolean {
  return text.length / 2 > ctx.decodedBytesLeft() || !decodesToSomething(text, 0, text.length);
}

/**
 * True when the even number (8 or more) of hex digits at text[from, to) stands for noise, which
 * hexDecoder declines whatever the budget: read in place, e.g. inside the JSON document the value
 * was cut from (a flat string, read faster than the slice).
 */
export function evenHexIsNoise(text: string, from: number, to: number): boolean {
  return !decodesToSomething(text, from, to);
}

export const hexDecoder: Decoder = {
  type: 'hex',
  accepts: 'text',
  decode(input: Payload, ctx: DecodeContext): DecoderOutput | null {
    if (typeof input !== 'string' || hexDeclines(input, ctx)) return null;
    const bytes = Buffer.from(input, 'hex');
    ctx.spendDecoded(bytes.length);
    return transformed(bytes);
  },
  explain: () => 'hex-encoded data, decoded',
};
