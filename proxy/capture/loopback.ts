/**
 * Which destinations are this laptop itself, whatever their spelling. A phone (or anyone the proxy
 * serves) must not use phonehome to reach the laptop's loopback, where the dashboard and other
 * local-only services listen. Resolvers and URL parsers accept many spellings of one address
 * (`127.1`, `2130706433`, `0x7f000001`, `017700000001`, `[::ffff:7f00:1]`, a trailing dot), so an
 * address is classified after reducing it to its number, never by matching text: any spelling some
 * parser reads as an IPv4 number (WHATWG URL's IPv4 parser, which accepts what glibc's inet_aton
 * does) is read here the same way, and IPv6 forms that carry an IPv4 address are unwrapped.
 */
import { isIPv6 } from 'node:net';
import { formatIpv4, formatIpv6, parseIpv6 } from './tunnel/ip/address';

/** What a destination is, when it is this laptop rather than a host on a network. */
export type LocalKind = 'loopback' | 'unspecified';

/**
 * The 32-bit number an IPv4 spelling stands for: 1 to 4 dot-separated parts, each decimal, octal
 * (leading 0) or hex (0x), the last filling the remaining bytes, one trailing dot allowed. Undefined
 * for anything else (a host name, or a spelling no parser reads as a number).
 */
export function looseIpv4(host: string): number | undefined {
  let parts = host.split('.');
  if (parts.length > 1 && parts[parts.length - 1] === '') parts = parts.slice(0, -1);
  if (parts.length === 0 || parts.length > 4) return undefined;
  const numbers: number[] = [];
  for (const part of parts) {
    const n = ipv4Part(part);
    if (n === undefined) return undefined;
    numbers.push(n);
  }
  const last = numbers[numbers.length - 1];
  if (last >= 256 ** (5 - numbers.length)) return undefined;
  let value = last;
  for (let i = 0; i < numbers.length - 1; i++) {
    if (numbers[i] > 255) return undefined;
    value += numbers[i] * 256 ** (3 - i);
  }
  return value;
}

function ipv4Part(part: string): number | undefined {
  if (part === '') return undefined;
  let digits = part;
  let radix = 10;
  if (/^0x/i.test(part)) {
    digits = part.slice(2);
    radix = 16;
    if (digits === '') return 0;
  } else if (part.length > 1 && part.startsWith('0')) {
    digits = part.slice(1);
    radix = 8;
  }
  const valid = radix === 16 ? /^[0-9a-f]+$/i : radix === 8 ? /^[0-7]+$/ : /^[0-9]+$/;
  if (!valid.test(digits)) return undefined;
  // Leading zeros change nothing (0x00000001 is 1); past 2^32 the exact value no longer matters.
  const significant = digits.replace(/^0+(?=.)/, '');
  return significant.length > 12 ? 2 ** 40 : parseInt(significant, radix);
}

function kindOfIpv4(n: number): LocalKind | undefined {
  const first = n >>> 24;
  if (first === 127) return 'loopback';
  // 0.0.0.0/8 is "this host on this network": connecting to 0.0.0.0 reaches the laptop itself.
  if (first === 0) return 'unspecified';
  return undefined;
}

function ipv4Text(n: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return formatIpv4(b);
}

/**
 * The IPv4 address an IPv6 address carries: `mapped` (::ffff:a.b.c.d) is what the socket layer
 * connects to as IPv4; the translated forms reach a.b.c.d only through a translator, and are
 * treated as it only when a.b.c.d is loopback (refusing them costs nothing).
 */
function embeddedIpv4(b: Buffer): { v4: number; mapped: boolean } | undefined {
  const zeros = (from: number, to: number) => b.subarray(from, to).every((x) => x === 0);
  const v4 = b.readUInt32BE(12);
  if (zeros(0, 10) && b[10] === 0xff && b[11] === 0xff) return { v4, mapped: true };
  // ::a.b.c.d (IPv4-compatible, deprecated; ::, ::1 are classified before this), ::ffff:0:a.b.c.d
  // (SIIT, RFC 6145) and 64:ff9b::a.b.c.d (NAT64, RFC 6052).
  if (zeros(0, 12)) return { v4, mapped: false };
  if (zeros(0, 8) && b[8] === 0xff && b[9] === 0xff && b[10] === 0 && b[11] === 0) return { v4, mapped: false };
  if (b.readUInt32BE(0) === 0x0064ff9b && zeros(4, 12)) return { v4, mapped: false };
  return undefined;
}

export interface CanonicalAddress {
  /** The address as the socket layer would reach it: IPv4 dotted (unwrapped from IPv6 forms), or RFC 5952 IPv6. */
  address: string;
  family: 4 | 6;
  /** Set when the address is this laptop's loopback or the unspecified address. */
  local?: LocalKind;
}

/** An IP literal in any spelling (IPv6 without brackets, any case, zone index allowed), or undefined for a name. */
export function canonicalAddress(host: string): CanonicalAddress | undefined {
  const text = host.toLowerCase();
  if (isIPv6(text)) {
    const bytes = parseIpv6(text);
    if (bytes.every((x) => x === 0)) return { address: '::', family: 6, local: 'unspecified' };
    if (bytes.subarray(0, 15).every((x) => x === 0) && bytes[15] === 1) return { address: '::1', family: 6, local: 'loopback' };
    const e = embeddedIpv4(bytes);
    if (e?.mapped) return { address: ipv4Text(e.v4), family: 4, local: kindOfIpv4(e.v4) };
    if (e && kindOfIpv4(e.v4) === 'loopback') return { address: ipv4Text(e.v4), family: 4, local: 'loopback' };
    return { address: formatIpv6(bytes), family: 6 };
  }
  const v4 = looseIpv4(text);
  if (v4 === undefined) return undefined;
  return { address: ipv4Text(v4), family: 4, local: kindOfIpv4(v4) };
}

/**
 * Names that mean this machine whatever DNS says: `localhost` and any name under it (RFC 6761 6.3
 * tells resolvers to answer them with loopback; glibc and systemd-resolved do).
 */
export function isLocalhostName(host: string): boolean {
  const name = (host.endsWith('.') ? host.slice(0, -1) : host).toLowerCase();
  return name === 'localhost' || name.endsWith('.localhost');
}

/**
 * Why `host` (a name or a literal, as the phone spelled it) is the laptop's loopback: the address it
 * stands for ('127.0.0.1', '::1', '0.0.0.0', 'localhost'...), or undefined when it is not (a name
 * may still resolve to loopback: resolved addresses are checked again before connecting).
 */
export function loopbackSpelling(host: string): { address: string; kind: LocalKind } | undefined {
  if (isLocalhostName(host)) return { address: 'localhost', kind: 'loopback' };
  const c = canonicalAddress(host);
  return c?.local ? { address: c.address, kind: c.local } : undefined;
}
