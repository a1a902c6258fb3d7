/**
 * An incremental HTTP/1.x parser for one direction of a reassembled TCP stream, on any port:
 * pipelined messages, Content-Length, chunked and read-until-close bodies, no-body responses
 * (HEAD, 1xx, 204, 304). Bodies keep their content encoding (analysis decodes it) and are cut at the
 * body limit with their true size. When it loses track (a capture gap, the middle of a connection,
 * garbage) it resynchronises on the next line that looks like a request line (or status line).
 */
import type { Body, Header } from '../../../flow';

export type HttpRole = 'request' | 'response';

export interface HttpMessage {
  role: HttpRole;
  method?: string;
  target?: string;
  status?: number;
  version: string;
  headers: Header[];
  body: Body;
  /** Capture times of the first and last byte. */
  startTs: number;
  endTs: number;
  /** Set when the message was cut: capture gap, connection end before the body was complete. */
  error?: string;
  /** Request index in capture order (requests only), assigned when the head is read. */
  index: number;
}

export interface HttpParserHooks {
  message(msg: HttpMessage): void;
  /** For responses: the method of the request this response answers (HEAD has no body). */
  requestMethod?(): string | undefined;
  /** A head was read (requests get their capture-order index here). */
  nextIndex?(): number;
  /** For a parser of unknown role: which kind of start line it found first. */
  roleFound?(role: HttpRole): void;
  /** After a 101 or a successful CONNECT the stream is no longer HTTP. */
  upgraded?(): void;
}

export const MAX_HEAD_BYTES = 64 * 1024;
/** Bytes of an unfinished line kept while looking for a start line. */
const MAX_RESYNC_LINE = 8 * 1024;

const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}) (\S{1,65536}) HTTP\/(1\.[01])$/;
const STATUS_LINE = /^HTTP\/(1\.[01]) (\d{3})(?: .*)?$/;
/** Stricter, for resynchronising in the middle of arbitrary bytes. */
const RESYNC_REQUEST = /^(?:GET|POST|PUT|HEAD|DELETE|OPTIONS|PATCH|CONNECT|TRACE|PROPFIND|REPORT) \S+ HTTP\/1\.[01]\r?$/;
const RESYNC_STATUS = /^HTTP\/1\.[01] \d{3}(?: [^\r\n]*)?\r?$/;

const enum State {
  Resync,
  Head,
  Length,
  ChunkSize,
  ChunkData,
  ChunkDataEnd,
  Trailers,
  UntilClose,
  Stopped,
}

/** Bytes carried over between segments (an unfinished head or line), kept as parts: never re-copied per segment. */
class Carry {
  private parts: Buffer[] = [];
  len = 0;
  get empty(): boolean {
    return this.len === 0;
  }
  add(b: Buffer): void {
    if (!b.length) return;
    this.parts.push(Buffer.from(b));
    this.len += b.length;
  }
  take(): Buffer {
    const out = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.len);
    this.clear();
    return out;
  }
  clear(): void {
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

class BodyCollector {
  private chunks: Buffer[] = [];
  private kept = 0;
  size = 0;
  constructor(private readonly limit: number) {}
  add(data: Buffer): void {
    this.size += data.length;
    const room = this.limit - this.kept;
    if (room <= 0) return;
    const part = data.length > room ? data.subarray(0, room) : data;
    this.chunks.push(Buffer.from(part));
    this.kept += part.length;
  }
  body(): Body {
    const bytes = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.kept);
    return { bytes, size: this.size, truncated: this.size > bytes.length };
  }
}

export class HttpStreamParser {
  private state: State;
  /** Head bytes (or the unfinished resync line) carried over from earlier data. */
  private readonly carry = new Carry();
  private msg: HttpMessage | null = null;
  private bodyOut: BodyCollector | null = null;
  private remaining = 0;
  private line = '';
  /** Capture time of the first byte of the head being read. */
  private headTs = 0;
  messages = 0;
  skippedBytes = 0;

  /** role null: not known yet (capture started mid-connection); found on the first start line. */
  constructor(
    public role: HttpRole | null,
    private readonly bodyLimit: number,
    private readonly hooks: HttpParserHooks,
    resync = false,
  ) {
    this.state = resync || role === null ? State.Resync : State.Head;
  }

  get stopped(): boolean {
    return this.state === State.Stopped;
  }

  stop(): void {
    this.state = State.Stopped;
    this.carry.clear();
    this.msg = null;
  }

  /** Forget the current message and look for the next start line (used after a protocol switch is refused, etc.). */
  resync(): void {
    if (this.state !== State.Stopped) this.state = State.Resync;
    this.carry.clear();
  }

  feed(data: Buffer, ts: number): void {
    let o = 0;
    while (o < data.length) {
      switch (this.state) {
        case State.Stopped:
          return;
        case State.Resync:
          o = this.scan(data, o, ts);
          break;
        case State.Head:
          o = this.head(data, o, ts);
          break;
        case State.Length: {
          const n = Math.min(this.remaining, data.length - o);
          this.bodyOut!.add(data.subarray(o, o + n));
          o += n;
          this.remaining -= n;
          this.msg!.endTs = ts;
          if (this.remaining === 0) this.finish(ts);
          break;
        }
        case State.UntilClose:
          this.bodyOut!.add(o === 0 ? data : data.subarray(o));
          this.msg!.endTs = ts;
          o = data.length;
          break;
        case State.ChunkData: {
          const n = Math.min(this.remaining, data.length - o);
          this.bodyOut!.add(data.subarray(o, o + n));
          o += n;
          this.remaining -= n;
          if (this.remaining === 0) {
            this.state = State.ChunkDataEnd;
            this.line = '';
          }
          break;
        }
        case State.ChunkSize:
        case State.ChunkDataEnd:
        case State.Trailers:
          o = this.chunkLine(data, o, ts);
          break;
      }
    }
  }

  /** Bytes the capture does not have: the message in progress is cut there, then resync. */
  gap(missing: number, ts: number): void {
    if (this.state === State.Stopped) return;
    if (this.msg && this.bodyOut) {
      this.bodyOut.size += missing;
      this.emit(ts, `capture gap: ${missing} bytes of this ${this.msg.role} are missing from the capture`);
    }
    this.msg = null;
    this.bodyOut = null;
    this.carry.clear();
    this.state = State.Resync;
  }

  /** The stream ended: a body read until close is complete; anything else in progress is cut. */
  end(ts: number): void {
    if (this.state === State.UntilClose) this.finish(ts);
    else if (this.msg && this.bodyOut && this.state !== State.Stopped) {
      this.emit(ts, `the connection ended before this ${this.msg.role}'s body was complete`);
    }
    this.msg = null;
    this.state = State.Stopped;
  }

  /** Looks for a start line at a line boundary; returns the offset to continue from. */
  private scan(data: Buffer, o: number, ts: number): number {
    while (o < data.length) {
      const nl = data.indexOf(10, o);
      const stop = nl < 0 ? data.length : nl;
      if (this.carry.empty && !(data[o] >= 65 && data[o] <= 90)) {
        /* Start lines begin with an uppercase letter: skip other lines without decoding them. */
        this.skippedBytes += stop - o + (nl < 0 ? 0 : 1);
        if (nl < 0) return data.length;
        o = nl + 1;
        continue;
      }
      if (nl < 0) {
        /* An unfinished line that could be a start line: keep it (bounded) for the next data. */
        if (this.carry.len + (stop - o) <= MAX_RESYNC_LINE) {
          if (this.carry.empty) this.headTs = ts;
          this.carry.add(data.subarray(o, stop));
        } else {
          this.skippedBytes += this.carry.len + stop - o;
          this.carry.clear();
        }
        return data.length;
      }
      const carried = this.carry.empty ? null : this.carry.take();
      const text = carried ? carried.toString('latin1') + data.toString('latin1', o, stop) : data.toString('latin1', o, stop);
      const role = this.matchStart(text);
      if (role) {
        if (this.role === null) {
          this.role = role;
          this.hooks.roleFound?.(role);
        }
        this.state = State.Head;
        /* The line is re-read as the start of a head: what was carried over goes back in front. */
        if (carried) this.carry.add(carried);
        else this.headTs = ts;
        return o;
      }
      this.skippedBytes += text.length + 1;
      o = nl + 1;
    }
    return o;
  }

  private matchStart(line: string): HttpRole | null {
    if (this.role !== 'response' && RESYNC_REQUEST.test(line)) return 'request';
    if (this.role !== 'request' && RESYNC_STATUS.test(line)) return 'response';
    return null;
  }

  private head(data: Buffer, o: number, ts: number): number {
    if (this.carry.empty) {
      /* Blank lines before a request line are allowed (RFC 9112 §2.2). */
      while (o < data.length && (data[o] === 13 || data[o] === 10)) o++;
      if (o === data.length) return o;
      this.headTs = ts;
      const end = headEnd(data, o);
      if (end >= 0) {
        this.startMessage(data.toString('latin1', o, end), ts);
        return end;
      }
    } else {
      /* Only the new bytes (and the last three carried) are searched: a head in many tiny segments stays linear. */
      const tail = this.carry.tail(3);
      const probe = Buffer.concat([tail, data.subarray(o)]);
      const e = headEnd(probe, 0);
      if (e >= 0) {
        const inData = e - tail.length;
        const head = Buffer.concat([this.carry.take(), data.subarray(o, o + inData)]);
        this.startMessage(head.toString('latin1'), ts);
        return o + inData;
      }
    }
    if (this.carry.len + data.length - o > MAX_HEAD_BYTES) {
      this.skippedBytes += this.carry.len + data.length - o;
      this.carry.clear();
      this.state = State.Resync;
    } else this.carry.add(data.subarray(o));
    return data.length;
  }

  private startMessage(head: string, ts: number): void {
    /* Lines are walked in place (no split, one slice per name and value): this runs for every message of a capture. */
    const n = head.length;
    let eol = head.indexOf('\n');
    if (eol < 0) eol = n;
    const first = head.slice(0, eol > 0 && head.charCodeAt(eol - 1) === 13 ? eol - 1 : eol);
    let msg: HttpMessage;
    const headers: Header[] = [];
    const body = { bytes: EMPTY, size: 0, truncated: false };
    if (this.role === 'request') {
      const m = REQUEST_LINE.exec(first);
      if (!m) return this.lost(n);
      msg = { role: 'request', method: m[1], target: m[2], version: m[3], headers, body, startTs: this.headTs, endTs: ts, index: -1 };
    } else {
      const m = STATUS_LINE.exec(first);
      if (!m) return this.lost(n);
      msg = { role: 'response', status: Number(m[2]), version: m[1], headers, body, startTs: this.headTs, endTs: ts, index: -1 };
    }
    for (let ls = eol + 1; ls < n; ) {
      let le = head.indexOf('\n', ls);
      if (le < 0) le = n;
      const e = le > ls && head.charCodeAt(le - 1) === 13 ? le - 1 : le;
      if (e > ls) {
        const c0 = head.charCodeAt(ls);
        if ((c0 === 32 || c0 === 9) && headers.length) {
          const last = headers[headers.length - 1];
          last[1] = `${last[1]} ${head.slice(ls, e).trim()}`;
        } else {
          const colon = head.indexOf(':', ls);
          if (colon > ls && colon < e) headers.push([trimmed(head, ls, colon), trimmed(head, colon + 1, e)]);
        }
      }
      ls = le + 1;
    }
    if (msg.role === 'request') msg.index = this.hooks.nextIndex?.() ?? -1;
    this.msg = msg;
    this.bodyOut = new BodyCollector(this.bodyLimit);
    this.frameBody(msg, ts);
  }

  private lost(bytes: number): void {
    this.skippedBytes += bytes;
    this.state = State.Resync;
  }

  private frameBody(msg: HttpMessage, ts: number): void {
    let chunked = false;
    let length = -1;
    for (const [n, v] of msg.headers) {
      /* Only names of the right length are lower-cased and compared. */
      if (n.length === 17 && n.toLowerCase() === 'transfer-encoding') chunked = /(?:^|,)\s*chunked\s*$/i.test(v);
      else if (n.length === 14 && n.toLowerCase() === 'content-length' && /^\d{1,15}$/.test(v)) length = Number(v);
    }
    if (msg.role === 'response') {
      const status = msg.status!;
      if (status >= 100 && status < 200 && status !== 101) {
        /* Interim response (100 Continue): not the answer; the real one follows. */
        this.msg = null;
        this.state = State.Head;
        return;
      }
      const method = this.hooks.requestMethod?.();
      if (status === 101 || (method === 'CONNECT' && status >= 200 && status < 300)) {
        this.finish(ts);
        this.state = State.Stopped;
        this.hooks.upgraded?.();
        return;
      }
      if (method === 'HEAD' || status === 204 || status === 304) return this.finish(ts);
    }
    if (chunked) {
      this.state = State.ChunkSize;
      this.line = '';
    } else if (length > 0) {
      this.state = State.Length;
      this.remaining = length;
    } else if (length === 0 || msg.role === 'request') this.finish(ts);
    else this.state = State.UntilClose;
  }

  /** Chunk-size lines, the CRLF after chunk data, and trailer lines. */
  private chunkLine(data: Buffer, o: number, ts: number): number {
    const nl = data.indexOf(10, o);
    const stop = nl < 0 ? data.length : nl;
    this.line += data.toString('latin1', o, stop);
    if (this.line.length > 4096) {
      this.gap(0, ts);
      return data.length;
    }
    if (nl < 0) return data.length;
    const line = this.line.replace(/\r$/, '');
    this.line = '';
    this.msg!.endTs = ts;
    if (this.state === State.ChunkDataEnd) {
      this.state = State.ChunkSize;
      if (line !== '') this.badChunk(ts);
    } else if (this.state === State.ChunkSize) {
      const m = /^([0-9a-fA-F]{1,12})\s*(?:;.*)?$/.exec(line);
      if (!m) {
        this.badChunk(ts);
        return nl + 1;
      }
      const size = parseInt(m[1], 16);
      if (size === 0) this.state = State.Trailers;
      else {
        this.state = State.ChunkData;
        this.remaining = size;
      }
    } else if (line === '') {
      this.finish(ts);
    } else {
      const colon = line.indexOf(':');
      if (colon > 0) this.msg!.headers.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
    }
    return nl + 1;
  }

  private badChunk(ts: number): void {
    this.emit(ts, `malformed chunked body in this ${this.msg!.role}`);
    this.msg = null;
    this.bodyOut = null;
    this.state = State.Resync;
  }

  private finish(ts: number): void {
    this.emit(ts);
    this.msg = null;
    this.bodyOut = null;
    if (this.state !== State.Stopped) this.state = State.Head;
  }

  private emit(ts: number, error?: string): void {
    const msg = this.msg!;
    msg.body = this.bodyOut!.body();
    msg.endTs = Math.max(msg.endTs, ts);
    if (error) msg.error = error;
    this.messages++;
    this.hooks.message(msg);
  }
}

const EMPTY = Buffer.alloc(0);

/** s.slice(a, b).trim() for latin1 text (whose only whitespace is TAB, LF, VT, FF, CR, space and NBSP), with one slice. */
function trimmed(s: string, a: number, b: number): string {
  while (a < b && isSpace(s.charCodeAt(a))) a++;
  while (b > a && isSpace(s.charCodeAt(b - 1))) b--;
  return s.slice(a, b);
}

function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13) || c === 160;
}

/** Offset just past the blank line ending a head (CRLF or bare LF), or -1. */
function headEnd(buf: Buffer, from: number): number {
  let i = from;
  while (true) {
    const nl = buf.indexOf(10, i);
    if (nl < 0) return -1;
    if (buf[nl + 1] === 10) return nl + 2;
    if (buf[nl + 1] === 13 && buf[nl + 2] === 10) return nl + 3;
    if (nl + 1 >= buf.length || (buf[nl + 1] === 13 && nl + 2 >= buf.length)) return -1;
    i = nl + 1;
  }
}
