/**
 * Reads a HAR file as a stream: the JSON is scanned for its structure only (strings, brackets,
 * the keys of the top object and of `log`), and each element of `log.entries` is handed over as its
 * own bytes, parsed on its own. Memory is bounded by the largest entry, not by the file (a 419 MB
 * export peaked at 1.7 GB when parsed whole). Everything outside the entries is parsed too, so a
 * file that is not valid JSON is still an error, named by its byte offset; a broken entry only costs
 * that entry.
 */
import * as fs from 'node:fs';

/** Bytes read from the file at a time. */
export const HAR_READ_CHUNK_BYTES = 1024 * 1024;
/** Brackets nested deeper than this inside one value make the file an error (JSON.parse itself gives up around here). */
export const MAX_HAR_NESTING = 4096;

/** Where and why the file stopped being readable: `truncated` when it simply ended, `entry` when inside one. */
export class HarSyntaxError extends Error {
  entry: number | undefined;
  constructor(readonly offset: number, readonly reason: string, readonly truncated = false) {
    super(`${reason} at byte ${offset}`);
  }
}

export interface HarScanEvents {
  /** One element of log.entries, its bytes valid only during the call, and its byte offset in the file. */
  entry(bytes: Buffer, index: number, offset: number): void;
  /** Bytes of the file read so far, and its size. */
  progress?(done: number, total: number): void;
}

export interface HarScan {
  /** log.entries was found (as a list). */
  sawEntries: boolean;
  /** Elements of log.entries handed over. */
  entries: number;
}

const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

/**
 * The file's bytes through a window that holds at least everything from `keepFrom` on (the value
 * being captured), refilled chunk by chunk; `at` is a file offset.
 */
class Window {
  private buf: Buffer;
  /** File offset of buf[0]. */
  private base = 0;
  private filled = 0;
  private eof = false;
  keepFrom = -1;
  at = 0;

  constructor(private readonly read: (into: Buffer, at: number, length: number) => number, private readonly onRead: (done: number) => void) {
    this.buf = Buffer.allocUnsafe(HAR_READ_CHUNK_BYTES);
  }

  /** The byte at `at`, or -1 at the end of the file. */
  peek(): number {
    if (this.at - this.base >= this.filled && !this.more()) return -1;
    return this.buf[this.at - this.base];
  }

  /** Reads more of the file after what is held; false at the end. */
  private more(): boolean {
    if (this.eof) return false;
    const keep = this.keepFrom >= 0 ? this.keepFrom : this.at;
    const drop = keep - this.base;
    const held = this.filled - drop;
    let target = this.buf;
    if (held + HAR_READ_CHUNK_BYTES > this.buf.length) target = Buffer.allocUnsafe(Math.max(this.buf.length * 2, held + HAR_READ_CHUNK_BYTES));
    if (held > 0) this.buf.copy(target, 0, drop, this.filled);
    this.buf = target;
    this.base = keep;
    this.filled = held;
    /* A window grown for a big entry shrinks back once that entry is done. */
    if (this.keepFrom < 0 && held === 0 && this.buf.length > 4 * HAR_READ_CHUNK_BYTES) this.buf = Buffer.allocUnsafe(HAR_READ_CHUNK_BYTES);
    const n = this.read(this.buf, this.filled, this.buf.length - this.filled);
    if (n <= 0) {
      this.eof = true;
      return false;
    }
    this.filled += n;
    this.onRead(this.base + this.filled);
    return true;
  }

  /** Bytes [from, at) (from ≥ keepFrom): a view, valid until the next read. */
  slice(from: number): Buffer {
    return this.buf.subarray(from - this.base, this.at - this.base);
  }

  /** Moves `at` past the closing quote of the string whose opening quote is at `at`. */
  skipString(): void {
    const start = this.at;
    this.at++;
    for (;;) {
      const rel = this.at - this.base;
      const q = this.buf.indexOf(QUOTE, rel);
      if (q < 0 || q >= this.filled) {
        this.at = this.base + this.filled;
        if (!this.more()) throw new HarSyntaxError(this.at, 'inside a string', true);
        continue;
      }
      let slashes = 0;
      for (let i = q - 1; i >= start - this.base + 1 && this.buf[i] === BACKSLASH; i--) slashes++;
      this.at = this.base + q + 1;
      if (slashes % 2 === 0) return;
    }
  }
}

/**
 * Scans `read` (the file's bytes, from its start) and calls `events.entry` for each element of
 * log.entries. Throws HarSyntaxError where the JSON breaks; the entries before it were handed over.
 */
export function scanHar(read: (into: Buffer, at: number, length: number) => number, size: number, events: HarScanEvents): HarScan {
  const w = new Window(read, (done) => events.progress?.(done, size));
  const scan: HarScan = { sawEntries: false, entries: 0 };
  if (w.peek() === 0xef) {
    /* A UTF-8 byte order mark (some exporters write one). */
    w.at++;
    if (w.peek() === 0xbb) w.at++;
    if (w.peek() === 0xbf) w.at++;
  }
  skipSpace(w);
  if (w.peek() === -1) throw new HarSyntaxError(w.at, 'where a value should be', true);
  if (w.peek() !== OPEN_OBJECT) {
    captureValue(w, true);
    skipSpace(w);
    if (w.peek() !== -1) throw new HarSyntaxError(w.at, 'unexpected text after the JSON value');
    return scan;
  }
  readObject(w, (key) => {
    if (key !== 'log' || w.peek() !== OPEN_OBJECT) return false;
    readObject(w, (logKey) => {
      if (logKey !== 'entries' || w.peek() !== OPEN_ARRAY || scan.sawEntries) return false;
      scan.sawEntries = true;
      readEntries(w, scan, events);
      return true;
    });
    return true;
  });
  skipSpace(w);
  if (w.peek() !== -1) throw new HarSyntaxError(w.at, 'unexpected text after the end of the HAR');
  return scan;
}

function skipSpace(w: Window): void {
  while (isSpace(w.peek())) w.at++;
}

function consume(w: Window, byte: number, what: string): void {
  skipSpace(w);
  const b = w.peek();
  if (b !== byte) throw new HarSyntaxError(w.at, b === -1 ? `where ${what} should be` : `expected ${what}`, b === -1);
  w.at++;
}

/**
 * An object at `at`: for each member, its key goes to `member`, which reads the value itself and
 * returns true, or returns false to have it read (and checked) here.
 */
function readObject(w: Window, member: (key: string) => boolean): void {
  consume(w, OPEN_OBJECT, '{');
  skipSpace(w);
  if (w.peek() === CLOSE_OBJECT) {
    w.at++;
    return;
  }
  for (;;) {
    skipSpace(w);
    if (w.peek() !== QUOTE) throw new HarSyntaxError(w.at, w.peek() === -1 ? 'inside an object' : 'expected a key in quotes', w.peek() === -1);
    const key = captureValue(w, false) as string;
    consume(w, COLON, "':'");
    skipSpace(w);
    if (!member(key)) captureValue(w, true);
    skipSpace(w);
    const b = w.peek();
    w.at++;
    if (b === COMMA) continue;
    if (b === CLOSE_OBJECT) return;
    throw new HarSyntaxError(w.at - 1, b === -1 ? 'inside an object' : "expected ',' or '}'", b === -1);
  }
}

function readEntries(w: Window, scan: HarScan, events: HarScanEvents): void {
  consume(w, OPEN_ARRAY, '[');
  skipSpace(w);
  if (w.peek() === CLOSE_ARRAY) {
    w.at++;
    return;
  }
  for (;;) {
    skipSpace(w);
    const offset = w.at;
    w.keepFrom = offset;
    try {
      extent(w);
    } catch (err) {
      if (err instanceof HarSyntaxError) err.entry = scan.entries;
      throw err;
    }
    events.entry(w.slice(offset), scan.entries++, offset);
    w.keepFrom = -1;
    skipSpace(w);
    const b = w.peek();
    w.at++;
    if (b === COMMA) continue;
    if (b === CLOSE_ARRAY) return;
    throw new HarSyntaxError(w.at - 1, b === -1 ? `after entry ${scan.entries - 1}` : `expected ',' or ']' after entry ${scan.entries - 1}`, b === -1);
  }
}

/**
 * The value at `at`, parsed (`check`: parsed only to be checked, its value dropped). Values outside
 * log.entries are small in real files; a huge one costs its own size, like an entry.
 */
function captureValue(w: Window, check: boolean): unknown {
  const offset = w.at;
  w.keepFrom = offset;
  extent(w);
  const bytes = w.slice(offset);
  w.keepFrom = -1;
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    return check ? undefined : value;
  } catch (err) {
    throw new HarSyntaxError(offset, `invalid JSON (${(err as Error).message})`);
  }
}

/** Moves `at` past one JSON value: a string, an object or list (brackets matched), or a number or literal. */
function extent(w: Window): void {
  const first = w.peek();
  if (first === -1) throw new HarSyntaxError(w.at, 'where a value should be', true);
  if (first === QUOTE) return w.skipString();
  if (first !== OPEN_OBJECT && first !== OPEN_ARRAY) {
    /* A number or literal: up to the next delimiter (JSON.parse checks it). */
    for (let b = first; b !== -1 && b !== COMMA && b !== CLOSE_OBJECT && b !== CLOSE_ARRAY && !isSpace(b); b = w.peek()) w.at++;
    return;
  }
  const open: number[] = [];
  for (;;) {
    const b = w.peek();
    if (b === -1) throw new HarSyntaxError(w.at, open[open.length - 1] === OPEN_ARRAY ? 'inside a list' : 'inside an object', true);
    if (b === QUOTE) {
      w.skipString();
      continue;
    }
    w.at++;
    if (b === OPEN_OBJECT || b === OPEN_ARRAY) {
      if (open.length >= MAX_HAR_NESTING) throw new HarSyntaxError(w.at - 1, `brackets nested more than ${MAX_HAR_NESTING} levels deep`);
      open.push(b);
    } else if (b === CLOSE_OBJECT || b === CLOSE_ARRAY) {
      const o = open.pop();
      if ((b === CLOSE_OBJECT && o !== OPEN_OBJECT) || (b === CLOSE_ARRAY && o !== OPEN_ARRAY)) throw new HarSyntaxError(w.at - 1, `a '${String.fromCharCode(b)}' that closes no ${b === CLOSE_OBJECT ? 'object' : 'list'}`);
      if (open.length === 0) return;
    }
  }
}

/** scanHar over a file, read chunk by chunk. */
export function scanHarFile(file: string, events: HarScanEvents): HarScan {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    let position = 0;
    return scanHar((into, at, length) => {
      const n = fs.readSync(fd, into, at, length, position);
      position += n;
      return n;
    }, size, events);
  } finally {
    fs.closeSync(fd);
  }
}

/** scanHar over bytes already in memory. */
export function scanHarBytes(bytes: Buffer, events: HarScanEvents): HarScan {
  let position = 0;
  return scanHar((into, at, length) => {
    const n = bytes.copy(into, at, position, Math.min(bytes.length, position + length));
    position += n;
    return n;
  }, bytes.length, events);
}
