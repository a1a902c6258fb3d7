/**
 * The TCP side of VPN mode: the IP layer hands it every TCP segment a phone sends; it keeps one
 * TcpConnection per (phone, 4-tuple), starts one for each new SYN to any destination, answers
 * strays with RST, and enforces per-phone limits (connections, receive bytes held). Each new
 * connection is offered to `onConnection` while still unanswered: the owner dials the real
 * destination and then accepts (SYN-ACK, and a TcpStream to intercept) or refuses (RST), so the
 * phone sees a closed port as closed. Counters per phone: connections, bytes, retransmissions, drops.
 */
import { realClock, TcpClock } from './clock';
import { ByteBudget, TcpConnection, TcpConnectionStats } from './connection';
import { TcpStream } from './stream';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, TcpSegment, TcpSegmentHandler, TunnelPeer } from '../types';

/** A phone's new connection, not yet answered. */
export interface IncomingTcpConnection {
  peer: TunnelPeer;
  ipVersion: 4 | 6;
  /** The phone's address and port. */
  source: { ip: string; port: number };
  /** Where the phone is going. */
  destination: { ip: string; port: number };
  /** Answers the SYN; the stream carries the connection from now on. */
  accept(): TcpStream;
  /** Answers the SYN with RST (the destination refused or could not be reached). */
  refuse(): void;
}

export interface PeerTcpStats {
  /** Connections the phone opened that we accepted. */
  connections: number;
  /** Open now (including TIME_WAIT and not-yet-answered ones). */
  open: number;
  /** SYNs answered with RST because the destination refused or was unreachable. */
  refused: number;
  bytesFromPhone: number;
  bytesToPhone: number;
  retransmissions: number;
  /** Segments dropped or reset: over a limit, for no connection, out of window, reassembly full. */
  drops: number;
  /** Bytes received from the phone and not yet read by the interception core (the shared budget in use). */
  heldBytes: number;
}

export interface TcpTunnelOptions {
  /** Tunnel MTU (default 1420, WireGuard's): MSS is MTU - 40 (IPv4) or - 60 (IPv6). */
  mtu?: number;
  /**
   * Open connections per phone (default 1024); further SYNs get RST. Connections in TIME_WAIT (no
   * buffers) do not count, but at 4x the limit the oldest of them makes room for a new one.
   */
  maxConnectionsPerPeer?: number;
  /** Bytes a phone's connections together hold for slow readers (default 32 MiB): windows shrink beyond. */
  receiveBudgetPerPeer?: number;
  /** Per-connection receive and send buffers (default 256 KiB each). */
  receiveBuffer?: number;
  sendBuffer?: number;
  /** TIME_WAIT length (default 30 s). */
  timeWaitMs?: number;
  /** A connection not accepted or refused within this long is refused (default 30 s). */
  acceptTimeoutMs?: number;
  clock?: TcpClock;
  log?: (line: string) => void;
  onConnection(conn: IncomingTcpConnection): void;
}

interface PeerState {
  peer: TunnelPeer;
  stats: PeerTcpStats;
  budget: ByteBudget;
  conns: Set<Entry>;
}

interface Entry {
  conn: TcpConnection;
  send: (s: TcpSegment) => void;
  stream?: TcpStream;
  peer: PeerState;
  /** Counters already added to the peer's totals. */
  counted: Pick<TcpConnectionStats, 'bytesIn' | 'bytesOut' | 'retransmissions' | 'dropped'>;
}

export class TcpTunnel implements TcpSegmentHandler {
  private readonly conns = new Map<string, Entry>();
  private readonly peers = new Map<string, PeerState>();
  private readonly clock: TcpClock;
  private readonly mtu: number;
  private limitLogs = 0;
  private closed = false;
  /** phonehome's own services in the tunnel (DNS over TCP), offered each connection first. */
  private readonly localServices: ((conn: IncomingTcpConnection) => boolean)[] = [];

  constructor(private readonly opts: TcpTunnelOptions) {
    this.clock = opts.clock ?? realClock;
    this.mtu = opts.mtu ?? 1420;
  }

  addLocalService(serve: (conn: IncomingTcpConnection) => boolean): void {
    this.localServices.push(serve);
  }

  onSegment(peer: TunnelPeer, seg: TcpSegment, send: (segment: TcpSegment) => void): void {
    const key = `${peer.publicKey} ${seg.srcIp} ${seg.srcPort} ${seg.dstIp} ${seg.dstPort}`;
    const existing = this.conns.get(key);
    if (existing && existing.conn.state === 'TIME_WAIT' && (seg.flags & (TCP_SYN | TCP_ACK | TCP_RST)) === TCP_SYN) {
      // The phone reuses the port of a connection we hold in TIME_WAIT: let the new one start.
      existing.conn.abort();
    } else if (existing) {
      existing.send = send;
      existing.conn.onSegment(seg);
      this.settle(existing);
      return;
    }
    const ps = this.peerState(peer);
    const isSyn = (seg.flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) === TCP_SYN;
    if (!isSyn || this.closed) {
      ps.stats.drops++;
      if (!(seg.flags & TCP_RST)) send(resetFor(seg));
      return;
    }
    const limit = this.opts.maxConnectionsPerPeer ?? 1024;
    let active = 0;
    let oldestTimeWait: Entry | undefined;
    for (const e of ps.conns) {
      if (e.conn.state === 'TIME_WAIT') oldestTimeWait ??= e;
      else active++;
    }
    if (active >= limit) {
      ps.stats.drops++;
      if (this.limitLogs++ % 1000 === 0) this.opts.log?.(`phone ${peer.name} (${peer.ipv4}) is at its TCP connection limit (${active}); resetting new connections`);
      send(resetFor(seg));
      return;
    }
    if (ps.conns.size >= limit * 4 && oldestTimeWait) oldestTimeWait.conn.abort();
    this.open(key, peer, ps, seg, send);
  }

  private open(key: string, peer: TunnelPeer, ps: PeerState, syn: TcpSegment, send: (s: TcpSegment) => void): void {
    const entry = { send, peer: ps, counted: { bytesIn: 0, bytesOut: 0, retransmissions: 0, dropped: 0 } } as Entry;
    let acceptTimer: ReturnType<TcpClock['setTimeout']> | undefined;
    entry.conn = TcpConnection.fromSyn(
      syn,
      {
        clock: this.clock,
        mss: this.mtu - (syn.ipVersion === 6 ? 60 : 40),
        receiveBuffer: this.opts.receiveBuffer,
        sendBuffer: this.opts.sendBuffer,
        timeWaitMs: this.opts.timeWaitMs,
        budget: ps.budget,
      },
      {
        output: (s) => entry.send(s),
        readable: () => entry.stream?.onReadable(),
        drain: () => entry.stream?.onDrain(),
        closed: (reason) => {
          if (acceptTimer) this.clock.clearTimeout(acceptTimer);
          this.settle(entry);
          this.conns.delete(key);
          ps.conns.delete(entry);
          ps.stats.open--;
          entry.stream?.onClosed(reason);
        },
      },
    );
    this.conns.set(key, entry);
    ps.conns.add(entry);
    ps.stats.open++;
    let answered = false;
    acceptTimer = this.clock.setTimeout(() => {
      acceptTimer = undefined;
      if (!answered) incoming.refuse();
    }, this.opts.acceptTimeoutMs ?? 30_000);
    const incoming: IncomingTcpConnection = {
      peer,
      ipVersion: syn.ipVersion,
      source: { ip: syn.srcIp, port: syn.srcPort },
      destination: { ip: syn.dstIp, port: syn.dstPort },
      accept: () => {
        if (answered || entry.conn.state !== 'SYN_PENDING') {
          // Closed (the phone gave up, or the accept timeout) before the dial finished.
          const s = new TcpStream(entry.conn);
          s.destroy();
          return s;
        }
        answered = true;
        if (acceptTimer) this.clock.clearTimeout(acceptTimer);
        acceptTimer = undefined;
        entry.stream = new TcpStream(entry.conn);
        ps.stats.connections++;
        entry.conn.accept();
        return entry.stream;
      },
      refuse: () => {
        if (answered) return;
        answered = true;
        ps.stats.refused++;
        entry.conn.refuse();
      },
    };
    try {
      if (!this.localServices.some((serve) => serve(incoming))) this.opts.onConnection(incoming);
    } catch (err) {
      this.opts.log?.(`TCP connection handler failed: ${(err as Error).message}`);
      incoming.refuse();
    }
  }

  /** Per phone (by tunnel IPv4, its device key): connections, bytes, retransmissions, drops. */
  stats(): Record<string, PeerTcpStats & { name: string }> {
    for (const e of this.conns.values()) this.settle(e);
    const out: Record<string, PeerTcpStats & { name: string }> = {};
    for (const p of this.peers.values()) out[p.peer.ipv4] = { name: p.peer.name, ...p.stats, heldBytes: p.budget.used };
    return out;
  }

  /** Resets every connection (phonehome is stopping). */
  close(): void {
    this.closed = true;
    for (const e of [...this.conns.values()]) e.conn.abort();
  }

  private peerState(peer: TunnelPeer): PeerState {
    let ps = this.peers.get(peer.publicKey);
    if (!ps) {
      ps = {
        peer,
        stats: { connections: 0, open: 0, refused: 0, bytesFromPhone: 0, bytesToPhone: 0, retransmissions: 0, drops: 0, heldBytes: 0 },
        budget: { used: 0, limit: this.opts.receiveBudgetPerPeer ?? 32 * 1024 * 1024 },
        conns: new Set(),
      };
      this.peers.set(peer.publicKey, ps);
    }
    return ps;
  }

  /** Moves a connection's counter growth into its phone's totals. */
  private settle(e: Entry): void {
    const s = e.conn.stats;
    const p = e.peer.stats;
    p.bytesFromPhone += s.bytesIn - e.counted.bytesIn;
    p.bytesToPhone += s.bytesOut - e.counted.bytesOut;
    p.retransmissions += s.retransmissions - e.counted.retransmissions;
    p.drops += s.dropped - e.counted.dropped;
    e.counted = { bytesIn: s.bytesIn, bytesOut: s.bytesOut, retransmissions: s.retransmissions, dropped: s.dropped };
  }
}

/** The RST that answers a segment for no connection (RFC 793, "reset generation"). */
export function resetFor(seg: TcpSegment): TcpSegment {
  const len = seg.payload.length + (seg.flags & TCP_SYN ? 1 : 0) + (seg.flags & TCP_FIN ? 1 : 0);
  const base = { ipVersion: seg.ipVersion, srcIp: seg.dstIp, dstIp: seg.srcIp, srcPort: seg.dstPort, dstPort: seg.srcPort, window: 0, options: {}, payload: Buffer.alloc(0) };
  if (seg.flags & TCP_ACK) return { ...base, seq: seg.ack >>> 0, ack: 0, flags: TCP_RST };
  return { ...base, seq: 0, ack: (seg.seq + len) >>> 0, flags: TCP_RST | TCP_ACK };
}
