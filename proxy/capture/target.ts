/**
 * Where a phone asked to go, validated before anything acts on it. The proxy library we replaced in
 * the path crashed on `Host: x:99999` and wrote files for `CONNECT ../../x:443`; here every host and
 * port is checked once, at the edge, and only a validated Target travels further.
 */
import * as net from 'net';

export interface Target {
  /** Lowercase hostname, or an IP literal without brackets. */
  host: string;
  port: number;
  /** True when host is an IP literal. */
  isIp: boolean;
}

export class InvalidTargetError extends Error {}

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** A DNS hostname as found in URLs, CONNECT lines and SNI (underscores tolerated: they occur in the wild). */
export function isValidHostname(host: string): boolean {
  if (host.length === 0 || host.length > 253) return false;
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  if (!name) return false;
  return name.split('.').every((label) => LABEL.test(label));
}

/**
 * Parses `host`, `host:port`, `[v6]`, `[v6]:port` (an authority as in a CONNECT line, a Host
 * header or a URL). Throws InvalidTargetError with a message safe to show the client.
 */
export function parseAuthority(authority: string, defaultPort?: number): Target {
  const text = authority.trim();
  let host: string;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) throw new InvalidTargetError('unterminated IPv6 literal');
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest) {
      if (!rest.startsWith(':')) throw new InvalidTargetError('junk after IPv6 literal');
      portText = rest.slice(1);
    }
    if (net.isIP(host) !== 6) throw new InvalidTargetError('invalid IPv6 literal');
  } else {
    const colon = text.lastIndexOf(':');
    if (colon >= 0) {
      if (text.indexOf(':') !== colon) throw new InvalidTargetError('IPv6 addresses must be in brackets');
      host = text.slice(0, colon);
      portText = text.slice(colon + 1);
    } else host = text;
  }
  let port: number;
  if (portText === undefined) {
    if (defaultPort === undefined) throw new InvalidTargetError('port missing');
    port = defaultPort;
  } else {
    if (!/^\d{1,5}$/.test(portText)) throw new InvalidTargetError(`invalid port '${portText.slice(0, 20)}'`);
    port = Number(portText);
  }
  if (port < 1 || port > 65535) throw new InvalidTargetError(`port ${port} out of range 1-65535`);
  host = host.toLowerCase();
  const ipFamily = net.isIP(host);
  if (ipFamily) return { host, port, isIp: true };
  if (!isValidHostname(host)) throw new InvalidTargetError('invalid hostname');
  if (host.endsWith('.')) host = host.slice(0, -1);
  return { host, port, isIp: false };
}

/** host:port with IPv6 literals bracketed, for URLs and log lines. */
export function formatAuthority(host: string, port: number, defaultPort?: number): string {
  const h = net.isIP(host) === 6 ? `[${host}]` : host;
  return port === defaultPort ? h : `${h}:${port}`;
}

/**
 * `--ignore-hosts`: exact names (`example.com`) and leading wildcards (`*.apple.com`, which matches
 * any subdomain but not apple.com itself). Case-insensitive.
 */
export class HostPatternList {
  private readonly exact = new Set<string>();
  private readonly suffixes: string[] = [];

  constructor(patterns: readonly string[]) {
    for (const raw of patterns) {
      const p = raw.trim().toLowerCase();
      if (!p) continue;
      if (p.startsWith('*.')) {
        const suffix = p.slice(1);
        if (!isValidHostname(suffix.slice(1))) throw new InvalidTargetError(`invalid host pattern '${raw}'`);
        this.suffixes.push(suffix);
      } else {
        if (!isValidHostname(p) && !net.isIP(p)) throw new InvalidTargetError(`invalid host pattern '${raw}' (use example.com or *.example.com)`);
        this.exact.add(p);
      }
    }
  }

  matches(host: string | undefined): boolean {
    if (!host) return false;
    const h = host.toLowerCase();
    return this.exact.has(h) || this.suffixes.some((s) => h.endsWith(s));
  }

  get empty(): boolean {
    return this.exact.size === 0 && this.suffixes.length === 0;
  }
}
