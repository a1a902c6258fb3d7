/**
 * CONNECT tunnels, owned end to end: validate the target, dial it before saying 200 (a refused
 * server is a 502 and a recorded flow), then hand the connection to the interception core
 * (intercept.ts: sniff, then TLS interception, the HTTP parser or a recorded raw relay), which
 * VPN mode's tunnelled TCP connections share.
 */
import type * as http from 'http';
import type * as net from 'net';
import { performance } from 'perf_hooks';
import { isDestinationRefused, markRefused, Refusal, SELF_REFUSED_TAG } from './destination-guard';
import { baseFlow, SETUP_HOST } from './http-forwarder';
import { interceptStream } from './intercept';
import type { ConnectionInfo, ProxyRuntime, TunnelInfo } from './runtime';
import { InvalidTargetError, parseAuthority, Target } from './target';
import { dial, tuneSocket } from './upstream';

function reply(socket: net.Socket, status: number, reason: string, text: string): void {
  if (!socket.writable) return void socket.destroy();
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text) + 1}\r\nConnection: close\r\n\r\n${text}\n`);
}

export async function handleConnect(req: http.IncomingMessage, client: net.Socket, head: Buffer, rt: ProxyRuntime): Promise<void> {
  const info: ConnectionInfo = { ...(rt.connections.get(client) ?? { clientIp: client.remoteAddress ?? '', clientPort: client.remotePort }) };
  const startedAt = Date.now();
  const t0 = performance.now();
  client.on('error', () => client.destroy());
  client.setTimeout(rt.idleTimeoutMs, () => client.destroy());

  let target: Target;
  try {
    target = parseAuthority(req.url ?? '');
  } catch (err) {
    const message = err instanceof InvalidTargetError ? err.message : String(err);
    const flow = baseFlow(info, startedAt);
    Object.assign(flow, { method: 'CONNECT', url: (req.url ?? '').slice(0, 2048), scheme: 'tcp', responseStatus: 400, error: `refused CONNECT: ${message}`, endedAt: Date.now() });
    rt.recorder.record(flow);
    rt.log(`400 to ${info.clientIp}: CONNECT ${JSON.stringify((req.url ?? '').slice(0, 100))}: ${message}`);
    return reply(client, 400, 'Bad Request', `phonehome: bad CONNECT target: ${message}`);
  }

  const toSetupPage = target.host === SETUP_HOST;
  const refuseTarget = (refusal: Refusal) => {
    const flow = baseFlow(info, startedAt);
    Object.assign(flow, { method: 'CONNECT', url: `${target.host}:${target.port}`, scheme: 'tcp', host: target.host, port: target.port, endedAt: Date.now() });
    markRefused(flow, refusal);
    flow.timings.totalMs = Math.round(performance.now() - t0);
    rt.recorder.record(flow);
    rt.log(`403 to ${info.clientIp}: CONNECT ${target.host}:${target.port}: ${refusal.message}`);
    reply(client, 403, 'Forbidden', `phonehome: ${refusal.message}`);
  };
  if (!toSetupPage && rt.isProxyItself(target, client.localAddress)) {
    return refuseTarget({ kind: 'self', tag: SELF_REFUSED_TAG, message: `refused: ${target.host}:${target.port} is this proxy itself: a tunnel there would loop back into phonehome` });
  }
  const refusal = toSetupPage ? undefined : rt.upstream.guard.check(target.host, target.port);
  if (refusal) return refuseTarget(refusal);
  let upstream: net.Socket | undefined;
  const tunnel: TunnelInfo = { target, tls: false };
  if (!toSetupPage) {
    try {
      upstream = await dial(target, rt.upstream);
    } catch (err) {
      if (isDestinationRefused(err)) return refuseTarget(err.refusal);
      const message = `upstream: ${(err as Error).message}`;
      const flow = baseFlow(info, startedAt);
      Object.assign(flow, { method: 'CONNECT', url: `${target.host}:${target.port}`, scheme: 'tcp', host: target.host, port: target.port, responseStatus: 502, error: message, endedAt: Date.now() });
      flow.timings.totalMs = Math.round(performance.now() - t0);
      rt.recorder.record(flow);
      return reply(client, 502, 'Bad Gateway', `phonehome: ${message}`);
    }
    rt.track(upstream);
    tuneSocket(upstream, rt.idleTimeoutMs);
    upstream.on('timeout', () => upstream?.destroy());
    tunnel.serverIp = upstream.remoteAddress;
    tunnel.connectMs = Math.round(performance.now() - t0);
    if (client.destroyed) return void upstream.destroy();
  }
  upstream?.on('error', () => undefined);
  client.write('HTTP/1.1 200 Connection established\r\n\r\n');
  await interceptStream(client, head, upstream, { info, target, tunnel, startedAt, t0, toSetupPage }, rt);
}

