/**
 * A CONNECT parsed inside a tunnel (after other requests in it, or inside intercepted TLS) belongs
 * to the tunnel's server, not to us: it must never open a second upstream connection (1,000
 * CONNECTs pipelined on one connection once opened 1,000). Relaying it to the server mid-stream is
 * not supported, so it is answered 501 and recorded, never dialled. A tunnel that begins with a
 * CONNECT is relayed whole to its server instead (intercept.ts), so chained proxies keep working.
 */
import type * as http from 'http';
import type * as net from 'net';
import { baseFlow } from './http-forwarder';
import type { ProxyRuntime } from './runtime';

export function refuseNestedConnect(req: http.IncomingMessage, socket: net.Socket, rt: ProxyRuntime): void {
  const info = rt.connections.get(socket) ?? { clientIp: socket.remoteAddress ?? '', clientPort: socket.remotePort };
  const flow = baseFlow(info, Date.now());
  const tunnel = info.tunnel;
  Object.assign(flow, {
    method: 'CONNECT',
    url: (req.url ?? '').slice(0, 2048),
    scheme: 'tcp',
    host: tunnel?.target.host ?? '',
    port: tunnel?.target.port ?? 0,
    tls: tunnel?.tls ?? false,
    responseStatus: 501,
    error: `refused CONNECT inside the tunnel to ${tunnel ? `${tunnel.target.host}:${tunnel.target.port}` : '?'}: only a tunnel that starts with it is relayed`,
    endedAt: Date.now(),
  });
  flow.tags.push('nested-connect');
  rt.recorder.record(flow);
  const text = 'phonehome: CONNECT inside a tunnel after other requests is not relayed\n';
  if (!socket.writable) return void socket.destroy();
  socket.end(`HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
  socket.setTimeout(5000, () => socket.destroy());
}
