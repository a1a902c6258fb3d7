/**
 * VPN mode's IP layer: WireGuard hands it each decrypted packet of a phone; it checks the packet
 * (checksums, the phone's own source address), answers what a network answers (ICMP echo, DNS,
 * port unreachable for QUIC), relays other UDP, and hands TCP to the userspace TCP (../tcp/) or,
 * until one is set, resets it so apps fail fast. Every packet it cannot handle is counted by
 * reason in stats(); nothing it emits exceeds the tunnel MTU.
 *
 * Choices (see also the modules it uses):
 * - ICMP echo is answered for ANY destination, from that destination's address, at once. The
 *   laptop does not ping the real host: a phone's ping then shows the tunnel works, not whether
 *   the host is up (a network that answers every ping, like a captive gateway).
 * - DNS to port 53 of ANY address is answered by forwarding to the laptop's resolvers (so a
 *   hard-coded 8.8.8.8 is seen and recorded too); the answer comes back from the address asked.
 *   Over TCP too (dns-service.ts): the phone's retry after a truncated answer is served.
 * - UDP 443 (QUIC) gets ICMP port unreachable; so does UDP to the gateway other than DNS.
 * - UDP to the laptop's own loopback (or phonehome's own ports) is refused with ICMP administratively
 *   prohibited and recorded (../udp/refused.ts); the destination guard decides, as for TCP.
 * - IPv4/IPv6 fragments from the phone are reassembled (reassembly.ts, bounded); relayed UDP replies
 *   bigger than the MTU are fragmented towards the phone (DNS answers are truncated with TC instead).
 */
import type { Store } from '../../../store';
import { DestinationGuard } from '../../destination-guard';
import { buildDnsErrorResponse } from '../../dns/codec';
import { DnsForwarder } from '../../dns/forwarder';
import type { FlowSink } from '../../dns/record';
import { UdpRelay, type UdpSession } from '../udp/relay';
import { RefusedUdpRecorder } from '../udp/refused';
import type { PacketSink, TcpSegment, TcpSegmentHandler, TunnelPeer } from '../types';
import { TCP_RST } from '../types';
import { canonicalIp } from './address';
import { TunnelDns } from './dns-service';
import { buildAdminProhibited, buildEchoReply, buildPortUnreachable, checkIcmp, ICMP_ECHO_REQUEST, ICMPV6_ECHO_REQUEST } from './icmp';
import { Reassembler } from './reassembly';
import { fragmentPacket, ipHeaderLength, parseIpPacket, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, type IpPacket } from './packet';
import { buildTcpPacket, parseTcp, resetFor } from './tcp';
import { buildUdpPacket, parseUdp, UDP_HEADER } from './udp';

export interface TunnelStackOptions {
  mtu: number;
  gatewayIpv4: string;
  gatewayIpv6: string;
  /** Resolvers to forward DNS to ('IP', 'IP:PORT', '[IPv6]:PORT'); empty: the laptop's (dns.getServers()). */
  dnsUpstreams: string[];
  send: PacketSink;
  /** Stores each finished flow and queues it for analysis (the proxy's FlowRecorder). */
  recorder: FlowSink;
  store?: Store;
  log?: (s: string) => void;
  /** A relayed UDP conversation ends after this long without traffic (default 60 s). */
  udpIdleMs?: number;
  /** Wait per resolver before trying the next (default 2 s). */
  dnsTimeoutMs?: number;
  /** Relayed UDP conversations at once (default 1024). */
  udpMaxSessions?: number;
  /**
   * Decides which destinations are refused (the laptop's loopback, phonehome's own ports); the
   * proxy's, so both modes follow one policy. Without it: a guard built from `allowLoopback`.
   */
  guard?: DestinationGuard;
  /**
   * Relay UDP to loopback addresses (127.0.0.0/8, ::1) on this laptop when no guard is given. Off by
   * default: a phone has no business reaching the laptop's local-only services. Tests turn it on
   * to reach servers they run on loopback.
   */
  allowLoopback?: boolean;
}

/** Why packets were not handled; keys of TunnelStats.dropped. */
export type DropReason =
  | 'truncated' | 'bad-ip-version' | 'bad-checksum' | 'wrong-source'
  | 'fragment-overlap' | 'fragment-too-big' | 'bad-fragment' | 'fragment-timeout'
  | 'unsupported-protocol' | 'bad-tcp-options' | 'over-mtu' | 'multicast' | 'icmp-ignored' | 'icmpv6-nd-ignored'
  | 'tcp-rst-no-connection' | 'dns-not-a-query' | 'dns-overload' | 'dns-tcp-bad-frame' | 'udp-bad-port' | 'udp-session-limit' | 'destination-refused' | 'send-failed' | 'closed' | 'internal-error';

export interface TunnelStats {
  packetsIn: number;
  bytesIn: number;
  packetsOut: number;
  bytesOut: number;
  /** Packets (in or out) that could not be handled, by reason. */
  dropped: Partial<Record<DropReason, number>>;
  icmpEchoReplies: number;
  portUnreachableSent: number;
  /** ICMP administratively prohibited sent for UDP to a refused destination (the laptop's loopback). */
  prohibitedSent: number;
  quicRefused: number;
  tcpSegmentsToHandler: number;
  tcpResetsSent: number;
  dnsQueries: number;
  dnsAnswers: number;
  /** Queries answered with SERVFAIL/FORMERR because no resolver answered or the query was broken. */
  dnsFailures: number;
  /** Answers too big for the MTU, sent truncated (TC bit) so the phone retries over TCP. */
  dnsTruncated: number;
  /** Lookups waiting for a resolver now. */
  dnsInFlight: number;
  udpDatagramsOut: number;
  udpDatagramsIn: number;
  /** Fragments sent for relayed UDP replies bigger than the MTU. */
  fragmentsSent: number;
  /** Fragments from the phone put back together into whole packets. */
  fragmentsReassembled: number;
  /** Fragments from the phone waiting for the rest of their datagram. */
  fragmentsHeld: number;
  udpSessionsOpen: number;
  udpSessionsTotal: number;
}

const IPV4_MULTICAST = /^(22[4-9]|23\d)\.|^255\.255\.255\.255$/;
const ND_TYPES = new Set([130, 131, 132, 133, 134, 135, 136, 137, 143]);

export class TunnelStack {
  private readonly log: (s: string) => void;
  private readonly forwarder: DnsForwarder;
  private readonly relay: UdpRelay;
  private readonly guard: DestinationGuard;
  private readonly refusedUdp: RefusedUdpRecorder;
  private readonly gatewayIpv4: string;
  private readonly gatewayIpv6: string;
  private handler: TcpSegmentHandler | undefined;
  private readonly dns: TunnelDns;
  private closed = false;
  private readonly reassembler = new Reassembler();
  private held = 0;
  private readonly s: Omit<TunnelStats, 'udpSessionsOpen' | 'udpSessionsTotal' | 'fragmentsHeld' | 'dnsInFlight'> = {
    packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0, dropped: {}, icmpEchoReplies: 0, portUnreachableSent: 0, prohibitedSent: 0,
    quicRefused: 0, tcpSegmentsToHandler: 0, tcpResetsSent: 0, dnsQueries: 0, dnsAnswers: 0, dnsFailures: 0, dnsTruncated: 0,
    udpDatagramsOut: 0, udpDatagramsIn: 0, fragmentsSent: 0, fragmentsReassembled: 0,
  };

  constructor(private readonly opts: TunnelStackOptions) {
    this.log = opts.log ?? (() => undefined);
    this.gatewayIpv4 = canonicalIp(opts.gatewayIpv4);
    this.gatewayIpv6 = canonicalIp(opts.gatewayIpv6);
    this.guard = opts.guard ?? new DestinationGuard({ allowLoopbackTargets: opts.allowLoopback });
    this.refusedUdp = new RefusedUdpRecorder(opts.recorder, opts.udpIdleMs ?? 60_000, 64 * 1024);
    this.forwarder = new DnsForwarder({ upstreams: opts.dnsUpstreams, timeoutMs: opts.dnsTimeoutMs });
    this.dns = new TunnelDns({
      forwarder: this.forwarder, recorder: opts.recorder, store: opts.store, gatewayIpv4: this.gatewayIpv4, gatewayIpv6: this.gatewayIpv6,
      count: (c) => this.s[c]++, drop: (r) => this.drop(r), log: this.log,
    });
    this.relay = new UdpRelay({
      idleMs: opts.udpIdleMs ?? 60_000,
      maxSessions: opts.udpMaxSessions ?? 1024,
      bodyLimit: 64 * 1024,
      recorder: opts.recorder,
      log: this.log,
      reply: (s, payload) => this.relayReply(s, payload),
      refused: (s) => this.relayRefused(s),
    });
  }

  /** TCP goes to h; connections to port 53 are served by this stack's DNS (over TCP, RFC 7766). */
  setTcpHandler(h: TcpSegmentHandler | undefined): void {
    this.handler = h;
    h?.addLocalService?.((conn) => {
      if (conn.destination.port !== 53) return false;
      this.dns.serveTcp(conn);
      return true;
    });
  }

  stats(): TunnelStats {
    this.expireFragments();
    return {
      ...this.s, dropped: { ...this.s.dropped }, fragmentsHeld: this.held, udpSessionsOpen: this.relay.open, udpSessionsTotal: this.relay.opened,
      dnsInFlight: this.dns.inFlight,
    };
  }

  /** One decrypted IP packet from a phone. Never throws. */
  receive(peer: TunnelPeer, packet: Buffer): void {
    this.s.packetsIn++;
    this.s.bytesIn += packet.length;
    if (this.closed) return this.drop('closed');
    try {
      this.handle(peer, packet);
    } catch (err) {
      // A bug here must not take the tunnel down; the packet is counted as not handled.
      this.log(`tunnel packet from ${peer.name} not handled: ${(err as Error).stack ?? String(err)}`);
      this.drop('internal-error');
    }
  }

  private handle(peer: TunnelPeer, packet: Buffer): void {
    const parsed = parseIpPacket(packet);
    if (!parsed.ok) return this.drop(parsed.reason as DropReason);
    const ip = parsed.packet;
    // Neighbour discovery and MLD come from link-local addresses on a phone's tunnel interface:
    // meaningless here, ignored as such rather than counted as spoofed.
    if (ip.version === 6 && ip.protocol === PROTO_ICMPV6 && !ip.fragment && ND_TYPES.has(ip.payload[0])) return this.drop('icmpv6-nd-ignored');
    const expected = ip.version === 4 ? peer.ipv4 : peer.ipv6;
    if (ip.src !== expected && ip.src !== canonicalIp(expected)) return this.drop('wrong-source');
    if (ip.fragment) return this.onFragment(peer, ip);
    this.dispatch(peer, ip);
  }

  /** A fragment joins its datagram; the whole packet, once complete, is handled like any other. */
  private onFragment(peer: TunnelPeer, ip: IpPacket): void {
    this.expireFragments();
    const r = this.reassembler.add(ip);
    if (r.kind === 'held') {
      this.held++;
      return;
    }
    if (r.kind === 'dropped') {
      this.held -= r.fragments - 1;
      this.drop(r.reason, r.fragments);
      return;
    }
    this.held -= r.fragments - 1;
    this.s.fragmentsReassembled += r.fragments;
    const whole = parseIpPacket(r.packet);
    if (!whole.ok) return this.drop(whole.reason as DropReason);
    if (whole.packet.fragment) return this.drop('bad-fragment');
    this.dispatch(peer, whole.packet);
  }

  private expireFragments(): void {
    const lost = this.reassembler.expire();
    if (lost > 0) {
      this.held -= lost;
      this.drop('fragment-timeout', lost);
    }
  }

  private dispatch(peer: TunnelPeer, ip: IpPacket): void {
    if (ip.protocol === PROTO_ICMPV6 && ip.version === 6) return this.onIcmp(peer, ip);
    if (ip.version === 4 ? IPV4_MULTICAST.test(ip.dst) : ip.dst.startsWith('ff')) return this.drop('multicast');
    switch (ip.protocol) {
      case PROTO_ICMP: return ip.version === 4 ? this.onIcmp(peer, ip) : this.drop('unsupported-protocol');
      case PROTO_UDP: return this.onUdp(peer, ip);
      case PROTO_TCP: return this.onTcp(peer, ip);
      default: return this.drop('unsupported-protocol');
    }
  }

  private drop(reason: DropReason, n = 1): void {
    this.s.dropped[reason] = (this.s.dropped[reason] ?? 0) + n;
  }

  /** Sends one packet to the phone, unless it would exceed the MTU (counted instead). */
  private emit(peer: TunnelPeer, packet: Buffer): boolean {
    if (this.closed) {
      this.drop('closed');
      return false;
    }
    if (packet.length > this.opts.mtu) {
      this.drop('over-mtu');
      return false;
    }
    try {
      this.opts.send(peer, packet);
    } catch (err) {
      this.log(`sending to ${peer.name} failed: ${(err as Error).message}`);
      this.drop('send-failed');
      return false;
    }
    this.s.packetsOut++;
    this.s.bytesOut += packet.length;
    return true;
  }

  private onIcmp(peer: TunnelPeer, ip: IpPacket): void {
    const icmp = checkIcmp(ip);
    if (!icmp.ok) return this.drop(icmp.reason as DropReason);
    const echo = ip.version === 4 ? ICMP_ECHO_REQUEST : ICMPV6_ECHO_REQUEST;
    if (icmp.type !== echo || icmp.code !== 0) return this.drop('icmp-ignored');
    if (ip.version === 6 && ip.dst.startsWith('ff')) return this.drop('multicast');
    if (this.emit(peer, buildEchoReply(ip))) this.s.icmpEchoReplies++;
  }

  private portUnreachable(peer: TunnelPeer, ip: IpPacket): void {
    if (this.emit(peer, buildPortUnreachable(ip, this.opts.mtu))) this.s.portUnreachableSent++;
  }

  private isGateway(addr: string): boolean {
    return addr === this.gatewayIpv4 || addr === this.gatewayIpv6;
  }

  private onUdp(peer: TunnelPeer, ip: IpPacket): void {
    const parsed = parseUdp(ip);
    if (!parsed.ok) return this.drop(parsed.reason as DropReason);
    const d = parsed.datagram;
    if (d.srcPort === 0 || d.dstPort === 0) return this.drop('udp-bad-port');
    if (d.dstPort === 53) return this.onDns(peer, ip, d.srcPort, d.payload);
    if (d.dstPort === 443) {
      this.s.quicRefused++;
      return this.portUnreachable(peer, ip);
    }
    if (this.isGateway(ip.dst)) return this.portUnreachable(peer, ip);
    const refusal = this.guard.check(ip.dst, d.dstPort, { protocol: 'udp' });
    if (refusal) {
      this.drop('destination-refused');
      this.refusedUdp.note(peer, ip.version, d.srcPort, ip.dst, d.dstPort, d.payload, refusal);
      if (this.emit(peer, buildAdminProhibited(ip, this.opts.mtu))) this.s.prohibitedSent++;
      return;
    }
    if (!this.relay.send(peer, ip.version, ip.src, d.srcPort, ip.dst, d.dstPort, d.payload)) return this.drop('udp-session-limit');
    this.s.udpDatagramsOut++;
  }

  private relayReply(s: UdpSession, payload: Buffer): void {
    if (this.closed) return;
    const packet = buildUdpPacket({ version: s.version, src: s.dstIp, dst: s.srcIp, srcPort: s.dstPort, dstPort: s.srcPort, payload });
    // A reply bigger than the tunnel MTU is fragmented, as the sending host would (we are its source here).
    const pieces = fragmentPacket(packet, this.opts.mtu);
    if (pieces.length > 1) this.s.fragmentsSent += pieces.length;
    let ok = pieces.length > 0;
    for (const p of pieces) ok = this.emit(s.peer, p) && ok;
    if (ok) this.s.udpDatagramsIn++;
  }

  private relayRefused(s: UdpSession): void {
    if (this.closed) return;
    // Quote a datagram like the one the phone sent (its first bytes), as the host's kernel would.
    const quoted = s.sent.toBody().bytes.subarray(0, 64);
    const original = buildUdpPacket({ version: s.version, src: s.srcIp, dst: s.dstIp, srcPort: s.srcPort, dstPort: s.dstPort, payload: quoted });
    const parsed = parseIpPacket(original);
    if (parsed.ok) this.portUnreachable(s.peer, parsed.packet);
  }

  private onTcp(peer: TunnelPeer, ip: IpPacket): void {
    const parsed = parseTcp(ip);
    if (!parsed.ok) return this.drop(parsed.reason as DropReason);
    const seg = parsed.segment;
    if (this.handler) {
      this.s.tcpSegmentsToHandler++;
      this.handler.onSegment(peer, seg, (out: TcpSegment) => { this.emit(peer, buildTcpPacket(out)); });
      return;
    }
    // No TCP layer: every segment belongs to no connection. A RST is never answered (RFC 9293).
    if (seg.flags & TCP_RST) return this.drop('tcp-rst-no-connection');
    if (this.emit(peer, buildTcpPacket(resetFor(seg)))) this.s.tcpResetsSent++;
  }

  // ---- DNS --------------------------------------------------------------------------------------

  private onDns(peer: TunnelPeer, ip: IpPacket, srcPort: number, datagram: Buffer): void {
    // Own copy: the answer is built after awaits, and the caller's packet buffer may be reused by then.
    const query = Buffer.from(datagram);
    void this.dns.answer({ peer, resolver: ip.dst, clientPort: srcPort, transport: 'udp' }, query).then((reply) => {
      if (!reply || this.closed) return;
      const payload = this.fitAnswer(ip.version, query, reply);
      this.emit(peer, buildUdpPacket({ version: ip.version, src: ip.dst, dst: ip.src, srcPort: 53, dstPort: srcPort, payload }));
    });
  }

  /** The answer as is if it fits in one packet; else header + question with TC set (the phone retries over TCP). */
  private fitAnswer(version: 4 | 6, query: Buffer, answer: Buffer): Buffer {
    const room = this.opts.mtu - ipHeaderLength(version) - UDP_HEADER;
    if (answer.length <= room) return answer;
    this.s.dnsTruncated++;
    const short = buildDnsErrorResponse(query, answer[3] & 0x0f) ?? answer.subarray(0, 12);
    short.writeUInt16BE((answer.readUInt16BE(2) | 0x0200) & 0xfff0 | (answer[3] & 0x0f), 2);
    return short;
  }

  /** Stops relaying; pending DNS lookups and open UDP conversations are recorded before it resolves. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.handler?.close();
    const forwarderClosed = this.forwarder.close();
    await this.dns.close();
    await forwarderClosed;
    this.relay.close();
    this.opts.recorder.flushNow?.();
  }
}
