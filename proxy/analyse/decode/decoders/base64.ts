/**
 * Base64 in all the shapes apps send: standard, URL-safe, unpadded and line-wrapped (Android's
 * Base64.DEFAULT wraps at 76 columns). Accepted only when the result is readable text or a known
 * container, so ordinary IDs and words are not "decoded" into noise.
 */
import type { DecodeContext } from '../context';
import { transformed, type Decoder, type DecoderOutput, type Payload } from '../registry';
import { hasGzipMagic, hasZlibMagic, isMostlyPrintable, onlyBase64Chars } from '../text';
import { looksLikeProtobuf } from './protobuf';

/** Shorter strings decode to a handful of bytes: too little to tell text from noise. */
const MIN_BASE64_CHARS = 8;

const STANDARD = /^[A-Za-z0-9+/]+={0,2}$/;
const URL_SAFE = /^[A-Za-z0-9_-]+={0,2}$/;
const ALL_DIGITS = /^[0-9]+$/;
const HEX_OR_UUID = /^[0-9a-fA-F-]+$/;

/** Removes the line breaks of wrapped base64; null if other whitespace or odd wrapping is present. */
function unwrap(text: string): string | null {
  if (!text.includes('\n') && !text.includes('\r')) return text;
  const lines = text.split(/\r?\n/);
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  if (lines.length === 0) return null;
  const width = lines[0].length;
  for (let i = 0; i < lines.length - 1; i++) if (lines[i].length !== width) return null;
  return lines.join('');
}

/** True when every character is a hex digit or '-': such text needs no trimming or unwrapping, and HEX_OR_UUID would reject it. */
function onlyHexOrDash(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70) || c === 45)) return false;
  }
  return true;
}

export function base64Candidate(text: string): string | null {
  if (text.length < MIN_BASE64_CHARS) return null;
  /* Hashes, UUIDs and numbers (most long IDs in a batch) are rejected in one pass, before the regexes below. */
  if (onlyHexOrDash(text)) return null;
  /* Cheap rejection of prose, logs and JSON before any copying. */
  if (!onlyBase64Chars(text, 0, Math.min(text.length, 256), true)) return null;
  let source = text.trim();
  if (source.indexOf(' ') >= 0) {
    /* A '+' sent unescaped in a query or form value arrives as a space: put it back. */
    if (source.includes('  ')) return null;
    source = source.replace(/ /g, '+');
  }
  const compact = unwrap(source);
  if (compact === null || compact.length < MIN_BASE64_CHARS || compact.length % 4 === 1) return null;
  if (!STANDARD.test(compact) && !URL_SAFE.test(compact)) return null;
  /* Digits are numbers, and hex-only strings (hashes, UUIDs) are hex; base64 of real text practically never is either. */
  if (ALL_DIGITS.test(compact) || HEX_OR_UUID.test(compact)) return null;
  return compact;
}

/** Decoded bytes worth following: text, compressed data, or a protobuf that parses cleanly. */
export function plausibleDecodedBytes(bytes: Buffer): boolean {
  if (bytes.length < 4) return false;
  return isMostlyPrintable(bytes) || hasGzipMagic(bytes) || hasZlibMagic(bytes) || (bytes.length >= 8 && looksLikeProtobuf(bytes));
}

export const base64Decoder: Decoder = {
  type: 'base64',
  accepts: 'text',
  decode(input: Payload, ctx: DecodeContext): DecoderOutput | null {
    if (typeof input !== 'string') return null;
    const compact = base64Candidate(input);
    if (compact === null) return null;
    const estimated = Math.floor((compact.length * 3) / 4);
    if (estimated > ctx.decodedBytesLeft()) {
      ctx.hit('maxDecodedBytes', `base64 at ${ctx.at} (${compact.length} characters) not decoded: the flow's decoded-bytes budget is spent`);
      return null;
    }
    const bytes = Buffer.from(compact, 'base64');
    if (!plausibleDecodedBytes(bytes)) return null;
    ctx.spendDecoded(bytes.length);
    return transformed(bytes);
  },
  explain: () => 'base64-encoded data, decoded',
};
