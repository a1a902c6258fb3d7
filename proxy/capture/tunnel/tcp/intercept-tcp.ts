/**
 * Where VPN mode's TCP meets the explicit proxy's interception core: each connection a phone opens
 * through the tunnel is dialled to its original destination first (a refusal becomes a RST for the
 * phone and a recorded flow), then answered and handed to interceptStream exactly like a CONNECT
 * tunnel: TLS intercepted with our CA, HTTP parsed, the rest relayed and recorded. Flows say
 * source 'vpn' and name the phone by its tunnel IPv4 address (its device key).
 */
import type * as net from 'net';
import { performance } from 'perf_hooks';
import { baseFlow } from '../../http-forwarder';
import { interceptStream } from '../../intercept';
import type { ConnectionInfo, ProxyRuntime, TunnelInfo } from '../../runtime';
import type { Target } from '../../target';
import { dial, tuneSocket } from '../../upstream';
import { IncomingTcpConnection, TcpTunnel, TcpTunnelOptions } from './handler';

/** The TcpSegmentHandler for the IP layer, intercepting every connection with `rt`. */
export function createTcpInterception(rt: ProxyRuntime, opts: Omit<TcpTunnelOptions, 'onConnection'> = {}): TcpTunnel {
  return new TcpTunnel({
    log: rt.log,
    ...opts,
    onConnection: (conn) => {
      interceptTunnelled(conn, rt).catch((err: Error) => rt.log(`tunnelled connection failed: ${err.stack ?? err.message}`));
    },
  });
}

export async function interceptTunnelled(conn: IncomingTcpConnection, rt: ProxyRuntime): Promise<void> {
  const startedAt = Date.now();
  const t0 = performance.now();
  const target: Target = { host: conn.destination.ip, port: conn.destination.port, isIp: true };
  const info: ConnectionInfo = { source: 'vpn', clientIp: conn.peer.ipv4, clientPort: conn.source.port };
  let upstream: net.Socket;
  try {
    upstream = await dial(target, rt.upstream);
  } catch (err) {
    conn.refuse();
    const flow = baseFlow(info, startedAt);
    const hostPart = conn.ipVersion === 6 ? `[${target.host}]` : target.host;
    Object.assign(flow, { kind: 'raw', scheme: 'tcp', host: target.host, port: target.port, url: `tcp://${hostPart}:${target.port}`, error: `upstream: ${(err as Error).message}; the phone got a reset`, endedAt: Date.now() });
    flow.tags.push('connection-refused');
    flow.timings.totalMs = Math.round(performance.now() - t0);
    rt.recorder.record(flow);
    return;
  }
  rt.track(upstream);
  tuneSocket(upstream, rt.idleTimeoutMs);
  upstream.on('timeout', () => upstream.destroy());
  upstream.on('error', () => undefined);
  const tunnel: TunnelInfo = { target, tls: false, serverIp: upstream.remoteAddress, connectMs: Math.round(performance.now() - t0) };
  // A TcpStream is a Duplex with the socket fields the core reads (see stream.ts).
  const client = conn.accept() as unknown as net.Socket;
  if (client.destroyed) return void upstream.destroy();
  rt.track(client);
  client.on('error', () => client.destroy());
  client.setTimeout(rt.idleTimeoutMs, () => client.destroy());
  await interceptStream(client, Buffer.alloc(0), upstream, { info, target, tunnel, startedAt, t0, toSetupPage: false }, rt);
}
