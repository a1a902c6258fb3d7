/**
 * Where VPN mode's TCP meets the explicit proxy's interception core: each connection a phone opens
 * through the tunnel is dialled to its original destination first (a refusal becomes a RST for the
 * phone and a recorded flow), then answered and handed to interceptStream exactly like a CONNECT
 * tunnel: TLS intercepted with our CA, HTTP parsed, the rest relayed and recorded. Flows say
 * source 'vpn' and name the phone by its tunnel IPv4 address (its device key).
 */
import type * as net from 'net';
import { performance } from 'perf_hooks';
import { isDestinationRefused, markRefused, Refusal } from '../../destination-guard';
import { contained, currentConnection, scopeEvents } from '../../containment';
import { baseFlow, SETUP_HOST } from '../../http-forwarder';
import { interceptStream } from '../../intercept';
import type { ConnectionInfo, ProxyRuntime, TunnelInfo } from '../../runtime';
import type { Target } from '../../target';
import { dial, tuneSocket } from '../../upstream';
import { canonicalIp } from '../ip/address';
import { GATEWAY_IPV4, GATEWAY_IPV6 } from '../wireguard/addresses';
import { IncomingTcpConnection, TcpTunnel, TcpTunnelOptions } from './handler';

/** The TcpSegmentHandler for the IP layer, intercepting every connection with `rt`. */
export function createTcpInterception(rt: ProxyRuntime, opts: Omit<TcpTunnelOptions, 'onConnection'> = {}): TcpTunnel {
  return new TcpTunnel({
    log: rt.log,
    ...opts,
    onConnection: (conn) => {
      const hostPart = conn.ipVersion === 6 ? `[${conn.destination.ip}]` : conn.destination.ip;
      const scope = { client: `${conn.peer.ipv4}:${conn.source.port}`, target: `${hostPart}:${conn.destination.port}` };
      contained(rt.log, 'tunnelled connection', scope, () => interceptTunnelled(conn, rt), () => {
        conn.refuse();
        (scope as { socket?: net.Socket }).socket?.destroy();
      });
    },
  });
}

export async function interceptTunnelled(conn: IncomingTcpConnection, rt: ProxyRuntime): Promise<void> {
  const startedAt = Date.now();
  const t0 = performance.now();
  const target: Target = { host: conn.destination.ip, port: conn.destination.port, isIp: true };
  const info: ConnectionInfo = { source: 'vpn', clientIp: conn.peer.ipv4, clientPort: conn.source.port };
  if (isGatewayWebPort(conn.destination.ip, conn.destination.port)) return serveSetupPage(conn, info, startedAt, t0, rt);
  const reset = (error: string, refusal?: Refusal) => {
    conn.refuse();
    const flow = baseFlow(info, startedAt);
    const hostPart = conn.ipVersion === 6 ? `[${target.host}]` : target.host;
    Object.assign(flow, { kind: 'raw', scheme: 'tcp', host: target.host, port: target.port, url: `tcp://${hostPart}:${target.port}`, endedAt: Date.now() });
    if (refusal) markRefused(flow, refusal, undefined);
    flow.error = `${error}; the phone got a reset`;
    if (!refusal) flow.tags.push('connection-refused');
    flow.timings.totalMs = Math.round(performance.now() - t0);
    rt.recorder.record(flow);
  };
  // The phone may use the Wi-Fi proxy inside the tunnel: that is not a loop, it is phonehome twice.
  const refusal = rt.upstream.guard.check(target.host, target.port, { allow: ['proxy'] });
  if (refusal) {
    rt.log(`reset to ${info.clientIp}: TCP to ${target.host}:${target.port}: ${refusal.message}`);
    return reset(refusal.message, refusal);
  }
  let upstream: net.Socket;
  try {
    upstream = await dial(target, rt.upstream);
  } catch (err) {
    return reset(isDestinationRefused(err) ? err.message : `upstream: ${(err as Error).message}`, isDestinationRefused(err) ? err.refusal : undefined);
  }
  rt.track(upstream);
  tuneSocket(upstream, rt.idleTimeoutMs);
  upstream.on('timeout', () => upstream.destroy());
  upstream.on('error', () => undefined);
  const tunnel: TunnelInfo = { target, tls: false, serverIp: upstream.remoteAddress, connectMs: Math.round(performance.now() - t0) };
  // A TcpStream is a Duplex with the socket fields the core reads (see stream.ts).
  const client = conn.accept() as unknown as net.Socket;
  if (client.destroyed) return void upstream.destroy();
  adoptIntoScope(client);
  rt.track(client);
  client.on('error', () => client.destroy());
  client.setTimeout(rt.idleTimeoutMs, () => client.destroy());
  await interceptStream(client, Buffer.alloc(0), upstream, { info, target, tunnel, startedAt, t0, toSetupPage: false }, rt);
}

/**
 * phonehome's own address in the tunnel (10.77.0.1, fd77::1) on port 80 or 443 is the setup page, as
 * http://phonehome.setup/ is through the proxy (the tunnel's DNS answers that name with this address):
 * a phone in VPN mode fetches the CA without ever setting the Wi-Fi proxy.
 */
function isGatewayWebPort(ip: string, port: number): boolean {
  return (port === 80 || port === 443) && (ip === GATEWAY_IPV4 || canonicalIp(ip) === canonicalIp(GATEWAY_IPV6));
}

async function serveSetupPage(conn: IncomingTcpConnection, info: ConnectionInfo, startedAt: number, t0: number, rt: ProxyRuntime): Promise<void> {
  const target: Target = { host: SETUP_HOST, port: conn.destination.port, isIp: false };
  const tunnel: TunnelInfo = { target, tls: false };
  const client = conn.accept() as unknown as net.Socket;
  if (client.destroyed) return;
  adoptIntoScope(client);
  rt.track(client);
  client.on('error', () => client.destroy());
  client.setTimeout(rt.idleTimeoutMs, () => client.destroy());
  await interceptStream(client, Buffer.alloc(0), undefined, { info, target, tunnel, startedAt, t0, toSetupPage: true }, rt);
}

/** From now on the stream's events run in the connection's scope, and a failure there closes it (containment.ts). */
function adoptIntoScope(client: net.Socket): void {
  const scope = currentConnection();
  if (!scope) return;
  scope.socket = client;
  scopeEvents(client, scope);
}
