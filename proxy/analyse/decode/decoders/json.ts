/**
 * JSON documents, flattened into leaf values with JSONPath-like locators (`$.device.imei`,
 * `$.cells[0].cid`). Integers too long for a double (ICCIDs sent as numbers) keep their digits.
 */
import type { DecodeContext } from '../context';
import { fieldsOutput, makeEntry, placedOutput, type Decoder, type DecoderOutput, type Entry, type Payload } from '../registry';
import { firstSignificant, noStrings } from '../text';
import { scanJson } from './json-scan';

export { jsonKeySegment, MAX_JSON_NESTING } from './json-scan';

export const jsonDecoder: Decoder = {
  type: 'json',
  accepts: 'text',
  decode(input: Payload, ctx: DecodeContext): DecoderOutput | null {
    if (typeof input !== 'string') return null;
    /* One more than the field budget, so that the budget's note is written when it is exceeded. */
    const scanned = scanJson(input, 'json', ctx, ctx.limits.maxFields + 1, ctx.position);
    if (!scanned) return null;
    if (!scanned.complete) ctx.note(`JSON at ${ctx.at} ends before the document does (cut short?); the values before the cut were kept`);
    return placedOutput(scanned.entries, scanned.leaves);
  },
  explain: () => 'a JSON document, read key by key',
};

/** JSON Lines / NDJSON (analytics batches, crash-report envelopes): two or more lines, each a JSON object or array. */
export const jsonLinesDecoder: Decoder = {
  type: 'jsonl',
  accepts: 'text',
  decode(input: Payload): DecoderOutput | null {
    if (typeof input !== 'string' || input.indexOf('\n') < 0) return null;
    const first = firstSignificant(input);
    if (first !== 0x7b && first !== 0x5b) return null;
    const lines = input.split('\n');
    const entries: Entry[] = [];
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].trim();
      if (!line) continue;
      const c = line.charCodeAt(0);
      const last = line.charCodeAt(line.length - 1);
      if (!((c === 0x7b && last === 0x7d) || (c === 0x5b && last === 0x5d))) return null;
      entries.push(makeEntry(`jsonl:${i}`, 'jsonl', ['jsonl'], null, noStrings(), line));
    }
    return entries.length >= 2 ? fieldsOutput(entries) : null;
  },
  explain: () => 'JSON Lines: one JSON document per line, each read key by key',
};
