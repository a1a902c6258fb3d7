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
import { FinishedConnection, TcpConnection, type ConnectionContext, type TrackedConnection } from './tcp-connection';
import { MAX_HELD_OUT_OF_ORDER_BYTES, OutOfOrderBudget } from './tcp-reassembly';
import type { DnsRecord } from '../../../store/dns';
import { UdpDnsReader } from './udp-dns';

export interface CaptureImportOptions {
  /** Bytes kept of each body (default 1 MiB, like the proxy's --body-limit). */
  bodyLimit?: number;
  /** Progress: bytes of the file read so far, and its size. */
  onProgress?(bytesRead: number, totalBytes: number): void;
  /** Out-of-order bytes held across all connections (default MAX_HELD_OUT_OF_ORDER_BYTES, 32 MiB); beyond it the oldest holes are gaps. */
  maxHeldOutOfOrderBytes?: number;
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

/** A 30-bit hash of an IPv4 tuple (direction matters): a small-integer Map key, made without allocating. */
function v4Hash(src: number, sport: number, dst: number, dport: number): number {
  let h = Math.imul(src ^ 0x5bd1e995, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 15) ^ dst, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ ((sport << 16) | dport), 0xc2b2ae35);
  return (h ^ (h >>> 16)) & 0x3fffffff;
}

/** True when (a, ap) sorts before or equal to (b, bp): the tuple is filed under its lower end first. */
function lowerFirst(a: AddressKey, ap: number, b: AddressKey, bp: number): boolean {
  return a < b || (a === b && ap <= bp);
}

/**
 * Open connections by their addresses and ports, one entry per connection for both directions (filed
 * under the lower end first). IPv4 tuples are looked up by a hash of their four numbers (checked
 * against the connection) rather than by a string built per packet; IPv6 tuples, and an IPv4 tuple
 * whose hash is taken by another, by their text. `side` tells which end sent the packet looked up.
 */
class ConnectionTable {
  private readonly v4 = new Map<number, TrackedConnection>();
  private readonly byText = new Map<string, TrackedConnection>();
  /** Side of the last successful get: 0 when the packet came from the connection's first end. */
  side: 0 | 1 = 0;
  /**
   * The entry last found or filed: packets of one connection come in runs (a request's segments, its
   * ACKs, the response), so most lookups end here without hashing. Always an entry of the table.
   */
  private last: TrackedConnection | null = null;

  get(src: AddressKey, sport: number, dst: AddressKey, dport: number): TrackedConnection | undefined {
    const last = this.last;
    if (last !== null && this.sideOf(last, src, sport, dst, dport)) return last;
    const c = this.find(src, sport, dst, dport);
    if (c !== undefined) this.last = c;
    return c;
  }

  private find(src: AddressKey, sport: number, dst: AddressKey, dport: number): TrackedConnection | undefined {
    const low = lowerFirst(src, sport, dst, dport);
    if (typeof src === 'number' && typeof dst === 'number') {
      const c = low ? this.v4.get(v4Hash(src, sport, dst, dport)) : this.v4.get(v4Hash(dst, dport, src, sport));
      if (c !== undefined && this.sideOf(c, src, sport, dst, dport)) return c;
      if (this.byText.size === 0) return undefined;
    }
    const c = this.byText.get(low ? `${src} ${sport} ${dst} ${dport}` : `${dst} ${dport} ${src} ${sport}`);
    return c !== undefined && this.sideOf(c, src, sport, dst, dport) ? c : undefined;
  }

  /** True (and `side` set) when c is the connection of this tuple, either way. */
  private sideOf(c: TrackedConnection, src: AddressKey, sport: number, dst: AddressKey, dport: number): boolean {
    const reverse = c.src === dst && c.sport === dport && c.dst === src && c.dport === sport;
    /* A connection from an address and port to themselves: both ends are the same; the second end wins, as it always did. */
    if (reverse) this.side = 1;
    else if (c.src === src && c.sport === sport && c.dst === dst && c.dport === dport) this.side = 0;
    else return false;
    return true;
  }

  /** Files a connection (under its own tuple) that has no entry yet, or in the place of the entry of its tuple. */
  set(c: TrackedConnection): void {
    this.last = c;
    const { src, sport, dst, dport } = c;
    const low = lowerFirst(src, sport, dst, dport);
    if (typeof src === 'number' && typeof dst === 'number') {
      const h = low ? v4Hash(src, sport, dst, dport) : v4Hash(dst, dport, src, sport);
      const cur = this.v4.get(h);
      if (cur === undefined || this.sameTuple(cur, c)) {
        this.v4.set(h, c);
        return;
      }
    }
    this.byText.set(low ? `${src} ${sport} ${dst} ${dport}` : `${dst} ${dport} ${src} ${sport}`, c);
  }

  /** Removes the connection's entry if it still points at it. */
  delete(c: TrackedConnection): void {
    if (this.last === c) this.last = null;
    const { src, sport, dst, dport } = c;
    const low = lowerFirst(src, sport, dst, dport);
    if (typeof src === 'number' && typeof dst === 'number') {
      const h = low ? v4Hash(src, sport, dst, dport) : v4Hash(dst, dport, src, sport);
      const cur = this.v4.get(h);
      if (cur !== undefined && this.sameTuple(cur, c)) {
        if (cur === c) this.v4.delete(h);
        return;
      }
      if (this.byText.size === 0) return;
    }
    const key = low ? `${src} ${sport} ${dst} ${dport}` : `${dst} ${dport} ${src} ${sport}`;
    if (this.byText.get(key) === c) this.byText.delete(key);
  }

  /** Same two ends (in either order). */
  private sameTuple(a: TrackedConnection, b: TrackedConnection): boolean {
    return (a.src === b.src && a.sport === b.sport && a.dst === b.dst && a.dport === b.dport) || (a.src === b.dst && a.sport === b.dport && a.dst === b.src && a.dport === b.sport);
  }
}

/** Open connections, oldest first: a list threaded through the connections themselves (no Map, no node objects). */
class OpenList {
  head: TrackedConnection | null = null;
  private tail: TrackedConnection | null = null;
  size = 0;

  add(c: TrackedConnection): void {
    c.openPrev = this.tail;
    c.openNext = null;
    if (this.tail) this.tail.openNext = c;
    else this.head = c;
    this.tail = c;
    c.isOpen = true;
    this.size++;
  }

  /** Puts `next` in the place of `c` (an open connection). */
  replace(c: TrackedConnection, next: TrackedConnection): void {
    next.openPrev = c.openPrev;
    next.openNext = c.openNext;
    if (c.openPrev) c.openPrev.openNext = next;
    else this.head = next;
    if (c.openNext) c.openNext.openPrev = next;
    else this.tail = next;
    next.isOpen = true;
    c.openPrev = c.openNext = null;
    c.isOpen = false;
  }

  delete(c: TrackedConnection): void {
    if (!c.isOpen) return;
    if (c.openPrev) c.openPrev.openNext = c.openNext;
    else this.head = c.openNext;
    if (c.openNext) c.openNext.openPrev = c.openPrev;
    else this.tail = c.openPrev;
    c.openPrev = c.openNext = null;
    c.isOpen = false;
    this.size--;
  }
}

/**
 * Printable IPv4 addresses, cached: a capture talks to few servers (and is from few phones). A
 * direct-mapped table of numbers (a Map hashed the addresses above 2^31, which are not small integers, slowly).
 */
class AddressNames {
  private static readonly SLOTS = 4096;
  private readonly keys = new Float64Array(AddressNames.SLOTS).fill(-1);
  private readonly texts: string[] = new Array<string>(AddressNames.SLOTS).fill('');
  text(key: AddressKey, v6: boolean): string {
    if (typeof key !== 'number') return addressText(key, v6);
    const slot = (key ^ (key >>> 12)) & (AddressNames.SLOTS - 1);
    if (this.keys[slot] === key) return this.texts[slot];
    const t = addressText(key, v6);
    this.keys[slot] = key;
    this.texts[slot] = t;
    return t;
  }
}

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
  const open = new OpenList();
  const names = new AddressNames();
  const unsupported = new Set<number>();
  let requestIndex = 0;
  /* Numbers that change per packet live in an object (a closure's variable would box every new value). */
  const clock = { lastTs: 0 };
  let gapBytes = 0;
  const outOfOrder = new OutOfOrderBudget(opts.maxHeldOutOfOrderBytes ?? MAX_HELD_OUT_OF_ORDER_BYTES);
  const ctx: ConnectionContext = {
    outOfOrder,
    bodyLimit: opts.bodyLimit ?? DEFAULT_BODY_LIMIT,
    addressText: (key, v6) => names.text(key, v6),
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
  const lingering: TrackedConnection[] = [];
  let lingerHead = 0;
  let lastIdleSweep = -Infinity;
  const linger = (c: TrackedConnection) => {
    if (c.lingerTs >= 0) return;
    c.lingerTs = c.lastTs;
    lingering.push(c);
  };
  const finish = (tracked: TrackedConnection, ts: number) => {
    if (tracked.closed) return;
    /* Only a TcpConnection is ever open (a FinishedConnection is born closed). */
    const c = tracked as TcpConnection;
    c.close(ts);
    gapBytes += c.gapBytes;
    linger(c);
  };
  /**
   * A connection recorded after both FINs that stays to absorb late retransmissions: its entry, its
   * place among the open ones and, when it was queued last (the usual case: queued and finished by
   * the same packet), its place in the linger queue go to a FinishedConnection. One queued earlier
   * (it waited for out-of-order bytes) stays whole: finding it in the queue would cost a search.
   */
  const retire = (c: TcpConnection) => {
    if (!c.isOpen || lingering.length === lingerHead || lingering[lingering.length - 1] !== c) return;
    const f = new FinishedConnection(c);
    conns.set(f);
    open.replace(c, f);
    lingering[lingering.length - 1] = f;
  };
  const close = (c: TrackedConnection, ts: number) => {
    /* Tested here, where both classes come, so that finish meets only TcpConnections (a class it met late threw its optimized code away). */
    if (!c.closed) finish(c, ts);
    if (c.isOpen) {
      conns.delete(c);
      open.delete(c);
    }
  };
  const sweep = (now: number) => {
    /* Finished connections leave after lingering, oldest first; one that saw packets since it was queued goes back in the queue. */
    while (lingerHead < lingering.length) {
      const c = lingering[lingerHead];
      if (!c.isOpen) {
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
      for (let c = open.head; c !== null; ) {
        const next = c.openNext;
        const finished = (c.fin0 && c.fin1) || c.closed;
        if ((finished && now - c.lastTs > CONNECTION_LINGER_MS) || now - c.lastTs > CONNECTION_IDLE_MS) close(c, c.lastTs);
        c = next;
      }
    }
    net.fragments.expire(now);
  };

  const tcp = (ip: IpDatagram, ts: number) => {
    const b = ip.buf;
    const o = ip.start;
    const len = ip.end - o;
    if (len < 20) return;
    const sport = (b[o] << 8) | b[o + 1];
    const dport = (b[o + 2] << 8) | b[o + 3];
    const seq = ((b[o + 4] << 24) | (b[o + 5] << 16) | (b[o + 6] << 8) | b[o + 7]) >>> 0;
    const dataOff = (b[o + 12] >> 4) * 4;
    const flags = b[o + 13];
    if (dataOff < 20 || dataOff > len) return;
    const tracked = conns.get(ip.src, sport, ip.dst, dport);
    let side: 0 | 1 = conns.side;
    let conn: TcpConnection | undefined;
    if (tracked !== undefined && (flags & (SYN | ACK)) === SYN && (tracked.fin0 || tracked.fin1)) {
      /* A new connection reusing the same addresses and ports. */
      close(tracked, ts);
    } else if (tracked !== undefined) {
      tracked.lastTs = ts;
      /*
       * Already recorded (both FINs, lingering): a late retransmission only keeps the entry a while
       * longer. Its FINs are both set, it is in the linger queue, and data for it would be dropped.
       */
      if (tracked.closed) return;
      /* Open, so a TcpConnection (a FinishedConnection is born closed). */
      conn = tracked as TcpConnection;
    }
    if (conn === undefined) {
      if (open.size >= MAX_OPEN_CONNECTIONS) close(open.head!, ts);
      conn = new TcpConnection(ip.src, sport, ip.dst, dport, ip.v6, ts, ctx);
      open.add(conn);
      conns.set(conn);
      side = 0;
    }
    const dir = conn.dirs[side];
    let dataSeq = seq;
    if (flags & SYN) {
      if (!conn.knowsClient) conn.setClient(flags & ACK ? ((1 - side) as 0 | 1) : side);
      dir.syn(seq);
      dataSeq = (seq + 1) >>> 0;
    }
    /* The acknowledgement first: it speaks of data sent before this packet (and may reveal a gap the reply follows). */
    if (flags & ACK) conn.dirs[1 - side].acked(((b[o + 8] << 24) | (b[o + 9] << 16) | (b[o + 10] << 8) | b[o + 11]) >>> 0);
    if (len > dataOff) dir.segment(dataSeq, b, o + dataOff, ip.end, ts);
    if (flags & (FIN | RST)) {
      if (conn.finFrom(side, (flags & RST) !== 0)) {
        linger(conn);
        /* Both sides are done and nothing waits: record its flows now; the entry lingers to absorb late retransmissions. */
        if (conn.dirs[0].settled && conn.dirs[1].settled) {
          finish(conn, ts);
          retire(conn);
        }
      }
    }
  };

  const onPacket = (p: Packet) => {
    result.packets++;
    const ts = p.ts || clock.lastTs;
    if (ts > clock.lastTs) clock.lastTs = ts;
    const ip = net.decodeAt(p.buf, p.start, p.end, p.linkType, ts);
    if (!ip) {
      if (!SUPPORTED_LINK_TYPES.includes(p.linkType)) unsupported.add(p.linkType);
      return;
    }
    if (ip.proto === 6) tcp(ip, ts);
    else if (ip.proto === 17) dns.datagram(ip, ts);
    if ((result.packets & 4095) === 0) sweep(clock.lastTs);
  };

  try {
    result.format = readPackets(fd, onPacket, opts.onProgress ? (off) => opts.onProgress!(off, size) : undefined);
  } catch (err) {
    if (!(err instanceof CaptureError)) throw err;
    result.error = { offset: err.offset, message: err.message };
  }
  const left: TrackedConnection[] = [];
  for (let c = open.head; c !== null; c = c.openNext) left.push(c);
  for (const c of left) close(c, Math.max(c.lastTs, clock.lastTs));
  dns.flush();
  opts.onProgress?.(size, size);
  if (unsupported.size) result.notes.push(`packets of unsupported link type ${[...unsupported].join(', ')} were skipped`);
  if (net.fragments.dropped) result.notes.push(`${net.fragments.dropped} fragmented IP datagrams could not be reassembled`);
  if (gapBytes) result.notes.push(`${gapBytes} bytes of TCP data were missing from the capture (gaps; the requests around them are marked)`);
  if (outOfOrder.overflows) {
    const limit = outOfOrder.limit % (1024 * 1024) === 0 ? `${outOfOrder.limit / (1024 * 1024)} MiB` : `${outOfOrder.limit} bytes`;
    result.notes.push(`out-of-order TCP data waiting for missing segments reached ${limit} across connections (${outOfOrder.overflows} times): the oldest holes were recorded as gaps`);
  }
  return result;
}
