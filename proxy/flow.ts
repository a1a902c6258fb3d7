/**
 * The Flow record: what every capture path (explicit proxy, WireGuard tunnel, HAR/pcap import)
 * produces, and what analysis, storage and the dashboard consume. Keeping one shape here is what
 * lets everything after capture be shared (see DESIGN.md, "The pipeline").
 */

/** A header as sent: original name casing and order are kept (repeated names allowed). */
export type Header = [name: string, value: string];

/** A body as sent on the wire (transfer-encoding removed, content-encoding kept), capped. */
export interface Body {
  /** Raw bytes, at most the body limit. */
  bytes: Buffer;
  /** True length in bytes, even when `bytes` was cut. */
  size: number;
  /** True when `bytes` holds less than `size`. */
  truncated: boolean;
}

/**
 * http: one request (and its response, if any).
 * tls-failure: a TLS handshake that failed (pinning, unknown CA, garbage) — recorded with its SNI.
 * raw: a tunnel that carried neither TLS we intercepted nor HTTP; relayed and logged with its first bytes.
 * dns: one DNS query (VPN mode, pcap import): host = the name asked for, so detection sees it; the
 *   query and its answers are also in the `dns` table (dns.flow_id points here).
 * udp: a UDP conversation relayed (VPN mode) or seen (pcap), with its first bytes as request body.
 */
export type FlowKind = 'http' | 'tls-failure' | 'raw' | 'dns' | 'udp';

export type FlowSource = 'proxy' | 'vpn' | 'har' | 'pcap';

export interface FlowTimings {
  /** ms from flow start until the upstream TCP connection was up. */
  connectMs?: number;
  /** ms from flow start until the upstream TLS handshake finished. */
  tlsMs?: number;
  /** ms from flow start until the request was fully sent upstream. */
  requestSentMs?: number;
  /** ms from flow start until the first response byte. */
  firstByteMs?: number;
  /** ms from flow start until the response was fully delivered to the client. */
  totalMs?: number;
}

export interface Flow {
  /** Row id once stored. */
  id?: number;
  kind: FlowKind;
  source: FlowSource;
  /** Epoch milliseconds. */
  startedAt: number;
  endedAt?: number;
  /** The phone: its address as the proxy saw it (device key for now). */
  clientIp: string;
  clientPort?: number;
  method?: string;
  /** Absolute URL (scheme://host[:port]/path?query). */
  url?: string;
  /** 'http' | 'https' for HTTP flows; 'tcp' | 'tls' for raw tunnels and TLS failures; 'dns' | 'udp' for datagrams. */
  scheme: 'http' | 'https' | 'tcp' | 'tls' | 'dns' | 'udp';
  host: string;
  port: number;
  /** Upstream address actually dialled, when known. */
  serverIp?: string;
  /** True when the phone used TLS on this connection (cleartext otherwise). */
  tls: boolean;
  sni?: string;
  /** ALPN protocols the client offered (comma-separated) or the one negotiated. */
  alpn?: string;
  /** TLS version the phone negotiated with us (e.g. 'TLSv1.3'), or offered when not intercepted. */
  tlsVersion?: string;
  /** HTTP version of the phone's request ('1.1', '1.0'). */
  httpVersion?: string;
  requestHeaders: Header[];
  requestBody: Body;
  responseStatus?: number;
  responseHeaders: Header[];
  responseBody: Body;
  timings: FlowTimings;
  /** Errors are data: why this flow failed (upstream refused, TLS verify failed, client rejected our certificate...). */
  error?: string;
  /** Short machine-readable labels: 'ignored-host', 'pinning-suspected', 'upstream-insecure', 'body-truncated'... */
  tags: string[];
}

export const EMPTY_BODY: Body = Object.freeze({ bytes: Buffer.alloc(0), size: 0, truncated: false }) as Body;

export function emptyBody(): Body {
  return { bytes: Buffer.alloc(0), size: 0, truncated: false };
}

/**
 * True when s has `lower` (lower-case letters and punctuation) at `at` in any case: what
 * `toLowerCase() === lower` says of latin1 text (no other latin1 character lower-cases to ASCII),
 * without making the lower-case copy.
 */
export function namedAt(s: string, at: number, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    const c = s.charCodeAt(at + i);
    const t = lower.charCodeAt(i);
    if (c !== t && !(t >= 97 && t <= 122 && c === t - 32)) return false;
  }
  return true;
}

/** Case-insensitive first header value. */
export function headerValue(headers: Header[], name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [n, v] of headers) if (n.toLowerCase() === lower) return v;
  return undefined;
}
