/**
 * Relays a tunnel byte for byte when we do not (or cannot) intercept it: unknown protocols,
 * server-speaks-first protocols, ignored hosts, hosts that pin their certificate, h2-only clients.
 * The connection is still recorded, as a flow with the first bytes of each direction and the true
 * byte counts, stored when both sides have closed.
 */
import type * as net from 'net';
import { performance } from 'perf_hooks';
import type { Flow } from '../flow';
import { parseClientHello } from './client-hello';
import { baseFlow } from './http-forwarder';
import { BodyTap } from './recording';
import type { ConnectionInfo, ProxyRuntime } from './runtime';
import type { Target } from './target';

/** At most this much of each direction of a raw tunnel is kept (further capped by the body limit). */
export const RAW_CAPTURE_LIMIT = 64 * 1024;

export interface RelayDescription {
  kind: Flow['kind'];
  tls: boolean;
  sni?: string;
  alpn?: string;
  tlsVersion?: string;
  error?: string;
  tags: string[];
}

export function relayRaw(
  client: net.Socket,
  upstream: net.Socket,
  initial: Buffer,
  info: ConnectionInfo,
  target: Target,
  startedAt: number,
  t0: number,
  desc: RelayDescription,
  rt: ProxyRuntime,
): void {
  const flow = baseFlow(info, startedAt);
  flow.kind = desc.kind;
  flow.scheme = desc.tls ? 'tls' : 'tcp';
  flow.tls = desc.tls;
  flow.host = target.host;
  flow.port = target.port;
  flow.url = `${flow.scheme}://${target.isIp && target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
  flow.serverIp = upstream.remoteAddress;
  flow.sni = desc.sni;
  flow.alpn = desc.alpn;
  flow.tlsVersion = desc.tlsVersion;
  flow.error = desc.error;
  flow.tags.push(...desc.tags);
  const limit = Math.min(rt.bodyLimit, RAW_CAPTURE_LIMIT);
  const up = new BodyTap(limit);
  const down = new BodyTap(limit);
  up.add(initial);

  let closed = 0;
  const onClose = () => {
    if (++closed < 2) return;
    flow.endedAt = Date.now();
    flow.timings.totalMs = Math.round(performance.now() - t0);
    flow.requestBody = up.toBody();
    flow.responseBody = down.toBody();
    if (flow.tls && !flow.sni) {
      const parsed = parseClientHello(flow.requestBody.bytes);
      if (parsed.status === 'ok') {
        flow.sni = parsed.hello.sni;
        flow.alpn ??= parsed.hello.alpn.join(',') || undefined;
        flow.tlsVersion ??= parsed.hello.version;
      }
    }
    rt.recorder.record(flow);
  };
  client.once('close', onClose);
  upstream.once('close', onClose);
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
  client.setTimeout(rt.idleTimeoutMs, () => client.destroy());
  upstream.setTimeout(rt.idleTimeoutMs, () => upstream.destroy());
  client.on('data', (c: Buffer) => up.add(c));
  upstream.on('data', (c: Buffer) => down.add(c));
  if (initial.length) upstream.write(initial);
  client.pipe(upstream);
  upstream.pipe(client);
  client.resume();
}
