/**
 * An H2Exchange as a Flow (proxy/flow.ts), so HTTP/2 streams are stored, analysed and shown like
 * every other request. Integrators pass only what they know of the connection:
 *
 *   exchangeToFlow(ex, { source: 'pcap', clientIp, clientPort, serverIp, serverPort: 443,
 *                        tls: true, sni, alpn: 'h2', tlsVersion, tags: ['imported-pcap', 'tls-decrypted'] })
 *
 * What it decides: http_version '2'; the URL from :scheme, :authority (else Host, else SNI, else the
 * server address) and :path; pseudo-headers left out of the header lists (the URL and method carry
 * them); trailers appended after the headers, as the HTTP/1 parsers do with chunked trailers (so
 * grpc-status is in responseHeaders); timings relative to the stream's first frame. Tags added:
 *   body-truncated  a body was cut at the body limit      capture-gap    reading stopped at capture loss
 *   stream-reset    RST_STREAM ended the stream           goaway-refused a GOAWAY said it was never processed
 *   server-push     the server pushed it                  h2c            cleartext HTTP/2
 *   grpc            Content-Type application/grpc…        grpc-error     grpc-status present and not 0
 *   h2-malformed    the peer broke an RFC 9113 rule on this stream (the reasons are in `error`)
 */
import type { Flow, FlowSource, Header } from '../../flow';
import type { H2Exchange } from './exchange';

export interface H2ConnectionFacts {
  source: FlowSource;
  clientIp: string;
  clientPort?: number;
  serverIp?: string;
  /** The port the client connected to. */
  serverPort: number;
  tls: boolean;
  sni?: string;
  /** Default: 'h2' over TLS. */
  alpn?: string;
  tlsVersion?: string;
  /** Tags every flow of this connection carries ('imported-pcap', 'tls-decrypted'…), first. */
  tags?: readonly string[];
}

export function exchangeToFlow(ex: H2Exchange, facts: H2ConnectionFacts): Flow {
  const scheme = ex.scheme === 'http' || ex.scheme === 'https' ? ex.scheme : facts.tls ? 'https' : 'http';
  const authority = ex.authority ?? firstHeader(ex.requestHeaders, 'host') ?? facts.sni ?? bracketed(facts.serverIp ?? '');
  const target = ex.path !== undefined && ex.path.startsWith('/') ? ex.path : ex.path === '*' || ex.path === undefined ? '/' : `/${ex.path}`;
  const { url, host, port } = urlOf(scheme, authority, target, facts);
  const start = ex.timings.firstFrameTs;
  const since = (ts: number | undefined) => (ts === undefined ? undefined : Math.max(0, ts - start));
  const tags: string[] = facts.tags ? [...facts.tags] : [];
  const add = (tag: string) => {
    if (!tags.includes(tag)) tags.push(tag);
  };
  if (!facts.tls) add('h2c');
  if (ex.requestBody.truncated || ex.responseBody.truncated) add('body-truncated');
  if (ex.captureGap) add('capture-gap');
  if (ex.reset) add('stream-reset');
  if (ex.refused) add('goaway-refused');
  if (ex.pushed) add('server-push');
  const contentType = firstHeader(ex.requestHeaders, 'content-type') ?? firstHeader(ex.responseHeaders, 'content-type');
  if (contentType !== undefined && /^application\/grpc/i.test(contentType.trim())) add('grpc');
  const grpcStatus = firstHeader(ex.responseTrailers, 'grpc-status') ?? firstHeader(ex.responseHeaders, 'grpc-status');
  if (grpcStatus !== undefined && grpcStatus.trim() !== '0') add('grpc-error');
  if (ex.notes.length) add('h2-malformed');
  const errors = ex.error !== undefined ? [ex.error, ...ex.notes] : ex.notes;
  const flow: Flow = {
    kind: 'http',
    source: facts.source,
    startedAt: start,
    endedAt: ex.timings.lastFrameTs,
    clientIp: facts.clientIp,
    clientPort: facts.clientPort,
    method: ex.method,
    url,
    scheme,
    host,
    port,
    serverIp: facts.serverIp,
    tls: facts.tls,
    sni: facts.sni,
    alpn: facts.alpn ?? (facts.tls ? 'h2' : undefined),
    tlsVersion: facts.tlsVersion,
    httpVersion: '2',
    requestHeaders: ex.requestTrailers.length ? [...ex.requestHeaders, ...ex.requestTrailers] : ex.requestHeaders,
    requestBody: ex.requestBody,
    responseStatus: ex.status,
    responseHeaders: ex.responseTrailers.length ? [...ex.responseHeaders, ...ex.responseTrailers] : ex.responseHeaders,
    responseBody: ex.responseBody,
    timings: {
      requestSentMs: since(ex.timings.requestEndTs),
      firstByteMs: since(ex.timings.responseHeadersTs),
      totalMs: since(ex.timings.responseEndTs ?? (ex.error !== undefined ? ex.timings.lastFrameTs : undefined)),
    },
    error: errors.length ? errors.join('; ') : undefined,
    tags,
  };
  return flow;
}

function firstHeader(headers: Header[], lowerName: string): string | undefined {
  for (const h of headers) if (h[0].length === lowerName.length && h[0].toLowerCase() === lowerName) return h[1];
  return undefined;
}

function bracketed(ip: string): string {
  return ip.includes(':') ? `[${ip}]` : ip;
}

/** The URL as WHATWG URL writes it; an authority it cannot parse falls back to the connection's address. */
function urlOf(scheme: 'http' | 'https', authority: string, target: string, facts: H2ConnectionFacts): { url: string; host: string; port: number } {
  const defaultPort = scheme === 'https' ? 443 : 80;
  for (const a of [authority, bracketed(facts.serverIp ?? '')]) {
    if (!a || /[\s/?#@\\]/.test(a)) continue;
    try {
      const u = new URL(`${scheme}://${a}${target}`);
      /* An authority without a port names the default one; the connection's port tells the truth otherwise. */
      const hasPort = /:\d+$/.test(a);
      const port = hasPort ? Number(u.port || defaultPort) : facts.serverPort;
      if (!hasPort && port !== defaultPort) u.port = String(port);
      return { url: u.href, host: u.hostname.replace(/^\[|\]$/g, ''), port };
    } catch {
      /* try the next */
    }
  }
  const host = facts.serverIp ?? '';
  return { url: `${scheme}://${bracketed(host)}:${facts.serverPort}${target}`, host, port: facts.serverPort };
}
