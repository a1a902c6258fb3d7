/**
 * One captured TCP connection, both directions: decides who is the client (the SYN, else the side
 * that sends a request line), then reads it as HTTP (requests paired with responses in order,
 * pipelining included), as TLS (the ClientHello's SNI and ALPN: the host the phone talked to, even
 * though the content cannot be read), or records it as raw TCP with its first bytes.
 */
import type { Body, Flow, Header } from '../../../flow';
import { emptyBody, namedAt } from '../../../flow';
import { parseClientHello, MAX_CLIENT_HELLO_BYTES } from '../../client-hello';
import { HttpStreamParser, type HttpMessage, type HttpParserOwner, type HttpRole } from './http-parser';
import { TcpDirection, type OutOfOrderBudget, type StreamSink } from './tcp-reassembly';
import { requestUrl } from './request-url';
import type { AddressKey } from './network';

export interface Endpoint {
  ip: string;
  port: number;
}

export interface ConnectionContext {
  bodyLimit: number;
  /** Printable form of an address key (the importer caches these). */
  addressText(key: AddressKey, v6: boolean): string;
  /** Next request index in capture order. */
  nextRequestIndex(): number;
  emit(flow: Flow, requestIndex?: number): void;
  /** Out-of-order bytes held across all connections (none: each direction is bounded on its own only). */
  outOfOrder?: OutOfOrderBudget;
}

/** Requests waiting for their response, per connection; beyond it the oldest is recorded unanswered. */
export const MAX_PENDING_REQUESTS = 64;
/** First bytes kept of each direction of a connection that is neither HTTP nor TLS. */
export const RAW_KEEP_BYTES = 4096;

type Mode = 'detect' | 'http' | 'tls' | 'raw';

class FirstBytes {
  chunks: Buffer[] = [];
  kept = 0;
  size = 0;
  limit = RAW_KEEP_BYTES;
  /** Counts buf[start, end) and keeps a copy of what fits under the limit. */
  add(buf: Buffer, start: number, end: number): void {
    this.size += end - start;
    if (this.kept >= this.limit) return;
    const n = Math.min(end - start, this.limit - this.kept);
    const part = Buffer.allocUnsafe(n);
    buf.copy(part, 0, start, start + n);
    this.chunks.push(part);
    this.kept += n;
  }
  bytes(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.kept);
  }
}

/**
 * What the importer's table and open list hold for a connection: its addresses and the bookkeeping
 * of its lifetime. A TcpConnection is one; what is left of a finished one while it lingers is another.
 */
export interface TrackedConnection {
  readonly src: AddressKey;
  readonly sport: number;
  readonly dst: AddressKey;
  readonly dport: number;
  lastTs: number;
  /** Capture time it was queued to linger after finishing (-1: not queued); kept by the importer's sweep. */
  lingerTs: number;
  /** FIN or RST seen from side 0, from side 1. */
  fin0: boolean;
  fin1: boolean;
  closed: boolean;
  /** The importer's bookkeeping: its place in the list of open connections. */
  isOpen: boolean;
  openPrev: TrackedConnection | null;
  openNext: TrackedConnection | null;
}

/**
 * A connection whose flows are all recorded (both FINs), lingering for late retransmissions: only its
 * addresses and times. The full TcpConnection it replaces can die young instead of being copied and
 * promoted by every collection during the linger time.
 */
export class FinishedConnection implements TrackedConnection {
  readonly src: AddressKey;
  readonly sport: number;
  readonly dst: AddressKey;
  readonly dport: number;
  lastTs: number;
  lingerTs: number;
  fin0 = true;
  fin1 = true;
  closed = true;
  isOpen = false;
  openPrev: TrackedConnection | null = null;
  openNext: TrackedConnection | null = null;
  constructor(c: TcpConnection) {
    this.src = c.src;
    this.sport = c.sport;
    this.dst = c.dst;
    this.dport = c.dport;
    this.lastTs = c.lastTs;
    this.lingerTs = c.lingerTs;
  }
}

const NO_PARSERS: readonly [null, null] = Object.freeze([null, null]) as readonly [null, null];

/** What a closed connection's `dirs` point to: never fed (see the importer), they only spare the field a null. */
const NO_SINK: StreamSink = { data() {}, gap() {} };
const CLOSED_DIRS: readonly [TcpDirection, TcpDirection] = Object.freeze([new TcpDirection(NO_SINK, 0), new TcpDirection(NO_SINK, 1)] as const);

/**
 * Kept lean on purpose: a connection that lingers after its FINs as itself (the importer replaces most
 * by a FinishedConnection) outlives several young-generation collections, so every object hung on it
 * is copied and promoted. Parts that only some connections need (first bytes, waiting requests) are
 * made on first use and dropped at close.
 */
export class TcpConnection implements StreamSink, HttpParserOwner, TrackedConnection {
  /** Both directions' reassembly; a closed connection drops them (the importer gives it no more segments). */
  dirs: readonly [TcpDirection, TcpDirection];
  private clientSide: 0 | 1 | -1 = -1;
  private mode: Mode = 'detect';
  private parsers: readonly [HttpStreamParser | null, HttpStreamParser | null] = NO_PARSERS;
  /** Each side's first bytes (for raw TCP and the TLS ClientHello), made on first use. */
  private first0: FirstBytes | null = null;
  private first1: FirstBytes | null = null;
  private pending: HttpMessage[] | null = null;
  private httpMessages = 0;
  private tlsEmitted = false;
  readonly startTs: number;
  lastTs: number;
  /** FIN or RST seen from side 0, from side 1. */
  fin0 = false;
  fin1 = false;
  /** Bytes missing from the capture in both directions (known once closed). */
  gapBytes = 0;
  /** Capture time it was queued to linger after finishing (-1: not queued); kept by the importer's sweep. */
  lingerTs = -1;
  closed = false;
  /** The importer's bookkeeping: its place in the list of open connections. */
  isOpen = false;
  openPrev: TrackedConnection | null = null;
  openNext: TrackedConnection | null = null;

  /** Side 0 (src, sport) = the endpoint that sent the first packet seen; `clientSide` once known. */
  constructor(
    readonly src: AddressKey,
    readonly sport: number,
    readonly dst: AddressKey,
    readonly dport: number,
    private readonly v6: boolean,
    ts: number,
    private readonly ctx: ConnectionContext,
  ) {
    this.startTs = ts;
    this.lastTs = ts;
    this.dirs = [new TcpDirection(this, 0, ctx.outOfOrder), new TcpDirection(this, 1, ctx.outOfOrder)];
  }

  /** Printable addresses of the two ends, made when the first flow needs them. */
  private ip0: string | null = null;
  private ip1: string | null = null;

  private endpoint(side: 0 | 1): Endpoint {
    return { ip: this.ipText(side), port: side === 0 ? this.sport : this.dport };
  }

  private ipText(side: 0 | 1): string {
    if (side === 0) return (this.ip0 ??= this.ctx.addressText(this.src, this.v6));
    return (this.ip1 ??= this.ctx.addressText(this.dst, this.v6));
  }

  private first(side: 0 | 1): FirstBytes {
    if (side === 0) return (this.first0 ??= new FirstBytes());
    return (this.first1 ??= new FirstBytes());
  }

  /** Bytes seen on that side (0 when none). */
  private firstSize(side: 0 | 1): number {
    const f = side === 0 ? this.first0 : this.first1;
    return f === null ? 0 : f.size;
  }

  private freeFirst(): void {
    this.first0 = null;
    this.first1 = null;
  }

  /** A SYN (without ACK) from `side` makes it the client; a SYN-ACK makes it the server. */
  setClient(side: 0 | 1): void {
    if (this.clientSide === -1) this.clientSide = side;
  }

  get knowsClient(): boolean {
    return this.clientSide !== -1;
  }

  /** In-order bytes of one direction (StreamSink): buf[start, end), valid only during the call. */
  data(side: 0 | 1, buf: Buffer, start: number, end: number, ts: number): void {
    if (this.closed) return; // a late retransmission after both FINs
    this.lastTs = ts;
    if (this.mode === 'http') {
      this.parsers[side]?.feed(buf, start, end, ts);
      /* The first bytes are only needed if this never turns out to be HTTP (then it is recorded as raw TCP). */
      if (this.httpMessages === 0) this.first(side).add(buf, start, end);
      return;
    }
    if (this.mode === 'tls' && this.tlsEmitted) return;
    if (this.mode === 'detect') return this.detect(side, buf, start, end, ts);
    this.first(side).add(buf, start, end);
    if (this.mode === 'tls' && side === this.clientSide) this.readHello(ts, false);
  }

  /** Bytes of direction `side` the capture does not have (StreamSink). */
  gap(side: 0 | 1, missing: number, ts: number): void {
    this.parsers[side]?.gap(missing, ts);
  }

  /** First data of the connection (its bytes are kept in `first` here, unless they already made an HTTP message). */
  private detect(side: 0 | 1, buf: Buffer, start: number, end: number, ts: number): void {
    if (this.clientSide === -1) {
      /* Capture started mid-connection: both sides look for a start line; the first one found sets the roles. */
      this.mode = 'http';
      this.parsers = [this.parser(null, 0), this.parser(null, 1)];
      this.parsers[side]!.feed(buf, start, end, ts);
      if (this.httpMessages === 0) this.first(side).add(buf, start, end);
      return;
    }
    if (side !== this.clientSide) return this.first(side).add(buf, start, end); // the server speaks first: wait for the client
    if (buf[start] === 0x16 && (end - start < 2 || buf[start + 1] === 0x03)) {
      this.first(side).add(buf, start, end);
      this.mode = 'tls';
      this.first(side).limit = MAX_CLIENT_HELLO_BYTES;
      this.readHello(ts, false);
      return;
    }
    this.mode = 'http';
    const server = (1 - side) as 0 | 1;
    const parsers: [HttpStreamParser | null, HttpStreamParser | null] = [null, null];
    parsers[side] = this.parser('request', side);
    parsers[server] = this.parser('response', server);
    this.parsers = parsers;
    parsers[side]!.feed(buf, start, end, ts);
    /* Bytes that made an HTTP message will never be recorded as raw TCP: no copy of them is needed. */
    if (this.httpMessages === 0) this.first(side).add(buf, start, end);
    /* What the server sent before the client spoke (a banner) is not HTTP: the response parser starts after it. */
  }

  private parser(role: HttpRole | null, side: 0 | 1): HttpStreamParser {
    return new HttpStreamParser(role, this.ctx.bodyLimit, this, side);
  }

  /** HttpParserOwner: a request's capture-order index. */
  nextIndex(): number {
    return this.ctx.nextRequestIndex();
  }

  /** HttpParserOwner: the method of the request the next response answers. */
  requestMethod(): string | undefined {
    return this.pending?.[0]?.method;
  }

  /** HttpParserOwner: the connection switched protocols; neither direction is HTTP any more. */
  upgraded(): void {
    this.parsers[0]?.stop();
    this.parsers[1]?.stop();
  }

  /** HttpParserOwner: a parser of unknown role found its first start line. */
  roleFound(side: 0 | 1, role: HttpRole): void {
    const other = (1 - side) as 0 | 1;
    this.clientSide = role === 'request' ? side : other;
    const otherParser = this.parsers[other];
    if (otherParser && otherParser.role === null) otherParser.role = role === 'request' ? 'response' : 'request';
  }

  /** HttpParserOwner: a complete (or cut) message. */
  message(m: HttpMessage): void {
    /* An HTTP connection is never recorded as raw TCP: its first bytes are not needed any more. */
    if (this.httpMessages++ === 0) this.freeFirst();
    if (m.role === 'request') {
      const pending = (this.pending ??= []);
      pending.push(m);
      if (pending.length > MAX_PENDING_REQUESTS) this.emitRequest(pending.shift()!, undefined, 'no response seen (too many requests waiting on this connection)');
      return;
    }
    /* A response that started before the waiting request was sent answers a request the capture missed. */
    const req = this.pending?.[0];
    if (!req || m.startTs < req.startTs) return;
    this.pending!.shift();
    this.emitRequest(req, m);
  }

  private readHello(ts: number, closing: boolean): void {
    const first = this.first(this.clientSide as 0 | 1);
    const r = first.size > first.kept ? { status: 'invalid' as const, reason: 'ClientHello too large' } : parseClientHello(first.bytes());
    if (r.status === 'need-more' && !closing) return;
    this.tlsEmitted = true;
    const flow = this.baseFlow('raw', 'tls', this.startTs);
    flow.endedAt = ts;
    flow.tls = true;
    flow.tags.push('tls-not-decrypted');
    if (r.status === 'ok') {
      flow.sni = r.hello.sni;
      flow.alpn = r.hello.alpn.length ? r.hello.alpn.join(',') : undefined;
      flow.tlsVersion = r.hello.version;
      if (r.hello.sni) flow.host = r.hello.sni;
    } else {
      flow.error = r.status === 'invalid' ? `unreadable TLS ClientHello: ${r.reason}` : 'TLS ClientHello incomplete in the capture';
    }
    flow.url = `tls://${urlHost(flow.host)}:${flow.port}`;
    this.freeFirst();
    this.ctx.emit(flow);
  }

  /** End of the connection (FIN/RST both ways, idle, or end of capture): everything still open is recorded. */
  close(ts: number): void {
    if (this.closed) return;
    /* What still waits behind holes is delivered (as gaps) before the connection counts as closed. */
    this.dirs[0].flush();
    this.dirs[1].flush();
    this.gapBytes = this.dirs[0].gapBytes + this.dirs[1].gapBytes;
    this.closed = true;
    this.parsers[0]?.end(ts);
    this.parsers[1]?.end(ts);
    const pending = this.pending;
    this.pending = null;
    if (pending) for (const req of pending) this.emitRequest(req, undefined, 'no response seen in the capture');
    if (this.mode === 'tls' && !this.tlsEmitted) this.readHello(ts, true);
    if ((this.mode === 'detect' || (this.mode === 'http' && this.httpMessages === 0)) && (this.firstSize(0) || this.firstSize(1))) this.emitRaw(ts);
    /* The entry may linger to absorb late retransmissions: keep nothing large alive. */
    this.parsers = NO_PARSERS;
    this.freeFirst();
    this.dirs = CLOSED_DIRS;
  }

  /** A FIN (or, with `reset`, an RST: both directions end) from `side`; true once both sides are done. */
  finFrom(side: 0 | 1, reset: boolean): boolean {
    if (side === 0 || reset) this.fin0 = true;
    if (side === 1 || reset) this.fin1 = true;
    return this.fin0 && this.fin1;
  }

  private emitRaw(ts: number): void {
    /* Roles unknown: the side with the higher (ephemeral) port is most likely the client. */
    if (this.clientSide === -1) this.clientSide = this.sport >= this.dport ? 0 : 1;
    const flow = this.baseFlow('raw', 'tcp', this.startTs);
    const c = this.first(this.clientSide);
    const s = this.first((1 - this.clientSide) as 0 | 1);
    flow.requestBody = { bytes: c.bytes(), size: c.size, truncated: c.size > c.kept };
    flow.responseBody = { bytes: s.bytes(), size: s.size, truncated: s.size > s.kept };
    flow.endedAt = ts;
    flow.url = `tcp://${urlHost(flow.host)}:${flow.port}`;
    flow.tags.push('not-http');
    this.ctx.emit(flow);
  }

  private baseFlow(kind: Flow['kind'], scheme: Flow['scheme'], ts: number, requestBody: Body = emptyBody(), responseBody: Body = emptyBody()): Flow {
    const client = this.endpoint(this.clientSide === -1 ? 0 : this.clientSide);
    const server = this.endpoint(this.clientSide === 1 ? 0 : 1);
    return {
      kind,
      source: 'pcap',
      startedAt: ts,
      clientIp: client.ip,
      clientPort: client.port,
      scheme,
      host: server.ip,
      port: server.port,
      serverIp: server.ip,
      tls: false,
      requestHeaders: [],
      requestBody,
      responseHeaders: [],
      responseBody,
      timings: {},
      tags: ['imported-pcap'],
    };
  }

  private emitRequest(req: HttpMessage, res: HttpMessage | undefined, missing?: string): void {
    const clientSide = this.clientSide === -1 ? 0 : this.clientSide;
    const clientIp = this.ipText(clientSide);
    const serverIp = this.ipText(this.clientSide === 1 ? 0 : 1);
    const port = this.clientSide === 1 ? this.sport : this.dport;
    const hostHeader = hostOf(req.headers);
    const target = req.target ?? '/';
    const url = requestUrl(hostHeader, target, port);
    const host = url.hostname !== undefined ? url.hostname : serverIp;
    const error = req.error ? (res ? (res.error ? `${req.error}; ${res.error}` : req.error) : missing ? `${req.error}; ${missing}` : req.error) : res ? res.error : missing;
    /* One literal in the order the fields were always added (JSON of a flow is unchanged; undefined fields are left out). */
    const flow: Flow = {
      kind: 'http',
      source: 'pcap',
      startedAt: req.startTs,
      clientIp,
      clientPort: clientSide === 0 ? this.sport : this.dport,
      scheme: 'http',
      host,
      port,
      serverIp,
      tls: false,
      requestHeaders: req.headers,
      requestBody: req.body,
      responseHeaders: res ? res.headers : [],
      responseBody: res ? res.body : emptyBody(),
      timings: { requestSentMs: req.endTs - req.startTs, firstByteMs: res ? res.startTs - req.startTs : undefined, totalMs: res ? res.endTs - req.startTs : undefined },
      tags: ['imported-pcap'],
      url: url.href ?? `http://${urlHost(host)}${port === 80 ? '' : ':' + port}${target.startsWith('/') ? target : '/' + target}`,
      method: req.method,
      httpVersion: req.version,
      responseStatus: res ? res.status : undefined,
      endedAt: res ? res.endTs : req.endTs,
      error: error || undefined,
    };
    if (req.error?.startsWith('capture gap') || res?.error?.startsWith('capture gap')) flow.tags.push('capture-gap');
    if (flow.requestBody.truncated || flow.responseBody.truncated) flow.tags.push('body-truncated');
    this.ctx.emit(flow, req.index);
  }
}

/** The first Host header's value: headerValue(headers, 'host') for latin1 names, without lower-casing each name. */
function hostOf(headers: Header[]): string | undefined {
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i];
    if (h[0].length === 4 && namedAt(h[0], 0, 'host')) return h[1];
  }
  return undefined;
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
