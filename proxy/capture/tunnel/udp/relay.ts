/**
 * Relays a phone's UDP (other than DNS and QUIC) to the internet: one connected dgram socket per
 * (phone, source port, destination), replies sent back from the destination's address, sessions
 * closed after `idleMs` without traffic. Each session is recorded when it ends as a flow of kind
 * `udp` with the first bytes each way, so a UDP beacon carrying an identifier is analysed too.
 */
import { createSocket, type Socket } from 'node:dgram';
import { isIPv4 } from 'node:net';
import type { Flow } from '../../../flow';
import { BodyTap } from '../../recording';
import type { FlowSink } from '../../dns/record';
import type { TunnelPeer } from '../types';

export interface UdpRelayOptions {
  idleMs: number;
  /** Sessions at once (each holds a socket); beyond it new sessions are refused. */
  maxSessions: number;
  /** Bytes of each direction kept for the flow record. */
  bodyLimit: number;
  recorder: FlowSink;
  /** Sends a reply datagram to the phone (the stack builds the packet). */
  reply: (s: UdpSession, payload: Buffer) => void;
  /** The destination refused (ICMP port unreachable came back): tell the phone. */
  refused: (s: UdpSession) => void;
  log: (line: string) => void;
}

export interface UdpSession {
  key: string;
  peer: TunnelPeer;
  version: 4 | 6;
  /** The phone's address and port. */
  srcIp: string;
  srcPort: number;
  dstIp: string;
  dstPort: number;
  startedAt: number;
  lastActive: number;
  sent: BodyTap;
  received: BodyTap;
  datagramsOut: number;
  datagramsIn: number;
  error?: string;
  socket: Socket;
  ready: boolean;
  queue: Buffer[];
}

export class UdpRelay {
  private readonly sessions = new Map<string, UdpSession>();
  private readonly sweeper: NodeJS.Timeout;
  opened = 0;
  refusedForLimit = 0;

  constructor(private readonly opts: UdpRelayOptions) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(20, Math.min(5000, Math.floor(opts.idleMs / 4))));
    this.sweeper.unref();
  }

  get open(): number {
    return this.sessions.size;
  }

  /** Forwards one datagram; false when the session limit refused it. */
  send(peer: TunnelPeer, version: 4 | 6, srcIp: string, srcPort: number, dstIp: string, dstPort: number, payload: Buffer): boolean {
    const key = `${peer.publicKey}|${version}|${srcPort}|${dstIp}|${dstPort}`;
    let s = this.sessions.get(key);
    if (!s) {
      if (this.sessions.size >= this.opts.maxSessions) {
        this.refusedForLimit++;
        return false;
      }
      s = this.openSession(key, peer, version, srcIp, srcPort, dstIp, dstPort);
    }
    s.lastActive = Date.now();
    s.datagramsOut++;
    s.sent.add(payload);
    // Own copy: the send completes asynchronously and the caller's packet buffer may be reused.
    const own = Buffer.from(payload);
    if (s.ready) this.write(s, own);
    else s.queue.push(own);
    return true;
  }

  private openSession(key: string, peer: TunnelPeer, version: 4 | 6, srcIp: string, srcPort: number, dstIp: string, dstPort: number): UdpSession {
    const socket = createSocket(isIPv4(dstIp) ? 'udp4' : 'udp6');
    const now = Date.now();
    const s: UdpSession = {
      key, peer, version, srcIp, srcPort, dstIp, dstPort, startedAt: now, lastActive: now,
      sent: new BodyTap(this.opts.bodyLimit), received: new BodyTap(this.opts.bodyLimit), datagramsOut: 0, datagramsIn: 0,
      socket, ready: false, queue: [],
    };
    this.sessions.set(key, s);
    this.opened++;
    socket.on('message', (msg) => {
      s.lastActive = Date.now();
      s.datagramsIn++;
      s.received.add(msg);
      this.opts.reply(s, msg);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') {
        s.error = 'destination port unreachable';
        this.opts.refused(s);
        return;
      }
      s.error = err.message;
      this.end(s);
    });
    socket.connect(dstPort, dstIp, () => {
      s.ready = true;
      for (const q of s.queue.splice(0)) this.write(s, q);
    });
    return s;
  }

  private write(s: UdpSession, payload: Buffer): void {
    s.socket.send(payload, (err) => {
      if (err && !s.error) s.error = err.message;
    });
  }

  private sweep(): void {
    const cutoff = Date.now() - this.opts.idleMs;
    for (const s of this.sessions.values()) if (s.lastActive <= cutoff) this.end(s);
  }

  private end(s: UdpSession): void {
    if (!this.sessions.delete(s.key)) return;
    try {
      s.socket.close();
    } catch {
      /* already closed */
    }
    try {
      this.opts.recorder.record(udpFlow(s));
    } catch (err) {
      this.opts.log(`udp flow not recorded: ${(err as Error).message}`);
    }
  }

  /** Ends every session (each is recorded). */
  close(): void {
    clearInterval(this.sweeper);
    for (const s of [...this.sessions.values()]) this.end(s);
  }
}

function udpFlow(s: UdpSession): Flow {
  const hostPart = s.version === 6 ? `[${s.dstIp}]` : s.dstIp;
  return {
    kind: 'udp', source: 'vpn', startedAt: s.startedAt, endedAt: s.lastActive, clientIp: s.peer.ipv4, clientPort: s.srcPort,
    url: `udp://${hostPart}:${s.dstPort}`, scheme: 'udp', host: s.dstIp, port: s.dstPort, serverIp: s.dstIp, tls: false,
    requestHeaders: [], requestBody: s.sent.toBody(), responseHeaders: [], responseBody: s.received.toBody(),
    timings: { totalMs: s.lastActive - s.startedAt }, error: s.error,
    tags: ['udp', `datagrams:${s.datagramsOut}/${s.datagramsIn}`],
  };
}
