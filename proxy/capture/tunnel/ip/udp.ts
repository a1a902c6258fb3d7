/**
 * UDP datagrams (RFC 768): parsed with the checksum checked (optional in IPv4 when zero, mandatory
 * in IPv6) and built into whole IP packets for DNS answers and relayed replies.
 */
import { parseIp } from './address';
import { transportChecksum, transportChecksumOk } from './checksum';
import { ipHeaderLength, PROTO_UDP, writeIpHeader, type IpPacket } from './packet';

export interface UdpDatagram {
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

export type UdpParseResult = { ok: true; datagram: UdpDatagram } | { ok: false; reason: string; detail: string };

export function parseUdp(ip: IpPacket): UdpParseResult {
  const b = ip.payload;
  if (b.length < 8) return { ok: false, reason: 'truncated', detail: `UDP datagram of ${b.length} bytes` };
  const len = b.readUInt16BE(4);
  if (len < 8 || len > b.length) return { ok: false, reason: 'truncated', detail: `UDP length ${len}, have ${b.length}` };
  const seg = b.subarray(0, len);
  const checksum = b.readUInt16BE(6);
  if (checksum === 0) {
    if (ip.version === 6) return { ok: false, reason: 'bad-checksum', detail: 'UDP checksum missing (mandatory in IPv6)' };
  } else if (!transportChecksumOk(ip.srcBytes, ip.dstBytes, PROTO_UDP, seg)) {
    return { ok: false, reason: 'bad-checksum', detail: 'UDP checksum' };
  }
  return { ok: true, datagram: { srcPort: b.readUInt16BE(0), dstPort: b.readUInt16BE(2), payload: seg.subarray(8) } };
}

export interface UdpBuildInput {
  version: 4 | 6;
  src: string | Buffer;
  dst: string | Buffer;
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

/** A whole IP packet carrying the datagram, built in one buffer (the relay's hot path). */
export function buildUdpPacket(u: UdpBuildInput): Buffer {
  const src = Buffer.isBuffer(u.src) ? u.src : parseIp(u.src);
  const dst = Buffer.isBuffer(u.dst) ? u.dst : parseIp(u.dst);
  const segLength = 8 + u.payload.length;
  const out = Buffer.allocUnsafe(ipHeaderLength(u.version) + segLength);
  const h = writeIpHeader(out, u.version, src, dst, PROTO_UDP, segLength);
  out.writeUInt16BE(u.srcPort, h);
  out.writeUInt16BE(u.dstPort, h + 2);
  out.writeUInt16BE(segLength, h + 4);
  out.writeUInt16BE(0, h + 6);
  u.payload.copy(out, h + 8);
  // A computed 0 is sent as 0xffff (0 means "no checksum").
  out.writeUInt16BE(transportChecksum(src, dst, PROTO_UDP, out.subarray(h)) || 0xffff, h + 6);
  return out;
}

export const UDP_HEADER = 8;
