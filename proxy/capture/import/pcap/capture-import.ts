/**
 * Turns a pcap/pcapng file into Flows, streaming: packets → IP → TCP connections (HTTP requests,
 * TLS ClientHellos, raw TCP) and UDP DNS, each flow handed to the caller as soon as it is complete
 * so nothing but open connections stays in memory. `phonehome analyze` and `phonehome import`
 * both run on this. A corrupt tail ends the import with an error naming its offset; every flow
 * before it is still delivered.
 */
import * as fs from 'node:fs';
import type { Flow } from '../../../flow';
import { CaptureError, readPackets, type CaptureFormat, type Packet } from './file-reader';
import { addressText, NetworkDecoder, SUPPORTED_LINK_TYPES, type AddressKey, type IpDatagram } from './network';
import { TcpConnection, type ConnectionContext } from './tcp-connection';
import type { DnsRecord } from '../../../store/dns';
import { UdpDnsReader } from './udp-dns';

export interface CaptureImportOptions {
  /** Bytes kept of each body (default 1 MiB, like the proxy's --body-limit). */
  bodyLimit?: number;
  /** Progress: bytes of the file read so far, and its size. */
  onProgress?(bytesRead: number, totalBytes: number): void;
}

export interface CapturedFlow {
  flow: Flow;
  /** 0-based index of the HTTP request in capture order (HTTP flows only). */
  requestIndex?: number;
  /** For kind 'dns': the query and its answers, for the dns table. */
  dns?: DnsRecord;
}

export interface CaptureImportResult {
  format: CaptureFormat | null;
  fileBytes: number;
  packets: number;
  httpRequests: number;
  tlsConnections: number;
  rawConnections: number;
  dnsQueries: number;
  /** Set when the file is corrupt or truncated: everything before `offset` was used. */
  error?: { offset: number; message: string };
  /** Things the user should know (unsupported link types, fragments dropped, gaps). */
  notes: string[];
}

export const DEFAULT_BODY_LIMIT = 1024 * 1024;
/** A connection with no packet for this long (capture time) is considered over. */
export const CONNECTION_IDLE_MS = 10 * 60 * 1000;
/** After FIN or RST in both directions, late retransmissions are still accepted this long. */
export const CONNECTION_LINGER_MS = 5_000;
/** Open connections tracked at once; beyond it the least recently started one is closed. */
export const MAX_OPEN_CONNECTIONS = 20_000;
/** How often (capture time) every open connection is checked for idleness; finished ones are checked every sweep. */
const IDLE_SWEEP_MS = 10_000;

const SYN = 0x02;
const FIN = 0x01;
const RST = 0x04;
const ACK = 0x10;

interface Entry {
  conn: TcpConnection;
  side: 0 | 1;
  /** The IPv4 tuple it is filed under (to tell hash collisions apart); unused for IPv6. */
  src: number;
  sport: number;
  dst: number;
  dport: number;
}

/** A 30-bit hash of an IPv4 tuple (direction matters): a small-integer Map key, made without allocating. */
function v4Hash(src: number, sport: number, dst: number, dport: number): number {
  let h = Math.imul(src ^ 0x5bd1e995, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 15) ^ dst, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ ((sport << 16) | dport), 0xc2b2ae35);
  return (h ^ (h >>> 16)) & 0x3fffffff;
}

/**
 * Connections by (source, port, destination, port), both directions. IPv4 tuples are looked up by a
 * hash of their four numbers (checked against the entry) rather than by a string built per packet;
 * IPv6 tuples, and an IPv4 tuple whose hash is taken by another, by their text.
 */
class ConnectionTable {
  private readonly v4 = new Map<number, Entry>();
  private readonly byText = new Map<string, Entry>();

  get(src: AddressKey, sport: number, dst: AddressKey, dport: number): Entry | undefined {
    if (typeof src === 'number' && typeof dst === 'number') {
      const e = this.v4.get(v4Hash(src, sport, dst, dport));
      if (e !== undefined && e.src === src && e.sport === sport && e.dst === dst && e.dport === dport) return e;
      if (this.byText.size === 0) return undefined;
    }
    return this.byText.get(`${src} ${sport} ${dst} ${dport}`);
  }

  /** Files a tuple that has no entry yet. */
  set(src: AddressKey, sport: number, dst: AddressKey, dport: number, conn: TcpConnection, side: 0 | 1): Entry {
    if (typeof src === 'number' && typeof dst === 'number') {
      const e: Entry = { conn, side, src, sport, dst, dport };
      const h = v4Hash(src, sport, dst, dport);
      const cur = this.v4.get(h);
      if (cur === undefined || (cur.src === src && cur.sport === sport && cur.dst === dst && cur.dport === dport)) {
        this.v4.set(h, e);
        return e;
      }
      this.byText.set(`${src} ${sport} ${dst} ${dport}`, e);
      return e;
    }
    const e: Entry = { conn, side, src: 0, sport, dst: 0, dport };
    this.byText.set(`${src} ${sport} ${dst} ${dport}`, e);
    return e;
  }

  /** Removes the tuple if it still points at this connection. */
  delete(src: AddressKey, sport: number, dst: AddressKey, dport: number, conn: TcpConnection): void {
    if (typeof src === 'number' && typeof dst === 'number') {
      const h = v4Hash(src, sport, dst, dport);
      const cur = this.v4.get(h);
      if (cur !== undefined && cur.src === src && cur.sport === sport && cur.dst === dst && cur.dport === dport) {
        if (cur.conn === conn) this.v4.delete(h);
        return;
      }
      if (this.byText.size === 0) return;
    }
    const key = `${src} ${sport} ${dst} ${dport}`;
    if (this.byText.get(key)?.conn === conn) this.byText.delete(key);
  }
}

type Tuple = [src: AddressKey, sport: number, dst: AddressKey, dport: number];

export function importCapture(file: string, onFlow: (f: CapturedFlow) => void, opts: CaptureImportOptions = {}): CaptureImportResult {
  const fd = fs.openSync(file, 'r');
  try {
    return importFd(fd, fs.fstatSync(fd).size, onFlow, opts);
  } finally {
    fs.closeSync(fd);
  }
}

function importFd(fd: number, size: number, onFlow: (f: CapturedFlow) => void, opts: CaptureImportOptions): CaptureImportResult {
  const result: CaptureImportResult = { format: null, fileBytes: size, packets: 0, httpRequests: 0, tlsConnections: 0, rawConnections: 0, dnsQueries: 0, notes: [] };
  const net = new NetworkDecoder();
  const conns = new ConnectionTable();
  /** Open connections (oldest first) and the tuple they were first seen with. */
  const open = new Map<TcpConnection, Tuple>();
  const unsupported = new Set<number>();
  let requestIndex = 0;
  let lastTs = 0;
  let gapBytes = 0;
  const ctx: ConnectionContext = {
    bodyLimit: opts.bodyLimit ?? DEFAULT_BODY_LIMIT,
    nextRequestIndex: () => requestIndex++,
    emit(flow, index) {
      if (flow.kind === 'http') result.httpRequests++;
      else if (flow.scheme === 'tls') result.tlsConnections++;
      else result.rawConnections++;
      onFlow({ flow, requestIndex: index });
    },
  };
  const dns = new UdpDnsReader((captured) => {
    result.dnsQueries++;
    onFlow(captured);
  });

  /** Finished connections (both FINs, or closed) in the order they finished: the sweep closes them after the linger time. */
  const lingering: TcpConnection[] = [];
  let lingerHead = 0;
  let lastIdleSweep = -Infinity;
  const linger = (c: TcpConnection) => {
    if (c.lingerTs >= 0) return;
    c.lingerTs = c.lastTs;
    lingering.push(c);
  };
  const finish = (c: TcpConnection, ts: number) => {
    if (c.closed) return;
    c.close(ts);
    gapBytes += c.dirs[0].gapBytes + c.dirs[1].gapBytes;
    linger(c);
  };
  const close = (c: TcpConnection, ts: number) => {
    finish(c, ts);
    const t = open.get(c);
    if (t) {
      conns.delete(t[0], t[1], t[2], t[3], c);
      conns.delete(t[2], t[3], t[0], t[1], c);
    }
    open.delete(c);
  };
  const sweep = (now: number) => {
    /* Finished connections leave after lingering, oldest first; one that saw packets since it was queued goes back in the queue. */
    while (lingerHead < lingering.length) {
      const c = lingering[lingerHead];
      if (!open.has(c)) {
        lingerHead++;
        continue;
      }
      if (now - c.lastTs > CONNECTION_LINGER_MS) {
        lingerHead++;
        close(c, c.lastTs);
        continue;
      }
      if (c.lastTs <= c.lingerTs) break;
      lingerHead++;
      c.lingerTs = c.lastTs;
      lingering.push(c);
    }
    if (lingerHead > 4096 && lingerHead * 2 > lingering.length) {
      lingering.splice(0, lingerHead);
      lingerHead = 0;
    }
    /* Idle ones: a walk over every open connection, at most once per IDLE_SWEEP_MS of capture time. */
    if (now - lastIdleSweep >= IDLE_SWEEP_MS) {
      lastIdleSweep = now;
      for (const c of open.keys()) {
        const finished = (c.fin[0] && c.fin[1]) || c.closed;
        if ((finished && now - c.lastTs > CONNECTION_LINGER_MS) || now - c.lastTs > CONNECTION_IDLE_MS) close(c, c.lastTs);
      }
    }
    net.fragments.expire(now);
  };

  const tcp = (ip: IpDatagram, ts: number) => {
    const t = ip.payload;
    if (t.length < 20) return;
    const sport = t.readUInt16BE(0);
    const dport = t.readUInt16BE(2);
    const seq = t.readUInt32BE(4);
    const dataOff = (t[12] >> 4) * 4;
    const flags = t[13];
    if (dataOff < 20 || dataOff > t.length) return;
    let e = conns.get(ip.src, sport, ip.dst, dport);
    const synOnly = (flags & (SYN | ACK)) === SYN;
    if (e && synOnly && (e.conn.fin[0] || e.conn.fin[1]) ) {
      /* A new connection reusing the same addresses and ports. */
      close(e.conn, ts);
      e = undefined;
    }
    if (!e) {
      if (open.size >= MAX_OPEN_CONNECTIONS) close(open.keys().next().value as TcpConnection, ts);
      const a = { ip: addressText(ip.src, ip.v6), port: sport };
      const b = { ip: addressText(ip.dst, ip.v6), port: dport };
      const conn = new TcpConnection(a, b, ts, ctx);
      open.set(conn, [ip.src, sport, ip.dst, dport]);
      e = conns.set(ip.src, sport, ip.dst, dport, conn, 0);
      conns.set(ip.dst, dport, ip.src, sport, conn, 1);
    }
    const { conn, side } = e;
    conn.lastTs = ts;
    const dir = conn.dirs[side];
    let dataSeq = seq;
    if (flags & SYN) {
      if (!conn.knowsClient) conn.setClient(flags & ACK ? ((1 - side) as 0 | 1) : side);
      dir.syn(seq);
      dataSeq = (seq + 1) >>> 0;
    }
    /* The acknowledgement first: it speaks of data sent before this packet (and may reveal a gap the reply follows). */
    if (flags & ACK) conn.dirs[1 - side].acked(t.readUInt32BE(8));
    if (t.length > dataOff) dir.segment(dataSeq, t.subarray(dataOff), ts);
    if (flags & (FIN | RST)) {
      conn.fin[side] = true;
      if (flags & RST) conn.fin[1 - side] = true;
      if (conn.fin[0] && conn.fin[1]) linger(conn);
      /* Both sides are done and nothing waits: record its flows now; the entry lingers to absorb late retransmissions. */
      if (conn.fin[0] && conn.fin[1] && conn.dirs[0].settled && conn.dirs[1].settled) finish(conn, ts);
    }
  };

  const onPacket = (p: Packet) => {
    result.packets++;
    const ts = p.ts || lastTs;
    if (ts > lastTs) lastTs = ts;
    const ip = net.decodeAt(p.buf, p.start, p.end, p.linkType, ts);
    if (!ip) {
      if (!SUPPORTED_LINK_TYPES.includes(p.linkType)) unsupported.add(p.linkType);
      return;
    }
    if (ip.proto === 6) tcp(ip, ts);
    else if (ip.proto === 17) dns.datagram(ip, ts);
    if ((result.packets & 4095) === 0) sweep(lastTs);
  };

  try {
    result.format = readPackets(fd, onPacket, opts.onProgress ? (off) => opts.onProgress!(off, size) : undefined);
  } catch (err) {
    if (!(err instanceof CaptureError)) throw err;
    result.error = { offset: err.offset, message: err.message };
  }
  for (const c of [...open.keys()]) close(c, Math.max(c.lastTs, lastTs));
  dns.flush();
  opts.onProgress?.(size, size);
  if (unsupported.size) result.notes.push(`packets of unsupported link type ${[...unsupported].join(', ')} were skipped`);
  if (net.fragments.dropped) result.notes.push(`${net.fragments.dropped} fragmented IP datagrams could not be reassembled`);
  if (gapBytes) result.notes.push(`${gapBytes} bytes of TCP data were missing from the capture (gaps; the requests around them are marked)`);
  return result;
}
