/** JSON Web Tokens (header.payload.signature): the payload is what the app says about the user or device. */
import { transformed, type Decoder, type DecoderOutput, type Payload } from '../registry';

const JWT_SHAPE = /^[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*$/;

function decodeSegment(seg: string): string | null {
  const text = Buffer.from(seg, 'base64url').toString('utf8');
  return text.includes('\ufffd') ? null : text;
}

export const jwtDecoder: Decoder = {
  type: 'jwt',
  accepts: 'text',
  decode(input: Payload): DecoderOutput | null {
    if (typeof input !== 'string' || !input.startsWith('eyJ') || !JWT_SHAPE.test(input)) return null;
    const [head, payload] = input.split('.');
    const header = decodeSegment(head);
    if (!header) return null;
    let parsed: unknown;
    try {
      parsed = JSON.parse(header);
    } catch {
      return null;
    }
    if (!parsed || typeof parsed !== 'object' || !('alg' in parsed || 'typ' in parsed)) return null;
    const body = decodeSegment(payload);
    return body ? transformed(body) : null;
  },
  explain: () => 'a JSON Web Token; its payload was read',
};
