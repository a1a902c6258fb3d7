/**
 * One hostile client against the proxy, with real sockets on loopback: CONNECTs pipelined on one
 * connection, requests pipelined in a tunnel, slowloris heads (front door, plain tunnel, intercepted
 * TLS, a stalled TLS handshake), and the per-client connection cap. Each checks what an operator
 * would: how many connections reach the origin, that the hostile connections are closed with a
 * clear answer, that the log says so without flooding, and that a normal client is still served.
 */
import { spawnSync } from 'child_process';
import * as http from 'http';
import * as net from 'net';
import * as tls from 'tls';
import { connectTcp, curl, openTunnel, rawExchange, requestOver, tlsThroughProxy } from './helpers/clients';
import { Origin, startHttpOrigin, startHttpsOrigin } from './helpers/origin';
import { CLI, CliProcess, eventually, startCli, startTestPhonehome, TestPhonehome } from './helpers/phonehome';
import { makeTempDir, removeDir } from './helpers/tmp';

interface CountingServer {
  port: number;
  accepts: () => number;
  received: () => number;
  close(): Promise<void>;
}

/** A TCP server that counts the connections it accepts and the bytes it receives (and answers nothing). */
async function startCountingServer(): Promise<CountingServer> {
  let accepts = 0;
  let received = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    accepts++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    s.on('data', (d) => (received += d.length));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    accepts: () => accepts,
    received: () => received,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** Counts the connections an origin accepts from now on. */
function countConnections(origin: Origin): () => number {
  let n = 0;
  origin.server.on('connection', () => n++);
  return () => n;
}

function collect(socket: net.Socket): { text: () => string; closed: Promise<void> } {
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return { text: () => text, closed };
}

async function stillServes(ph: TestPhonehome, origin: Origin): Promise<void> {
  const r = await curl(['-x', `http://127.0.0.1:${ph.proxyPort}`, `http://origin.test:${origin.port}/alive`]);
  expect(r.stderr).toBe('');
  expect(JSON.parse(r.stdout).url).toBe('/alive');
}

describe('pipelining on one connection', () => {
  let ph: TestPhonehome;
  let httpOrigin: Origin;

  beforeAll(async () => {
    httpOrigin = await startHttpOrigin();
    ph = await startTestPhonehome();
  });
  afterAll(async () => {
    await ph?.stop();
    await httpOrigin?.close();
  });

  it('1,000 CONNECTs written at once open one upstream connection; the bytes after the first belong to its tunnel', async () => {
    const server = await startCountingServer();
    try {
      const one = `CONNECT origin.test:${server.port} HTTP/1.1\r\nHost: origin.test:${server.port}\r\n\r\n`;
      const client = await connectTcp(ph.proxyPort);
      const reply = collect(client);
      client.write(one.repeat(1000));
      // The 999 CONNECTs after the answered one are the tunnel's bytes: the server receives them.
      await eventually(() => server.received() >= one.length * 999, 20000, 'the tunnelled bytes at the server');
      expect(server.accepts()).toBe(1);
      expect(reply.text().match(/HTTP\/1\.1 \d+/g)).toEqual(['HTTP/1.1 200']);
      // The client's connection, its one upstream, and nothing else.
      expect(ph.proxy.openSocketCount()).toBeLessThanOrEqual(2);
      client.destroy();
      const flow = await eventually(() => ph.flows("tags LIKE '%nested-connect%'")[0], 10000, 'the relayed tunnel recorded');
      expect(flow.kind).toBe('raw');
      expect(flow.port).toBe(server.port);
      expect(flow.request_body_size).toBe(one.length * 999);
    } finally {
      await server.close();
    }
    await stillServes(ph, httpOrigin);
  });

  it('16 requests pipelined in a tunnel use one server connection, answered in order', async () => {
    const connections = countConnections(httpOrigin);
    const { socket, status } = await openTunnel(ph.proxyPort, `origin.test:${httpOrigin.port}`);
    expect(status).toBe(200);
    const reply = collect(socket);
    let pipelined = '';
    for (let i = 0; i < 16; i++) pipelined += `GET /p${i} HTTP/1.1\r\nHost: origin.test:${httpOrigin.port}\r\n\r\n`;
    socket.write(pipelined);
    await eventually(() => (reply.text().match(/HTTP\/1\.1 200/g) ?? []).length === 16 && reply.text().includes('"url":"/p15"'), 20000, '16 responses');
    const order = [...reply.text().matchAll(/"url":"\/p(\d+)"/g)].map((m) => Number(m[1]));
    expect(order).toEqual(Array.from({ length: 16 }, (_, i) => i));
    expect(connections()).toBe(1);
    socket.destroy();
  });

  it('requests pipelined on one connection reach the server one at a time, answered in order', async () => {
    // A server that answers each request a little later, so requests forwarded together overlap there.
    let inFlight = 0;
    let most = 0;
    const slowServer = http.createServer((req, res) => {
      most = Math.max(most, ++inFlight);
      setTimeout(() => {
        inFlight--;
        res.end(JSON.stringify({ url: req.url }));
      }, 20);
    });
    await new Promise<void>((resolve) => slowServer.listen(0, '127.0.0.1', resolve));
    const port = (slowServer.address() as net.AddressInfo).port;
    try {
      const client = await connectTcp(ph.proxyPort);
      const reply = collect(client);
      let pipelined = '';
      // Distinct host names: forwarded together, each would take its own server connection.
      for (let i = 0; i < 16; i++) pipelined += `GET http://h${i + 1}.test:${port}/q${i} HTTP/1.1\r\nHost: h${i + 1}.test:${port}\r\n\r\n`;
      client.write(pipelined);
      await eventually(() => reply.text().includes('"url":"/q15"'), 20000, '16 responses');
      expect([...reply.text().matchAll(/"url":"\/q(\d+)"/g)].map((m) => Number(m[1]))).toEqual(Array.from({ length: 16 }, (_, i) => i));
      expect(most).toBe(1);
      client.destroy();
    } finally {
      slowServer.closeAllConnections();
      await new Promise((resolve) => slowServer.close(resolve));
    }
  });

  it('a connection pipelining more than 16 requests behind the one in progress is closed, and logged once', async () => {
    const client = await connectTcp(ph.proxyPort);
    const reply = collect(client);
    let pipelined = '';
    for (let i = 0; i < 1000; i++) pipelined += `GET http://h${(i % 200) + 1}.test:${httpOrigin.port}/flood${i} HTTP/1.1\r\nHost: h${(i % 200) + 1}.test:${httpOrigin.port}\r\n\r\n`;
    client.write(pipelined);
    await reply.closed;
    expect((reply.text().match(/HTTP\/1\.1 200/g) ?? []).length).toBeLessThanOrEqual(17);
    expect(ph.logs.filter((l) => /requests pipelined behind the one in progress/.test(l)).length).toBe(1);
    expect(ph.proxy.openSocketCount()).toBeLessThan(40);
    await stillServes(ph, httpOrigin);
  });

  it('a CONNECT after a request inside a tunnel is answered 501 and dials nothing', async () => {
    const server = await startCountingServer();
    try {
      const { socket, status } = await openTunnel(ph.proxyPort, `origin.test:${httpOrigin.port}`);
      expect(status).toBe(200);
      const reply = collect(socket);
      socket.write(`GET /first HTTP/1.1\r\nHost: origin.test\r\n\r\nCONNECT origin.test:${server.port} HTTP/1.1\r\nHost: origin.test:${server.port}\r\n\r\n`);
      await reply.closed;
      expect(reply.text()).toMatch(/^HTTP\/1\.1 200 [\s\S]*"url":"\/first"[\s\S]*HTTP\/1\.1 501 /);
      expect(server.accepts()).toBe(0);
      const flow = await eventually(() => ph.flows("method = 'CONNECT' AND response_status = 501")[0], 5000, 'the refusal recorded');
      expect(flow.error).toMatch(/inside the tunnel/);
      expect(JSON.parse(flow.tags)).toContain('nested-connect');
    } finally {
      await server.close();
    }
  });
});

describe('slow request heads (slowloris)', () => {
  const HEAD_TIMEOUT_MS = 500;
  let ph: TestPhonehome;
  let httpOrigin: Origin;
  let httpsOrigin: Origin;

  beforeAll(async () => {
    [httpOrigin, httpsOrigin] = await Promise.all([startHttpOrigin(), startHttpsOrigin()]);
    // The idle timeout stays long: only the head deadline can close these connections in time.
    ph = await startTestPhonehome({ headTimeoutMs: HEAD_TIMEOUT_MS, proxy: { idleTimeoutMs: 120_000 } });
  });
  afterAll(async () => {
    await ph?.stop();
    await Promise.all([httpOrigin?.close(), httpsOrigin?.close()]);
  });

  /** Writes `text` one byte every `everyMs` until the socket closes; never finishes a head of that length in time. */
  function trickle(socket: net.Socket | tls.TLSSocket, text: string, everyMs = 100): void {
    let i = 0;
    const timer = setInterval(() => {
      if (socket.destroyed || i >= text.length) return void clearInterval(timer);
      socket.write(text[i++]);
    }, everyMs);
    socket.once('close', () => clearInterval(timer));
  }

  const slowHead = (port: number) => `GET http://origin.test:${port}/slow HTTP/1.1\r\nHost: origin.test:${port}\r\nX-Padding: ${'a'.repeat(400)}\r\n\r\n`;

  it('200 connections trickling a head byte by byte are all answered 408 and closed; others are still served', async () => {
    const clients = await Promise.all(Array.from({ length: 200 }, () => connectTcp(ph.proxyPort)));
    const replies = clients.map((c) => {
      const r = collect(c);
      trickle(c, slowHead(httpOrigin.port));
      return r;
    });
    let bound: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(replies.map((r) => r.closed)), new Promise((r) => (bound = setTimeout(r, 30000)))]);
    clearTimeout(bound);
    expect(clients.filter((c) => !c.destroyed).length).toBe(0);
    expect(replies.filter((r) => !r.text().startsWith('HTTP/1.1 408 ')).length).toBe(0);
    // One line for the lot (the same client address), not 200.
    expect(ph.logs.filter((l) => /request head not complete within 500 ms/.test(l)).length).toBe(1);
    await stillServes(ph, httpOrigin);
  });

  it('an idle keep-alive connection and a slow request body are not cut by the head deadline', async () => {
    const socket = await connectTcp(ph.proxyPort);
    const first = await requestOver(socket, `GET http://origin.test:${httpOrigin.port}/one HTTP/1.1\r\nHost: origin.test:${httpOrigin.port}\r\n\r\n`);
    expect(first.status).toBe(200);
    // Idle for four deadlines: no byte of a new head arrived, so this is the idle timeout's business.
    await new Promise((r) => setTimeout(r, HEAD_TIMEOUT_MS * 4));
    expect(socket.destroyed).toBe(false);
    const body = 'x'.repeat(20);
    const head = `POST http://origin.test:${httpOrigin.port}/two HTTP/1.1\r\nHost: origin.test:${httpOrigin.port}\r\nContent-Length: ${body.length}\r\n\r\n`;
    const second = requestOver(socket, head);
    // The body arrives over four deadlines: its head was complete at once.
    trickle(socket, body, HEAD_TIMEOUT_MS / 5);
    const res = await second;
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString()).size).toBe(body.length);
    socket.destroy();
  });

  it('a head trickled inside a plain CONNECT tunnel is closed with 408', async () => {
    const { socket, status } = await openTunnel(ph.proxyPort, `origin.test:${httpOrigin.port}`);
    expect(status).toBe(200);
    const reply = collect(socket);
    socket.write('GET /slow HT');
    trickle(socket, `TP/1.1\r\nHost: origin.test\r\nX-Padding: ${'a'.repeat(400)}\r\n\r\n`);
    await reply.closed;
    expect(reply.text()).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('a head trickled inside intercepted TLS is closed with 408', async () => {
    const socket = await tlsThroughProxy(ph.proxyPort, 'origin.test', httpsOrigin.port, ph.ca.certPem);
    const reply = collect(socket as unknown as net.Socket);
    trickle(socket, `GET /slow HTTP/1.1\r\nHost: origin.test\r\nX-Padding: ${'a'.repeat(400)}\r\n\r\n`);
    await reply.closed;
    expect(reply.text()).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('a TLS handshake that stops after the ClientHello is closed and recorded', async () => {
    const { socket, status } = await openTunnel(ph.proxyPort, `stalled.test:${httpsOrigin.port}`);
    expect(status).toBe(200);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => undefined);
    // A real ClientHello, then silence: the proxy answers with its ServerHello and waits for the rest.
    const hello = await captureClientHello('stalled.test');
    socket.write(hello);
    await closed;
    const flow = await eventually(() => ph.flows("kind = 'tls-failure' AND sni = 'stalled.test'")[0], 5000, 'the failed handshake recorded');
    expect(flow.error).toMatch(/TLS handshake not complete within 500 ms/);
    expect(JSON.parse(flow.tags)).not.toContain('pinning-suspected');
  });
});

/** The first flight of Node's TLS client for `servername` (a real ClientHello). */
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

describe('connections per client address', () => {
  const CAP = 5;
  let ph: TestPhonehome;
  let httpOrigin: Origin;

  beforeAll(async () => {
    httpOrigin = await startHttpOrigin();
    ph = await startTestPhonehome({ maxConnectionsPerClient: CAP });
  });
  afterAll(async () => {
    await ph?.stop();
    await httpOrigin?.close();
  });

  it('refuses connections over the cap with 429, logs it once, and serves again once some close', async () => {
    const held = await Promise.all(Array.from({ length: CAP }, () => connectTcp(ph.proxyPort)));
    await eventually(() => ph.proxy.connectionsFrom('127.0.0.1') === CAP, 5000, 'the held connections counted');
    for (let i = 0; i < 3; i++) {
      const reply = await rawExchange(ph.proxyPort, `GET http://origin.test:${httpOrigin.port}/over HTTP/1.1\r\nHost: origin.test\r\n\r\n`, 10000);
      expect(reply).toMatch(/^HTTP\/1\.1 429 [\s\S]*too many connections/);
    }
    expect(ph.logs.filter((l) => /refused a connection from 127\.0\.0\.1/.test(l)).length).toBe(1);
    // The held connections still work.
    const res = await requestOver(held[0], `GET http://origin.test:${httpOrigin.port}/held HTTP/1.1\r\nHost: origin.test:${httpOrigin.port}\r\n\r\n`);
    expect(res.status).toBe(200);
    held[1].destroy();
    held[2].destroy();
    await eventually(() => ph.proxy.connectionsFrom('127.0.0.1') === CAP - 2, 5000, 'closed connections uncounted');
    await stillServes(ph, httpOrigin);
    for (const s of held) s.destroy();
  });
});

describe('the limits as flags of phonehome start (CLI)', () => {
  let dir: string;
  let cli: CliProcess | undefined;
  beforeEach(() => (dir = makeTempDir()));
  afterEach(async () => {
    await cli?.stop('SIGKILL');
    cli = undefined;
    removeDir(dir);
  });

  it.each([
    [['--head-timeout', '-1'], /--head-timeout must be a whole number/],
    [['--head-timeout', '99999'], /--head-timeout must be between 0 and 3600/],
    [['--max-client-connections', 'many'], /--max-client-connections/],
  ])('rejects %j with a clear message', (args, message) => {
    const r = spawnSync(process.execPath, [CLI, 'start', '--data-dir', dir, ...(args as string[])], { encoding: 'utf8', timeout: 20000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message as RegExp);
  });

  it('--max-client-connections 2 refuses the third connection; --head-timeout 1 closes a slow head with 408', async () => {
    cli = await startCli(['--port', '0', '--dashboard-port', '0', '--listen-host', '127.0.0.1', '--data-dir', dir, '--max-client-connections', '2', '--head-timeout', '1']);
    const port = cli.port;
    const slow = await connectTcp(port);
    const held = await connectTcp(port);
    const slowReply = collect(slow);
    slow.write('GET / HTTP/1.1\r\nHost: x\r\nX-Slow: a');
    const timer = setInterval(() => !slow.destroyed && slow.write('a'), 200);
    try {
      const refused = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 10000);
      expect(refused).toMatch(/^HTTP\/1\.1 429 /);
      await slowReply.closed;
      expect(slowReply.text()).toMatch(/^HTTP\/1\.1 408 /);
    } finally {
      clearInterval(timer);
      held.destroy();
    }
    await eventually(() => /refused a connection from 127\.0\.0\.1/.test(cli!.stderr()) && /request head not complete within 1000 ms/.test(cli!.stderr()), 5000, 'both log lines');
    expect(await cli.stop('SIGTERM')).toBe(0);
  });
});
