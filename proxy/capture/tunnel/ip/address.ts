/**
 * Textual <-> binary IP addresses without the socket layer: the tunnel sees raw packets and DNS
 * answers carry raw AAAA/A bytes, and node's `net` only validates strings. IPv6 text follows RFC
 * 5952 (lower case, longest zero run compressed), so the same address always prints the same way.
 */
import { isIPv4, isIPv6 } from 'node:net';

export function formatIpv4(b: Buffer, offset = 0): string {
  return `${b[offset]}.${b[offset + 1]}.${b[offset + 2]}.${b[offset + 3]}`;
}

export function formatIpv6(b: Buffer, offset = 0): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push(b.readUInt16BE(offset + i * 2));
  // Longest run of at least two zero words is written as '::' (RFC 5952 4.2).
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  // IPv4-mapped addresses keep their dotted tail (::ffff:1.2.3.4).
  if (bestStart === 0 && bestLen === 5 && words[5] === 0xffff) return `::ffff:${formatIpv4(b, offset + 12)}`;
  const hex = (ws: number[]): string => ws.map((w) => w.toString(16)).join(':');
  if (bestStart < 0) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
}

export function parseIpv4(s: string): Buffer {
  if (!isIPv4(s)) throw new Error(`not an IPv4 address: ${s}`);
  return Buffer.from(s.split('.').map((p) => Number(p)));
}

export function parseIpv6(s: string): Buffer {
  if (!isIPv6(s)) throw new Error(`not an IPv6 address: ${s}`);
  let text = s.replace(/%.*$/, '');
  const out = Buffer.alloc(16);
  // A dotted IPv4 tail becomes two hex words.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const v4 = parseIpv4(dotted[1]);
    text = text.slice(0, -dotted[1].length) + `${v4.readUInt16BE(0).toString(16)}:${v4.readUInt16BE(2).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const headWords = head ? head.split(':') : [];
  const tailWords = tail ? tail.split(':') : [];
  headWords.forEach((w, i) => out.writeUInt16BE(parseInt(w, 16), i * 2));
  tailWords.forEach((w, i) => out.writeUInt16BE(parseInt(w, 16), (8 - tailWords.length + i) * 2));
  return out;
}

/** 4 or 16 bytes for a textual address of either family. */
export function parseIp(s: string): Buffer {
  return isIPv4(s) ? parseIpv4(s) : parseIpv6(s);
}

/** Canonical text for an address string (so 'FD77:0::1' and 'fd77::1' compare equal). */
export function canonicalIp(s: string): string {
  if (isIPv4(s)) return s;
  return formatIpv6(parseIpv6(s));
}
