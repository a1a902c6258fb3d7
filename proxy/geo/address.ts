/**
 * Why: only public addresses have an owner worth naming; loopback, private and link-local ones
 * (the laptop, the LAN, the phone itself) must answer "unknown", not a random registry entry.
 */
import { isIP } from 'node:net';

/** IPv4: the 32-bit address. IPv6: its top 48 bits (see ranges.ts), exact in a float64. */
export type ParsedAddress = { family: 4 | 6; key: number };

/** The 32-bit value of a dotted quad already validated by isIP (no allocation: this runs per lookup). */
function ipv4ToNumber(ip: string): number {
  let n = 0;
  let octet = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) { n = n * 256 + octet; octet = 0; }
    else octet = octet * 10 + (c - 48);
  }
  return n * 256 + octet;
}

function isPublicIpv4(n: number): boolean {
  const a = n >>> 24;
  const b = (n >>> 16) & 0xff;
  if (a === 0 || a === 10 || a === 127 || a >= 224) return false;
  if (a === 169 && b === 254) return false;
  if (a === 172 && b >= 16 && b <= 31) return false;
  if (a === 192 && b === 168) return false;
  if (a === 100 && b >= 64 && b <= 127) return false; // carrier-grade NAT
  if (a === 192 && b === 0 && ((n >>> 8) & 0xff) === 2) return false; // TEST-NET-1
  if (a === 198 && (b === 18 || b === 19)) return false; // benchmarking
  return true;
}

/** Expand an IPv6 literal to its 8 hextets (no zone id). */
export function ipv6Hextets(ip: string): number[] | undefined {
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const parse = (s: string): number[] => (s ? s.split(':').map((h) => (/^[0-9a-f]{1,4}$/i.test(h) ? parseInt(h, 16) : NaN)) : []);
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  const fill = 8 - left.length - right.length;
  if (fill < 0 || (tail === undefined && fill !== 0) || ip.split('::').length > 2) return undefined;
  const hextets = [...left, ...new Array<number>(fill).fill(0), ...right];
  return hextets.some((h) => Number.isNaN(h)) ? undefined : hextets;
}

/** Top 48 bits of an IPv6 address as a number (the IPv6 range key). */
export function ipv6Key(hextets: number[]): number {
  return hextets[0]! * 2 ** 32 + hextets[1]! * 2 ** 16 + hextets[2]!;
}

/** Public address → lookup key; private, loopback, link-local, multicast, malformed → undefined. */
export function parsePublicAddress(input: string): ParsedAddress | undefined {
  let ip = input.trim();
  if (ip.startsWith('[') && ip.endsWith(']')) ip = ip.slice(1, -1);
  ip = ip.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) ip = mapped[1]!;
  const family = isIP(ip);
  if (family === 4) {
    const n = ipv4ToNumber(ip);
    return isPublicIpv4(n) ? { family: 4, key: n } : undefined;
  }
  if (family !== 6 || ip.includes('.')) return undefined;
  const h = ipv6Hextets(ip);
  if (!h) return undefined;
  const first = h[0]!;
  if ((first & 0xe000) !== 0x2000) return undefined; // only global unicast 2000::/3
  if (first === 0x2001 && h[1] === 0x0db8) return undefined; // documentation
  return { family: 6, key: ipv6Key(h) };
}
