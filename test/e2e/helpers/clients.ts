/**
 * Real clients for end-to-end tests: curl (the CLI users run), a Node client doing CONNECT + TLS by
 * hand, and a raw socket for sending malformed bytes.
 */
import { execFile } from 'child_process';
import * as net from 'net';
import * as tls from 'tls';

export interface CurlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function curl(args: string[], timeoutMs = 20000): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', String(Math.ceil(timeoutMs / 1000)), '--noproxy', '', ...args], { maxBuffer: 64 * 1024 * 1024, env: { ...process.env, http_proxy: '', https_proxy: '', HTTP_PROXY: '', HTTPS_PROXY: '' } }, (err, stdout, stderr) => {
      const exit = (err as { code?: unknown } | null)?.code;
      resolve({ code: err ? (typeof exit === 'number' ? exit : 1) : 0, stdout, stderr });
    });
  });
}

/** Reads an HTTP response head from a socket; resolves with it and any bytes after it. */
export function readHead(socket: net.Socket, timeoutMs = 10000): Promise<{ head: string; status: number; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => done(new Error(`no response head within ${timeoutMs} ms (got ${JSON.stringify(buf.toString('latin1').slice(0, 200))})`)), timeoutMs);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      done(undefined, { head, status: Number(head.split(' ')[1]), rest: buf.subarray(end + 4) });
    };
    const onEnd = () => done(new Error(`connection closed before a response head (got ${JSON.stringify(buf.toString('latin1').slice(0, 200))})`));
    const done = (err?: Error, value?: { head: string; status: number; rest: Buffer }) => {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.removeListener('close', onEnd);
      socket.pause();
      if (err) reject(err);
      else resolve(value!);
    };
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
  });
}

export function connectTcp(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Sends raw bytes to the proxy and returns whatever comes back before it closes (or the timeout). */
export async function rawExchange(port: number, bytes: string | Buffer, timeoutMs = 5000): Promise<string> {
  const s = await connectTcp(port);
  s.write(bytes);
  return new Promise((resolve) => {
    let out = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve(out);
    }, timeoutMs);
    s.on('data', (d) => (out += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

/** Opens a CONNECT tunnel through the proxy; resolves with the socket once the proxy said 200. */
export async function openTunnel(proxyPort: number, authority: string): Promise<{ socket: net.Socket; status: number; head: string }> {
  const socket = await connectTcp(proxyPort);
  socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  const { head, status, rest } = await readHead(socket);
  // A server that speaks first may already have sent its banner right behind the 200.
  if (rest.length) socket.unshift(rest);
  socket.resume();
  return { socket, status, head };
}

/** CONNECT + TLS trusting `ca`, as an app on the phone would do. */
export async function tlsThroughProxy(proxyPort: number, host: string, port: number, ca: string, opts: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  const { socket, status, head } = await openTunnel(proxyPort, `${host}:${port}`);
  if (status !== 200) throw new Error(`CONNECT refused: ${head}`);
  socket.pause();
  return new Promise((resolve, reject) => {
    const t = tls.connect({ socket, servername: host, ca, ALPNProtocols: ['http/1.1'], ...opts }, () => resolve(t));
    t.once('error', reject);
  });
}

/** One HTTP/1.1 request over an established (TLS) socket; resolves with status, headers and body. */
export function requestOver(socket: net.Socket, rawRequest: string | Buffer): Promise<{ status: number; head: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      const m = /content-length:\s*(\d+)/i.exec(head);
      const len = m ? Number(m[1]) : 0;
      if (buf.length - end - 4 < len) return;
      socket.removeListener('data', onData);
      resolve({ status: Number(head.split(' ')[1]), head, body: buf.subarray(end + 4, end + 4 + len) });
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(rawRequest);
  });
}
