/**
 * Tunnelled TCP into the real interception core, on loopback: a phone-side TCP (our machine,
 * active open, real clock) sends segments to the TcpTunnel as the IP layer would; the tunnel dials
 * real origins on 127.0.0.1, and flows land in a real SQLite store through the real ProxyServer
 * runtime. Checks what a user would: the HTTP and HTTPS exchanges work and are recorded with the
 * phone's tunnel address and source 'vpn'; a refused port is a reset and a recorded error; a raw
 * protocol is relayed and recorded; a large download arrives intact; per-phone stats and limits.
 */
import * as crypto from 'crypto';
import * as http from 'http';
import * as net from 'net';
import * as tls from 'tls';
import { CertificateAuthority } from '../../../certs/ca';
import { LeafMinter } from '../../../certs/leaf';
import { ProxyServer } from '../../../proxy/capture/proxy-server';
import { realClock } from '../../../proxy/capture/tunnel/tcp/clock';
import { TcpConnection } from '../../../proxy/capture/tunnel/tcp/connection';
import type { TcpTunnel } from '../../../proxy/capture/tunnel/tcp/handler';
import { createTcpInterception } from '../../../proxy/capture/tunnel/tcp/intercept-tcp';
import { TcpStream } from '../../../proxy/capture/tunnel/tcp/stream';
import { TCP_ACK, TCP_RST, TcpSegment, TunnelPeer } from '../../../proxy/capture/tunnel/types';
import type { Flow } from '../../../proxy/flow';
import { Store } from '../../../proxy/store';
import { Origin, originCert, patternSha256, RawServer, refusedPort, sha256, startHttpOrigin, startHttpsOrigin, startRawServer } from '../../e2e/helpers/origin';
import { makeTempDir, removeDir } from '../../e2e/helpers/tmp';

const phone: TunnelPeer = { publicKey: 'cGhvbmUtb25lLXB1YmxpYy1rZXktZm9yLXRlc3RzLi4=', name: 'test phone', ipv4: '10.77.0.2', ipv6: 'fd77::2' };

let dir: string;
let store: Store;
let ca: CertificateAuthority;
let proxy: ProxyServer;
let tunnel: TcpTunnel;
let httpOrigin: Origin;
let httpsOrigin: Origin;
let raw: RawServer;
const flows: Flow[] = [];
let nextPort = 40000;

beforeAll(async () => {
  dir = makeTempDir('phonehome-tcp-');
  ca = CertificateAuthority.loadOrCreate(dir);
  const minter = new LeafMinter(ca);
  store = Store.open({ dataDir: dir });
  // A short head deadline for the slow-head test; every other test writes its heads at once.
  proxy = new ProxyServer({ listenHost: '127.0.0.1', port: 0, store, ca, minter, upstreamCa: originCert().certPem, onFlow: (f) => flows.push(f), log: () => undefined, allowLoopbackTargets: true, headTimeoutMs: 1000 });
  await proxy.listen();
  tunnel = createTcpInterception(proxy.runtime, { maxConnectionsPerPeer: 64 });
  [httpOrigin, httpsOrigin, raw] = await Promise.all([startHttpOrigin(), startHttpsOrigin(), startRawServer()]);
});

afterAll(async () => {
  tunnel?.close();
  await Promise.all([proxy?.close(), httpOrigin?.close(), httpsOrigin?.close(), raw?.close()]);
  store?.close();
  removeDir(dir);
});

/** Opens a connection from the phone through the tunnel; resolves when established. */
function phoneConnect(dstIp: string, dstPort: number, srcPort = nextPort++): Promise<TcpStream> {
  return new Promise((resolve, reject) => {
    let stream: TcpStream | undefined;
    const v6 = dstIp.includes(':');
    // The IP layer's hand-off, asynchronous like packets are.
    const toPhone = (s: TcpSegment) => setImmediate(() => conn.onSegment(s));
    const conn: TcpConnection = TcpConnection.connect({ ip: v6 ? phone.ipv6 : phone.ipv4, port: srcPort }, { ip: dstIp, port: dstPort }, v6 ? 6 : 4, { clock: realClock, mss: v6 ? 1360 : 1380 }, {
      output: (s) => setImmediate(() => tunnel.onSegment(phone, s, toPhone)),
      established: () => {
        stream = new TcpStream(conn);
        stream.on('error', () => undefined); // the test checks outcomes, not the phone's socket errors
        resolve(stream);
      },
      readable: () => stream?.onReadable(),
      drain: () => stream?.onDrain(),
      closed: (reason) => {
        if (stream) stream.onClosed(reason);
        else reject(Object.assign(new Error(`connection ${reason}`), { reason }));
      },
    });
  });
}

function request(socket: net.Socket, opts: http.RequestOptions, body?: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ ...opts, createConnection: () => socket }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function waitFor<T>(find: () => T | undefined, ms = 5000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = find();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const IMEI = '356938035643809';

test('plain HTTP through the tunnel reaches the origin and is recorded as a vpn flow of the phone', async () => {
  const stream = await phoneConnect('127.0.0.1', httpOrigin.port);
  const form = `imei=${IMEI}&model=Nokia+7+plus`;
  const res = await request(stream as unknown as net.Socket, { method: 'POST', host: 'origin.test', path: '/report', headers: { 'Content-Type': 'application/x-www-form-urlencoded', Connection: 'close' } }, form);
  expect(res.status).toBe(200);
  expect(JSON.parse(res.body.toString()).start).toBe(form);
  const flow = await waitFor(() => flows.find((f) => f.url?.endsWith('/report')));
  expect(flow).toMatchObject({ source: 'vpn', clientIp: '10.77.0.2', method: 'POST', host: 'origin.test', scheme: 'http', responseStatus: 200 });
  expect(flow.requestBody.bytes.toString()).toBe(form);
  expect(store.flows.get(flow.id!)?.source).toBe('vpn');
});

test('HTTPS through the tunnel is intercepted with our CA (SNI) and recorded decrypted', async () => {
  const stream = await phoneConnect('127.0.0.1', httpsOrigin.port);
  const secure = tls.connect({ socket: stream as unknown as net.Socket, servername: 'origin.test', ca: ca.certPem, ALPNProtocols: ['http/1.1'] });
  await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
  expect(secure.getPeerCertificate().issuer.CN).toBe(new crypto.X509Certificate(ca.certPem).subject.split('CN=')[1]?.split('\n')[0]);
  const res = await request(secure, { method: 'POST', setHost: false, path: '/tls-report', headers: { Host: 'origin.test', Connection: 'close', 'Content-Type': 'application/x-www-form-urlencoded' } }, `IMEI1=${IMEI}`);
  expect(res.status).toBe(200);
  const flow = await waitFor(() => flows.find((f) => f.url === 'https://origin.test/tls-report'));
  expect(flow).toMatchObject({ source: 'vpn', clientIp: '10.77.0.2', tls: true, sni: 'origin.test', scheme: 'https', host: 'origin.test', serverIp: '127.0.0.1', responseStatus: 200 });
  expect(flow.requestBody.bytes.toString()).toBe(`IMEI1=${IMEI}`);
});

test('a refused destination port is a reset for the phone and a recorded error', async () => {
  const port = await refusedPort();
  await expect(phoneConnect('127.0.0.1', port)).rejects.toMatchObject({ reason: 'refused' });
  const flow = await waitFor(() => flows.find((f) => f.port === port));
  expect(flow).toMatchObject({ source: 'vpn', kind: 'raw', clientIp: '10.77.0.2' });
  expect(flow.error).toMatch(/ECONNREFUSED/);
  expect(flow.tags).toContain('connection-refused');
});

test('a non-HTTP protocol on an unusual port is relayed byte for byte and recorded', async () => {
  const stream = await phoneConnect('127.0.0.1', raw.port);
  const got: Buffer[] = [];
  stream.on('data', (c: Buffer) => got.push(c));
  stream.write(Buffer.from([0x00, 0x01, 0xfe, 0x42, 0x13, 0x37]));
  await waitFor(() => (Buffer.concat(got).length >= 11 ? true : undefined));
  expect(Buffer.concat(got)).toEqual(Buffer.concat([Buffer.from('ECHO '), Buffer.from([0x00, 0x01, 0xfe, 0x42, 0x13, 0x37])]));
  stream.end();
  const flow = await waitFor(() => flows.find((f) => f.port === raw.port && f.kind === 'raw'), 8000);
  expect(flow).toMatchObject({ source: 'vpn', scheme: 'tcp', clientIp: '10.77.0.2' });
  expect(flow.requestBody.bytes).toEqual(Buffer.from([0x00, 0x01, 0xfe, 0x42, 0x13, 0x37]));
});

test('a 20 MB download through the tunnel arrives intact (backpressure to the phone window)', async () => {
  const n = 20 * 1024 * 1024;
  const stream = await phoneConnect('127.0.0.1', httpOrigin.port);
  const res = await request(stream as unknown as net.Socket, { method: 'GET', host: 'origin.test', path: `/bytes?n=${n}`, headers: { Connection: 'close' } });
  expect(res.body.length).toBe(n);
  expect(sha256(res.body)).toBe(patternSha256(n));
}, 60_000);

test('an upload to a server that does not read: the phone sees the window close, the tunnel holds at most one receive buffer', async () => {
  const upload = crypto.randomBytes(24 * 1024 * 1024); // more than loopback's socket buffers soak up
  const received: Buffer[] = [];
  let server: net.Socket | undefined;
  const sink = net.createServer((s) => {
    server = s;
    s.pause();
    s.on('data', (c: Buffer) => received.push(c));
  });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  try {
    const stream = await phoneConnect('127.0.0.1', (sink.address() as net.AddressInfo).port);
    stream.end(upload);
    // Nobody reads upstream: the relay stops reading the phone, whose window then closes.
    await waitFor(() => (stream.conn.stats.windowProbes > 0 ? true : undefined), 20_000);
    const held = tunnel.stats()[phone.ipv4].heldBytes;
    expect(held).toBeGreaterThan(64 * 1024);
    // The window grew while the relay was taking the data (receive autotuning), never past 4 MiB.
    expect(held).toBeLessThanOrEqual(4 * 1024 * 1024);
    expect(stream.conn.bufferedToSend).toBeGreaterThan(0);
    server!.resume();
    await waitFor(() => (received.reduce((n, c) => n + c.length, 0) >= upload.length ? true : undefined), 30_000);
    expect(sha256(Buffer.concat(received))).toBe(sha256(upload));
  } finally {
    server?.destroy();
    sink.close();
  }
}, 60_000);

test('a request head trickled through the tunnel byte by byte is answered 408 and closed (slowloris)', async () => {
  const stream = await phoneConnect('127.0.0.1', httpOrigin.port);
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString('latin1')));
  const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
  const head = `GET /slow HTTP/1.1\r\nHost: origin.test\r\nX-Padding: ${'a'.repeat(400)}\r\n\r\n`;
  let i = 0;
  const timer = setInterval(() => {
    if (stream.destroyed || i >= head.length) return void clearInterval(timer);
    stream.write(head[i++]);
  }, 100);
  await closed;
  clearInterval(timer);
  expect(text).toMatch(/^HTTP\/1\.1 408 /);
  expect(i).toBeLessThan(head.length);
}, 30_000);

test('per-phone stats count connections, bytes, refusals and drops; strays get RST', async () => {
  // The phone's last ACKs of the download may still be on their way.
  const before = await waitFor(() => {
    const s = tunnel.stats()[phone.ipv4];
    return s.bytesToPhone > 20 * 1024 * 1024 ? s : undefined;
  });
  expect(before.connections).toBeGreaterThanOrEqual(4);
  expect(before.refused).toBeGreaterThanOrEqual(1);
  expect(before.bytesToPhone).toBeGreaterThan(20 * 1024 * 1024);
  expect(before.bytesFromPhone).toBeGreaterThan(100);
  // A segment for no connection: answered with RST and counted as a drop.
  const out: TcpSegment[] = [];
  tunnel.onSegment(phone, { ipVersion: 4, srcIp: phone.ipv4, dstIp: '127.0.0.1', srcPort: 1, dstPort: 9, seq: 1, ack: 777, flags: TCP_ACK, window: 100, options: {}, payload: Buffer.from('x') }, (s) => out.push(s));
  expect(out).toHaveLength(1);
  expect(out[0]).toMatchObject({ flags: TCP_RST, seq: 777, srcIp: '127.0.0.1', dstIp: phone.ipv4, srcPort: 9, dstPort: 1 });
  expect(tunnel.stats()[phone.ipv4].drops).toBe(before.drops + 1);
});
