/**
 * One regression test per measured defect of the proxy library (notes/http-mitm-proxy.md), plus
 * malformed input, refused upstreams and access control: each with real sockets on loopback.
 */
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import * as tls from 'tls';
import { connectTcp, curl, openTunnel, rawExchange, readHead, requestOver, tlsThroughProxy } from './helpers/clients';
import { DISTINCT_HOST_COUNT, Origin, originCert, refusedPort, startHttpOrigin, startHttpsOrigin, startRawServer } from './helpers/origin';
import { eventually, startTestPhonehome, TestPhonehome } from './helpers/phonehome';
import { listFiles } from './helpers/tmp';

/** A real ClientHello for `servername`, captured from Node's own TLS client. */
function captureClientHello(servername: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((s) => {
      s.once('data', (d) => {
        resolve(d);
        s.destroy();
        server.close();
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const c = tls.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', servername, rejectUnauthorized: false });
      c.on('error', () => undefined);
    });
    server.on('error', reject);
  });
}

describe('proxy: defects contained', () => {
  let ph: TestPhonehome;
  let httpOrigin: Origin;
  let httpsOrigin: Origin;

  beforeAll(async () => {
    httpOrigin = await startHttpOrigin();
    httpsOrigin = await startHttpsOrigin();
    ph = await startTestPhonehome({ proxy: { idleTimeoutMs: 1500, sniffTimeoutMs: 300 } });
  });
  afterAll(async () => {
    await ph?.stop();
    await httpOrigin?.close();
    await httpsOrigin?.close();
  });

  async function stillServes(): Promise<void> {
    const r = await curl(['-x', `http://127.0.0.1:${ph.proxyPort}`, `http://origin.test:${httpOrigin.port}/alive`]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).url).toBe('/alive');
  }

  it('answers 400 to out-of-range ports (Host, absolute URL, CONNECT, WebSocket) and keeps serving', async () => {
    for (const req of [
      'GET / HTTP/1.1\r\nHost: 127.0.0.1:99999\r\n\r\n',
      'GET http://127.0.0.1:99999/ HTTP/1.1\r\nHost: 127.0.0.1:99999\r\n\r\n',
      'GET http://127.0.0.1:-5/ HTTP/1.1\r\nHost: x\r\n\r\n',
      'CONNECT 127.0.0.1:99999 HTTP/1.1\r\nHost: 127.0.0.1:99999\r\n\r\n',
      'GET http://127.0.0.1:99999/ws HTTP/1.1\r\nHost: 127.0.0.1:99999\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    ]) {
      const reply = await rawExchange(ph.proxyPort, req, 3000);
      expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    }
    await stillServes();
  });

  it('refuses a path-traversal CONNECT host, writes no file, and keeps serving', async () => {
    const before = listFiles(ph.dataDir);
    const cwdBefore = fs.readdirSync(process.cwd()).sort();
    const hello = await captureClientHello('x');
    const reply = await rawExchange(ph.proxyPort, Buffer.concat([Buffer.from('CONNECT ../../x:443 HTTP/1.1\r\nHost: ../../x:443\r\n\r\n'), hello]), 3000);
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(listFiles(ph.dataDir).filter((f) => !f.startsWith('phonehome.db'))).toEqual(before.filter((f) => !f.startsWith('phonehome.db')));
    expect(fs.readdirSync(process.cwd()).sort()).toEqual(cwdBefore);
    expect(fs.existsSync(path.join(ph.dataDir, '..', 'x'))).toBe(false);
    const f = await eventually(() => ph.flows("method = 'CONNECT' AND url = '../../x:443'")[0]);
    expect(f.response_status).toBe(400);
    expect(f.error).toMatch(/invalid hostname/);
    await stillServes();
  });

  it(`serves ${DISTINCT_HOST_COUNT} concurrent first requests to distinct HTTPS hosts while a known host stays responsive`, async () => {
    const known = await tlsThroughProxy(ph.proxyPort, 'origin.test', httpsOrigin.port, ph.ca.certPem);
    const mintedBefore = ph.minter.mintCount;
    const first = await requestOver(known, `GET /known/0 HTTP/1.1\r\nHost: origin.test\r\n\r\n`);
    expect(first.status).toBe(200);
    const many = Array.from({ length: DISTINCT_HOST_COUNT }, async (_, i) => {
      const host = `h${i + 1}.test`;
      const s = await tlsThroughProxy(ph.proxyPort, host, httpsOrigin.port, ph.ca.certPem);
      const res = await requestOver(s, `GET /distinct/${i + 1} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      const cn = s.getPeerCertificate().subjectaltname;
      s.destroy();
      return { host, status: res.status, cn };
    });
    const knownDuring: number[] = [];
    const knownLoop = (async () => {
      for (let i = 1; i <= 5; i++) knownDuring.push((await requestOver(known, `GET /known/${i} HTTP/1.1\r\nHost: origin.test\r\n\r\n`)).status);
    })();
    const results = await Promise.all(many);
    await knownLoop;
    known.destroy();
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    expect(results.every((r) => (r.cn ?? "").includes(`DNS:${r.host}`))).toBe(true);
    expect(knownDuring).toEqual([200, 200, 200, 200, 200]);
    expect(ph.minter.mintCount - mintedBefore).toBe(DISTINCT_HOST_COUNT);
    const stored = await eventually(() => {
      const n = ph.flows("url LIKE '%/distinct/%'").length;
      return n === DISTINCT_HOST_COUNT ? n : undefined;
    });
    expect(stored).toBe(DISTINCT_HOST_COUNT);
  });

  it('leaves no open sockets after 300 CONNECTs closed without data', async () => {
    const target = await startRawServer();
    try {
      const sockets = await Promise.all(Array.from({ length: 300 }, () => openTunnel(ph.proxyPort, `origin.test:${target.port}`)));
      expect(sockets.every((s) => s.status === 200)).toBe(true);
      for (const { socket } of sockets) socket.end();
      await eventually(() => ph.proxy.openSocketCount() === 0, 8000, 'proxy sockets to close');
      const originConnections = () => new Promise<number>((resolve) => target.server.getConnections((_e, n) => resolve(n)));
      const deadline = Date.now() + 5000;
      while ((await originConnections()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(await originConnections()).toBe(0);
    } finally {
      await target.close();
    }
  });

  it('closes tunnels whose client goes silent, after the idle timeout', async () => {
    const target = await startRawServer();
    try {
      const { socket } = await openTunnel(ph.proxyPort, `origin.test:${target.port}`);
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      await closed; // the proxy's idle timeout (1.5 s here) ends it
      await eventually(() => ph.proxy.openSocketCount() === 0, 5000, 'proxy sockets to close');
    } finally {
      await target.close();
    }
  });

  it('relays and records non-TLS, non-HTTP bytes in a tunnel', async () => {
    const target = await startRawServer();
    try {
      const { socket } = await openTunnel(ph.proxyPort, `origin.test:${target.port}`);
      const payload = Buffer.from([0x00, 0x01, 0xfe, 0xff, ...Buffer.from(' IMEI 354726080000000')]);
      const echoed = new Promise<Buffer>((resolve) => socket.once('data', resolve));
      socket.write(payload);
      expect((await echoed).equals(Buffer.concat([Buffer.from('ECHO '), payload]))).toBe(true);
      socket.end();
      const f = await eventually(() => ph.flows("kind = 'raw' AND port = ? AND request_body_size > 0", target.port)[0]);
      expect(f).toMatchObject({ scheme: 'tcp', tls: 0, host: 'origin.test', request_body_size: payload.length });
      expect(Buffer.compare(f.request_body!, payload)).toBe(0);
      expect(f.response_body!.subarray(0, 5).toString()).toBe('ECHO ');
    } finally {
      await target.close();
    }
  });

  it('works with a protocol where the server speaks first (SMTP-style banner)', async () => {
    const target = await startRawServer('220 mail.test ESMTP ready\r\n');
    try {
      const { socket } = await openTunnel(ph.proxyPort, `origin.test:${target.port}`);
      const banner = await new Promise<string>((resolve) => socket.once('data', (d) => resolve(d.toString())));
      expect(banner).toBe('220 mail.test ESMTP ready\r\n');
      const reply = new Promise<string>((resolve) => socket.once('data', (d) => resolve(d.toString())));
      socket.write('EHLO phone\r\n');
      expect(await reply).toBe('ECHO EHLO phone\r\n');
      socket.end();
      const f = await eventually(() => ph.flows("kind = 'raw' AND port = ? AND response_body_size > 0", target.port)[0]);
      expect(f.response_body!.toString()).toContain('220 mail.test ESMTP ready');
      expect(JSON.parse(f.tags)).toContain('server-speaks-first');
    } finally {
      await target.close();
    }
  });

  it('records a client that rejects our certificate as a TLS failure with its SNI, then relays that host untouched', async () => {
    const proxy = `http://127.0.0.1:${ph.proxyPort}`;
    // curl trusting only the origin's own certificate: it refuses ours (alert unknown_ca), as a pinning app would.
    const rejected = await curl(['-x', proxy, '--cacert', originCert().certFile, `https://pin.test:${httpsOrigin.port}/pinned`]);
    expect(rejected.code).not.toBe(0);
    const failure = await eventually(() => ph.flows("kind = 'tls-failure' AND sni = 'pin.test'")[0]);
    expect(failure.error).toMatch(/unknown ca|certificate/i);
    expect(JSON.parse(failure.tags)).toContain('pinning-suspected');
    expect(ph.logs.join('\n')).toMatch(/rejected our certificate for pin\.test/);
    // Same client again: this time it reaches the real server, untouched.
    const relayed = await curl(['-x', proxy, '--cacert', originCert().certFile, `https://pin.test:${httpsOrigin.port}/pinned`]);
    expect(relayed.code).toBe(0);
    expect(JSON.parse(relayed.stdout).url).toBe('/pinned');
    const raw = await eventually(() => ph.flows("kind = 'raw' AND sni = 'pin.test'")[0]);
    expect(raw.tls).toBe(1);
    expect(JSON.parse(raw.tags)).toEqual(expect.arrayContaining(['pinning-suspected', 'not-intercepted']));
    expect(ph.flows("kind = 'http' AND url LIKE '%/pinned'")).toHaveLength(0);
  });

  it('relays an h2-only client without interception and records why', async () => {
    const { socket } = await openTunnel(ph.proxyPort, `origin.test:${httpsOrigin.port}`);
    const t = tls.connect({ socket, servername: 'origin.test', ca: originCert().certPem, ALPNProtocols: ['h2'] });
    await new Promise<void>((resolve) => {
      t.once('secureConnect', () => resolve());
      t.once('error', () => resolve());
    });
    t.destroy();
    const f = await eventually(() => ph.flows("kind = 'tls-failure' AND alpn = 'h2'")[0]);
    expect(f.error).toMatch(/only h2/);
    expect(f.sni).toBe('origin.test');
  });

  it('records garbage that starts like TLS as a failed tunnel and keeps serving', async () => {
    const target = await startRawServer();
    try {
      const { socket } = await openTunnel(ph.proxyPort, `origin.test:${target.port}`);
      socket.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0xff, 0xff, 0xff, 0xff]));
      await new Promise((r) => setTimeout(r, 100));
      socket.destroy();
      const f = await eventually(() => ph.flows("port = ? AND error LIKE 'not a valid TLS ClientHello%'", target.port)[0]);
      expect(f.kind).toBe('raw');
      await stillServes();
    } finally {
      await target.close();
    }
  });

  it.each([
    ['garbage', 'this is not http\r\n\r\n', 400],
    ['a bad Content-Length', 'POST http://origin.test/ HTTP/1.1\r\nHost: origin.test\r\nContent-Length: abc\r\n\r\n', 400],
    ['Content-Length with Transfer-Encoding', 'POST http://origin.test/ HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
    ['huge headers', `GET http://origin.test/ HTTP/1.1\r\nHost: origin.test\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`, 431],
    ['a bad hostname', 'GET http://bad_host!.test/ HTTP/1.1\r\nHost: x\r\n\r\n', 400],
  ])('answers %s with a 4xx and keeps serving', async (_name, request, status) => {
    const reply = await rawExchange(ph.proxyPort, request, 3000);
    expect(reply).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    await stillServes();
  });

  it('answers 502 for a refused upstream and records the flow with its error (plain HTTP and CONNECT)', async () => {
    const port = await refusedPort();
    const r = await curl(['-x', `http://127.0.0.1:${ph.proxyPort}`, '-o', '/dev/null', '-w', '%{http_code}', `http://origin.test:${port}/refused`]);
    expect(r.stdout).toBe('502');
    const f = await eventually(() => ph.flows("url LIKE '%/refused'")[0]);
    expect(f.response_status).toBe(502);
    expect(f.error).toMatch(/ECONNREFUSED/);
    const tunnel = await openTunnel(ph.proxyPort, `origin.test:${port}`);
    expect(tunnel.status).toBe(502);
    tunnel.socket.destroy();
    const c = await eventually(() => ph.flows("method = 'CONNECT' AND port = ?", port)[0]);
    expect(c.error).toMatch(/ECONNREFUSED/);
  });

  it('answers 502 when the server certificate fails verification, with the reason recorded', async () => {
    const untrusting = await startTestPhonehome({ proxy: { upstreamCa: ph.ca.certPem } });
    try {
      const caFile = path.join(untrusting.dataDir, 'ca.pem');
      const r = await curl(['-x', `http://127.0.0.1:${untrusting.proxyPort}`, '--cacert', caFile, '-o', '/dev/null', '-w', '%{http_code}', `https://origin.test:${httpsOrigin.port}/verify`]);
      expect(r.stdout).toBe('502');
      const f = await eventually(() => untrusting.flows("url LIKE '%/verify'")[0]);
      expect(f.error).toMatch(/upstream TLS verification failed/);
    } finally {
      await untrusting.stop();
    }
  });
});

describe('proxy: access control', () => {
  it('answers 403 to a client outside --allow-clients, logs it, and records nothing', async () => {
    const origin = await startHttpOrigin();
    const ph = await startTestPhonehome({ allowClients: ['10.0.0.0/8'] });
    try {
      const r = await curl(['-x', `http://127.0.0.1:${ph.proxyPort}`, '-o', '/dev/null', '-w', '%{http_code}', `http://origin.test:${origin.port}/`]);
      expect(r.stdout).toBe('403');
      const s = await connectTcp(ph.proxyPort);
      s.write(`CONNECT origin.test:${origin.port} HTTP/1.1\r\n\r\n`);
      expect((await readHead(s)).status).toBe(403);
      s.destroy();
      expect(ph.logs.join('\n')).toMatch(/refused client 127\.0\.0\.1/);
      expect(ph.flows()).toHaveLength(0);
    } finally {
      await ph.stop();
      await origin.close();
    }
  });
});
