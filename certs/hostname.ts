/**
 * Why: leaf certificates are minted for names chosen by whoever connects (SNI, CONNECT host),
 * which is hostile input. Only real DNS names and IP literals are accepted, normalised so that
 * one host maps to one cache entry; nothing else ever reaches the minting code.
 */
import * as net from 'net';

export class InvalidHostnameError extends Error {
  constructor(readonly hostname: string, reason: string) {
    super(`invalid hostname ${JSON.stringify(hostname.length > 80 ? hostname.slice(0, 80) + '…' : hostname)}: ${reason}`);
    this.name = 'InvalidHostnameError';
  }
}

export interface CertHostname {
  /** Lowercase DNS name without a trailing dot, or a canonical IP literal (no brackets). */
  name: string;
  ip: 4 | 6 | 0;
}

const DNS_LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const MAX_DNS_NAME = 253;

export function normalizeCertHostname(input: string): CertHostname {
  if (typeof input !== 'string' || input.length === 0) throw new InvalidHostnameError(String(input), 'empty');
  if (input.length > MAX_DNS_NAME + 2) throw new InvalidHostnameError(input, `longer than ${MAX_DNS_NAME} characters`);
  let host = input;
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const family = net.isIP(host);
  if (family === 4) return { name: host, ip: 4 };
  if (family === 6) {
    if (host.includes('%')) throw new InvalidHostnameError(input, 'IPv6 zone identifiers are not allowed');
    return { name: new URL(`http://[${host}]/`).hostname.slice(1, -1), ip: 6 };
  }
  host = host.toLowerCase();
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (host.length === 0 || host.length > MAX_DNS_NAME) throw new InvalidHostnameError(input, `must be 1 to ${MAX_DNS_NAME} characters`);
  for (const label of host.split('.')) {
    if (!DNS_LABEL.test(label)) {
      throw new InvalidHostnameError(input, 'only letters, digits, hyphens and underscores in dot-separated labels of 1 to 63 characters are allowed');
    }
  }
  return { name: host, ip: 0 };
}
