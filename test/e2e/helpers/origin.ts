/**
 * Local origin servers for end-to-end tests, on 127.0.0.1 and ephemeral ports: an HTTP and an HTTPS
 * origin (certificate from the real `openssl` CLI, self-signed, names *.test and 127.0.0.1) with
 * routes that echo, stream large bodies and hash uploads; plus raw TCP servers for non-HTTP tests.
 */
import { execFileSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import * as net from 'net';
import * as path from 'path';
import { WebSocketServer } from 'ws';
import { makeTempDir, removeDir } from './tmp';

export const DISTINCT_HOST_COUNT = 200;

export interface OriginCert {
  certPem: string;
  keyPem: string;
  certFile: string;
}

let cached: OriginCert | undefined;

/** A self-signed certificate for origin.test, pin.test, h1.test … h200.test, localhost and 127.0.0.1. */
export function originCert(): OriginCert {
  if (cached) return cached;
  const dir = makeTempDir('phonehome-origin-');
  const names = ['origin.test', 'pin.test', 'ignored.test', 'localhost', ...Array.from({ length: DISTINCT_HOST_COUNT }, (_, i) => `h${i + 1}.test`)];
  const san = [...names.map((n) => `DNS:${n}`), 'IP:127.0.0.1'].join(',');
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=phonehome test origin', '-addext', `subjectAltName=${san}`], { stdio: 'ignore' });
  cached = { certPem: fs.readFileSync(certFile, 'utf8'), keyPem: fs.readFileSync(keyFile, 'utf8'), certFile };
  process.once('exit', () => removeDir(dir));
  return cached;
}

/** Deterministic bytes so a download can be checked without holding it. */
export function patternChunk(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

export function sha256(data: Buffer | string): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

/** sha256 of n bytes of the /bytes route's stream. */
export function patternSha256(n: number): string {
  const h = crypto.createHash('sha256');
  const chunk = patternChunk(64 * 1024);
  let left = n;
  while (left > 0) {
    const take = Math.min(left, chunk.length);
    h.update(chunk.subarray(0, take));
    left -= take;
  }
  return h.digest('hex');
}

function originHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  // The fuzz tests send targets URL() rejects (e.g. '//[/ws'): the origin answers them, like a real server.
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://origin');
  } catch {
    url = new URL('http://origin/unparsable-target');
  }
  if (url.pathname === '/bytes') {
    const n = Number(url.searchParams.get('n') ?? '0');
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(n) });
    const chunk = patternChunk(64 * 1024);
    let left = n;
    const pump = () => {
      while (left > 0) {
        const take = Math.min(left, chunk.length);
        left -= take;
        if (!res.write(take === chunk.length ? chunk : chunk.subarray(0, take))) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
    return;
  }
  const hash = crypto.createHash('sha256');
  let size = 0;
  const head: Buffer[] = [];
  const slow = url.pathname.startsWith('/slow');
  req.on('data', (c: Buffer) => {
    if (slow) {
      // A server slower than the phone: the proxy must hold back, not buffer the upload.
      req.pause();
      setTimeout(() => req.resume(), 2);
    }
    hash.update(c);
    if (size < 4096) head.push(c);
    size += c.length;
  });
  req.on('end', () => {
    const body = JSON.stringify({
      method: req.method,
      url: req.url,
      host: req.headers.host,
      headers: req.rawHeaders,
      size,
      sha256: hash.digest('hex'),
      start: Buffer.concat(head).subarray(0, 200).toString('utf8'),
    });
    res.writeHead(url.pathname === '/created' ? 201 : 200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'X-Origin': 'phonehome-test' });
    res.end(body);
  });
}

export interface Origin {
  port: number;
  server: http.Server;
  close(): Promise<void>;
}

async function listenOrigin(server: http.Server): Promise<Origin> {
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => ws.terminate()); // invalid frames (fuzz tests) end that socket only
      ws.on('message', (m, binary) => ws.send(binary ? m : `echo:${m.toString()}`));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    server,
    close: () => {
      wss.close();
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

export function startHttpOrigin(): Promise<Origin> {
  return listenOrigin(http.createServer(originHandler));
}

export function startHttpsOrigin(): Promise<Origin> {
  const c = originCert();
  return listenOrigin(https.createServer({ key: c.keyPem, cert: c.certPem }, originHandler));
}

export interface RawServer {
  port: number;
  server: net.Server;
  received: Buffer[];
  close(): Promise<void>;
}

/** A TCP server: `banner` is sent first (server-speaks-first); everything received is echoed back with a prefix. */
export async function startRawServer(banner?: string): Promise<RawServer> {
  const received: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    if (banner) s.write(banner);
    s.on('data', (d) => {
      received.push(d);
      s.write(Buffer.concat([Buffer.from('ECHO '), d]));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    server,
    received,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Port that refuses connections: bound then closed. */
export async function refusedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
