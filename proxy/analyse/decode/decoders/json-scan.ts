/**
 * A streaming JSON reader that yields leaf values without building the document: no object graph
 * to collect (large batches cost far less), numbers keep their exact digits (ICCIDs sent as
 * numbers), it stops once the field budget is reached, and a body cut short by the capture limit
 * still yields the fields before the cut. Text that is not JSON (or not only JSON) is rejected.
 */
import type { DecodeContext } from '../context';
import type { Entry } from '../registry';

/** Containers nested deeper than this are skipped (hostile `[[[[...]]]]`). */
export const MAX_JSON_NESTING = 64;

const PLAIN_KEY = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

export function jsonKeySegment(parent: string, key: string): string {
  return PLAIN_KEY.test(key) ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`;
}

interface Frame {
  isArray: boolean;
  locator: string;
  keyPath: string[];
  index: number;
  key: string;
}

type Expect = 'firstKeyOrEnd' | 'key' | 'firstValueOrEnd' | 'value' | 'commaOrEnd';

class NotJson extends Error {}

function skipWs(text: string, i: number): number {
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return i;
  }
  return i;
}

/** Reads the string starting at the quote at `i`: [value, index after it], or null if the text ends first. */
function readString(text: string, i: number): [string, number] | null {
  let j = i + 1;
  let escaped = false;
  for (;;) {
    const q = text.indexOf('"', j);
    if (q < 0) return null;
    let backslashes = 0;
    for (let k = q - 1; k > i && text.charCodeAt(k) === 0x5c; k--) backslashes++;
    if (backslashes > 0) escaped = true;
    if (backslashes % 2 === 0) {
      const raw = text.slice(i + 1, q);
      if (!escaped && raw.indexOf('\\') < 0) return [raw, q + 1];
      try {
        return [JSON.parse(text.slice(i, q + 1)) as string, q + 1];
      } catch {
        throw new NotJson();
      }
    }
    j = q + 1;
  }
}

/** Index just after the value starting at `i` (a container being skipped), or text.length if cut. */
function skipValue(text: string, i: number): number {
  let depth = 0;
  for (let j = i; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === 0x22) {
      const s = readString(text, j);
      if (!s) return text.length;
      j = s[1] - 1;
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) {
      if (--depth === 0) return j + 1;
    }
  }
  return text.length;
}

export interface ScannedJson {
  entries: Entry[];
  /** False when the text ended inside the document (a truncated body). */
  complete: boolean;
}

/** Leaves of the JSON document `text`; null when it is not JSON. `limit` caps the entries produced. */
export function scanJson(text: string, type: string, ctx: DecodeContext, limit: number): ScannedJson | null {
  const chain = [type];
  const entries: Entry[] = [];
  const frames: Frame[] = [];
  let i = skipWs(text, text.charCodeAt(0) === 0xfeff ? 1 : 0);
  const open = (isArray: boolean, locator: string, keyPath: string[]) => {
    frames.push({ isArray, locator, keyPath, index: 0, key: '' });
    return isArray ? 'firstValueOrEnd' : 'firstKeyOrEnd';
  };
  const first = text.charCodeAt(i);
  if (first !== 0x7b && first !== 0x5b) return null;
  let expect: Expect = open(first === 0x5b, '$', []);
  i++;
  let nestingNoted = false;
  try {
    while (frames.length && entries.length < limit) {
      i = skipWs(text, i);
      if (i >= text.length) return entries.length ? { entries, complete: false } : null;
      const c = text.charCodeAt(i);
      const top = frames[frames.length - 1];
      if (expect === 'commaOrEnd') {
        if (c === 0x2c) {
          expect = top.isArray ? 'value' : 'key';
          i++;
        } else if ((c === 0x7d && !top.isArray) || (c === 0x5d && top.isArray)) {
          frames.pop();
          expect = 'commaOrEnd';
          i++;
        } else throw new NotJson();
        continue;
      }
      if (expect === 'firstKeyOrEnd' || expect === 'firstValueOrEnd') {
        if (c === (expect === 'firstKeyOrEnd' ? 0x7d : 0x5d)) {
          frames.pop();
          expect = 'commaOrEnd';
          i++;
          continue;
        }
        expect = expect === 'firstKeyOrEnd' ? 'key' : 'value';
      }
      if (expect === 'key') {
        if (c !== 0x22) throw new NotJson();
        const s = readString(text, i);
        if (!s) return entries.length ? { entries, complete: false } : null;
        top.key = s[0];
        i = skipWs(text, s[1]);
        if (i >= text.length) return entries.length ? { entries, complete: false } : null;
        if (text.charCodeAt(i) !== 0x3a) throw new NotJson();
        i++;
        expect = 'value';
        continue;
      }
      /* a value */
      let locator: string;
      let key: string | null;
      let keyPath: string[];
      if (top.isArray) {
        locator = `${top.locator}[${top.index++}]`;
        key = top.keyPath.length ? top.keyPath[top.keyPath.length - 1] : null;
        keyPath = top.keyPath;
      } else {
        locator = jsonKeySegment(top.locator, top.key);
        key = top.key;
        keyPath = [...top.keyPath, top.key];
      }
      expect = 'commaOrEnd';
      if (c === 0x7b || c === 0x5b) {
        if (frames.length >= MAX_JSON_NESTING) {
          if (!nestingNoted) ctx.hit('maxDepth', `${type} at ${ctx.at} nests deeper than ${MAX_JSON_NESTING} levels; deeper values were not examined`);
          nestingNoted = true;
          i = skipValue(text, i);
          continue;
        }
        expect = open(c === 0x5b, locator, keyPath);
        i++;
        continue;
      }
      let value: string;
      let scalar = true;
      if (c === 0x22) {
        const s = readString(text, i);
        if (!s) return entries.length ? { entries, complete: false } : null;
        value = s[0];
        scalar = false;
        i = s[1];
      } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
        NUMBER.lastIndex = i;
        const m = NUMBER.exec(text);
        if (!m) throw new NotJson();
        value = m[0];
        i += value.length;
      } else if (text.startsWith('true', i) || text.startsWith('null', i)) {
        value = text.slice(i, i + 4);
        i += 4;
      } else if (text.startsWith('false', i)) {
        value = 'false';
        i += 5;
      } else throw new NotJson();
      if (value === 'null' && scalar) continue;
      entries.push({ segment: `${type}:${locator}`, groupSegment: `${type}:${top.locator}`, chain, key, keyPath, value, scalar });
    }
  } catch (err) {
    if (err instanceof NotJson) return null;
    throw err;
  }
  if (frames.length) return { entries, complete: true };
  return skipWs(text, i) < text.length ? null : { entries, complete: true };
}
