/** Percent-encoding (%7B%22imei...), one layer per step; the walker repeats it until the text is stable. */
import { transformed, type Decoder, type DecoderOutput, type Payload } from '../registry';
import { percentDecode } from '../text';

const ENCODED_BYTE = /%[0-9a-fA-F]{2}/;

export const percentDecoder: Decoder = {
  type: 'percent',
  accepts: 'text',
  decode(input: Payload): DecoderOutput | null {
    if (typeof input !== 'string' || input.indexOf('%') < 0 || !ENCODED_BYTE.test(input)) return null;
    const out = percentDecode(input, false);
    return out === input ? null : transformed(out);
  },
  explain: () => 'percent-encoded (URL-encoded) text, decoded',
};
