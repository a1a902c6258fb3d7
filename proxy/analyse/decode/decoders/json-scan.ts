/**
 * A streaming JSON reader that yields leaf values without building the document: no object graph
 * to collect (large batches cost far less), numbers keep their exact digits (ICCIDs sent as
 * numbers), it stops once the field budget is reached, and a body cut short by the capture limit
 * still yields the fields before the cut. Text that is not JSON (or not only JSON) is rejected.
 * Analytics batches repeat one record shape many times, so the reader allocates as little as it
 * can per value: each leaf's full path is one concatenation onto its container's, the container's
 * path is the group of all its leaves, and key paths are shared by every record of the same shape.
 */
import type { DecodeContext } from '../context';
import type { PlacedEntry } from '../registry';
import { AS_IS, leafShape, WALK } from '../leaf-shape';
import { elementPlace, memberPlace, rootPlace, type Place } from './json-places';

/** Documents this long or longer share their key strings, key paths and locator suffixes (see scanJson). */
const SHARED_PARTS_MIN_LENGTH = 1024;

/** Containers nested deeper than this are skipped (hostile `[[[[...]]]]`). */
export const MAX_JSON_NESTING = 64;

/** True for keys written `.key` in a locator: [A-Za-z_$][A-Za-z0-9_$-]* (others are written `["key"]`). */
function isPlainKey(key: string): boolean {
  const n = key.length;
  if (n === 0) return false;
  for (let i = 0; i < n; i++) {
    const c = key.charCodeAt(i);
    const letter = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f || c === 0x24;
    if (!letter && (i === 0 || !((c >= 0x30 && c <= 0x39) || c === 0x2d))) return false;
  }
  return true;
}

export function jsonKeySegment(parent: string, key: string): string {
  return parent + keySuffix(key);
}

function keySuffix(key: string): string {
  return isPlainKey(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

/** `[0]`, `[1]`... built once: each array element's path is then a single join onto its container's. */
const INDEX_SUFFIXES: string[] = [];
const CACHED_INDEXES = 4096;

function indexSuffix(i: number): string {
  if (i >= CACHED_INDEXES) return `[${i}]`;
  return (INDEX_SUFFIXES[i] ??= `[${i}]`);
}

interface Frame {
  isArray: boolean;
  /** Full path of this container (the group of its leaves), e.g. `body>json:$.batch[3]`. */
  path: string;
  keyPath: string[];
  index: number;
  key: string;
  /** This container's shared place (see json-places), if it has one. */
  place: Place | undefined;
}

type Expect = 'firstKeyOrEnd' | 'key' | 'firstValueOrEnd' | 'value' | 'commaOrEnd';

class NotJson extends Error {}

/** Index just after the string last read by readString (kept here so reading a string allocates only the string). */
let stringEnd = 0;
/** True when the string last read by readString had no escapes (it is the text between its quotes). */
let stringPlain = false;

/**
 * The first backslash at or after backslashFrom in backslashText (-1: none), found by the native
 * indexOf and reused while the strings read lie before it: a document without escapes is searched
 * for backslashes once, instead of once per string character by character. Cleared after each
 * document (no text is kept alive).
 */
let backslashText = '';
let backslashFrom = 0;
let backslashAt = -1;

function backslashBetween(text: string, from: number, to: number): boolean {
  if (text !== backslashText || from < backslashFrom || (backslashAt >= 0 && backslashAt < from)) {
    backslashText = text;
    backslashFrom = from;
    backslashAt = text.indexOf('\\', from);
  }
  return backslashAt >= 0 && backslashAt < to;
}

function skipWs(text: string, i: number): number {
  /* The index moves on in the body every call runs: compact JSON never loops, and a loop step never taken had no type feedback (the first space threw the optimized scanner away). */
  while (i < text.length) {
    const c = text.charCodeAt(i++);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return i - 1;
  }
  return i;
}

/** Reads the string starting at the quote at `i` (its end goes to stringEnd), or null if the text ends first. */
function readString(text: string, i: number): string | null {
  const q0 = text.indexOf('"', i + 1);
  if (q0 < 0) return null;
  if (!backslashBetween(text, i + 1, q0)) {
    /* No backslash inside: the string is the text between its quotes (most strings; no second pass over them). */
    stringEnd = q0 + 1;
    stringPlain = true;
    return text.slice(i + 1, q0);
  }
  let j = i + 1;
  let escaped = false;
  for (;;) {
    const q = text.indexOf('"', j);
    if (q < 0) return null;
    let backslashes = 0;
    for (let k = q - 1; k > i && text.charCodeAt(k) === 0x5c; k--) backslashes++;
    if (backslashes > 0) escaped = true;
    if (backslashes % 2 === 0) {
      stringEnd = q + 1;
      stringPlain = !escaped && !hasBackslash(text, i + 1, q);
      if (stringPlain) return text.slice(i + 1, q);
      try {
        return JSON.parse(text.slice(i, q + 1)) as string;
      } catch {
        throw new NotJson();
      }
    }
    j = q + 1;
  }
}

/**
 * readString for keys: a key without escapes that this document already used comes back as the
 * same string, found by a hash of its characters, so the records of a batch cut out and hash no
 * key again (`known` is per document: a string cut from it never outlives it).
 */
function readKey(text: string, i: number, known: Map<number, string>): string | null {
  const q = text.indexOf('"', i + 1);
  if (q < 0) return null;
  let hash = q - i;
  for (let k = i + 1; k < q; k++) {
    const c = text.charCodeAt(k);
    if (c === 0x5c) return readString(text, i);
    hash = (Math.imul(hash, 31) + c) | 0;
  }
  stringEnd = q + 1;
  const seen = known.get(hash);
  if (seen !== undefined && seen.length === q - i - 1 && text.startsWith(seen, i + 1)) return seen;
  const key = text.slice(i + 1, q);
  known.set(hash, key);
  return key;
}

/** Index just after the JSON number starting at `i` (-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?), or -1 if none starts there. */
function numberEnd(text: string, i: number): number {
  let j = i;
  if (text.charCodeAt(j) === 0x2d) j++;
  const first = text.charCodeAt(j);
  if (first === 0x30) j++;
  else if (first >= 0x31 && first <= 0x39) {
    j++;
    while (isDigit(text.charCodeAt(j))) j++;
  } else return -1;
  if (text.charCodeAt(j) === 0x2e && isDigit(text.charCodeAt(j + 1))) {
    j += 2;
    while (isDigit(text.charCodeAt(j))) j++;
  }
  const e = text.charCodeAt(j);
  if (e === 0x65 || e === 0x45) {
    let k = j + 1;
    const sign = text.charCodeAt(k);
    if (sign === 0x2b || sign === 0x2d) k++;
    if (isDigit(text.charCodeAt(k))) {
      k++;
      while (isDigit(text.charCodeAt(k))) k++;
      j = k;
    }
  }
  return j;
}

function hasBackslash(text: string, from: number, to: number): boolean {
  for (let k = from; k < to; k++) if (text.charCodeAt(k) === 0x5c) return true;
  return false;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** Index just after the value starting at `i` (a container being skipped), or text.length if cut. */
function skipValue(text: string, i: number): number {
  let depth = 0;
  for (let j = i; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === 0x22) {
      if (readString(text, j) === null) return text.length;
      j = stringEnd - 1;
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) {
      if (--depth === 0) return j + 1;
    }
  }
  return text.length;
}

export interface ScannedJson {
  entries: PlacedEntry[];
  /** Per entry, what it needs (leaf-shape): AS_IS for numbers, true and false; DECLINED for strings no decoder reads; WALK. */
  leaves: number[];
  /** False when the text ended inside the document (a truncated body). */
  complete: boolean;
}

/** Where the document sits: the path, key path and chain of the value being decoded. */
export interface JsonBase {
  path: string;
  keyPath: string[];
  chain: string[];
}

/**
 * Leaves of the JSON document `text`, placed under `base`; null when it is not JSON. `limit` caps
 * the entries produced.
 */
export function scanJson(text: string, type: string, ctx: DecodeContext, limit: number, base: JsonBase): ScannedJson | null {
  /* Most texts offered are not JSON (headers, tokens, words): they are turned away before anything is allocated. */
  let i = skipWs(text, text.charCodeAt(0) === 0xfeff ? 1 : 0);
  const first = text.charCodeAt(i);
  if (first !== 0x7b && first !== 0x5b) return null;
  const rootPath = base.path ? `${base.path}>${type}:$` : `${type}:$`;
  /* At a shared position (the request body), the document's places are those of earlier documents. */
  const root = rootPlace(base, type, rootPath);
  const chain = root !== undefined ? root.chain : [...base.chain, type];
  const entries: PlacedEntry[] = [];
  const leaves: number[] = [];
  const frames: Frame[] = [];
  /*
   * Batches repeat their keys: from SHARED_PARTS_MIN_LENGTH on, key strings, key paths and locator
   * suffixes are made once per document and shared. A small document (one event, a config) makes
   * them as it goes: the maps would cost more than they save.
   */
  const shareParts = text.length >= SHARED_PARTS_MIN_LENGTH;
  /* Key paths per (parent key path, key): every record of a batch shares them. */
  const childKeyPaths = shareParts ? new Map<string[], Map<string, string[]>>() : undefined;
  const keyPathOf = (parent: string[], key: string): string[] => {
    if (!childKeyPaths) return [...parent, key];
    let byKey = childKeyPaths.get(parent);
    if (!byKey) childKeyPaths.set(parent, (byKey = new Map()));
    let kp = byKey.get(key);
    if (!kp) byKey.set(key, (kp = [...parent, key]));
    return kp;
  };
  const knownKeys = shareParts ? new Map<number, string>() : undefined;
  /* Each key's locator suffix (`.imei`, `["a b"]`), built once per document. */
  const suffixes = shareParts ? new Map<string, string>() : undefined;
  const suffixOf = (key: string): string => {
    if (!suffixes) return keySuffix(key);
    let suffix = suffixes.get(key);
    if (suffix === undefined) suffixes.set(key, (suffix = keySuffix(key)));
    return suffix;
  };
  const open = (isArray: boolean, path: string, keyPath: string[], place: Place | undefined) => {
    frames.push({ isArray, path, keyPath, index: 0, key: '', place });
    return isArray ? 'firstValueOrEnd' : 'firstKeyOrEnd';
  };
  let expect: Expect =
    root !== undefined ? open(first === 0x5b, root.place.path, root.place.keyPath, root.place) : open(first === 0x5b, rootPath, base.keyPath, undefined);
  i++;
  let nestingNoted = false;
  try {
    while (frames.length && entries.length < limit) {
      i = skipWs(text, i);
      if (i >= text.length) return entries.length ? { entries, leaves, complete: false } : null;
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
        const k = knownKeys ? readKey(text, i, knownKeys) : readString(text, i);
        if (k === null) return entries.length ? { entries, leaves, complete: false } : null;
        top.key = k;
        i = skipWs(text, stringEnd);
        if (i >= text.length) return entries.length ? { entries, leaves, complete: false } : null;
        if (text.charCodeAt(i) !== 0x3a) throw new NotJson();
        i++;
        expect = 'value';
        continue;
      }
      /* a value */
      let path: string;
      let key: string | null;
      let keyPath: string[];
      let place: Place | undefined;
      if (top.isArray) {
        const index = top.index++;
        place = top.place !== undefined ? elementPlace(top.place, index, indexSuffix(index)) : undefined;
        if (place !== undefined) {
          path = place.path;
          key = place.key;
        } else {
          path = top.path + indexSuffix(index);
          key = top.keyPath.length ? top.keyPath[top.keyPath.length - 1] : null;
        }
        keyPath = top.keyPath;
      } else {
        place = top.place !== undefined ? memberPlace(top.place, top.key, keySuffix) : undefined;
        if (place !== undefined) {
          path = place.path;
          key = place.key;
          keyPath = place.keyPath;
        } else {
          path = top.path + suffixOf(top.key);
          key = top.key;
          keyPath = keyPathOf(top.keyPath, top.key);
        }
      }
      expect = 'commaOrEnd';
      if (c === 0x7b || c === 0x5b) {
        if (frames.length >= MAX_JSON_NESTING) {
          if (!nestingNoted) ctx.hit('maxDepth', `${type} at ${ctx.at} nests deeper than ${MAX_JSON_NESTING} levels; deeper values were not examined`);
          nestingNoted = true;
          i = skipValue(text, i);
          continue;
        }
        expect = open(c === 0x5b, path, keyPath, place);
        i++;
        continue;
      }
      let value: string;
      let leaf = AS_IS;
      if (c === 0x22) {
        const v = readString(text, i);
        if (v === null) return entries.length ? { entries, leaves, complete: false } : null;
        value = v;
        /* Judged here, in the document: the value itself is a slice, slower to read. */
        leaf = stringPlain ? leafShape(text, i + 1, stringEnd - 1) : WALK;
        i = stringEnd;
      } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
        const end = numberEnd(text, i);
        if (end < 0) throw new NotJson();
        value = text.slice(i, end);
        i = end;
      } else if (text.startsWith('true', i)) {
        value = 'true';
        i += 4;
      } else if (text.startsWith('null', i)) {
        i += 4;
        continue;
      } else if (text.startsWith('false', i)) {
        value = 'false';
        i += 5;
      } else throw new NotJson();
      entries.push({ path, key, keyPath, value, chain, group: top.path });
      leaves.push(leaf);
    }
  } catch (err) {
    if (err instanceof NotJson) return null;
    throw err;
  } finally {
    backslashText = '';
  }
  if (frames.length) return { entries, leaves, complete: true };
  return skipWs(text, i) < text.length ? null : { entries, leaves, complete: true };
}
