/**
 * Why: a flow to the laptop, the router or another machine on the LAN has no country or network
 * owner worth naming, and must never be "guessed" from a registry. This says which server
 * addresses are local — loopback, private, link-local, carrier-grade NAT, unique-local IPv6 —
 * without importing `net` (analysis stays free of socket modules).
 */

function ipv4Octets(ip: string): number[] | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) return undefined;
  const o = m.slice(1).map(Number);
  return o.every((x) => x <= 255) ? o : undefined;
}

function isLocalIpv4([a, b]: number[]): boolean {
  return (
    a === 127 || a === 10 || a === 0 ||
    (a === 169 && b === 254) ||
    (a === 172 && b! >= 16 && b! <= 31) ||
    (a === 192 && b === 168) ||
    (a === 100 && b! >= 64 && b! <= 127)
  );
}

/** True for loopback, private (RFC 1918), link-local, CGNAT, unspecified, ::1, fe80::/10, fc00::/7 and IPv4-mapped forms of them. */
export function isLocalAddress(input: string): boolean {
  let ip = input.trim().toLowerCase();
  if (ip.startsWith('[') && ip.endsWith(']')) ip = ip.slice(1, -1);
  ip = ip.replace(/%.*$/, '');
  const v4 = ipv4Octets(ip);
  if (v4) return isLocalIpv4(v4);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
  if (mapped) {
    const o = ipv4Octets(mapped[1]!);
    return o ? isLocalIpv4(o) : false;
  }
  if (!ip.includes(':') || !/^[0-9a-f:]+$/.test(ip)) return false;
  if (ip === '::1' || ip === '::') return true;
  const first = ip.startsWith('::') ? 0 : parseInt(ip.split(':')[0]!, 16);
  return (first & 0xffc0) === 0xfe80 || (first & 0xfe00) === 0xfc00;
}

/** An IP literal (v4 dotted quad or v6), brackets allowed. */
export function isIpLiteral(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (ipv4Octets(h)) return true;
  return h.includes(':') && /^[0-9a-f:.]+(%.+)?$/i.test(h);
}
