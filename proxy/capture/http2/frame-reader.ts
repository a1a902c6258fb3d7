/**
 * Reads HTTP/2 frames (RFC 9113 §4–6) out of one direction of a connection, whatever the chunks
 * the bytes arrive in: a capture's TCP segments, decrypted TLS records, a socket's reads.
 *
 * API (one reader per direction):
 *   const r = new FrameReader(sink, { client: true });   // client bytes start with CLIENT_PREFACE
 *   r.push(chunk, ts);                                    // any number of times, any chunk sizes
 *   r.setAcceptedFrameSize(n);                            // the receiver's SETTINGS_MAX_FRAME_SIZE
 *   r.error                                               // the connection error that stopped it, if any
 * The sink gets `frame(f, ts)` for every frame (HEADERS/PUSH_PROMISE already joined with their
 * CONTINUATIONs; DATA in pieces as its payload arrives, padding removed; unknown types reported and
 * skipped), `streamError(e, ts)` for a frame malformed for its stream only (reading goes on), and
 * `connectionError(e, ts)` once, after which the reader stops. Buffers in frames are views that are
 * valid only during the call: copy what must be kept. Nothing here throws on any input.
 */
import {
  CLIENT_PREFACE,
  DEFAULT_MAX_FRAME_SIZE,
  ErrorCode,
  Flag,
  FRAME_HEADER_BYTES,
  FrameType,
  h2Error,
  MAX_ALLOWED_FRAME_SIZE,
  resolveH2Limits,
  Setting,
  type Frame,
  type H2Error,
  type H2Limits,
  type Priority,
} from './frames';

export interface FrameSink {
  frame(f: Frame, ts: number): void;
  streamError(e: H2Error, ts: number): void;
  connectionError(e: H2Error, ts: number): void;
}

export interface FrameReaderOptions {
  /** The bytes are the client's (they start with the preface; PUSH_PROMISE from them is an error). */
  client: boolean;
  limits?: Partial<H2Limits>;
  /**
   * Check the start of the connection: the client preface, then a SETTINGS frame first on either
   * side (default true). False to read a direction from a frame boundary without them.
   */
  expectPreface?: boolean;
}

const enum State {
  Preface,
  Header,
  Payload,
  DataPad,
  Data,
  Skip,
  Stopped,
}

const NO_BYTES = Buffer.alloc(0);

/** Bytes around a header block in a HEADERS frame at most: pad length, priority, padding. */
const HEADERS_OVERHEAD = 1 + 5 + 255;

export class FrameReader {
  /** The connection error that stopped this reader. */
  error: H2Error | null = null;
  bytesRead = 0;
  framesRead = 0;
  private readonly limits: H2Limits;
  private state: State;
  private prefaceSeen = 0;
  private readonly head = Buffer.alloc(FRAME_HEADER_BYTES);
  private headFill = 0;
  /** The frame being read. */
  private length = 0;
  private type = 0;
  private flags = 0;
  private streamId = 0;
  /** A payload that spans chunks, and how much of it is here. */
  private payload: Buffer | null = null;
  private payloadFill = 0;
  private payloadWant = 0;
  /** Bytes to skip after the part of the payload that was kept. */
  private skipAfter = 0;
  private skipLeft = 0;
  private dataLeft = 0;
  private padLeft = 0;
  private dataFirst = true;
  /** A header block waiting for CONTINUATION frames (copies: the chunks they came in are gone). */
  private blockStream = 0;
  private blockParts: Buffer[] = [];
  private blockBytes = 0;
  private blockFrame: { push: boolean; endStream: boolean; priority: Priority | undefined; padLength: number; promised: number; continuations: number } | null = null;
  /** What the receiver of these bytes accepts (its SETTINGS_MAX_FRAME_SIZE, capped by our limit). */
  private acceptedFrameSize: number;

  constructor(private readonly sink: FrameSink, private readonly opts: FrameReaderOptions) {
    this.limits = resolveH2Limits(opts.limits);
    const expect = opts.expectPreface !== false;
    this.state = expect && opts.client ? State.Preface : State.Header;
    if (!expect) this.framesRead = -1; // no SETTINGS-first check
    this.acceptedFrameSize = Math.min(DEFAULT_MAX_FRAME_SIZE, this.limits.maxFrameSize);
  }

  get stopped(): boolean {
    return this.state === State.Stopped;
  }

  /** True when the bytes so far end exactly at a frame boundary (nothing half-read). */
  get atBoundary(): boolean {
    return (this.state === State.Header && this.headFill === 0 && this.blockFrame === null) || this.state === State.Stopped;
  }

  /** The receiver's SETTINGS_MAX_FRAME_SIZE (RFC 9113 §6.5.2), never above limits.maxFrameSize. */
  setAcceptedFrameSize(size: number): void {
    this.acceptedFrameSize = Math.min(Math.max(size, DEFAULT_MAX_FRAME_SIZE), MAX_ALLOWED_FRAME_SIZE, this.limits.maxFrameSize);
  }

  stop(): void {
    this.state = State.Stopped;
    this.payload = null;
    this.blockParts = [];
  }

  push(chunk: Buffer, ts: number, start = 0, end = chunk.length): void {
    let o = start;
    if (this.state !== State.Stopped) this.bytesRead += end - start;
    while (o < end) {
      switch (this.state) {
        case State.Stopped:
          return;
        case State.Preface: {
          while (o < end && this.prefaceSeen < CLIENT_PREFACE.length) {
            if (chunk[o] !== CLIENT_PREFACE[this.prefaceSeen]) {
              this.fail(ErrorCode.PROTOCOL_ERROR, 'the client connection preface is missing: these bytes are not HTTP/2', ts);
              return;
            }
            o++;
            this.prefaceSeen++;
          }
          if (this.prefaceSeen === CLIENT_PREFACE.length) this.state = State.Header;
          break;
        }
        case State.Header: {
          if (this.headFill === 0 && end - o >= FRAME_HEADER_BYTES) {
            this.startFrame(chunk, o, ts);
            o += FRAME_HEADER_BYTES;
          } else {
            const n = Math.min(FRAME_HEADER_BYTES - this.headFill, end - o);
            chunk.copy(this.head, this.headFill, o, o + n);
            this.headFill += n;
            o += n;
            if (this.headFill === FRAME_HEADER_BYTES) {
              this.headFill = 0;
              this.startFrame(this.head, 0, ts);
            }
          }
          break;
        }
        case State.Payload: {
          if (this.payload === null && end - o >= this.payloadWant) {
            /* All of it is here: read in place. */
            const at = o;
            o += this.payloadWant;
            this.afterPayload(chunk.subarray(at, at + this.payloadWant), ts);
          } else {
            this.payload ??= Buffer.allocUnsafe(this.payloadWant);
            const n = Math.min(this.payloadWant - this.payloadFill, end - o);
            chunk.copy(this.payload, this.payloadFill, o, o + n);
            this.payloadFill += n;
            o += n;
            if (this.payloadFill === this.payloadWant) {
              const p = this.payload;
              this.payload = null;
              this.payloadFill = 0;
              this.afterPayload(p, ts);
            }
          }
          break;
        }
        case State.DataPad: {
          const pad = chunk[o++];
          if (pad >= this.length) {
            this.fail(ErrorCode.PROTOCOL_ERROR, `DATA frame on stream ${this.streamId}: ${pad} bytes of padding in a ${this.length}-byte payload`, ts);
            return;
          }
          this.dataLeft = this.length - 1 - pad;
          this.padLeft = pad;
          this.state = State.Data;
          if (this.dataLeft === 0) this.emitData(chunk.subarray(o, o), ts);
          break;
        }
        case State.Data: {
          const n = Math.min(this.dataLeft, end - o);
          this.dataLeft -= n;
          const piece = chunk.subarray(o, o + n);
          o += n;
          this.emitData(piece, ts);
          break;
        }
        case State.Skip: {
          const n = Math.min(this.skipLeft, end - o);
          this.skipLeft -= n;
          o += n;
          if (this.skipLeft === 0) this.state = State.Header;
          break;
        }
      }
    }
  }

  private fail(code: number, message: string, ts: number, limit?: keyof H2Limits): void {
    if (this.state === State.Stopped) return;
    const e = h2Error('connection', 0, code, message, limit);
    this.error = e;
    this.stop();
    this.sink.connectionError(e, ts);
  }

  private skip(n: number): void {
    if (this.state === State.Stopped) return;
    this.skipLeft = n;
    this.state = n > 0 ? State.Skip : State.Header;
  }

  private readPayload(want: number, ts: number, skipAfter = 0): void {
    this.payloadWant = want;
    this.payloadFill = 0;
    this.payload = null;
    this.skipAfter = skipAfter;
    this.state = State.Payload;
    if (want === 0) this.afterPayload(NO_BYTES, ts);
  }

  /** A frame header at buf[at, at + 9): checks what can be checked before its payload, and decides how to read it. */
  private startFrame(buf: Buffer, at: number, ts: number): void {
    const length = (buf[at] << 16) | (buf[at + 1] << 8) | buf[at + 2];
    const type = buf[at + 3];
    const flags = buf[at + 4];
    const streamId = buf.readUInt32BE(at + 5) & 0x7fffffff;
    this.length = length;
    this.type = type;
    this.flags = flags;
    this.streamId = streamId;
    const first = this.framesRead === 0;
    if (this.framesRead >= 0) this.framesRead++;
    if (first && type !== FrameType.SETTINGS) return this.fail(ErrorCode.PROTOCOL_ERROR, `the first frame is ${typeName(type)}, not SETTINGS (RFC 9113 §3.4)`, ts);
    if (length > this.acceptedFrameSize) {
      const limited = this.acceptedFrameSize === this.limits.maxFrameSize && this.limits.maxFrameSize < MAX_ALLOWED_FRAME_SIZE;
      return this.fail(ErrorCode.FRAME_SIZE_ERROR, `${typeName(type)} frame of ${length} bytes on stream ${streamId}, larger than the ${this.acceptedFrameSize} bytes accepted`, ts, limited ? 'maxFrameSize' : undefined);
    }
    if (this.blockFrame !== null && (type !== FrameType.CONTINUATION || streamId !== this.blockStream)) {
      return this.fail(ErrorCode.PROTOCOL_ERROR, `${typeName(type)} frame on stream ${streamId} in the middle of the header block of stream ${this.blockStream}`, ts);
    }
    switch (type) {
      case FrameType.DATA:
        if (streamId === 0) return this.fail(ErrorCode.PROTOCOL_ERROR, 'DATA frame on stream 0', ts);
        this.dataFirst = true;
        this.padLeft = 0;
        if (flags & Flag.PADDED) {
          if (length === 0) return this.fail(ErrorCode.PROTOCOL_ERROR, `padded DATA frame on stream ${streamId} without room for its pad length`, ts);
          this.state = State.DataPad;
          return;
        }
        this.dataLeft = length;
        this.state = State.Data;
        if (length === 0) this.emitData(buf.subarray(at, at), ts);
        return;
      case FrameType.HEADERS:
      case FrameType.PUSH_PROMISE: {
        const push = type === FrameType.PUSH_PROMISE;
        if (streamId === 0) return this.fail(ErrorCode.PROTOCOL_ERROR, `${typeName(type)} frame on stream 0`, ts);
        if (push && this.opts.client) return this.fail(ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE frame sent by a client', ts);
        if (length > this.limits.maxHeaderBlockBytes + HEADERS_OVERHEAD) return this.blockTooLarge(streamId, length, ts);
        return this.readPayload(length, ts);
      }
      case FrameType.CONTINUATION:
        if (this.blockFrame === null) return this.fail(ErrorCode.PROTOCOL_ERROR, `CONTINUATION frame on stream ${streamId} without a header block to continue`, ts);
        if (this.blockBytes + length > this.limits.maxHeaderBlockBytes) return this.blockTooLarge(streamId, this.blockBytes + length, ts);
        return this.readPayload(length, ts);
      case FrameType.PRIORITY:
        if (streamId === 0) return this.fail(ErrorCode.PROTOCOL_ERROR, 'PRIORITY frame on stream 0', ts);
        if (length !== 5) {
          this.sink.streamError(h2Error('stream', streamId, ErrorCode.FRAME_SIZE_ERROR, `PRIORITY frame of ${length} bytes (5 expected)`), ts);
          return this.skip(length);
        }
        return this.readPayload(5, ts);
      case FrameType.RST_STREAM:
        if (streamId === 0) return this.fail(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM frame on stream 0', ts);
        if (length !== 4) return this.fail(ErrorCode.FRAME_SIZE_ERROR, `RST_STREAM frame of ${length} bytes (4 expected)`, ts);
        return this.readPayload(4, ts);
      case FrameType.SETTINGS:
        if (streamId !== 0) return this.fail(ErrorCode.PROTOCOL_ERROR, `SETTINGS frame on stream ${streamId}`, ts);
        if (flags & Flag.ACK && length !== 0) return this.fail(ErrorCode.FRAME_SIZE_ERROR, `SETTINGS acknowledgement with a ${length}-byte payload`, ts);
        if (length % 6 !== 0) return this.fail(ErrorCode.FRAME_SIZE_ERROR, `SETTINGS frame of ${length} bytes (a multiple of 6 expected)`, ts);
        if (length > this.limits.maxControlFrameBytes) return this.fail(ErrorCode.ENHANCE_YOUR_CALM, `SETTINGS frame of ${length} bytes, more than the ${this.limits.maxControlFrameBytes} accepted`, ts, 'maxControlFrameBytes');
        return this.readPayload(length, ts);
      case FrameType.PING:
        if (streamId !== 0) return this.fail(ErrorCode.PROTOCOL_ERROR, `PING frame on stream ${streamId}`, ts);
        if (length !== 8) return this.fail(ErrorCode.FRAME_SIZE_ERROR, `PING frame of ${length} bytes (8 expected)`, ts);
        return this.readPayload(8, ts);
      case FrameType.GOAWAY: {
        if (streamId !== 0) return this.fail(ErrorCode.PROTOCOL_ERROR, `GOAWAY frame on stream ${streamId}`, ts);
        if (length < 8) return this.fail(ErrorCode.FRAME_SIZE_ERROR, `GOAWAY frame of ${length} bytes (at least 8 expected)`, ts);
        const kept = Math.min(length, 8 + this.limits.maxGoawayDebugBytes);
        return this.readPayload(kept, ts, length - kept);
      }
      case FrameType.WINDOW_UPDATE:
        if (length !== 4) return this.fail(ErrorCode.FRAME_SIZE_ERROR, `WINDOW_UPDATE frame of ${length} bytes (4 expected)`, ts);
        return this.readPayload(4, ts);
      default:
        this.sink.frame({ type: 'UNKNOWN', streamId, frameType: type, flags, length }, ts);
        if (this.state !== State.Stopped) this.skip(length);
    }
  }

  private blockTooLarge(streamId: number, size: number, ts: number): void {
    this.fail(ErrorCode.ENHANCE_YOUR_CALM, `header block of stream ${streamId} larger than ${this.limits.maxHeaderBlockBytes} bytes (${size} so far)`, ts, 'maxHeaderBlockBytes');
  }

  private emitData(piece: Buffer, ts: number): void {
    const last = this.dataLeft === 0;
    const first = this.dataFirst;
    this.dataFirst = false;
    const endStream = last && (this.flags & Flag.END_STREAM) !== 0;
    if (last) this.skip(this.padLeft);
    /* Pieces of a frame are handed out as they arrive (an empty one only for an empty frame). */
    if (piece.length > 0 || last) this.sink.frame({ type: 'DATA', streamId: this.streamId, data: piece, first, last, endStream, frameLength: this.length }, ts);
  }

  /** The payload (or its kept part) of a frame other than DATA is here. */
  private afterPayload(p: Buffer, ts: number): void {
    const skipAfter = this.skipAfter;
    this.skipAfter = 0;
    this.state = State.Header;
    const streamId = this.streamId;
    const flags = this.flags;
    switch (this.type) {
      case FrameType.HEADERS:
      case FrameType.PUSH_PROMISE:
        this.headerBlockStart(p, ts);
        break;
      case FrameType.CONTINUATION:
        this.continuation(p, ts);
        break;
      case FrameType.PRIORITY: {
        const priority = priorityAt(p, 0);
        if (priority.dependsOn === streamId) this.sink.streamError(h2Error('stream', streamId, ErrorCode.PROTOCOL_ERROR, `stream ${streamId} made to depend on itself`), ts);
        else this.sink.frame({ type: 'PRIORITY', streamId, priority }, ts);
        break;
      }
      case FrameType.RST_STREAM:
        this.sink.frame({ type: 'RST_STREAM', streamId, errorCode: p.readUInt32BE(0) }, ts);
        break;
      case FrameType.SETTINGS:
        this.settings(p, flags, ts);
        break;
      case FrameType.PING:
        this.sink.frame({ type: 'PING', streamId: 0, ack: (flags & Flag.ACK) !== 0, opaque: p }, ts);
        break;
      case FrameType.GOAWAY:
        this.sink.frame({ type: 'GOAWAY', streamId: 0, lastStreamId: p.readUInt32BE(0) & 0x7fffffff, errorCode: p.readUInt32BE(4), debugData: p.subarray(8), debugDataSize: this.length - 8 }, ts);
        break;
      case FrameType.WINDOW_UPDATE: {
        const increment = p.readUInt32BE(0) & 0x7fffffff;
        if (increment === 0) {
          if (streamId === 0) return this.fail(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0 on the connection', ts);
          this.sink.streamError(h2Error('stream', streamId, ErrorCode.PROTOCOL_ERROR, `WINDOW_UPDATE of 0 on stream ${streamId}`), ts);
        } else this.sink.frame({ type: 'WINDOW_UPDATE', streamId, increment }, ts);
        break;
      }
    }
    if (this.state === State.Header && skipAfter > 0) this.skip(skipAfter);
  }

  private headerBlockStart(p: Buffer, ts: number): void {
    const push = this.type === FrameType.PUSH_PROMISE;
    const flags = this.flags;
    let o = 0;
    let padLength = 0;
    if (flags & Flag.PADDED) {
      if (p.length < 1) return this.fail(ErrorCode.PROTOCOL_ERROR, `padded ${typeName(this.type)} frame without room for its pad length`, ts);
      padLength = p[0];
      o = 1;
    }
    let priority: Priority | undefined;
    let promised = 0;
    if (push) {
      if (p.length < o + 4) return this.fail(ErrorCode.FRAME_SIZE_ERROR, 'PUSH_PROMISE frame too short for its promised stream ID', ts);
      promised = p.readUInt32BE(o) & 0x7fffffff;
      o += 4;
    } else if (flags & Flag.PRIORITY) {
      if (p.length < o + 5) return this.fail(ErrorCode.FRAME_SIZE_ERROR, 'HEADERS frame too short for its priority fields', ts);
      priority = priorityAt(p, o);
      o += 5;
    }
    const blockEnd = p.length - padLength;
    if (blockEnd < o) return this.fail(ErrorCode.PROTOCOL_ERROR, `${typeName(this.type)} frame on stream ${this.streamId}: ${padLength} bytes of padding leave no room for its fields`, ts);
    if (blockEnd - o > this.limits.maxHeaderBlockBytes) return this.blockTooLarge(this.streamId, blockEnd - o, ts);
    const block = p.subarray(o, blockEnd);
    const endStream = !push && (flags & Flag.END_STREAM) !== 0;
    if (priority && priority.dependsOn === this.streamId) {
      this.sink.streamError(h2Error('stream', this.streamId, ErrorCode.PROTOCOL_ERROR, `stream ${this.streamId} made to depend on itself`), ts);
    }
    if (flags & Flag.END_HEADERS) {
      this.emitBlock(push, this.streamId, endStream, priority, block, padLength, promised, 0, ts);
      return;
    }
    this.blockStream = this.streamId;
    this.blockParts = block.length ? [Buffer.from(block)] : [];
    this.blockBytes = block.length;
    this.blockFrame = { push, endStream, priority, padLength, promised, continuations: 0 };
  }

  private continuation(p: Buffer, ts: number): void {
    const pending = this.blockFrame!;
    pending.continuations++;
    if (p.length) {
      this.blockBytes += p.length;
      if (this.flags & Flag.END_HEADERS && this.blockParts.length === 0) {
        /* The whole block is in this frame: no copy needed. */
        this.blockParts = [p];
      } else this.blockParts.push(this.flags & Flag.END_HEADERS ? p : Buffer.from(p));
    }
    if (!(this.flags & Flag.END_HEADERS)) return;
    const block = this.blockParts.length === 1 ? this.blockParts[0] : Buffer.concat(this.blockParts, this.blockBytes);
    this.blockParts = [];
    this.blockBytes = 0;
    this.blockFrame = null;
    this.emitBlock(pending.push, this.blockStream, pending.endStream, pending.priority, block, pending.padLength, pending.promised, pending.continuations, ts);
  }

  private emitBlock(push: boolean, streamId: number, endStream: boolean, priority: Priority | undefined, block: Buffer, padLength: number, promised: number, continuations: number, ts: number): void {
    if (push) this.sink.frame({ type: 'PUSH_PROMISE', streamId, promisedStreamId: promised, block, padLength, continuations }, ts);
    else this.sink.frame({ type: 'HEADERS', streamId, endStream, priority, block, padLength, continuations }, ts);
  }

  private settings(p: Buffer, flags: number, ts: number): void {
    const settings: [number, number][] = [];
    for (let o = 0; o + 6 <= p.length; o += 6) {
      const id = p.readUInt16BE(o);
      const value = p.readUInt32BE(o + 2);
      const bad = settingError(id, value, this.opts.client);
      if (bad) return this.fail(bad[0], bad[1], ts);
      settings.push([id, value]);
    }
    this.sink.frame({ type: 'SETTINGS', streamId: 0, ack: (flags & Flag.ACK) !== 0, settings }, ts);
  }
}

/** RFC 9113 §6.5.2: values a receiver must reject. `fromClient`: who sent the SETTINGS. */
function settingError(id: number, value: number, fromClient: boolean): [number, string] | null {
  switch (id) {
    case Setting.ENABLE_PUSH:
      if (value > 1) return [ErrorCode.PROTOCOL_ERROR, `SETTINGS_ENABLE_PUSH of ${value} (0 or 1 expected)`];
      if (!fromClient && value === 1) return [ErrorCode.PROTOCOL_ERROR, 'SETTINGS_ENABLE_PUSH of 1 sent by a server'];
      return null;
    case Setting.INITIAL_WINDOW_SIZE:
      return value > 0x7fffffff ? [ErrorCode.FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE of ${value}, above 2^31-1`] : null;
    case Setting.MAX_FRAME_SIZE:
      return value < DEFAULT_MAX_FRAME_SIZE || value > MAX_ALLOWED_FRAME_SIZE ? [ErrorCode.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE of ${value}, outside 16384…16777215`] : null;
    case Setting.ENABLE_CONNECT_PROTOCOL:
      return value > 1 ? [ErrorCode.PROTOCOL_ERROR, `SETTINGS_ENABLE_CONNECT_PROTOCOL of ${value} (0 or 1 expected)`] : null;
    default:
      return null;
  }
}

function priorityAt(p: Buffer, o: number): Priority {
  const word = p.readUInt32BE(o);
  return { exclusive: (word & 0x80000000) !== 0, dependsOn: word & 0x7fffffff, weight: p[o + 4] + 1 };
}

const TYPE_NAMES = ['DATA', 'HEADERS', 'PRIORITY', 'RST_STREAM', 'SETTINGS', 'PUSH_PROMISE', 'PING', 'GOAWAY', 'WINDOW_UPDATE', 'CONTINUATION'];

export function typeName(type: number): string {
  return TYPE_NAMES[type] ?? `unknown (0x${type.toString(16)})`;
}
