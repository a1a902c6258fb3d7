/**
 * Reading HTTP/1.x out of capture bytes without regexes or intermediate copies, for the pcap
 * parser (http-parser.ts): head and line scanners that work on the bytes or the latin1 text in
 * place, and the two holders of bytes it keeps between segments (an unfinished head, a body up to
 * its limit).
 */
import type { Body } from '../../../flow';

/** Node's latin1 decoder on every Buffer, without toString's argument handling (this runs for every message head). */
interface Latin1Decoding {
  latin1Slice(start: number, end: number): string;
}
const HAS_LATIN1_SLICE = typeof (Buffer.prototype as unknown as Partial<Latin1Decoding>).latin1Slice === 'function';

/** buf[start, end) as latin1 text (start < end <= buf.length). */
export function latin1(buf: Buffer, start: number, end: number): string {
  return HAS_LATIN1_SLICE ? (buf as unknown as Latin1Decoding).latin1Slice(start, end) : buf.toString('latin1', start, end);
}

/** A copy of buf[start, end) (start < end <= buf.length): one typed-array set, without Buffer#copy's argument handling (this runs for every body). */
function copyOf(buf: Buffer, start: number, end: number): Buffer {
  const n = end - start;
  const out = Buffer.allocUnsafe(n);
  out.set(new Uint8Array(buf.buffer, buf.byteOffset + start, n));
  return out;
}

/** Offset of the first LF in buf[from, end), or -1. */
export function findLf(buf: Buffer, from: number, end: number): number {
  for (let i = from; i < end; i++) if (buf[i] === 10) return i;
  return -1;
}

/** Bytes carried over between segments (an unfinished head or line), kept as parts: never re-copied per segment. */
export class Carry {
  private parts: Buffer[] = [];
  len = 0;
  get empty(): boolean {
    return this.len === 0;
  }
  /** Keeps a copy of buf[start, end). */
  add(buf: Buffer, start: number, end: number): void {
    if (end <= start) return;
    this.parts.push(copyOf(buf, start, end));
    this.len += end - start;
  }
  /** Keeps `b` itself (a buffer nobody else holds). */
  addOwned(b: Buffer): void {
    if (!b.length) return;
    this.parts.push(b);
    this.len += b.length;
  }
  take(): Buffer {
    const out = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.len);
    this.clear();
    return out;
  }
  clear(): void {
    if (this.len === 0) return;
    this.parts = [];
    this.len = 0;
  }
  /** The last n bytes (fewer if there are not that many). */
  tail(n: number): Buffer {
    const out: Buffer[] = [];
    let need = n;
    for (let i = this.parts.length - 1; i >= 0 && need > 0; i--) {
      const p = this.parts[i];
      const piece = p.subarray(Math.max(0, p.length - need));
      out.unshift(piece);
      need -= piece.length;
    }
    return Buffer.concat(out);
  }
}

/**
 * A body's bytes up to the limit (and its true size): a copy of each piece as it arrives, so what is
 * held is never more than what the capture contained (a Content-Length is not trusted to size a buffer).
 * A parser keeps one and starts it over per message (`reset`); most bodies arrive in one piece, kept
 * without an array.
 */
export class BodyCollector {
  private first: Buffer | null = null;
  private more: Buffer[] | null = null;
  private kept = 0;
  size = 0;
  constructor(private readonly limit: number) {}
  reset(): this {
    this.first = null;
    this.more = null;
    this.kept = 0;
    this.size = 0;
    return this;
  }
  add(buf: Buffer, start: number, end: number): void {
    const len = end - start;
    this.size += len;
    const room = this.limit - this.kept;
    if (room <= 0 || len === 0) return;
    const n = len > room ? room : len;
    const piece = copyOf(buf, start, start + n);
    if (this.first === null) this.first = piece;
    else (this.more ??= [this.first]).push(piece);
    this.kept += n;
  }
  /** The body so far; the collector lets go of its bytes (it is reset before it collects again). */
  body(): Body {
    const bytes = this.more !== null ? Buffer.concat(this.more, this.kept) : this.first !== null ? this.first : Buffer.alloc(0);
    this.first = null;
    this.more = null;
    return { bytes, size: this.size, truncated: this.size > bytes.length };
  }
}

/** tchar (RFC 9110 token characters): ! # $ % & ' * + - . ^ _ ` | ~ digits letters. */
const TCHAR = (() => {
  const t = new Uint8Array(128);
  for (const c of "!#$%&'*+-.^_`|~") t[c.charCodeAt(0)] = 1;
  for (let c = 48; c <= 57; c++) t[c] = 1;
  for (let c = 65; c <= 90; c++) t[c] = 1;
  for (let c = 97; c <= 122; c++) t[c] = 1;
  return t;
})();

/** End of the token that starts s (at most `limit`): the index of its first non-token character. */
export function tokenEnd(s: string, limit: number): number {
  let i = 0;
  while (i < limit) {
    const c = s.charCodeAt(i);
    if (c >= 128 || TCHAR[c] === 0) break;
    i++;
  }
  return i;
}

/** '1.1' or '1.0' when s has "HTTP/1.1" or "HTTP/1.0" at `at`. */
export function httpVersionAt(s: string, at: number): string | undefined {
  if (s.charCodeAt(at) !== 72 || s.charCodeAt(at + 1) !== 84 || s.charCodeAt(at + 2) !== 84 || s.charCodeAt(at + 3) !== 80) return undefined;
  if (s.charCodeAt(at + 4) !== 47 || s.charCodeAt(at + 5) !== 49 || s.charCodeAt(at + 6) !== 46) return undefined;
  const minor = s.charCodeAt(at + 7);
  return minor === 49 ? '1.1' : minor === 48 ? '1.0' : undefined;
}

/** True when s[a, b) has no white space (as \S reads latin1 text). */
export function noSpace(s: string, a: number, b: number): boolean {
  for (let i = a; i < b; i++) if (isSpace(s.charCodeAt(i))) return false;
  return true;
}

/** Transfer-Encoding whose last coding is chunked. */
export function isChunked(v: string): boolean {
  return /(?:^|,)\s*chunked\s*$/i.test(v);
}

/** A Content-Length value of 1 to 15 digits, or `otherwise` (read as the digits are checked: no Number(text)). */
export function contentLength(v: string, otherwise: number): number {
  const n = v.length;
  if (n === 0 || n > 15) return otherwise;
  let length = 0;
  for (let i = 0; i < n; i++) {
    const d = v.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return otherwise;
    /* At most 15 digits: below 2^53, exact. */
    length = length * 10 + d;
  }
  return length;
}

/** Latin1 white space (as String.prototype.trim reads it): TAB, LF, VT, FF, CR, space and NBSP. */
export function isSpace(c: number): boolean {
  /* Most characters read are printable ASCII: one comparison for them, not four. */
  return c > 32 ? c === 160 : c === 32 || (c >= 9 && c <= 13);
}

/**
 * Offset just past the blank line ending a head in buf[from, end) (CRLF or bare LF), or -1: after the
 * first LF that is followed, within the data, by LF or by CR LF.
 *
 * Every such ending starts with an LF whose next byte is LF or CR, so a byte at j that is neither rules
 * out an ending starting at j - 1 or j: looking at every second byte, and only around a CR or LF at
 * each ending that could start there, finds the same first one while reading half the bytes.
 */
export function headEnd(buf: Buffer, from: number, end: number): number {
  for (let j = from + 1; j < end; j += 2) {
    const c = buf[j];
    if (c !== 10 && c !== 13) continue;
    for (let s = j - 1; s <= j; s++) {
      if (buf[s] !== 10 || s + 1 >= end) continue;
      const next = buf[s + 1];
      if (next === 10) return s + 2;
      if (next === 13 && s + 2 < end && buf[s + 2] === 10) return s + 3;
    }
  }
  return -1;
}
