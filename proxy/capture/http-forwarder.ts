/**
 * Forwards one HTTP request from a phone to its server and records the exchange.
 *
 * Why our own forwarding rather than http-mitm-proxy's request path: the library's engine runs only
 * behind its own CONNECT server and filter chain, whose measured defects (no backpressure, Nagle
 * stalls, hook bugs, crash on bad ports, internal hop to 0.0.0.0 — see notes/http-mitm-proxy.md)
 * sit in exactly that path; containing them meant patching its internals. Node's http client and
 * server, driven directly, give pipe() backpressure, keep-alive agents we own, setNoDelay and
 * timeouts on every socket, in a page of code. The library stays a dependency (package.json) but
 * is not in the data path.
 */
import * as http from 'http';
import * as https from 'https';
import { performance } from 'perf_hooks';
import type { Flow, Header } from '../flow';
import { emptyBody } from '../flow';
import { isDestinationRefused, markRefused } from './destination-guard';
import { BodyTap, headerPairs } from './recording';
import type { ConnectionInfo, ProxyRuntime } from './runtime';
import { formatAuthority, InvalidTargetError, parseAuthority, Target } from './target';
import { tuneSocket, upstreamLookup, upstreamTlsOptions } from './upstream';

/** Hop-by-hop headers (RFC 9110 §7.6.1) are between the phone and us, not for the server. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect']);

export function forwardHeaders(raw: readonly string[], keepUpgrade = false): string[] {
  const connectionTokens = new Set<string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const n = raw[i].toLowerCase();
    if (n === 'connection' || n === 'proxy-connection') for (const t of raw[i + 1].split(',')) connectionTokens.add(t.trim().toLowerCase());
  }
  const out: string[] = [];
  let chunked = false;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const n = raw[i].toLowerCase();
    if (n === 'transfer-encoding') chunked ||= /chunked/i.test(raw[i + 1]);
    if (keepUpgrade && (n === 'upgrade' || n === 'connection')) {
      out.push(raw[i], raw[i + 1]);
      continue;
    }
    if (HOP_BY_HOP.has(n) || (connectionTokens.has(n) && !(keepUpgrade && n === 'upgrade'))) continue;
    out.push(raw[i], raw[i + 1]);
  }
  // Let node re-chunk: a declared chunked body stays chunked on the next hop.
  if (chunked) out.push('Transfer-Encoding', 'chunked');
  return out;
}

export interface ResolvedRequest {
  scheme: 'http' | 'https';
  target: Target;
  /** Host for the URL (Host header when valid, else the target). */
  urlHost: string;
  path: string;
  url: string;
  viaTunnel: boolean;
  toProxyItself: boolean;
}

const ABSOLUTE_URL = /^(https?):\/\/([^/?#]*)([^#]*)/i;

/** Works out where a request goes; throws InvalidTargetError for a target we must refuse (400). */
export function resolveRequest(req: http.IncomingMessage, info: ConnectionInfo, rt: ProxyRuntime): ResolvedRequest {
  const rawUrl = req.url ?? '/';
  const hostHeader = req.headers.host;
  if (info.tunnel) {
    const scheme = info.tunnel.tls ? 'https' : 'http';
    const defaultPort = scheme === 'https' ? 443 : 80;
    let urlHost = formatAuthority(info.tunnel.target.host, info.tunnel.target.port, defaultPort);
    if (hostHeader) urlHost = formatAuthorityOf(parseAuthority(hostHeader, defaultPort), defaultPort);
    const path = rawUrl.startsWith('/') ? rawUrl : (ABSOLUTE_URL.exec(rawUrl)?.[3] || '/');
    const target = info.tunnel.target;
    return { scheme, target, urlHost, path, url: `${scheme}://${urlHost}${path}`, viaTunnel: true, toProxyItself: target.host === SETUP_HOST };
  }
  const m = ABSOLUTE_URL.exec(rawUrl);
  if (!m) {
    // Origin-form straight to the proxy port: the phone browsing to http://<laptop>:8080/.
    const target = hostHeader ? parseAuthority(hostHeader, 80) : { host: SETUP_HOST, port: 80, isIp: false };
    return { scheme: 'http', target, urlHost: hostHeader ?? SETUP_HOST, path: rawUrl, url: `http://${hostHeader ?? SETUP_HOST}${rawUrl}`, viaTunnel: false, toProxyItself: true };
  }
  const scheme = m[1].toLowerCase() as 'http' | 'https';
  const defaultPort = scheme === 'https' ? 443 : 80;
  const target = parseAuthority(m[2].replace(/^[^@]*@/, ''), defaultPort);
  const path = m[3] || '/';
  const urlHost = formatAuthorityOf(target, defaultPort);
  const toProxyItself = target.host === SETUP_HOST || rt.isProxyItself(target, req.socket.localAddress);
  return { scheme, target, urlHost, path, url: `${scheme}://${urlHost}${path}`, viaTunnel: false, toProxyItself };
}

export const SETUP_HOST = 'phonehome.setup';

function hostOfAuthority(authority: string): string | undefined {
  try {
    return parseAuthority(authority, 1).host;
  } catch {
    return undefined;
  }
}

function formatAuthorityOf(t: Target, defaultPort: number): string {
  return formatAuthority(t.host, t.port, defaultPort);
}

export function baseFlow(info: ConnectionInfo, startedAt: number): Flow {
  return {
    kind: 'http',
    source: info.source ?? 'proxy',
    startedAt,
    clientIp: info.clientIp,
    clientPort: info.clientPort,
    scheme: 'http',
    host: '',
    port: 0,
    tls: false,
    requestHeaders: [],
    requestBody: emptyBody(),
    responseHeaders: [],
    responseBody: emptyBody(),
    timings: {},
    tags: [],
  };
}

/** Fills in what the phone's connection says about itself (tunnel, TLS, SNI...). */
export function describeConnection(flow: Flow, info: ConnectionInfo): void {
  const t = info.tunnel;
  if (!t) return;
  flow.tls = t.tls;
  flow.sni = t.sni;
  flow.alpn = t.alpn;
  flow.serverIp = t.serverIp;
  flow.tlsVersion = t.tlsVersion;
}

export function refuse(res: http.ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: http.OutgoingHttpHeaders = { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(message) + 1, 'X-Phonehome': 'error' };
  // After a request we could not make sense of, the connection's framing cannot be trusted either.
  if (status === 400) headers['Connection'] = 'close';
  res.writeHead(status, headers);
  res.end(message + '\n');
}

export function handleRequest(req: http.IncomingMessage, res: http.ServerResponse, rt: ProxyRuntime): void {
  const info = rt.connections.get(req.socket) ?? { clientIp: req.socket.remoteAddress ?? '', clientPort: req.socket.remotePort };
  info.requests = (info.requests ?? 0) + 1;
  if (info.tunnel?.tls) rt.silentCloses.delete(info.tunnel.sni ?? info.tunnel.target.host);
  const t0 = performance.now();
  const flow = baseFlow(info, Date.now());
  describeConnection(flow, info);
  flow.method = req.method;
  flow.requestHeaders = headerPairs(req.rawHeaders);
  flow.httpVersion = req.httpVersion;

  let resolved: ResolvedRequest;
  try {
    resolved = resolveRequest(req, info, rt);
  } catch (err) {
    const message = err instanceof InvalidTargetError ? err.message : String(err);
    flow.url = (req.url ?? '').slice(0, 2048);
    flow.error = `refused request: ${message}`;
    flow.responseStatus = 400;
    flow.endedAt = Date.now();
    rt.recorder.record(flow);
    rt.log(`400 to ${info.clientIp}: ${message} (${JSON.stringify((req.url ?? '').slice(0, 100))})`);
    req.resume();
    refuse(res, 400, `phonehome: bad request target: ${message}`);
    return;
  }
  if (resolved.toProxyItself) {
    req.resume();
    rt.serveSetup(req, res);
    return;
  }

  flow.scheme = resolved.scheme;
  flow.host = resolved.target.host;
  flow.port = resolved.target.port;
  // VPN mode dials the IP the phone chose; the name it meant is in the Host header.
  if (info.source === 'vpn' && resolved.target.isIp) flow.host = hostOfAuthority(resolved.urlHost) ?? flow.host;
  flow.url = resolved.url;
  if (resolved.scheme === 'https' && !info.tunnel) flow.tls = false; // absolute https:// URL sent in clear to the proxy
  const ignored = rt.ignoreHosts.matches(resolved.target.host);
  if (ignored) flow.tags.push('ignored-host');
  if (!rt.upstream.verify && resolved.scheme === 'https') flow.tags.push('upstream-insecure');
  // A tunnel's target was checked when the tunnel opened; a proxied URL is checked here.
  const refusal = info.tunnel ? undefined : rt.upstream.guard.check(resolved.target.host, resolved.target.port);
  if (refusal) {
    markRefused(flow, refusal);
    flow.endedAt = Date.now();
    rt.recorder.record(flow);
    rt.log(`403 to ${info.clientIp}: ${resolved.url.slice(0, 200)}: ${refusal.message}`);
    req.resume();
    refuse(res, 403, `phonehome: ${refusal.message}`);
    return;
  }
  const limit = ignored ? 0 : rt.bodyLimit;
  const reqTap = new BodyTap(limit);
  const resTap = new BodyTap(limit);

  const options: https.RequestOptions = {
    method: req.method,
    host: resolved.target.host,
    port: resolved.target.port,
    path: resolved.path,
    headers: withHost(forwardHeaders(req.rawHeaders), resolved.urlHost) as unknown as http.OutgoingHttpHeaders,
    lookup: upstreamLookup(rt.upstream, resolved.target.port),
    setHost: false,
  };
  let upReq: http.ClientRequest;
  if (resolved.scheme === 'https') {
    Object.assign(options, upstreamTlsOptions(rt.upstream, info.tunnel?.sni ?? resolved.target.host));
    options.agent = info.tunnel?.agent ?? rt.httpsAgent;
    upReq = https.request(options);
  } else {
    options.agent = info.tunnel?.agent ?? rt.httpAgent;
    upReq = http.request(options);
  }

  let finished = false;
  /** Records the flow once; `then` runs when it is stored (or could not be). */
  const finish = (error?: string, then?: () => void) => {
    if (finished) return;
    finished = true;
    flow.endedAt = Date.now();
    flow.timings.totalMs = round(performance.now() - t0);
    flow.requestBody = reqTap.toBody();
    flow.responseBody = resTap.toBody();
    if (error && !flow.error) flow.error = error;
    rt.recorder.record(flow, then && (() => then()));
  };

  upReq.on('socket', (s) => {
    rt.track(s);
    tuneSocket(s, rt.upstream.idleTimeoutMs);
    // Keep-alive sockets are reused: listen for 'connect' only on a fresh one, or listeners pile up.
    if (s.remoteAddress) flow.serverIp ??= s.remoteAddress;
    else if (s.connecting) s.once('connect', () => (flow.serverIp ??= s.remoteAddress));
  });
  upReq.setTimeout(rt.upstream.idleTimeoutMs, () => upReq.destroy(new Error(`upstream idle for ${rt.upstream.idleTimeoutMs} ms`)));
  req.on('data', (chunk: Buffer) => reqTap.add(chunk));
  req.on('end', () => (flow.timings.requestSentMs = round(performance.now() - t0)));
  req.pipe(upReq);
  req.on('error', () => upReq.destroy());
  res.on('close', () => {
    if (!res.writableFinished) {
      upReq.destroy();
      finish('client closed the connection before the response was complete');
    }
  });

  upReq.on('response', (upRes) => {
    flow.timings.firstByteMs = round(performance.now() - t0);
    flow.responseStatus = upRes.statusCode;
    flow.responseHeaders = headerPairs(upRes.rawHeaders);
    try {
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, forwardHeaders(upRes.rawHeaders) as unknown as http.OutgoingHttpHeaders);
    } catch (err) {
      upRes.destroy();
      flow.responseStatus = 502;
      finish(`unforwardable response from server: ${(err as Error).message}`);
      refuse(res, 502, 'phonehome: the server sent a response that cannot be forwarded');
      return;
    }
    relayResponseBody(upRes, res, resTap, (release) => finish(undefined, release));
    upRes.on('error', (err) => {
      finish(`response from server failed: ${err.message}`);
      res.destroy();
    });
    upRes.on('aborted', () => {
      finish('server closed the connection before the response was complete');
      res.destroy();
    });
  });

  upReq.on('error', (err) => {
    const message = describeUpstreamError(err);
    if (isDestinationRefused(err) && !res.headersSent) {
      markRefused(flow, err.refusal);
      finish();
      rt.log(`403 to ${info.clientIp}: ${resolved.url.slice(0, 200)}: ${err.message}`);
      req.resume();
      refuse(res, 403, `phonehome: ${err.message}`);
    } else if (!res.headersSent) {
      flow.responseStatus = 502;
      flow.responseHeaders = [];
      finish(message);
      req.resume();
      refuse(res, 502, `phonehome: ${message}`);
    } else {
      finish(message);
      res.destroy();
    }
  });
}

/**
 * Streams a response to the phone with backpressure, and stores the flow before the phone can see
 * the response complete: the final piece (the last bytes of a Content-Length body, or the closing
 * chunk written by end()) is released only once the recorder has stored the flow. A flow the phone
 * received is a flow in the database, even if the process is killed right after.
 */
function relayResponseBody(upRes: http.IncomingMessage, res: http.ServerResponse, tap: BodyTap, store: (release: () => void) => void): void {
  const declared = /^\d+$/.test(upRes.headers['content-length'] ?? '') ? Number(upRes.headers['content-length']) : -1;
  let received = 0;
  let held: Buffer | undefined;
  upRes.on('data', (chunk: Buffer) => {
    tap.add(chunk);
    received += chunk.length;
    if (declared >= 0 && received >= declared) {
      held = held ? Buffer.concat([held, chunk]) : chunk;
      return;
    }
    if (!res.write(chunk)) {
      upRes.pause();
      res.once('drain', () => upRes.resume());
    }
  });
  upRes.on('end', () => {
    // The recorder stores at the end of this event-loop turn (with the other flows that ended in it).
    store(() => {
      if (held) res.end(held);
      else res.end();
    });
  });
}

/** HTTP/1.0 clients may omit Host; servers need it. */
export function withHost(headers: string[], urlHost: string): string[] {
  for (let i = 0; i < headers.length; i += 2) if (headers[i].toLowerCase() === 'host') return headers;
  return ['Host', urlHost, ...headers];
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

export function describeUpstreamError(err: Error & { code?: string }): string {
  const code = err.code ? ` (${err.code})` : '';
  if (err.code && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS_CERT_ALTNAME/.test(err.code)) {
    return `upstream TLS verification failed: ${err.message}${code}`;
  }
  return `upstream: ${err.message}${code}`;
}

export type { Header };
