/**
 * Protocol upgrades (WebSocket): the handshake is forwarded and recorded as an HTTP flow tagged
 * `websocket`; after a 101 the two sockets are joined and relayed as they are.
 */
import * as http from 'http';
import * as https from 'https';
import type * as net from 'net';
import { performance } from 'perf_hooks';
import { baseFlow, describeConnection, describeUpstreamError, forwardHeaders, resolveRequest, withHost } from './http-forwarder';
import { isDestinationRefused, markRefused } from './destination-guard';
import { headerPairs } from './recording';
import type { ProxyRuntime } from './runtime';
import { tuneSocket, upstreamLookup, upstreamTlsOptions } from './upstream';

function writeRawResponse(socket: net.Socket, status: number, message: string, rawHeaders: readonly string[]): void {
  let head = `HTTP/1.1 ${status} ${message}\r\n`;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) head += `${rawHeaders[i]}: ${rawHeaders[i + 1]}\r\n`;
  socket.write(head + '\r\n');
}

function refuseSocket(socket: net.Socket, status: number, reason: string, text: string): void {
  if (!socket.writable) return void socket.destroy();
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text) + 1}\r\nConnection: close\r\n\r\n${text}\n`);
}

/** The body is relayed as decoded by node and the connection closed after it: no chunking header. */
function withoutChunking(raw: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i].toLowerCase() !== 'transfer-encoding') out.push(raw[i], raw[i + 1]);
  return out;
}

export function handleUpgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer, rt: ProxyRuntime): void {
  const info = rt.connections.get(socket) ?? { clientIp: socket.remoteAddress ?? '', clientPort: socket.remotePort };
  info.requests = (info.requests ?? 0) + 1;
  const t0 = performance.now();
  const flow = baseFlow(info, Date.now());
  describeConnection(flow, info);
  flow.method = req.method;
  flow.requestHeaders = headerPairs(req.rawHeaders);
  flow.tags.push('websocket');
  socket.on('error', () => socket.destroy());

  let resolved;
  try {
    resolved = resolveRequest(req, info, rt);
  } catch (err) {
    flow.url = (req.url ?? '').slice(0, 2048);
    flow.error = `refused upgrade: ${(err as Error).message}`;
    flow.responseStatus = 400;
    flow.endedAt = Date.now();
    rt.recorder.record(flow);
    refuseSocket(socket, 400, 'Bad Request', `phonehome: bad request target: ${(err as Error).message}`);
    return;
  }
  if (resolved.toProxyItself) return refuseSocket(socket, 400, 'Bad Request', 'phonehome: no upgrades here');
  flow.scheme = resolved.scheme;
  flow.host = resolved.target.host;
  flow.port = resolved.target.port;
  flow.url = resolved.url;
  const refusal = info.tunnel ? undefined : rt.upstream.guard.check(resolved.target.host, resolved.target.port);
  if (refusal) {
    markRefused(flow, refusal);
    flow.endedAt = Date.now();
    rt.recorder.record(flow);
    rt.log(`403 to ${info.clientIp}: upgrade to ${resolved.url.slice(0, 200)}: ${refusal.message}`);
    return refuseSocket(socket, 403, 'Forbidden', `phonehome: ${refusal.message}`);
  }

  const options: https.RequestOptions = {
    method: req.method,
    host: resolved.target.host,
    port: resolved.target.port,
    path: resolved.path,
    headers: withHost(forwardHeaders(req.rawHeaders, true), resolved.urlHost) as unknown as http.OutgoingHttpHeaders,
    lookup: upstreamLookup(rt.upstream, resolved.target.port),
    setHost: false,
    agent: info.tunnel?.agent ?? false,
  };
  if (resolved.scheme === 'https') Object.assign(options, upstreamTlsOptions(rt.upstream, info.tunnel?.sni ?? resolved.target.host));
  const upReq = resolved.scheme === 'https' ? https.request(options) : http.request(options);
  const done = (status: number | undefined, error?: string) => {
    flow.responseStatus = status;
    flow.error = error;
    flow.endedAt = Date.now();
    flow.timings.totalMs = Math.round(performance.now() - t0);
    rt.recorder.record(flow);
  };
  upReq.on('socket', (s) => {
    rt.track(s);
    tuneSocket(s, rt.upstream.idleTimeoutMs);
  });
  upReq.on('upgrade', (upRes, upSocket, upHead) => {
    flow.serverIp = upSocket.remoteAddress;
    flow.responseHeaders = headerPairs(upRes.rawHeaders);
    done(upRes.statusCode);
    writeRawResponse(socket, upRes.statusCode ?? 101, upRes.statusMessage ?? 'Switching Protocols', upRes.rawHeaders);
    if (upHead.length) socket.write(upHead);
    if (head.length) upSocket.write(head);
    upSocket.setTimeout(rt.idleTimeoutMs, () => upSocket.destroy());
    socket.setTimeout(rt.idleTimeoutMs, () => socket.destroy());
    upSocket.on('error', () => socket.destroy());
    socket.on('close', () => upSocket.destroy());
    upSocket.on('close', () => socket.destroy());
    upSocket.pipe(socket);
    socket.pipe(upSocket);
  });
  upReq.on('response', (upRes) => {
    flow.responseHeaders = headerPairs(upRes.rawHeaders);
    done(upRes.statusCode, 'server declined the upgrade');
    writeRawResponse(socket, upRes.statusCode ?? 502, upRes.statusMessage ?? '', [...withoutChunking(forwardHeaders(upRes.rawHeaders)), 'Connection', 'close']);
    upRes.pipe(socket);
  });
  upReq.on('error', (err) => {
    if (isDestinationRefused(err)) {
      markRefused(flow, err.refusal);
      done(403, err.message);
      return refuseSocket(socket, 403, 'Forbidden', `phonehome: ${err.message}`);
    }
    const message = describeUpstreamError(err);
    done(502, message);
    refuseSocket(socket, 502, 'Bad Gateway', `phonehome: ${message}`);
  });
  socket.on('close', () => upReq.destroy());
  upReq.end();
}
