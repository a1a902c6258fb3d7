/**
 * An HTTP/2 connection read from outside (a capture, decrypted TLS, a tap on a relay): both
 * directions' bytes go in, in the order they were seen, and one H2Exchange per stream comes out, as
 * soon as it is complete, reset, refused, or cut by the connection's end.
 *
 * API:
 *   const c = new H2PassiveConnection({ bodyLimit, limits, onExchange: (ex) => … });
 *   c.push('client', bytes, ts);   // bytes the client sent (they start with the preface)
 *   c.push('server', bytes, ts);   // bytes the server sent; any chunking, interleaved in capture order
 *   c.gap('client', missing, ts);  // capture loss: reading stops, open streams are recorded as cut
 *   c.end(ts);                     // the connection closed (or the capture ended): the rest is recorded
 *   c.error / c.stopReason         // why reading stopped early, if it did
 * Feeding in capture order matters: SETTINGS (frame and header table sizes) take effect when the
 * other side's bytes show them. Nothing here throws on any input; memory is bounded by H2Limits
 * (open streams, held bytes, header blocks) and the body limit.
 */
import { ErrorCode, errorCodeName, h2Error, resolveH2Limits, Setting, type Frame, type H2Error, type H2Limits, type HeadersFrame, type PushPromiseFrame } from './frames';
import { FrameReader, type FrameSink } from './frame-reader';
import { HpackDecoder } from './hpack';
import { addNote, applyRequestHead, applyResponseHead, BodyPieces, HeldBytes, newExchange, splitHeaders, type H2Exchange } from './exchange';
import type { Header } from '../../flow';

export type H2Side = 'client' | 'server';

export interface H2ConnectionOptions {
  /** Body bytes kept per request and per response (the true size is always counted). */
  bodyLimit: number;
  limits?: Partial<H2Limits>;
  onExchange(ex: H2Exchange): void;
  /** Check the client preface and SETTINGS-first on both sides (default true). */
  expectPreface?: boolean;
}

export interface H2Goaway {
  from: H2Side;
  lastStreamId: number;
  code: number;
  codeName: string;
  /** The debug data as latin1 text (at most maxGoawayDebugBytes). */
  debug: string;
  ts: number;
}

/** A stream being followed. */
class OpenStream {
  readonly ex: H2Exchange;
  readonly requestBody: BodyPieces;
  readonly responseBody: BodyPieces;
  /** Header bytes held for it (counted in the connection's HeldBytes). */
  heldHeaders = 0;
  responseHeadSeen = false;
  constructor(id: number, ts: number, bodyLimit: number, held: HeldBytes) {
    this.ex = newExchange(id, ts);
    this.requestBody = new BodyPieces(bodyLimit, held);
    this.responseBody = new BodyPieces(bodyLimit, held);
  }
}

const OTHER: Record<H2Side, H2Side> = { client: 'server', server: 'client' };

export class H2PassiveConnection {
  /** The protocol error that stopped reading (a real endpoint would have sent GOAWAY). */
  error: H2Error | null = null;
  /** Why reading stopped before the end, in words (protocol error or capture gap). */
  stopReason: string | null = null;
  readonly goaways: H2Goaway[] = [];
  streamsSeen = 0;
  /** Frames for streams already recorded (late WINDOW_UPDATE, DATA after a reset…): ignored, counted. */
  framesOnClosedStreams = 0;
  private readonly limits: H2Limits;
  private readonly readers: Record<H2Side, FrameReader>;
  /** decoders[x] reads the header blocks x sends. */
  private readonly decoders: Record<H2Side, HpackDecoder>;
  /** SETTINGS_HEADER_TABLE_SIZE values x sent, waiting for the other side's ACK (null: a SETTINGS without it). */
  private readonly pendingTableSizes: Record<H2Side, (number | null)[]> = { client: [], server: [] };
  private readonly streams = new Map<number, OpenStream>();
  private readonly held: HeldBytes;
  private lastClientStream = 0;
  private lastPushedStream = 0;
  private serverGoaway: H2Goaway | null = null;
  private clientGoaway: H2Goaway | null = null;
  private ended = false;

  constructor(private readonly opts: H2ConnectionOptions) {
    this.limits = resolveH2Limits(opts.limits);
    this.held = new HeldBytes(this.limits.maxHeldBytes);
    const expectPreface = opts.expectPreface !== false;
    this.readers = {
      client: new FrameReader(this.sink('client'), { client: true, limits: this.limits, expectPreface }),
      server: new FrameReader(this.sink('server'), { client: false, limits: this.limits, expectPreface }),
    };
    const hpack = { maxHeaderListBytes: this.limits.maxHeaderListBytes, maxTableSize: this.limits.maxHeaderTableSize };
    this.decoders = { client: new HpackDecoder(hpack), server: new HpackDecoder(hpack) };
  }

  get stopped(): boolean {
    return this.stopReason !== null || this.ended;
  }

  get openStreams(): number {
    return this.streams.size;
  }

  /** Bytes `from` sent: chunk[start, end), seen at capture time `ts` (ms). */
  push(from: H2Side, chunk: Buffer, ts: number, start = 0, end = chunk.length): void {
    if (this.stopped) return;
    this.readers[from].push(chunk, ts, start, end);
  }

  /** `missing` bytes `from` sent are not in the capture: nothing after them can be read (HPACK state is lost). */
  gap(from: H2Side, missing: number, ts: number): void {
    if (this.stopped) return;
    this.stop(`capture gap: ${missing} bytes the ${from} sent are missing from the capture; HTTP/2 cannot be read past a gap`, ts, true);
  }

  /** The connection is over (both sides closed, reset, or the capture ended). */
  end(ts: number): void {
    if (this.ended) return;
    if (this.stopReason === null) {
      const midFrame = (['client', 'server'] as H2Side[]).filter((s) => !this.readers[s].atBoundary);
      const after = this.serverGoaway ?? this.clientGoaway;
      const why = midFrame.length
        ? `the connection ended in the middle of a frame from the ${midFrame.join(' and the ')}`
        : after && after.code !== ErrorCode.NO_ERROR
          ? `the connection ended after a GOAWAY from the ${after.from} (${after.codeName}${after.debug ? `: ${after.debug}` : ''})`
          : 'the connection ended before the stream was complete';
      for (const s of [...this.streams.values()]) this.finish(s, ts, why);
    }
    this.ended = true;
    this.readers.client.stop();
    this.readers.server.stop();
  }

  private stop(reason: string, ts: number, gap: boolean): void {
    this.stopReason = reason;
    this.readers.client.stop();
    this.readers.server.stop();
    for (const s of [...this.streams.values()]) {
      if (gap) s.ex.captureGap = true;
      this.finish(s, ts, reason);
    }
  }

  private sink(from: H2Side): FrameSink {
    return {
      frame: (f, ts) => this.frame(from, f, ts),
      streamError: (e, ts) => {
        const s = this.streams.get(e.streamId);
        if (s) {
          addNote(s.ex.notes, `stream error from the ${from}'s frames (${e.codeName}): ${e.message}`);
          s.ex.timings.lastFrameTs = ts;
        }
      },
      connectionError: (e, ts) => this.connectionError(from, e, ts),
    };
  }

  private connectionError(from: H2Side, e: H2Error, ts: number): void {
    if (this.stopped) return;
    this.error = e;
    this.stop(`HTTP/2 connection error in the ${from}'s frames (${e.codeName}): ${e.message}`, ts, false);
  }

  private frame(from: H2Side, f: Frame, ts: number): void {
    switch (f.type) {
      case 'HEADERS':
        return this.headers(from, f, ts);
      case 'PUSH_PROMISE':
        return this.pushPromise(f, ts);
      case 'DATA': {
        const s = this.streams.get(f.streamId);
        if (!s) return this.unknownStream(from, f.streamId, 'DATA', ts);
        const ex = s.ex;
        ex.timings.lastFrameTs = ts;
        if (from === 'client') {
          if (ex.requestComplete) return addNote(ex.notes, 'DATA from the client after its END_STREAM (STREAM_CLOSED)');
          s.requestBody.add(f.data);
        } else {
          if (ex.responseComplete) return addNote(ex.notes, 'DATA from the server after its END_STREAM (STREAM_CLOSED)');
          if (!s.responseHeadSeen) addNote(ex.notes, 'response DATA before a final response HEADERS (malformed)');
          s.responseBody.add(f.data);
        }
        if (f.endStream) this.endStream(s, from, ts);
        if (this.held.over) this.shed(ts);
        return;
      }
      case 'RST_STREAM': {
        const s = this.streams.get(f.streamId);
        if (!s) return this.unknownStream(from, f.streamId, 'RST_STREAM', ts);
        const name = errorCodeName(f.errorCode);
        const ex = s.ex;
        ex.timings.lastFrameTs = ts;
        if (from === 'server' && f.errorCode === ErrorCode.NO_ERROR && ex.responseComplete) {
          /* RFC 9113 §8.1: a complete response, then "stop sending your request" (requestComplete stays false). */
          return this.finish(s, ts, undefined);
        }
        ex.reset = { by: from, code: f.errorCode, codeName: name };
        if (f.errorCode === ErrorCode.REFUSED_STREAM) ex.refused = true;
        return this.finish(s, ts, `stream reset by the ${from} (${name})`);
      }
      case 'SETTINGS':
        return this.settings(from, f.ack, f.settings);
      case 'GOAWAY':
        return this.goaway(from, { from, lastStreamId: f.lastStreamId, code: f.errorCode, codeName: errorCodeName(f.errorCode), debug: f.debugData.toString('latin1'), ts }, ts);
      default:
        /* PING, PRIORITY, WINDOW_UPDATE, unknown types: nothing an exchange records. */
        return;
    }
  }

  private unknownStream(from: H2Side, id: number, what: string, ts: number): void {
    const idle = id % 2 === 1 ? id > this.lastClientStream : id > this.lastPushedStream;
    if (idle) {
      this.connectionError(from, h2Error('connection', 0, ErrorCode.PROTOCOL_ERROR, `${what} frame on stream ${id}, which was never opened`), ts);
    } else this.framesOnClosedStreams++;
  }

  /** Decodes a header block with the sender's decoder (every block must be, to keep the table right). */
  private decodeBlock(from: H2Side, block: Buffer, ts: number): { headers: Header[]; listBytes: number; truncated: boolean } | null {
    const r = this.decoders[from].decode(block);
    if (!r.ok) {
      this.connectionError(from, h2Error('connection', 0, ErrorCode.COMPRESSION_ERROR, `header block could not be decoded: ${r.error}`), ts);
      return null;
    }
    return r;
  }

  private headers(from: H2Side, f: HeadersFrame, ts: number): void {
    const decoded = this.decodeBlock(from, f.block, ts);
    if (!decoded) return;
    let s = this.streams.get(f.streamId);
    if (!s) {
      if (from === 'server') return this.unknownStream(from, f.streamId, 'HEADERS', ts);
      if (f.streamId % 2 === 0) return this.connectionError(from, h2Error('connection', 0, ErrorCode.PROTOCOL_ERROR, `the client opened stream ${f.streamId} (client streams are odd)`), ts);
      if (f.streamId <= this.lastClientStream) {
        this.framesOnClosedStreams++;
        return;
      }
      this.lastClientStream = f.streamId;
      s = this.open(f.streamId, ts);
      this.holdHeaders(s, decoded.listBytes);
      applyRequestHead(s.ex, decoded.headers);
      if (decoded.truncated) addNote(s.ex.notes, `request header list of ${decoded.listBytes} bytes: only the first ${this.limits.maxHeaderListBytes} were kept`);
      if (this.serverGoaway && f.streamId > this.serverGoaway.lastStreamId) {
        s.ex.refused = true;
        return this.finish(s, ts, this.refusedText(this.serverGoaway));
      }
      if (f.endStream) this.endStream(s, 'client', ts);
      if (this.held.over) this.shed(ts);
      return;
    }
    const ex = s.ex;
    ex.timings.lastFrameTs = ts;
    this.holdHeaders(s, decoded.listBytes);
    if (decoded.truncated) addNote(ex.notes, `a header list of ${decoded.listBytes} bytes from the ${from}: only the first ${this.limits.maxHeaderListBytes} were kept`);
    if (from === 'client') {
      /* A second HEADERS from the client: trailers (RFC 9113 §8.1). */
      if (ex.requestComplete) addNote(ex.notes, 'HEADERS from the client after its END_STREAM (STREAM_CLOSED)');
      else {
        if (!f.endStream) addNote(ex.notes, 'request trailers without END_STREAM (malformed)');
        ex.requestTrailers.push(...splitHeaders(decoded.headers, 'trailers', ex.notes).fields);
      }
    } else if (ex.responseComplete) {
      addNote(ex.notes, 'HEADERS from the server after its END_STREAM (STREAM_CLOSED)');
    } else if (!s.responseHeadSeen) {
      const interim = ex.informational.length;
      applyResponseHead(ex, decoded.headers);
      /* A 1xx head is followed by another; anything else (even without a usable :status) is the final one. */
      if (ex.status !== undefined || ex.informational.length === interim) {
        s.responseHeadSeen = true;
        ex.timings.responseHeadersTs = ts;
      }
    } else {
      if (!f.endStream) addNote(ex.notes, 'response trailers without END_STREAM (malformed)');
      ex.responseTrailers.push(...splitHeaders(decoded.headers, 'trailers', ex.notes).fields);
    }
    if (f.endStream) this.endStream(s, from, ts);
    if (this.held.over) this.shed(ts);
  }

  private pushPromise(f: PushPromiseFrame, ts: number): void {
    const decoded = this.decodeBlock('server', f.block, ts);
    if (!decoded) return;
    const id = f.promisedStreamId;
    if (id % 2 !== 0 || id <= this.lastPushedStream) {
      return this.connectionError('server', h2Error('connection', 0, ErrorCode.PROTOCOL_ERROR, `PUSH_PROMISE for stream ${id} (promised streams are even and increasing)`), ts);
    }
    this.lastPushedStream = id;
    const s = this.open(id, ts);
    s.ex.pushed = true;
    s.ex.promisedOn = f.streamId;
    s.ex.requestComplete = true;
    s.ex.timings.requestEndTs = ts;
    this.holdHeaders(s, decoded.listBytes);
    applyRequestHead(s.ex, decoded.headers);
    const parent = this.streams.get(f.streamId);
    if (parent) parent.ex.timings.lastFrameTs = ts;
    if (this.clientGoaway && id > this.clientGoaway.lastStreamId) {
      s.ex.refused = true;
      this.finish(s, ts, this.refusedText(this.clientGoaway));
    }
  }

  private open(id: number, ts: number): OpenStream {
    while (this.streams.size >= this.limits.maxOpenStreams) {
      const oldest = this.streams.values().next().value as OpenStream;
      this.finish(oldest, ts, `not followed to its end: more than ${this.limits.maxOpenStreams} streams were open on this connection (maxOpenStreams)`);
    }
    const s = new OpenStream(id, ts, this.opts.bodyLimit, this.held);
    this.streams.set(id, s);
    this.streamsSeen++;
    return s;
  }

  private holdHeaders(s: OpenStream, listBytes: number): void {
    const n = Math.min(listBytes, this.limits.maxHeaderListBytes);
    s.heldHeaders += n;
    this.held.held += n;
  }

  /** Too many bytes held for open streams: the oldest are recorded as they are until the rest fits. */
  private shed(ts: number): void {
    for (const s of [...this.streams.values()]) {
      if (!this.held.over) return;
      this.finish(s, ts, `not followed to its end: the open streams of this connection held more than ${this.limits.maxHeldBytes} bytes (maxHeldBytes)`);
    }
  }

  private endStream(s: OpenStream, from: H2Side, ts: number): void {
    const ex = s.ex;
    if (from === 'client') {
      ex.requestComplete = true;
      ex.timings.requestEndTs = ts;
    } else {
      ex.responseComplete = true;
      ex.timings.responseEndTs = ts;
      if (!s.responseHeadSeen) addNote(ex.notes, 'the server ended the stream without a final response');
    }
    if (ex.requestComplete && ex.responseComplete) this.finish(s, ts, undefined);
  }

  private finish(s: OpenStream, ts: number, error: string | undefined): void {
    if (!this.streams.delete(s.ex.streamId)) return;
    const ex = s.ex;
    ex.timings.lastFrameTs = Math.max(ex.timings.lastFrameTs, ts);
    ex.requestBody = s.requestBody.take();
    ex.responseBody = s.responseBody.take();
    this.held.held -= s.heldHeaders;
    s.heldHeaders = 0;
    if (error !== undefined) ex.error = error;
    this.opts.onExchange(ex);
  }

  private settings(from: H2Side, ack: boolean, settings: [number, number][]): void {
    const other = OTHER[from];
    if (ack) {
      /* `from` acknowledges the other side's oldest unacknowledged SETTINGS: its encoder now applies them. */
      const size = this.pendingTableSizes[other].shift();
      if (size !== undefined && size !== null) this.tableSizeNote(other, this.decoders[from].setSettingsTableSize(size));
      return;
    }
    let tableSize: number | null = null;
    for (const [id, value] of settings) {
      if (id === Setting.HEADER_TABLE_SIZE) {
        tableSize = value;
        this.tableSizeNote(from, this.decoders[other].announceSettingsTableSize(value));
      } else if (id === Setting.MAX_FRAME_SIZE) this.readers[other].setAcceptedFrameSize(value);
    }
    /* Bounded: a peer that never acknowledges cannot grow it past a few entries' worth of use. */
    if (this.pendingTableSizes[from].length < 64) this.pendingTableSizes[from].push(tableSize);
  }

  private tableSizeNote(side: H2Side, note: string | null): void {
    if (note !== null) for (const s of this.streams.values()) addNote(s.ex.notes, `the ${side}'s ${note}`);
  }

  private goaway(from: H2Side, g: H2Goaway, ts: number): void {
    if (this.goaways.length < 16) this.goaways.push(g);
    if (from === 'server') this.serverGoaway = g;
    else this.clientGoaway = g;
    /* Streams the receiver opened above lastStreamId were never processed (RFC 9113 §6.8). */
    const receiverParity = from === 'server' ? 1 : 0;
    for (const s of [...this.streams.values()]) {
      if (s.ex.streamId % 2 === receiverParity && s.ex.streamId > g.lastStreamId) {
        s.ex.refused = true;
        this.finish(s, ts, this.refusedText(g));
      }
    }
  }

  private refusedText(g: H2Goaway): string {
    return `refused: the ${g.from}'s GOAWAY (${g.codeName}${g.debug ? `: ${g.debug}` : ''}) says streams above ${g.lastStreamId} were not processed`;
  }
}
