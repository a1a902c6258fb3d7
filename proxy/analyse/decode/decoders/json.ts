/**
 * JSON documents, flattened into leaf values with JSONPath-like locators (`$.device.imei`,
 * `$.cells[0].cid`). Integers too long for a double (ICCIDs sent as numbers) keep their digits.
 */
import type { DecodeContext } from '../context';
import type { Decoder, DecoderOutput, Entry, Payload } from '../registry';
import { firstSignificant } from '../text';

/** Containers nested deeper than this are not walked (hostile `[[[[...]]]]`). */
export const MAX_JSON_NESTING = 64;

const PLAIN_KEY = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;
/** Integer literals of 16+ digits lose digits in a double; quote them before parsing. */
const LONG_INTEGER = /([:[,]\s*)(-?\d{16,})(?=\s*[,\]}])/g;

export function jsonKeySegment(parent: string, key: string): string {
  return PLAIN_KEY.test(key) ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`;
}

export function parseJsonKeepingDigits(text: string): unknown {
  if (/\d{16}/.test(text)) {
    const quoted = text.replace(LONG_INTEGER, '$1"$2"');
    if (quoted !== text) {
      try {
        return JSON.parse(quoted);
      } catch {
        /* the rewrite touched a string: fall back to the text as sent */
      }
    }
  }
  return JSON.parse(text);
}

interface Frame {
  value: unknown;
  locator: string;
  keyPath: string[];
  nesting: number;
}

/** Flattens a parsed document into entries; shared by every decoder that yields JSON-like trees. */
export function flattenTree(root: unknown, type: string, ctx: DecodeContext): Entry[] {
  const entries: Entry[] = [];
  const stack: Frame[] = [{ value: root, locator: '$', keyPath: [], nesting: 0 }];
  const budget = ctx.limits.maxFields;
  let cutNoted = false;
  while (stack.length) {
    if (entries.length >= budget) break;
    const frame = stack.pop()!;
    const { value, locator, keyPath, nesting } = frame;
    if (value === null || typeof value !== 'object') continue;
    if (nesting >= MAX_JSON_NESTING) {
      if (!cutNoted) ctx.hit('maxDepth', `${type} at ${ctx.at} nests deeper than ${MAX_JSON_NESTING} levels; deeper values were not examined`);
      cutNoted = true;
      continue;
    }
    const children: Frame[] = [];
    const push = (child: unknown, childLocator: string, key: string | null, childKeyPath: string[]) => {
      if (child === null || child === undefined) return;
      if (typeof child === 'object') {
        children.push({ value: child, locator: childLocator, keyPath: childKeyPath, nesting: nesting + 1 });
        return;
      }
      const scalar = typeof child !== 'string';
      entries.push({
        segment: `${type}:${childLocator}`,
        groupSegment: `${type}:${locator}`,
        chain: [type],
        key,
        keyPath: childKeyPath,
        value: String(child),
        scalar,
      });
    };
    if (Array.isArray(value)) {
      const parentKey = keyPath.length ? keyPath[keyPath.length - 1] : null;
      for (let i = 0; i < value.length; i++) push(value[i], `${locator}[${i}]`, parentKey, keyPath);
    } else {
      for (const key of Object.keys(value)) push((value as Record<string, unknown>)[key], jsonKeySegment(locator, key), key, [...keyPath, key]);
    }
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]);
  }
  return entries;
}

export const jsonDecoder: Decoder = {
  type: 'json',
  accepts: 'text',
  decode(input: Payload, ctx: DecodeContext): DecoderOutput | null {
    if (typeof input !== 'string') return null;
    const first = firstSignificant(input);
    if (first !== 0x7b && first !== 0x5b) return null;
    let doc: unknown;
    try {
      doc = parseJsonKeepingDigits(input);
    } catch {
      return null;
    }
    if (doc === null || typeof doc !== 'object') return null;
    return { kind: 'fields', entries: flattenTree(doc, 'json', ctx) };
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
      entries.push({ segment: `jsonl:${i}`, groupSegment: 'jsonl', chain: ['jsonl'], key: null, keyPath: [], value: line });
    }
    return entries.length >= 2 ? { kind: 'fields', entries } : null;
  },
  explain: () => 'JSON Lines: one JSON document per line, each read key by key',
};
