/**
 * TCP segments on the wire: parseTcp turns a checksum-valid segment from the phone into the
 * version-independent TcpSegment of ../types.ts, buildTcpPacket serialises one (with options and
 * the pseudo-header checksum) into a whole IP packet. Used by the IP layer and by the userspace
 * TCP (../tcp/), which must never build packets of its own.
 */
import { TCP_ACK, TCP_RST, type TcpOptions, type TcpSegment } from '../types';
import { parseIp } from './address';
import { transportChecksum, transportChecksumOk } from './checksum';
import { ipHeaderLength, PROTO_TCP, writeIpHeader, type IpPacket } from './packet';

export type TcpParseResult = { ok: true; segment: TcpSegment } | { ok: false; reason: string; detail: string };

/** Parses the TCP segment carried by an IP packet; checks the checksum and the options' framing. */
export function parseTcp(ip: IpPacket): TcpParseResult {
  const b = ip.payload;
  if (b.length < 20) return { ok: false, reason: 'truncated', detail: `TCP segment of ${b.length} bytes` };
  const dataOff = (b[12] >> 4) * 4;
  if (dataOff < 20 || dataOff > b.length) return { ok: false, reason: 'truncated', detail: `TCP data offset ${dataOff}` };
  if (!transportChecksumOk(ip.srcBytes, ip.dstBytes, PROTO_TCP, b)) return { ok: false, reason: 'bad-checksum', detail: 'TCP checksum' };
  const options = parseTcpOptions(b.subarray(20, dataOff));
  if (!options) return { ok: false, reason: 'bad-tcp-options', detail: 'malformed TCP options' };
  return {
    ok: true,
    segment: {
      ipVersion: ip.version, srcIp: ip.src, dstIp: ip.dst, srcPort: b.readUInt16BE(0), dstPort: b.readUInt16BE(2),
      seq: b.readUInt32BE(4), ack: b.readUInt32BE(8), flags: b[13], window: b.readUInt16BE(14), options,
      payload: b.subarray(dataOff),
    },
  };
}

/**
 * Options we understand; others (fast open, MPTCP, ...) are skipped, and so is one of ours whose
 * length is wrong for its kind (a hostile SACK option of 9 bytes is ignored, not trusted in part).
 * Undefined only when the framing itself is broken (a length that runs past the options).
 */
export function parseTcpOptions(o: Buffer): TcpOptions | undefined {
  const out: TcpOptions = {};
  let i = 0;
  while (i < o.length) {
    const kind = o[i];
    if (kind === 0) break;
    if (kind === 1) { i++; continue; }
    if (i + 1 >= o.length) return undefined;
    const len = o[i + 1];
    if (len < 2 || i + len > o.length) return undefined;
    if (kind === 2 && len === 4) out.mss = o.readUInt16BE(i + 2);
    else if (kind === 3 && len === 3) out.windowScale = Math.min(o[i + 2], 14);
    else if (kind === 4 && len === 2) out.sackPermitted = true;
    else if (kind === 8 && len === 10) out.timestamps = [o.readUInt32BE(i + 2), o.readUInt32BE(i + 6)];
    else if (kind === 5 && len >= 10 && len <= 34 && (len - 2) % 8 === 0) {
      const blocks: [number, number][] = [];
      for (let at = i + 2; at < i + len; at += 8) blocks.push([o.readUInt32BE(at), o.readUInt32BE(at + 4)]);
      out.sack = blocks;
    }
    i += len;
  }
  return out;
}

/** Options in the order Linux sends them, padded with NOPs to a multiple of 4 bytes. */
export function buildTcpOptions(opts: TcpOptions): Buffer {
  const parts: number[] = [];
  if (opts.mss !== undefined) parts.push(2, 4, (opts.mss >> 8) & 0xff, opts.mss & 0xff);
  if (opts.sackPermitted && opts.timestamps) parts.push(4, 2);
  else if (opts.sackPermitted) parts.push(1, 1, 4, 2);
  else if (opts.timestamps) parts.push(1, 1);
  if (opts.timestamps) {
    const ts = Buffer.alloc(8);
    ts.writeUInt32BE(opts.timestamps[0] >>> 0, 0);
    ts.writeUInt32BE(opts.timestamps[1] >>> 0, 4);
    parts.push(8, 10, ...ts);
  }
  if (opts.windowScale !== undefined) parts.push(1, 3, 3, opts.windowScale);
  if (opts.sack?.length) {
    parts.push(1, 1, 5, 2 + 8 * opts.sack.length);
    for (const [start, end] of opts.sack) parts.push(...u32(start), ...u32(end));
  }
  return Buffer.from(parts);
}

/** Bytes buildTcpOptions uses for SACK blocks and timestamps (what they take from a segment's payload). */
export function tcpOptionsLength(timestamps: boolean, sackBlocks: number): number {
  return (timestamps ? 12 : 0) + (sackBlocks ? 4 + 8 * sackBlocks : 0);
}

function u32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

/** A whole IP packet carrying the segment, checksums included, built in one buffer. */
export function buildTcpPacket(seg: TcpSegment, ttl = 64): Buffer {
  const options = buildTcpOptions(seg.options);
  const header = 20 + options.length;
  const segLength = header + seg.payload.length;
  const src = parseIp(seg.srcIp);
  const dst = parseIp(seg.dstIp);
  const out = Buffer.allocUnsafe(ipHeaderLength(seg.ipVersion) + segLength);
  const h = writeIpHeader(out, seg.ipVersion, src, dst, PROTO_TCP, segLength, ttl);
  out.writeUInt16BE(seg.srcPort, h);
  out.writeUInt16BE(seg.dstPort, h + 2);
  out.writeUInt32BE(seg.seq >>> 0, h + 4);
  out.writeUInt32BE(seg.ack >>> 0, h + 8);
  out[h + 12] = (header / 4) << 4;
  out[h + 13] = seg.flags & 0xff;
  out.writeUInt16BE(seg.window & 0xffff, h + 14);
  out.writeUInt32BE(0, h + 16); // checksum and urgent pointer
  options.copy(out, h + 20);
  seg.payload.copy(out, h + header);
  out.writeUInt16BE(transportChecksum(src, dst, PROTO_TCP, out.subarray(h)), h + 16);
  return out;
}

/** The RST a host sends for a segment that belongs to no connection (RFC 9293 3.10.7.1). */
export function resetFor(seg: TcpSegment): TcpSegment {
  const base = { ipVersion: seg.ipVersion, srcIp: seg.dstIp, dstIp: seg.srcIp, srcPort: seg.dstPort, dstPort: seg.srcPort, window: 0, options: {}, payload: Buffer.alloc(0) };
  if (seg.flags & TCP_ACK) return { ...base, seq: seg.ack, ack: 0, flags: TCP_RST };
  const len = seg.payload.length + (seg.flags & 0x02 ? 1 : 0) + (seg.flags & 0x01 ? 1 : 0);
  return { ...base, seq: 0, ack: (seg.seq + len) >>> 0, flags: TCP_RST | TCP_ACK };
}
