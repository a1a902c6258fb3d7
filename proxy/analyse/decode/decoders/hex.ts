/** Hex-encoded text or compressed data ("7b22696d6569223a..."), accepted only when it decodes to something readable. */
import type { DecodeContext } from '../context';
import type { Decoder, DecoderOutput, Payload } from '../registry';
import { hasGzipMagic, hasZlibMagic, isMostlyPrintable } from '../text';

const HEX_EVEN = /^(?:[0-9a-fA-F]{2}){4,}$/;

export const hexDecoder: Decoder = {
  type: 'hex',
  accepts: 'text',
  decode(input: Payload, ctx: DecodeContext): DecoderOutput | null {
    if (typeof input !== 'string' || input.length < 8 || input.length % 2 !== 0) return null;
    if (!HEX_EVEN.test(input)) return null;
    if (input.length / 2 > ctx.decodedBytesLeft()) return null;
    const bytes = Buffer.from(input, 'hex');
    if (!(isMostlyPrintable(bytes) || hasGzipMagic(bytes) || hasZlibMagic(bytes))) return null;
    ctx.spendDecoded(bytes.length);
    return { kind: 'transform', data: bytes };
  },
  explain: () => 'hex-encoded data, decoded',
};
