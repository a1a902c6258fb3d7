/**
 * The Internet checksum (RFC 1071) and the pseudo-headers TCP, UDP and ICMPv6 put under it
 * (RFC 793/768 for IPv4, RFC 8200 8.1 for IPv6). One place, so every packet the tunnel builds and
 * every packet it checks use the same arithmetic.
 */

/** Adds the 16-bit big-endian words of buf[start, end) to `sum` (an odd last byte is padded with zero). */
export function sumWords(buf: Buffer, start = 0, end = buf.length, sum = 0): number {
  let i = start;
  for (; i + 1 < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (i < end) sum += buf[i] << 8;
  // Fold occasionally so the sum stays a small integer even for 64 KiB packets.
  return sum > 0x7fffffff ? fold(sum) : sum;
}

export function fold(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return s;
}

/** The checksum field value for data whose words sum to `sum`. */
export function finish(sum: number): number {
  return ~fold(sum) & 0xffff;
}

/** Sum of the pseudo-header for a transport segment of `length` bytes and protocol `proto`. */
export function pseudoHeaderSum(src: Buffer, dst: Buffer, proto: number, length: number): number {
  let sum = sumWords(src) + sumWords(dst);
  if (src.length === 4) return sum + proto + length;
  sum += Math.floor(length / 0x10000) + (length & 0xffff);
  return sum + proto;
}

/** Checksum of a transport segment (its checksum field must be zero while computing). */
export function transportChecksum(src: Buffer, dst: Buffer, proto: number, segment: Buffer): number {
  return finish(sumWords(segment, 0, segment.length, pseudoHeaderSum(src, dst, proto, segment.length)));
}

/** True when a received segment (checksum field included) verifies. */
export function transportChecksumOk(src: Buffer, dst: Buffer, proto: number, segment: Buffer): boolean {
  return fold(sumWords(segment, 0, segment.length, pseudoHeaderSum(src, dst, proto, segment.length))) === 0xffff;
}
