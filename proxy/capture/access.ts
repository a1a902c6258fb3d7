/**
 * Who may use the proxy. phonehome must never become an open proxy: by default only loopback and
 * private/link-local networks (where a phone on the same Wi-Fi lives) are served; `--allow-clients`
 * replaces that list. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are judged as the IPv4 they carry.
 */
import * as net from 'net';

export const DEFAULT_ALLOWED_CLIENTS: readonly string[] = Object.freeze([
  '127.0.0.0/8', // loopback
  '10.0.0.0/8', // RFC 1918
  '172.16.0.0/12',
  '192.168.0.0/16',
  '169.254.0.0/16', // link-local
  '100.64.0.0/10', // carrier-grade NAT (phone hotspots, some home routers)
  '::1/128',
  'fc00::/7', // unique local
  'fe80::/10', // link-local
]);

interface Cidr {
  text: string;
  family: 4 | 6;
  bits: bigint;
  prefix: number;
}

export class InvalidCidrError extends Error {}

export function parseCidr(text: string): Cidr {
  const trimmed = text.trim();
  const slash = trimmed.indexOf('/');
  const addr = slash >= 0 ? trimmed.slice(0, slash) : trimmed;
  const family = net.isIP(addr);
  if (family !== 4 && family !== 6) throw new InvalidCidrError(`'${text}' is not an IP address or CIDR range (e.g. 192.168.1.0/24)`);
  const width = family === 4 ? 32 : 128;
  let prefix = width;
  if (slash >= 0) {
    const p = trimmed.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > width) throw new InvalidCidrError(`'${text}': prefix length must be 0..${width}`);
    prefix = Number(p);
  }
  return { text: trimmed, family, bits: maskTo(addressBits(addr, family), width, prefix), prefix };
}

function maskTo(value: bigint, width: number, prefix: number): bigint {
  if (prefix === 0) return 0n;
  const shift = BigInt(width - prefix);
  return (value >> shift) << shift;
}

function addressBits(addr: string, family: 4 | 6): bigint {
  if (family === 4) return addr.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
  const zone = addr.indexOf('%');
  const bare = zone >= 0 ? addr.slice(0, zone) : addr;
  let head = bare;
  let tail = '';
  const dbl = bare.indexOf('::');
  if (dbl >= 0) {
    head = bare.slice(0, dbl);
    tail = bare.slice(dbl + 2);
  }
  const expand = (s: string): number[] => {
    if (!s) return [];
    const out: number[] = [];
    for (const piece of s.split(':')) {
      if (piece.includes('.')) {
        const v4 = Number(addressBits(piece, 4));
        out.push(v4 >>> 16, v4 & 0xffff);
      } else out.push(parseInt(piece, 16));
    }
    return out;
  };
  const h = expand(head);
  const t = expand(tail);
  const groups = dbl >= 0 ? [...h, ...new Array(8 - h.length - t.length).fill(0), ...t] : h;
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

/** '::ffff:192.168.1.5' → '192.168.1.5'; other addresses unchanged. */
export function unmapIPv4(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1] : address;
}

export class ClientAccessList {
  private readonly ranges: Cidr[];

  /** Throws InvalidCidrError for an entry that is not an address or CIDR range. */
  constructor(cidrs: readonly string[] = DEFAULT_ALLOWED_CLIENTS) {
    this.ranges = cidrs.map(parseCidr);
  }

  allows(address: string | undefined): boolean {
    if (!address) return false;
    const addr = unmapIPv4(address);
    const family = net.isIP(addr.split('%')[0]);
    if (family !== 4 && family !== 6) return false;
    const bits = addressBits(addr, family);
    const width = family === 4 ? 32 : 128;
    return this.ranges.some((r) => r.family === family && maskTo(bits, width, r.prefix) === r.bits);
  }

  describe(): string {
    return this.ranges.map((r) => r.text).join(', ');
  }
}
