/**
 * Hex-encoded text or compressed data ("7b22696d6569223a..."), accepted only when it decodes to
 * something readable. Most hex an app sends is a hash, a token or a random ID that decodes to
 * noise; that answer is reached reading the digits in place, so declining allocates nothing.
 */
import type { DecodeContext } from '../context';
import type { Decoder, DecoderOutput, Payload } from '../registry';
import { PRINTABLE_SCAN_BYTES, PRINTABLE_SHARE } from '../text';

/** Value of a hex digit's character code, or -1. */
function digit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/** Same as /^(?:[0-9a-fA-F]{2}){4,}$/: an even number, eight or more, of hex digits. */
function isEvenHex(text: string): boolean {
  const n = text.length;
  if (n < 8 || n % 2 !== 0) return false;
  for (let i = 0; i < n; i++) if (digit(text.charCodeAt(i)) < 0) return false;
  return true;
}

/** The byte written at pair `k` of hex text already checked by isEvenHex. */
function byteAt(text: string, k: number): number {
  return (digit(text.charCodeAt(2 * k)) << 4) | digit(text.charCodeAt(2 * k + 1));
}

/** True when bytes [from, n) of the hex text are well-formed UTF-8 (Unicode table 3-7, what Buffer's isUtf8 checks). */
function validUtf8(text: string, from: number, n: number): boolean {
  let k = from;
  while (k < n) {
    const b = byteAt(text, k);
    if (b < 0x80) {
      k++;
      continue;
    }
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
    const second = byteAt(text, k + 1);
    if (second < lo || second > hi) return false;
    for (let j = 2; j <= need; j++) {
      const c = byteAt(text, k + j);
      if (c < 0x80 || c > 0xbf) return false;
    }
    k += need + 1;
  }
  return true;
}

/**
 * What `isMostlyPrintable(bytes) || hasGzipMagic(bytes) || hasZlibMagic(bytes)` says of the bytes
 * the hex text stands for, read from the text itself.
 */
function decodesToSomething(text: string): boolean {
  const n = text.length / 2;
  const b0 = byteAt(text, 0);
  const b1 = byteAt(text, 1);
  if (n >= 10 && b0 === 0x1f && b1 === 0x8b && byteAt(text, 2) === 0x08) return true;
  if (n >= 6 && (b0 & 0x0f) === 8 && b0 >> 4 <= 7 && (b0 * 256 + b1) % 31 === 0 && (b1 & 0x20) === 0) return true;
  const scan = Math.min(n, PRINTABLE_SCAN_BYTES);
  const allowed = scan * (1 - PRINTABLE_SHARE);
  let bad = 0;
  let high = scan < n;
  for (let k = 0; k < scan; k++) {
    const b = byteAt(text, k);
    if (b >= 0x80) high = true;
    else if ((b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) || b === 0x7f) {
      if (++bad > allowed) return false;
    }
  }
  return !high || validUtf8(text, 0, n);
}

export const hexDecoder: Decoder = {
  type: 'hex',
  accepts: 'text',
  decode(input: Payload, ctx: DecodeContext): DecoderOutput | null {
    if (typeof input !== 'string' || !isEvenHex(input)) return null;
    if (input.length / 2 > ctx.decodedBytesLeft()) return null;
    if (!decodesToSomething(input)) return null;
    const bytes = Buffer.from(input, 'hex');
    ctx.spendDecoded(bytes.length);
    return { kind: 'transform', data: bytes };
  },
  explain: () => 'hex-encoded data, decoded',
};
