/**
 * ICMP and ICMPv6 the tunnel speaks: echo replies (ping works through VPN mode) and port
 * unreachable errors (QUIC refused so apps fall back to TCP at once; relayed UDP the server
 * refused). Neighbour discovery, router solicitations and MLD have no meaning on a point-to-point
 * tunnel and are ignored (counted by TunnelStack).
 */
import { finish, sumWords, transportChecksum, transportChecksumOk } from './checksum';
import { buildIpPacket, PROTO_ICMP, PROTO_ICMPV6, type IpPacket } from './packet';

export const ICMP_ECHO_REPLY = 0;
export const ICMP_UNREACHABLE = 3;
export const ICMP_ECHO_REQUEST = 8;
export const ICMPV6_UNREACHABLE = 1;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;

export type IcmpCheck = { ok: true; type: number; code: number } | { ok: false; reason: string; detail: string };

/** Checks an ICMP/ICMPv6 message's length and checksum (ICMPv6 covers a pseudo-header, ICMP does not). */
export function checkIcmp(ip: IpPacket): IcmpCheck {
  const b = ip.payload;
  if (b.length < 8) return { ok: false, reason: 'truncated', detail: `ICMP message of ${b.length} bytes` };
  const good = ip.version === 4 ? finish(sumWords(b)) === 0 : transportChecksumOk(ip.srcBytes, ip.dstBytes, PROTO_ICMPV6, b);
  if (!good) return { ok: false, reason: 'bad-checksum', detail: ip.version === 4 ? 'ICMP checksum' : 'ICMPv6 checksum' };
  return { ok: true, type: b[0], code: b[1] };
}

function withChecksum(version: 4 | 6, src: Buffer, dst: Buffer, msg: Buffer): Buffer {
  msg.writeUInt16BE(0, 2);
  msg.writeUInt16BE(version === 4 ? finish(sumWords(msg)) : transportChecksum(src, dst, PROTO_ICMPV6, msg), 2);
  return buildIpPacket(version, { src, dst, protocol: version === 4 ? PROTO_ICMP : PROTO_ICMPV6, payload: msg });
}

/**
 * The echo reply to an echo request, sent from the address the phone pinged (whatever it was:
 * like a network where every host answers; identifier, sequence and data echoed).
 */
export function buildEchoReply(request: IpPacket): Buffer {
  const msg = Buffer.from(request.payload);
  msg[0] = request.version === 4 ? ICMP_ECHO_REPLY : ICMPV6_ECHO_REPLY;
  msg[1] = 0;
  return withChecksum(request.version, request.dstBytes, request.srcBytes, msg);
}

/**
 * Port unreachable for a datagram the phone sent, quoting as much of it as fits in `maxPacket`
 * (and, for IPv4, within the 576 bytes RFC 1812 suggests; IPv6 quotes up to its minimum MTU).
 * Sent from the address the datagram was for, as the real host's kernel would.
 */
export function buildPortUnreachable(original: IpPacket, maxPacket: number): Buffer {
  return buildUnreachable(original, maxPacket, original.version === 4 ? 3 : 4);
}

/**
 * "Communication administratively prohibited" (ICMP type 3 code 13; ICMPv6 type 1 code 1), what a
 * firewall's reject sends: for destinations phonehome refuses (the laptop's loopback).
 */
export function buildAdminProhibited(original: IpPacket, maxPacket: number): Buffer {
  return buildUnreachable(original, maxPacket, original.version === 4 ? 13 : 1);
}

function buildUnreachable(original: IpPacket, maxPacket: number, code: number): Buffer {
  const headerRoom = original.version === 4 ? 20 + 8 : 40 + 8;
  const cap = Math.min(maxPacket, original.version === 4 ? 576 : 1280) - headerRoom;
  const quoted = original.raw.subarray(0, Math.max(0, cap));
  const msg = Buffer.alloc(8 + quoted.length);
  msg[0] = original.version === 4 ? ICMP_UNREACHABLE : ICMPV6_UNREACHABLE;
  msg[1] = code;
  quoted.copy(msg, 8);
  return withChecksum(original.version, original.dstBytes, original.srcBytes, msg);
}
