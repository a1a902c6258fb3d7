/**
 * UDP a phone sends to a destination phonehome refuses (the laptop's loopback, phonehome's own
 * ports) is never relayed: the phone gets ICMP "administratively prohibited" for every datagram,
 * and the attempt becomes a `udp` flow carrying the refusal at once, so the user sees it live. A
 * phone can send thousands of such datagrams a second: one flow per phone and destination per
 * window (the rest only counted by the stack), remembered in a bounded table.
 */
import type { Flow } from '../../../flow';
import { markRefused, type Refusal } from '../../destination-guard';
import type { FlowSink } from '../../dns/record';
import type { TunnelPeer } from '../types';

/** Destinations remembered at once; past it the table starts again (a flood records a little more, memory never grows). */
const MAX_TRACKED = 1024;

export class RefusedUdpRecorder {
  /** Key → when its flow was recorded. */
  private readonly recent = new Map<string, number>();

  constructor(private readonly recorder: FlowSink, private readonly windowMs: number, private readonly bodyLimit: number) {}

  /** One refused datagram: recorded unless the same phone tried the same destination within the window. */
  note(peer: TunnelPeer, version: 4 | 6, srcPort: number, dstIp: string, dstPort: number, payload: Buffer, refusal: Refusal): void {
    const key = `${peer.publicKey}|${dstIp}|${dstPort}`;
    const now = Date.now();
    const last = this.recent.get(key);
    if (last !== undefined && now - last < this.windowMs) return;
    if (this.recent.size >= MAX_TRACKED) this.recent.clear();
    this.recent.set(key, now);
    const hostPart = version === 6 ? `[${dstIp}]` : dstIp;
    const bytes = Buffer.from(payload.subarray(0, this.bodyLimit));
    const flow: Flow = {
      kind: 'udp', source: 'vpn', startedAt: now, endedAt: now, clientIp: peer.ipv4, clientPort: srcPort,
      url: `udp://${hostPart}:${dstPort}`, scheme: 'udp', host: dstIp, port: dstPort, tls: false,
      requestHeaders: [], requestBody: { bytes, size: payload.length, truncated: payload.length > bytes.length },
      responseHeaders: [], responseBody: { bytes: Buffer.alloc(0), size: 0, truncated: false },
      timings: { totalMs: 0 }, tags: ['udp'],
    };
    markRefused(flow, refusal, undefined);
    flow.error = `${refusal.message}; the phone got ICMP administratively prohibited`;
    this.recorder.record(flow);
  }
}
