/**
 * The tunnel's address plan (10.77.0.0/24 and fd77::/64; phonehome is .1/::1, phones .2 onwards)
 * and the raw bytes of a phone's addresses, for cryptokey routing: a decrypted packet must come
 * from the tunnel address of the peer whose key decrypted it.
 */
import { isIPv4, isIPv6 } from 'net';
import { parseIpv6 } from '../ip/address';

export const TUNNEL_MTU = 1420;
export const GATEWAY_IPV4 = '10.77.0.1';
export const GATEWAY_IPV6 = 'fd77::1';
export const FIRST_HOST = 2;
export const LAST_HOST = 254;

/** Phone number n gets 10.77.0.n and fd77::n (the decimal digits read as hex: .12 ↔ fd77::12). */
export function tunnelAddresses(n: number): { ipv4: string; ipv6: string } {
  if (!Number.isInteger(n) || n < FIRST_HOST || n > LAST_HOST) throw new Error(`tunnel host number out of range: ${n}`);
  return { ipv4: `10.77.0.${n}`, ipv6: `fd77::${n}` };
}

/** The host number of a tunnel IPv4 address, or undefined if it is not in 10.77.0.0/24. */
export function hostNumber(ipv4: string): number | undefined {
  const m = /^10\.77\.0\.(\d{1,3})$/.exec(ipv4);
  return m ? Number(m[1]) : undefined;
}

export function ipv4Bytes(s: string): Buffer {
  if (!isIPv4(s)) throw new Error(`not an IPv4 address: ${s}`);
  return Buffer.from(s.split('.').map(Number));
}

export function ipv6Bytes(s: string): Buffer {
  if (!isIPv6(s) || s.includes('.')) throw new Error(`not a plain IPv6 address: ${s}`);
  return parseIpv6(s);
}

/**
 * Length of the IP packet at the start of a decrypted (zero-padded) payload, checked against what
 * is there; 0 when it is not a plausible IPv4/IPv6 packet.
 */
export function innerPacketLength(p: Buffer): number {
  if (p.length < 1) return 0;
  const version = p[0] >> 4;
  let len = 0;
  if (version === 4 && p.length >= 20) len = p.readUInt16BE(2);
  else if (version === 6 && p.length >= 40) len = 40 + p.readUInt16BE(4);
  else return 0;
  const min = version === 4 ? 20 : 40;
  return len >= min && len <= p.length ? len : 0;
}

/** True when the packet's source address equals the given 4- or 16-byte address. */
export function sourceIs(p: Buffer, v4: Buffer, v6: Buffer): boolean {
  return p[0] >> 4 === 4 ? p.compare(v4, 0, 4, 12, 16) === 0 : p.compare(v6, 0, 16, 8, 24) === 0;
}
