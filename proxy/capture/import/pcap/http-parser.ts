/**
 * An incremental HTTP/1.x parser for one direction of a reassembled TCP stream, on any port:
 * pipelined messages, Content-Length, chunked and read-until-close bodies, no-body responses
 * (HEAD, 1xx, 204, 304). Bodies keep their content encoding (analysis decodes it) and are cut at the
 * body limit with their true size. When it loses track (a capture gap, the middle of a connection,
 * garbage) it resynchronises on the next line that looks like a request line (or status line).
 */
import { namedAt, type Body, type Header } from '../../../flow';
import { BodyCollector, Carry, contentLength, findLf, headEnd, httpVersionAt, isChunked, isSpace, latin1, noSpace, tokenEnd } from './http-lexing';

export type HttpRole = 'request' | 'response';

/** One message: a class with every field always present, so requests and responses share one shape. */
export class HttpMessage {
  /** Set when the message was cut: capture gap, connection end before the body was complete. */
  error: string | undefined = undefined;
  /** Request index in capture order (requests only), assigned when the head is read. */
  index = -1;
  constructor(
    readonly role: HttpRole,
    readonly method: string | undefined,
    readonly target: string | undefined,
    readonly status: number | undefined,
    readonly version: string,
    readonly headers: Header[],
    public body: Body,
    /** Capture times of the first and last byte. */
    public startTs: number,
    public endTs: number,
  ) {}
}

/** What the parser tells the connection it belongs to (`side` is the direction it reads). */
export interface HttpParserOwner {
  message(msg: HttpMessage): void;
  /** For responses: the method of the request this response answers (HEAD has no body). */
  requestMethod(): string | undefined;
  /** A head was read (requests get their capture-order index here). */
  nextIndex(): number;
  /** For a parser of unknown role: which kind of start line it found first. */
  roleFound(side: 0 | 1, role: HttpRole): void;
  /** After a 101 or a successful CONNECT the stream is no longer HTTP. */
  upgraded(): void;
}

export const MAX_HEAD_BYTES = 64 * 1024;
/** Bytes of an unfinished line kept while looking for a start line. */
const MAX_RESYNC_LINE = 8 * 1024;
/** Bytes decoded at once to find a head's end in (a longer head is found in the bytes). */
const HEAD_TEXT_BYTES = 2048;

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

/** What a message's body is until the message is complete (never seen outside the parser). */
const NO_BODY_YET: Body = Object.freeze({ bytes: Buffer.alloc(0), size: 0, truncated: false }) as Body;
/** The bytes of every empty body (a zero-length Buffer holds nothing anyone could change). */
const NO_BYTES = Buffer.alloc(0);

/** head's method (its first `sp` characters): the usual ones as constants, no new string per request. */
function methodOf(head: string, sp: number): string {
  const c0 = head.charCodeAt(0);
  if (sp === 3 && c0 === 71 && head.charCodeAt(1) === 69 && head.charCodeAt(2) === 84) return 'GET';
  if (sp === 4 && c0 === 80 && head.charCodeAt(1) === 79 && head.charCodeAt(2) === 83 && head.charCodeAt(3) === 84) return 'POST';
  return head.slice(0, sp);
}

export class HttpStreamParser {
  private state: State;
  /** Head bytes (or the unfinished resync line) carried over from earlier data. */
  private readonly carry = new Carry();
  private msg: HttpMessage | null = null;
  /** The collector of the message in progress (null: none, or a message without a body yet). */
  private bodyOut: BodyCollector | null = null;
  /** The one collector bodyOut points to, started over per message. */
  private readonly collector: BodyCollector;
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
    private readonly owner: HttpParserOwner,
    private readonly side: 0 | 1,
    resync = false,
  ) {
    this.state = resync || role === null ? State.Resync : State.Head;
    this.collector = new BodyCollector(bodyLimit);
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

  /** The next bytes of the stream: buf[start, end) (not kept: what is needed is copied). */
  feed(buf: Buffer, start: number, end: number, ts: number): void {
    let o = start;
    while (o < end) {
      switch (this.state) {
        case State.Stopped:
          return;
        case State.Resync:
          o = this.scan(buf, o, end, ts);
          break;
        case State.Head:
          o = this.head(buf, o, end, ts);
          break;
        case State.Length: {
          const n = Math.min(this.remaining, end - o);
          this.bodyOut!.add(buf, o, o + n);
          o += n;
          this.remaining -= n;
          this.msg!.endTs = ts;
          if (this.remaining === 0) this.finish(ts);
          break;
        }
        case State.UntilClose:
          this.bodyOut!.add(buf, o, end);
          this.msg!.endTs = ts;
          o = end;
          break;
        case State.ChunkData: {
          const n = Math.min(this.remaining, end - o);
          this.bodyOut!.add(buf, o, o + n);
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
          o = this.chunkLine(buf, o, end, ts);
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
  private scan(buf: Buffer, o: number, end: number, ts: number): number {
    while (o < end) {
      const nl = findLf(buf, o, end);
      const stop = nl < 0 ? end : nl;
      if (this.carry.empty && !(buf[o] >= 65 && buf[o] <= 90)) {
        /* Start lines begin with an uppercase letter: skip other lines without decoding them. */
        this.skippedBytes += stop - o + (nl < 0 ? 0 : 1);
        if (nl < 0) return end;
        o = nl + 1;
        continue;
      }
      if (nl < 0) {
        /* An unfinished line that could be a start line: keep it (bounded) for the next data. */
        if (this.carry.len + (stop - o) <= MAX_RESYNC_LINE) {
          if (this.carry.empty) this.headTs = ts;
          this.carry.add(buf, o, stop);
        } else {
          this.skippedBytes += this.carry.len + stop - o;
          this.carry.clear();
        }
        return end;
      }
      const carried = this.carry.empty ? null : this.carry.take();
      const text = carried ? carried.toString('latin1') + buf.toString('latin1', o, stop) : buf.toString('latin1', o, stop);
      const role = this.matchStart(text);
      if (role) {
        if (this.role === null) {
          this.role = role;
          this.owner.roleFound(this.side, role);
        }
        this.state = State.Head;
        /* The line is re-read as the start of a head: what was carried over goes back in front. */
        if (carried) this.carry.addOwned(carried);
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

  private head(buf: Buffer, o: number, end: number, ts: number): number {
    if (this.carry.empty) {
      /* Blank lines before a request line are allowed (RFC 9112 §2.2). */
      while (o < end && (buf[o] === 13 || buf[o] === 10)) o++;
      if (o === end) return o;
      this.headTs = ts;
      /*
       * The head's end is looked for in the text (V8's indexOf is faster than a loop over the bytes),
       * in at most HEAD_TEXT_BYTES: the text is decoded once, and the head is read in it in place.
       * The text may run into the body; a message's strings keep no more than that alive.
       */
      const stop = end - o > HEAD_TEXT_BYTES ? o + HEAD_TEXT_BYTES : end;
      const text = latin1(buf, o, stop);
      const lf2 = text.indexOf('\n\n');
      const crlf = text.indexOf('\n\r\n');
      if (lf2 >= 0 || crlf >= 0) {
        const n = crlf < 0 || (lf2 >= 0 && lf2 < crlf) ? lf2 + 2 : crlf + 3;
        this.startMessage(text, n, ts);
        return o + n;
      }
      const e = stop === end ? -1 : headEnd(buf, o, end);
      if (e >= 0) {
        this.startMessage(latin1(buf, o, e), e - o, ts);
        return e;
      }
    } else {
      /* Only the new bytes (and the last three carried) are searched: a head in many tiny segments stays linear. */
      const tail = this.carry.tail(3);
      const probe = Buffer.concat([tail, buf.subarray(o, end)]);
      const e = headEnd(probe, 0, probe.length);
      if (e >= 0) {
        const inData = e - tail.length;
        const head = Buffer.concat([this.carry.take(), buf.subarray(o, o + inData)]);
        this.startMessage(head.toString('latin1'), head.length, ts);
        return o + inData;
      }
    }
    if (this.carry.len + end - o > MAX_HEAD_BYTES) {
      this.skippedBytes += this.carry.len + end - o;
      this.carry.clear();
      this.state = State.Resync;
    } else this.carry.add(buf, o, end);
    return end;
  }

  /** The head is head[0, n) (the text may go on: what follows is not read). */
  private startMessage(head: string, n: number, ts: number): void {
    /* Lines are walked in place (no split, one slice per name and value): this runs for every message of a capture. */
    let eol = head.indexOf('\n');
    if (eol < 0) eol = n;
    const lineEnd = eol > 0 && head.charCodeAt(eol - 1) === 13 ? eol - 1 : eol;
    let msg: HttpMessage;
    const headers: Header[] = [];
    if (this.role === 'request') {
      /* method SP target SP HTTP/1.x: a token of 1 to 32 characters, a target without white space. */
      const sp = tokenEnd(head, lineEnd);
      const vAt = lineEnd - 9;
      if (sp === 0 || sp > 32 || head.charCodeAt(sp) !== 32 || vAt <= sp + 1 || vAt - sp - 1 > 65536) return this.lost(n);
      const version = httpVersionAt(head, vAt + 1);
      if (version === undefined || head.charCodeAt(vAt) !== 32 || !noSpace(head, sp + 1, vAt)) return this.lost(n);
      msg = new HttpMessage('request', methodOf(head, sp), head.slice(sp + 1, vAt), undefined, version, headers, NO_BODY_YET, this.headTs, ts);
    } else {
      /* HTTP/1.x SP 3DIGIT [SP reason], the reason without CR. */
      const version = lineEnd >= 12 ? httpVersionAt(head, 0) : undefined;
      const d0 = head.charCodeAt(9) - 48;
      const d1 = head.charCodeAt(10) - 48;
      const d2 = head.charCodeAt(11) - 48;
      if (version === undefined || head.charCodeAt(8) !== 32 || !(d0 >= 0 && d0 <= 9 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9)) return this.lost(n);
      if (lineEnd > 12) {
        const cr = head.indexOf('\r', 13);
        if (head.charCodeAt(12) !== 32 || (cr >= 0 && cr < lineEnd)) return this.lost(n);
      }
      msg = new HttpMessage('response', undefined, undefined, d0 * 100 + d1 * 10 + d2, version, headers, NO_BODY_YET, this.headTs, ts);
    }
    /*
     * Framing headers are read as they are met, each once its value is final (a folded line may still
     * extend the last header): the last Transfer-Encoding decides chunked, the last Content-Length of
     * digits the length.
     */
    let chunked = false;
    let length = -1;
    let framing = -1;
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
          if (colon > ls && colon < e) {
            if (framing >= 0) {
              if (headers[framing][0].length === 17) chunked = isChunked(headers[framing][1]);
              else length = contentLength(headers[framing][1], length);
              framing = -1;
            }
            let a = ls;
            let b = colon;
            while (a < b && isSpace(head.charCodeAt(a))) a++;
            while (b > a && isSpace(head.charCodeAt(b - 1))) b--;
            const nameLength = b - a;
            if ((nameLength === 14 && namedAt(head, a, 'content-length')) || (nameLength === 17 && namedAt(head, a, 'transfer-encoding'))) framing = headers.length;
            let va = colon + 1;
            let vb = e;
            while (va < vb && isSpace(head.charCodeAt(va))) va++;
            while (vb > va && isSpace(head.charCodeAt(vb - 1))) vb--;
            headers.push([head.slice(a, b), head.slice(va, vb)]);
          }
        }
      }
      ls = le + 1;
    }
    if (framing >= 0) {
      if (headers[framing][0].length === 17) chunked = isChunked(headers[framing][1]);
      else length = contentLength(headers[framing][1], length);
    }
    if (msg.role === 'request') msg.index = this.owner.nextIndex();
    this.msg = msg;
    this.bodyOut = null;
    this.frameBody(msg, ts, chunked, length);
  }

  private lost(bytes: number): void {
    this.skippedBytes += bytes;
    this.state = State.Resync;
  }

  /** `chunked` and `length` (-1: none) as the head's framing headers say. */
  private frameBody(msg: HttpMessage, ts: number, chunked: boolean, length: number): void {
    if (msg.role === 'response') {
      const status = msg.status!;
      if (status >= 100 && status < 200 && status !== 101) {
        /* Interim response (100 Continue): not the answer; the real one follows. */
        this.msg = null;
        this.state = State.Head;
        return;
      }
      const method = this.owner.requestMethod();
      if (status === 101 || (method === 'CONNECT' && status >= 200 && status < 300)) {
        this.finish(ts);
        this.state = State.Stopped;
        this.owner.upgraded();
        return;
      }
      if (method === 'HEAD' || status === 204 || status === 304) return this.finish(ts);
    }
    if (chunked) {
      this.bodyOut = this.collector.reset();
      this.state = State.ChunkSize;
      this.line = '';
    } else if (length > 0) {
      this.bodyOut = this.collector.reset();
      this.state = State.Length;
      this.remaining = length;
    } else if (length === 0 || msg.role === 'request') this.finish(ts);
    else {
      this.bodyOut = this.collector.reset();
      this.state = State.UntilClose;
    }
  }

  /** Chunk-size lines, the CRLF after chunk data, and trailer lines. */
  private chunkLine(buf: Buffer, o: number, end: number, ts: number): number {
    const nl = findLf(buf, o, end);
    if (nl >= 0 && nl - o <= 4096 && this.line === '') {
      if (this.state !== State.Trailers) return this.chunkLineInPlace(buf, o, nl, ts);
      /* The blank line ending a chunked body without trailers (every one of them): no string either. */
      if (nl === o || (nl === o + 1 && buf[o] === 13)) {
        this.msg!.endTs = ts;
        this.finish(ts);
        return nl + 1;
      }
    }
    const stop = nl < 0 ? end : nl;
    this.line += buf.toString('latin1', o, stop);
    if (this.line.length > 4096) {
      this.gap(0, ts);
      return end;
    }
    if (nl < 0) return end;
    const line = this.line.charCodeAt(this.line.length - 1) === 13 ? this.line.slice(0, -1) : this.line;
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

  /**
   * A chunk-size line, or the CRLF after chunk data, that is whole in buf[o, nl): read from the bytes
   * (no string), exactly as the string path below reads it.
   */
  private chunkLineInPlace(buf: Buffer, o: number, nl: number, ts: number): number {
    const e = nl > o && buf[nl - 1] === 13 ? nl - 1 : nl;
    this.msg!.endTs = ts;
    if (this.state === State.ChunkDataEnd) {
      this.state = State.ChunkSize;
      if (e !== o) this.badChunk(ts);
      return nl + 1;
    }
    /* 1 to 12 hex digits, optional white space, optional ";extension" without CR. */
    let i = o;
    let size = 0;
    while (i < e && i - o < 13) {
      const c = buf[i];
      const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
      if (d < 0) break;
      size = size * 16 + d;
      i++;
    }
    let ok = i > o && i - o <= 12;
    if (ok) {
      while (i < e && (buf[i] === 32 || (buf[i] >= 9 && buf[i] <= 13) || buf[i] === 160)) i++;
      if (i < e) {
        if (buf[i] !== 59) ok = false;
        else for (let j = i + 1; j < e; j++) if (buf[j] === 13) ok = false;
      }
    }
    if (!ok) {
      this.badChunk(ts);
      return nl + 1;
    }
    if (size === 0) this.state = State.Trailers;
    else {
      this.state = State.ChunkData;
      this.remaining = size;
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
    msg.body = this.bodyOut === null ? { bytes: NO_BYTES, size: 0, truncated: false } : this.bodyOut.body();
    msg.endTs = Math.max(msg.endTs, ts);
    if (error) msg.error = error;
    this.messages++;
    this.owner.message(msg);
  }
}
