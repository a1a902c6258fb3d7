/**
 * The proxy never forwards into the laptop's own loopback (issue: a phone read the dashboard's API
 * through the proxy). Real phonehome (startPhonehome) with the default policy, real clients (curl,
 * raw sockets for spellings curl would normalise), and sentinel servers on 127.0.0.1 and ::1 that
 * count connections: every spelling, through plain HTTP, CONNECT and a WebSocket upgrade, and a
 * name resolving to 127.0.0.1, gets a 403 saying why and a flow row, and the sentinel sees no
 * connection. The same requests with --allow-loopback-targets reach the sentinel (so the test can
 * fail), except phonehome's own ports, which are refused whatever the flag.
 */
import * as http from 'http';
import * as net from 'net';
import * as tls from 'tls';
import { connectTcp, curl, openTunnel, rawExchange, readHead } from './helpers/clients';
import { eventually, startTestPhonehome, TestPhonehome } from './helpers/phonehome';
import type { FlowRow } from '../../proxy/store/flows';

interface Sentinel {
  port: number;
  connections: () => number;
  close(): Promise<void>;
}

/** HTTP servers on 127.0.0.1 and ::1 (same port) standing in for the dashboard: they count every connection. */
async function startSentinel(): Promise<Sentinel> {
  let count = 0;
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => res.end(`sentinel saw ${req.url}`);
  const servers = [http.createServer(handler), http.createServer(handler)];
  for (const s of servers) {
    s.on('connection', () => count++);
    s.on('upgrade', (_req, socket: net.Socket) => socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'));
  }
  await new Promise<void>((r) => servers[0].listen(0, '127.0.0.1', r));
  const port = (servers[0].address() as net.AddressInfo).port;
  await new Promise<void>((r, j) => servers[1].once('error', j).listen(port, '::1', r));
  return {
    port,
    connections: () => count,
    close: async () => {
      for (const s of servers) s.closeAllConnections();
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    },
  };
}

/** What a browser sends a proxy for http:// (absolute-form), closed after the answer. */
function plainRequest(authority: string, path = '/api/export.har'): string {
  return `GET http://${authority}${path} HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`;
}

function webSocketRequest(authority: string): string {
  return `GET http://${authority}/ws?since=0 HTTP/1.1\r\nHost: ${authority}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
    'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';
}

const status = (response: string) => Number(response.split(' ')[1]);
const tags = (row: FlowRow) => JSON.parse(row.tags) as string[];

/** Spellings of the laptop's loopback (`PORT` is replaced by the sentinel's port). */
const SPELLINGS = [
  '127.0.0.1', 'localhost', 'LOCALHOST.', 'app.localhost', '127.1', '127.0.1', '2130706433', '0x7f000001', '0X7F000001', '017700000001',
  '0177.0.0.1', '127.0.0.1.', '127.255.255.254', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]', '[::FFFF:7F00:1]', '[::1]', '[0:0:0:0:0:0:0:1]', '0.0.0.0', '0', '[::]',
];

describe('the proxy refuses the laptop\'s loopback by default', () => {
  let ph: TestPhonehome;
  let sentinel: Sentinel;

  beforeAll(async () => {
    sentinel = await startSentinel();
    // The test lookup resolves every name to 127.0.0.1: a name is the "host name resolving to loopback" case.
    ph = await startTestPhonehome({ allowLoopbackTargets: false, dashboardPort: 0 });
  });
  afterAll(async () => {
    await ph?.stop();
    await sentinel?.close();
  });

  test('curl -x for the dashboard\'s HAR export gets a 403 that says why, and a flow row records it', async () => {
    const dashboardPort = new URL(ph.dashboardUrl!).port;
    const r = await curl(['-x', `http://127.0.0.1:${ph.proxyPort}`, '-w', '\n%{http_code}', `http://127.0.0.1:${dashboardPort}/api/export.har`]);
    const [body, code] = [r.stdout.slice(0, r.stdout.lastIndexOf('\n')), r.stdout.slice(r.stdout.lastIndexOf('\n') + 1)];
    expect(code).toBe('403');
    expect(body).toBe(`phonehome: refused: 127.0.0.1 is phonehome itself (port ${dashboardPort}, its dashboard)\n`);
    const row = await eventually(() => ph.flows('url = ?', `http://127.0.0.1:${dashboardPort}/api/export.har`)[0]);
    expect(row).toMatchObject({ kind: 'http', source: 'proxy', method: 'GET', host: '127.0.0.1', port: Number(dashboardPort), response_status: 403, client_ip: '127.0.0.1' });
    expect(tags(row)).toEqual(['self-refused']);
    expect(ph.logs.some((l) => l.startsWith('403 to 127.0.0.1') && l.includes('/api/export.har'))).toBe(true);
  });

  test('curl -x for another service on the laptop\'s loopback: 403 naming the flag, a flow row, no connection', async () => {
    const before = sentinel.connections();
    const r = await curl(['-x', `http://127.0.0.1:${ph.proxyPort}`, '-w', '\n%{http_code}', `http://127.0.0.1:${sentinel.port}/admin`]);
    const [body, code] = [r.stdout.slice(0, r.stdout.lastIndexOf('\n')), r.stdout.slice(r.stdout.lastIndexOf('\n') + 1)];
    expect(code).toBe('403');
    expect(body).toMatch(/^phonehome: refused: 127\.0\.0\.1 is this laptop's own loopback address; phonehome does not forward phones into the laptop itself .*--allow-loopback-targets/);
    const row = await eventually(() => ph.flows('url = ?', `http://127.0.0.1:${sentinel.port}/admin`)[0]);
    expect(row).toMatchObject({ kind: 'http', source: 'proxy', method: 'GET', host: '127.0.0.1', response_status: 403 });
    expect(tags(row)).toEqual(['loopback-refused']);
    expect(row.error).toBe(body.replace(/^phonehome: /, '').trim());
    expect(sentinel.connections()).toBe(before);
  });

  test.each(SPELLINGS)('plain HTTP to %s is refused before any connection', async (host) => {
    const before = sentinel.connections();
    const authority = `${host}:${sentinel.port}`;
    const response = await rawExchange(ph.proxyPort, plainRequest(authority, `/plain/${encodeURIComponent(host)}`));
    expect(status(response)).toBe(403);
    expect(response).toMatch(/phonehome: refused: .*this laptop's own loopback address/);
    const row = await eventually(() => ph.flows('url LIKE ?', `%/plain/${encodeURIComponent(host)}`)[0]);
    expect(row.response_status).toBe(403);
    expect(tags(row)).toContain('loopback-refused');
    expect(sentinel.connections()).toBe(before);
  });

  test.each(SPELLINGS)('CONNECT to %s is refused before any connection', async (host) => {
    const before = sentinel.connections();
    const { status: code, head, socket } = await openTunnel(ph.proxyPort, `${host}:${sentinel.port}`);
    socket.destroy();
    expect(code).toBe(403);
    expect(head).toMatch(/^HTTP\/1\.1 403 Forbidden/);
    const canonical = host.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '');
    const row = await eventually(() => ph.flows("method = 'CONNECT' AND host = ? AND port = ?", canonical, sentinel.port)[0]);
    expect(row).toMatchObject({ response_status: 403, scheme: 'tcp' });
    expect(tags(row)).toEqual(['loopback-refused']);
    expect(sentinel.connections()).toBe(before);
  });

  test('curl -p (a real CONNECT client) is told 403', async () => {
    const r = await curl(['-p', '-x', `http://127.0.0.1:${ph.proxyPort}`, '-w', '%{http_connect}', `http://127.0.0.1:${sentinel.port}/through-curl-p`]);
    expect(r.stdout).toBe('403');
    expect(r.stderr).toMatch(/CONNECT tunnel failed, response 403/);
  });

  test('a WebSocket upgrade to the loopback is refused and recorded', async () => {
    const before = sentinel.connections();
    for (const host of ['127.0.0.1', '0x7f000001', '[::1]']) {
      const response = await rawExchange(ph.proxyPort, webSocketRequest(`${host}:${sentinel.port}`));
      expect(status(response)).toBe(403);
      expect(response).toMatch(/this laptop's own loopback address/);
    }
    const rows = await eventually(() => {
      const r = ph.flows("url LIKE '%/ws?since=0' AND tags LIKE '%websocket%'");
      return r.length === 3 && r;
    });
    for (const row of rows) expect(tags(row)).toEqual(['websocket', 'loopback-refused']);
    expect(sentinel.connections()).toBe(before);
  });

  test('a host name that resolves to 127.0.0.1 is refused at resolution: plain HTTP, CONNECT and WebSocket', async () => {
    const before = sentinel.connections();
    const authority = `rebind.example:${sentinel.port}`;
    const plain = await rawExchange(ph.proxyPort, plainRequest(authority, '/rebind'));
    expect(status(plain)).toBe(403);
    expect(plain).toMatch(/refused: rebind\.example resolves to 127\.0\.0\.1, which is this laptop's own loopback address/);
    const tunnel = await openTunnel(ph.proxyPort, authority);
    tunnel.socket.destroy();
    expect(tunnel.status).toBe(403);
    const ws = await rawExchange(ph.proxyPort, webSocketRequest(authority));
    expect(status(ws)).toBe(403);
    const rows = await eventually(() => {
      const r = ph.flows("host = 'rebind.example'");
      return r.length === 3 && r;
    });
    expect(rows.map((r) => [r.method, r.response_status, tags(r).includes('loopback-refused')])).toEqual([
      ['GET', 403, true], ['CONNECT', 403, true], ['GET', 403, true],
    ]);
    expect(rows.every((r) => /resolves to 127\.0\.0\.1/.test(r.error ?? ''))).toBe(true);
    expect(sentinel.connections()).toBe(before);
  });

  test('a CONNECT to the proxy itself is refused in any spelling, rather than looping', async () => {
    for (const host of ['127.0.0.1', 'localhost', '127.1', '2130706433', '[::ffff:7f00:1]', '[::1]']) {
      const { status: code, head, socket } = await openTunnel(ph.proxyPort, `${host}:${ph.proxyPort}`);
      socket.destroy();
      expect(code).toBe(403);
      expect(head).toMatch(/403 Forbidden/);
    }
    const rows = await eventually(() => {
      const r = ph.flows("method = 'CONNECT' AND port = ?", ph.proxyPort);
      return r.length === 6 && r;
    });
    for (const row of rows) {
      expect(tags(row)).toEqual(['self-refused']);
      expect(row.error).toMatch(/is this proxy itself: a tunnel there would loop back into phonehome/);
    }
  });

  test('phonehome\'s own setup page stays reachable: http://phonehome.setup/ and over CONNECT phonehome.setup:443', async () => {
    const page = await curl(['-x', `http://127.0.0.1:${ph.proxyPort}`, '-w', '%{http_code}', '-o', '/dev/null', 'http://phonehome.setup/']);
    expect(page.stdout).toBe('200');
    const { socket, status: code } = await openTunnel(ph.proxyPort, 'phonehome.setup:443');
    expect(code).toBe(200);
    const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const t = tls.connect({ socket, servername: 'phonehome.setup', ca: ph.ca.certPem }, () => resolve(t));
      t.once('error', reject);
    });
    secure.write('GET /ca.pem HTTP/1.1\r\nHost: phonehome.setup\r\nConnection: close\r\n\r\n');
    const { status: pageStatus } = await readHead(secure as unknown as net.Socket);
    secure.destroy();
    expect(pageStatus).toBe(200);
  });

  test('a request straight to the proxy port (not proxied) still gets the setup page', async () => {
    const s = await connectTcp(ph.proxyPort);
    s.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${ph.proxyPort}\r\nConnection: close\r\n\r\n`);
    const { status: code } = await readHead(s);
    s.destroy();
    expect(code).toBe(200);
  });
});

describe('with --allow-loopback-targets the same requests go through (and phonehome\'s own ports still do not)', () => {
  let ph: TestPhonehome;
  let sentinel: Sentinel;

  beforeAll(async () => {
    sentinel = await startSentinel();
    ph = await startTestPhonehome({ allowLoopbackTargets: true, dashboardPort: 0 });
  });
  afterAll(async () => {
    await ph?.stop();
    await sentinel?.close();
  });

  test.each(['127.0.0.1', 'localhost', '127.1', '2130706433', '0x7f000001', '[::ffff:7f00:1]', '[::1]', 'rebind.example'])('plain HTTP to %s reaches the loopback server', async (host) => {
    const before = sentinel.connections();
    const response = await rawExchange(ph.proxyPort, plainRequest(`${host}:${sentinel.port}`, '/allowed'));
    expect(status(response)).toBe(200);
    expect(response).toContain('sentinel saw /allowed');
    expect(sentinel.connections()).toBe(before + 1);
  });

  test('CONNECT and a WebSocket upgrade reach it too', async () => {
    const before = sentinel.connections();
    const tunnel = await openTunnel(ph.proxyPort, `0x7f000001:${sentinel.port}`);
    tunnel.socket.destroy();
    expect(tunnel.status).toBe(200);
    const ws = await rawExchange(ph.proxyPort, webSocketRequest(`127.1:${sentinel.port}`), 1000);
    expect(status(ws)).toBe(101);
    expect(sentinel.connections()).toBe(before + 2);
  });

  test('the dashboard\'s port and the proxy\'s own port are still refused, in any spelling', async () => {
    const dashboardPort = Number(new URL(ph.dashboardUrl!).port);
    for (const host of ['127.0.0.1', 'localhost', '127.1', '[::ffff:7f00:1]']) {
      const response = await rawExchange(ph.proxyPort, plainRequest(`${host}:${dashboardPort}`, '/api/flows'));
      expect(status(response)).toBe(403);
      expect(response).toMatch(/is phonehome itself \(port \d+, its dashboard\)/);
    }
    // A name resolving to the laptop, on the dashboard's port, is refused at resolution.
    const byName = await rawExchange(ph.proxyPort, plainRequest(`rebind.example:${dashboardPort}`, '/api/flows'));
    expect(status(byName)).toBe(403);
    expect(byName).toMatch(/rebind\.example resolves to 127\.0\.0\.1, which is phonehome itself/);
    const tunnel = await openTunnel(ph.proxyPort, `127.0.0.1:${ph.proxyPort}`);
    tunnel.socket.destroy();
    expect(tunnel.status).toBe(403);
    const named = await openTunnel(ph.proxyPort, `rebind.example:${ph.proxyPort}`);
    named.socket.destroy();
    expect(named.status).toBe(403);
    const rows = await eventually(() => {
      const r = ph.flows("tags LIKE '%self-refused%'");
      return r.length === 7 && r;
    });
    expect(rows.every((r) => r.response_status === 403)).toBe(true);
  });
});
