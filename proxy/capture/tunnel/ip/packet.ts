/**
 * IPv4 and IPv6 packets as the tunnel carries them: parsed strictly (a packet the phone sends is
 * untrusted input; every rejection has a named reason that ends up in TunnelStack stats) and built
 * with correct header checksums. Fragments parse with their `fragment` details (reassembly.ts puts
 * them back together); fragmentPacket splits a packet we originate.
 */
import { finish, sumWords } from './checksum';
import { formatIpv4, formatIpv6, parseIpv4, parseIpv6 } from './address';

export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;

export interface IpPacket {
  version: 4 | 6;
  src: string;
  dst: string;
  srcBytes: Buffer;
  dstBytes: Buffer;
  /** Transport protocol after any IPv6 extension headers. */
  protocol: number;
  ttl: number;
  /** The transport segment (trailing padding beyond the IP length removed). */
  payload: Buffer;
  /** The whole packet as received (up to the IP length), for ICMP errors that quote it. */
  raw: Buffer;
  /** Set on a fragment: `payload` is this fragment's part of the datagram. */
  fragment?: FragmentInfo;
}

export interface FragmentInfo {
  /** Identification (16 bits in IPv4, 32 in IPv6). */
  id: number;
  /** Byte offset of this part in the fragmentable part of the datagram. */
  offset: number;
  more: boolean;
  /** What precedes the fragmentable part: the IPv4 header, or the IPv6 header and extension headers before the Fragment header. */
  unfragmentable: Buffer;
  /** IPv6: where in `unfragmentable` the Next Header byte that named the Fragment header sits. */
  nextHeaderAt: number;
}

export type IpParseResult = { ok: true; packet: IpPacket } | { ok: false; reason: string; detail: string };

const fail = (reason: string, detail: string): IpParseResult => ({ ok: false, reason, detail });

export function parseIpPacket(buf: Buffer): IpParseResult {
  if (buf.length === 0) return fail('truncated', 'empty packet');
  const version = buf[0] >> 4;
  if (version === 4) return parseIpv4Packet(buf);
  if (version === 6) return parseIpv6Packet(buf);
  return fail('bad-ip-version', `IP version ${version}`);
}

function parseIpv4Packet(buf: Buffer): IpParseResult {
  if (buf.length < 20) return fail('truncated', `IPv4 packet of ${buf.length} bytes`);
  const ihl = (buf[0] & 0x0f) * 4;
  const total = buf.readUInt16BE(2);
  if (ihl < 20 || total < ihl || total > buf.length) return fail('truncated', `IPv4 header length ${ihl}, total ${total}, have ${buf.length}`);
  if (finish(sumWords(buf, 0, ihl)) !== 0) return fail('bad-checksum', 'IPv4 header checksum');
  const frag = buf.readUInt16BE(6);
  const srcBytes = Buffer.from(buf.subarray(12, 16));
  const dstBytes = Buffer.from(buf.subarray(16, 20));
  const packet: IpPacket = {
    version: 4, src: formatIpv4(srcBytes), dst: formatIpv4(dstBytes), srcBytes, dstBytes, protocol: buf[9], ttl: buf[8],
    payload: buf.subarray(ihl, total), raw: buf.subarray(0, total),
  };
  if ((frag & 0x2000) !== 0 || (frag & 0x1fff) !== 0) {
    packet.fragment = { id: buf.readUInt16BE(4), offset: (frag & 0x1fff) * 8, more: (frag & 0x2000) !== 0, unfragmentable: buf.subarray(0, ihl), nextHeaderAt: 9 };
  }
  return { ok: true, packet };
}

/** Extension headers walked over to find the transport protocol. */
const SKIPPABLE_EXT = new Set([0, 43, 60]);

function parseIpv6Packet(buf: Buffer): IpParseResult {
  if (buf.length < 40) return fail('truncated', `IPv6 packet of ${buf.length} bytes`);
  const payloadLen = buf.readUInt16BE(4);
  if (40 + payloadLen > buf.length) return fail('truncated', `IPv6 payload length ${payloadLen}, have ${buf.length - 40}`);
  let next = buf[6];
  let nextAt = 6;
  let off = 40;
  const end = 40 + payloadLen;
  let fragment: FragmentInfo | undefined;
  for (;;) {
    if (next === 44) {
      // Everything after the Fragment header is opaque until reassembled.
      if (off + 8 > end) return fail('truncated', 'IPv6 fragment header');
      const word = buf.readUInt16BE(off + 2);
      fragment = { id: buf.readUInt32BE(off + 4), offset: word & 0xfff8, more: (word & 1) !== 0, unfragmentable: buf.subarray(0, off), nextHeaderAt: nextAt };
      break;
    }
    if (!SKIPPABLE_EXT.has(next)) break;
    if (off + 8 > end) return fail('truncated', 'IPv6 extension header');
    const len = (buf[off + 1] + 1) * 8;
    if (off + len > end) return fail('truncated', 'IPv6 extension header');
    nextAt = off;
    next = buf[off];
    off += len;
  }
  if (fragment) {
    // The fragmentable part starts right after the Fragment header.
    const fragEnd = fragment.unfragmentable.length + 8;
    const srcBytes = Buffer.from(buf.subarray(8, 24));
    const dstBytes = Buffer.from(buf.subarray(24, 40));
    return {
      ok: true,
      packet: {
        version: 6, src: formatIpv6(srcBytes), dst: formatIpv6(dstBytes), srcBytes, dstBytes, protocol: buf[fragEnd - 8], ttl: buf[7],
        payload: buf.subarray(fragEnd, end), raw: buf.subarray(0, end), fragment,
      },
    };
  }
  const srcBytes = Buffer.from(buf.subarray(8, 24));
  const dstBytes = Buffer.from(buf.subarray(24, 40));
  return {
    ok: true,
    packet: {
      version: 6, src: formatIpv6(srcBytes), dst: formatIpv6(dstBytes), srcBytes, dstBytes, protocol: next, ttl: buf[7],
      payload: buf.subarray(off, end), raw: buf.subarray(0, end),
    },
  };
}

let ipv4Id = Math.floor(Math.random() * 0x10000);

export interface IpBuildInput {
  src: string | Buffer;
  dst: string | Buffer;
  protocol: number;
  payload: Buffer;
  ttl?: number;
}

const addrBytes = (a: string | Buffer, v: 4 | 6): Buffer => (Buffer.isBuffer(a) ? a : v === 4 ? parseIpv4(a) : parseIpv6(a));

/**
 * Writes a complete IP header for `payloadLength` bytes of `protocol` at the start of `out` (every
 * header byte is written, so `out` may come from Buffer.allocUnsafe) and returns its length.
 * IPv4 gets DF: the tunnel never emits more than its MTU, except fragments it makes itself.
 */
export function writeIpHeader(out: Buffer, version: 4 | 6, src: Buffer, dst: Buffer, protocol: number, payloadLength: number, ttl = 64): number {
  if (version === 4) {
    out[0] = 0x45;
    out[1] = 0;
    out.writeUInt16BE(20 + payloadLength, 2);
    ipv4Id = (ipv4Id + 1) & 0xffff;
    out.writeUInt16BE(ipv4Id, 4);
    out.writeUInt16BE(0x4000, 6);
    out[8] = ttl;
    out[9] = protocol;
    out.writeUInt16BE(0, 10);
    src.copy(out, 12, 0, 4);
    dst.copy(out, 16, 0, 4);
    out.writeUInt16BE(finish(sumWords(out, 0, 20)), 10);
    return 20;
  }
  out.writeUInt32BE(0x60000000, 0);
  out.writeUInt16BE(payloadLength, 4);
  out[6] = protocol;
  out[7] = ttl;
  src.copy(out, 8, 0, 16);
  dst.copy(out, 24, 0, 16);
  return 40;
}

export function buildIpv4Packet(p: IpBuildInput): Buffer {
  const out = Buffer.allocUnsafe(20 + p.payload.length);
  writeIpHeader(out, 4, addrBytes(p.src, 4), addrBytes(p.dst, 4), p.protocol, p.payload.length, p.ttl);
  p.payload.copy(out, 20);
  return out;
}

export function buildIpv6Packet(p: IpBuildInput): Buffer {
  const out = Buffer.allocUnsafe(40 + p.payload.length);
  writeIpHeader(out, 6, addrBytes(p.src, 6), addrBytes(p.dst, 6), p.protocol, p.payload.length, p.ttl);
  p.payload.copy(out, 40);
  return out;
}

export function buildIpPacket(version: 4 | 6, p: IpBuildInput): Buffer {
  return version === 4 ? buildIpv4Packet(p) : buildIpv6Packet(p);
}

export const ipHeaderLength = (version: 4 | 6): number => (version === 4 ? 20 : 40);

let fragmentId = Math.floor(Math.random() * 0x7fffffff);

/**
 * Splits a packet we originate (a relayed UDP reply bigger than the tunnel MTU) into fragments of
 * at most `mtu` bytes, as the sending host would: IPv4 with MF/offset (DF cleared), IPv6 with a
 * Fragment header (RFC 8200 4.5). The phone's kernel reassembles them. Packets that fit are
 * returned as they are.
 */
export function fragmentPacket(packet: Buffer, mtu: number): Buffer[] {
  if (packet.length <= mtu) return [packet];
  const v4 = packet[0] >> 4 === 4;
  const header = v4 ? (packet[0] & 0x0f) * 4 : 40;
  const body = packet.subarray(header);
  // Every fragment but the last carries a multiple of 8 bytes.
  const room = Math.floor((mtu - header - (v4 ? 0 : 8)) / 8) * 8;
  if (room <= 0) return [];
  const id = (fragmentId = (fragmentId + 1) >>> 0);
  const out: Buffer[] = [];
  for (let off = 0; off < body.length; off += room) {
    const piece = body.subarray(off, Math.min(body.length, off + room));
    const more = off + piece.length < body.length;
    if (v4) {
      const f = Buffer.concat([packet.subarray(0, header), piece]);
      f.writeUInt16BE(f.length, 2);
      f.writeUInt16BE(id & 0xffff, 4);
      f.writeUInt16BE((more ? 0x2000 : 0) | (off / 8), 6);
      f.writeUInt16BE(0, 10);
      f.writeUInt16BE(finish(sumWords(f, 0, header)), 10);
      out.push(f);
    } else {
      const fh = Buffer.alloc(8);
      fh[0] = packet[6];
      fh.writeUInt16BE(off | (more ? 1 : 0), 2);
      fh.writeUInt32BE(id, 4);
      const f = Buffer.concat([packet.subarray(0, 40), fh, piece]);
      f.writeUInt16BE(f.length - 40, 4);
      f[6] = 44;
      out.push(f);
    }
  }
  return out;
}
