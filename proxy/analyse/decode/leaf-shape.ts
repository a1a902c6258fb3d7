/**
 * Whether a text value needs the decoder loop at all, judged from its characters alone: most
 * leaves of a request are short plain tokens, UUIDs, digit strings or random hex, which no text
 * decoder reads. Reads text[from, to) in place, so a decoder that cut the value from a flat
 * document (JSON) can judge it there, before the value becomes a slice that is slower to read.
 */
import { evenHexIsNoise } from './decoders/hex';

/** May hold an encoding: walk it. */
export const WALK = 0;
/** A number, true or false: emitted as it is, never decoded. */
export const AS_IS = 1;
/** No text decoder reads it, whatever the budget: a leaf as it stands. */
export const DECLINED = 2;

/**
 * False for short plain tokens ("home", "NOK", "9") that no decoder could unwrap: most leaves of a
 * JSON batch, which then skip the decoder loop entirely.
 */
export function mightBeEncodedAt(text: string, from: number, to: number): boolean {
  const n = to - from;
  if (n >= 8) return true;
  if (n < 3) return false;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    /* { [ < % = ; : */
    if (c === 0x7b || c === 0x5b || c === 0x3c || c === 0x25 || c === 0x3d || c === 0x3b || c === 0x3a) return true;
  }
  return false;
}

/** hexShapeAt: a character other than hex digits and dashes... */
export const NOT_HEX_SHAPED = 0;
/** ...hex digits and dashes that the hex decoder declines whatever they stand for (a dash, an odd count, fewer than 8)... */
export const HEX_DECLINED = 1;
/** ...or an even number, 8 or more, of hex digits: the hex decoder reads them unless their bytes are noise. */
export const EVEN_HEX = 2;

/** What text[from, to) is made of, as far as the hex decoder (the only text decoder that reads hex digits and dashes) cares. */
export function hexShapeAt(text: string, from: number, to: number): number {
  let dash = false;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2d) dash = true;
    else if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46))) return NOT_HEX_SHAPED;
  }
  const n = to - from;
  return dash || n < 8 || n % 2 === 1 ? HEX_DECLINED : EVEN_HEX;
}

/**
 * DECLINED when no text decoder reads text[from, to) (given no Content-Type): short plain tokens,
 * and text of hex digits and dashes that hex declines whatever the budget (dashes, an odd count,
 * fewer than 8, or bytes that are noise); WALK otherwise.
 */
export function leafShape(text: string, from: number, to: number): number {
  if (!mightBeEncodedAt(text, from, to)) return DECLINED;
  const shape = hexShapeAt(text, from, to);
  if (shape === NOT_HEX_SHAPED) return WALK;
  if (shape === HEX_DECLINED) return DECLINED;
  return evenHexIsNoise(text, from, to) ? DECLINED : WALK;
}
