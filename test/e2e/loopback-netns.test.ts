/**
 * The laptop's loopback, attacked from the network as the issue describes, with real parts: the
 * built CLI (`phonehome start --wireguard`) in a "laptop" namespace with the proxy on its veth
 * address and the dashboard on every address, sentinel services on the laptop's loopback that log
 * every connection and datagram, and a "phone" namespace that is both a LAN neighbour (explicit
 * proxy, curl and raw sockets) and a WireGuard phone (wireguard-go, full tunnel). To make the phone
 * send packets for 127.0.0.1 into the tunnel, as a hostile phone can, its namespace drops its own
 * 127.0.0.1 and routes 127.0.0.0/8 into the tunnel (route_localnet).
 * By default: 403s and resets, flow rows, and the sentinels see nothing; the setup page at 10.77.0.1
 * and DNS forwarded to a resolver on the laptop's loopback keep working. Restarted with
 * --allow-loopback-targets the same requests reach the sentinels (so the test can fail).
 * Needs root, /dev/net/tun, wireguard-go, wireguard-tools, curl and dig (CI installs them).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import Database from 'better-sqlite3';
import { CLI } from './helpers/phonehome';
import { makeTempDir, removeDir } from './helpers/tmp';
import { Background, canRunNetns, LAPTOP_UNDERLAY, NetnsPair, run, TEST_HOST, waitFor } from '../../scripts/vpn-netns';

const describeNetns = canRunNetns() ? describe : describe.skip;
const WG_PORT = 51820;
const PROXY_PORT = 8080;
const DASHBOARD_PORT = 8081;
const SENTINEL_PORT = 9000;
const SENTINEL_UDP_PORT = 9001;
const DNS_ANSWER = '198.18.0.7';

/** Sentinels on the laptop's loopback (they log what reaches them), a resolver there, and an ordinary host. */
const LAPTOP_SERVERS = `
const http = require('http'), dgram = require('dgram');
const secret = (req, res) => res.end('loopback secret ' + req.url);
for (const host of ['127.0.0.1', '::1']) {
  const s = http.createServer(secret);
  s.on('connection', (c) => console.log('sentinel-tcp ' + c.remoteAddress));
  s.on('upgrade', (req, socket) => socket.end('HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n\\r\\n'));
  s.listen(${SENTINEL_PORT}, host);
}
const udp = dgram.createSocket('udp4');
udp.on('message', (m, r) => { console.log('sentinel-udp ' + m); udp.send(Buffer.concat([Buffer.from('echo:'), m]), r.port, r.address); });
udp.bind(${SENTINEL_UDP_PORT}, '127.0.0.1');
http.createServer((req, res) => res.end('ordinary host ' + req.url)).listen(80, '${TEST_HOST}');
const dns = dgram.createSocket('udp4');
dns.on('message', (q, r) => {
  let o = 12; const labels = [];
  while (q[o]) { labels.push(q.subarray(o + 1, o + 1 + q[o]).toString()); o += q[o] + 1; }
  console.log('dns-query ' + labels.join('.'));
  const header = Buffer.alloc(12); q.copy(header, 0, 0, 2);
  header.writeUInt16BE(0x8180 | (q.readUInt16BE(2) & 0x0100), 2); header.writeUInt16BE(1, 4); header.writeUInt16BE(1, 6);
  const a = Buffer.alloc(16);
  a.writeUInt16BE(0xc00c, 0); a.writeUInt16BE(1, 2); a.writeUInt16BE(1, 4); a.writeUInt32BE(60, 6); a.writeUInt16BE(4, 10);
  Buffer.from('${DNS_ANSWER}'.split('.').map(Number)).copy(a, 12);
  dns.send(Buffer.concat([header, q.subarray(12, o + 5), a]), r.port, r.address);
});
dns.bind(53, '127.0.0.1', () => console.log('servers up'));
`;

/** Sends raw requests (one connection each) and prints the first line of each answer, as JSON. */
const RAW_CLIENT = `
const net = require('net');
const [host, port] = process.argv.slice(2);
const requests = JSON.parse(require('fs').readFileSync(0, 'utf8'));
(async () => {
  const out = [];
  for (const text of requests) {
    out.push(await new Promise((resolve) => {
      const s = net.connect(Number(port), host, () => s.write(text));
      let got = '';
      s.on('data', (d) => { got += d; if (got.includes('\\r\\n')) { s.destroy(); resolve(got.split('\\r\\n')[0]); } });
      s.on('error', (e) => resolve('error ' + e.code));
      s.on('close', () => resolve(got.split('\\r\\n')[0] || 'closed'));
      setTimeout(() => { s.destroy(); resolve('timeout'); }, 5000).unref();
    }));
  }
  console.log(JSON.stringify(out));
})();
`;

const plain = (authority: string, p: string) => `GET http://${authority}${p} HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`;
const connect = (authority: string) => `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`;
const upgrade = (authority: string) => `GET http://${authority}/ws?since=0 HTTP/1.1\r\nHost: ${authority}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
  'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';

function configValue(config: string, key: string): string {
  const m = new RegExp(`^${key} = (.+)$`, 'm').exec(config);
  if (!m) throw new Error(`no ${key} in config:\n${config}`);
  return m[1].trim();
}

describeNetns('the laptop\'s loopback from a LAN neighbour and from a WireGuard phone (network namespaces)', () => {
  const pair = new NetnsPair();
  let dataDir: string;
  let servers: Background;
  let phonehome: Background;
  let config: string;
  let rawClient: string;

  function phone(cmd: string, args: string[], input?: string): { out: string; err: string; status: number | null } {
    const r = spawnSync('ip', ['netns', 'exec', pair.phoneNs, cmd, ...args], { encoding: 'utf8', timeout: 30000, input });
    return { out: r.stdout ?? '', err: r.stderr ?? '', status: r.status };
  }

  /** From the neighbour, through the explicit proxy: the first line of each answer. */
  function throughProxy(requests: string[]): string[] {
    const r = phone(process.execPath, [rawClient, LAPTOP_UNDERLAY, String(PROXY_PORT)], JSON.stringify(requests));
    if (r.status !== 0) throw new Error(`raw client failed: ${r.out}${r.err}`);
    return JSON.parse(r.out.trim()) as string[];
  }

  function flows(where: string, ...params: unknown[]): Array<Record<string, unknown>> {
    const db = new Database(path.join(dataDir, 'phonehome.db'), { readonly: true, fileMustExist: true });
    try {
      return db.prepare(`SELECT * FROM flows WHERE ${where} ORDER BY id`).all(...params) as Array<Record<string, unknown>>;
    } finally {
      db.close();
    }
  }

  async function eventuallyFlows(n: number, where: string, ...params: unknown[]): Promise<Array<Record<string, unknown>>> {
    let rows: Array<Record<string, unknown>> = [];
    await waitFor(() => (rows = flows(where, ...params)).length >= n, 15000, `${n} flows where ${where}`);
    return rows;
  }

  const sentinelLines = () => servers.output().split('\n').filter((l) => l.startsWith('sentinel-'));

  async function startPhonehome(extra: string[]): Promise<void> {
    phonehome = pair.spawnIn(pair.laptopNs, process.execPath, [CLI, 'start', '--wireguard', '--wireguard-port', String(WG_PORT),
      '--listen-host', LAPTOP_UNDERLAY, '--port', String(PROXY_PORT), '--dashboard-host', '0.0.0.0', '--dashboard-port', String(DASHBOARD_PORT),
      '--data-dir', dataDir, '--dns-upstream', '127.0.0.1', ...extra]);
    await waitFor(() => /Press Ctrl\+C/.test(phonehome.output()) || phonehome.child.exitCode !== null, 30000, 'phonehome start');
    if (phonehome.child.exitCode !== null) throw new Error(`phonehome exited: ${phonehome.output()}`);
  }

  async function stopPhonehome(): Promise<void> {
    const exited = new Promise((r) => phonehome.child.once('exit', r));
    process.kill(phonehome.child.pid!, 'SIGTERM');
    await exited;
  }

  beforeAll(async () => {
    dataDir = makeTempDir('phonehome-loopback-netns-');
    pair.setup();
    const add = spawnSync(process.execPath, [CLI, 'wireguard', 'add', 'pixel', '--data-dir', dataDir, '--endpoint', `${LAPTOP_UNDERLAY}:${WG_PORT}`, '--no-qr'], { encoding: 'utf8', timeout: 20000 });
    if (add.status !== 0) throw new Error(`wireguard add failed: ${add.stdout}${add.stderr}`);
    config = add.stdout;
    const keyFile = path.join(dataDir, 'phone-under-test.key');
    fs.writeFileSync(keyFile, configValue(config, 'PrivateKey') + '\n', { mode: 0o600 });
    rawClient = path.join(dataDir, 'raw-client.js');
    fs.writeFileSync(rawClient, RAW_CLIENT);
    const serversJs = path.join(dataDir, 'laptop-servers.js');
    fs.writeFileSync(serversJs, LAPTOP_SERVERS);
    servers = pair.spawnIn(pair.laptopNs, process.execPath, [serversJs]);
    await waitFor(() => servers.output().includes('servers up') || servers.child.exitCode !== null, 10000, 'laptop servers');
    if (servers.child.exitCode !== null) throw new Error(`servers exited: ${servers.output()}`);
    await startPhonehome([]);
    const [ipv4, ipv6] = configValue(config, 'Address').split(',').map((a) => a.trim().replace(/\/\d+$/, ''));
    await pair.startPhone({ privateKeyFile: keyFile, serverPublicKey: configValue(config, 'PublicKey'), endpoint: configValue(config, 'Endpoint'), ipv4, ipv6 });
    // A hostile phone sends packets for 127.0.0.1 into the tunnel: give up its own loopback address
    // and route 127/8 into the tunnel (Linux sends loopback destinations out only with route_localnet).
    run('ip', ['-n', pair.phoneNs, 'addr', 'del', '127.0.0.1/8', 'dev', 'lo']);
    for (const iface of ['all', pair.wgIface]) pair.execIn(pair.phoneNs, 'sh', ['-c', `echo 1 > /proc/sys/net/ipv4/conf/${iface}/route_localnet`]);
    run('ip', ['-n', pair.phoneNs, 'route', 'add', '127.0.0.0/8', 'dev', pair.wgIface]);
  }, 90000);

  afterAll(async () => {
    await pair.destroy();
    removeDir(dataDir);
  }, 30000);

  describe('by default', () => {
    test('a LAN neighbour using the proxy gets 403s for the laptop\'s loopback, in every spelling and method; the sentinel sees nothing', async () => {
      const curl = phone('curl', ['-sS', '--noproxy', '', '-x', `http://${LAPTOP_UNDERLAY}:${PROXY_PORT}`, '-w', '\n%{http_code}', `http://127.0.0.1:${SENTINEL_PORT}/secret`]);
      expect(curl.out).toMatch(/^phonehome: refused: 127\.0\.0\.1 is this laptop's own loopback address;.*\n\n403$/);
      const authorities = ['localhost', '127.1', '2130706433', '0x7f000001', '017700000001', '[::ffff:127.0.0.1]', '[::1]', '0.0.0.0'].map((h) => `${h}:${SENTINEL_PORT}`);
      const answers = throughProxy([
        ...authorities.map((a) => plain(a, '/spelled')),
        connect(`127.0.0.1:${SENTINEL_PORT}`), connect(`[::ffff:7f00:1]:${SENTINEL_PORT}`),
        upgrade(`127.0.0.1:${SENTINEL_PORT}`),
      ]);
      expect(answers).toEqual(Array(authorities.length + 3).fill('HTTP/1.1 403 Forbidden'));
      const rows = await eventuallyFlows(authorities.length + 4, "client_ip = '10.99.0.2' AND tags LIKE '%loopback-refused%'");
      expect(rows.every((r) => r.response_status === 403 && r.source === 'proxy' && /this laptop's own loopback address/.test(String(r.error)))).toBe(true);
      expect(sentinelLines()).toEqual([]);
    });

    test('phonehome itself on its LAN address: CONNECT to the proxy and the dashboard\'s port are refused; an ordinary host is served', async () => {
      const answers = throughProxy([
        connect(`${LAPTOP_UNDERLAY}:${PROXY_PORT}`),
        connect(`0x0a630001:${PROXY_PORT}`), // 10.99.0.1 as one number
        plain(`${LAPTOP_UNDERLAY}:${DASHBOARD_PORT}`, '/api/setup'),
        connect(`${LAPTOP_UNDERLAY}:${DASHBOARD_PORT}`),
        plain(`${TEST_HOST}:80`, '/ordinary'),
      ]);
      expect(answers).toEqual(['HTTP/1.1 403 Forbidden', 'HTTP/1.1 403 Forbidden', 'HTTP/1.1 403 Forbidden', 'HTTP/1.1 403 Forbidden', 'HTTP/1.1 200 OK']);
      const rows = await eventuallyFlows(4, "tags LIKE '%self-refused%'");
      expect(rows.map((r) => [r.method, r.port])).toEqual([['CONNECT', PROXY_PORT], ['CONNECT', PROXY_PORT], ['GET', DASHBOARD_PORT], ['CONNECT', DASHBOARD_PORT]]);
      expect(String(rows[2].error)).toMatch(/is phonehome itself \(port 8081, its dashboard\)/);
    });

    test('the WireGuard phone\'s TCP to 127.0.0.1 gets a reset and a flow row; the sentinel sees nothing', async () => {
      const r = phone('curl', ['-sS', '--max-time', '15', `http://127.0.0.1:${SENTINEL_PORT}/from-the-tunnel`]);
      expect(r.status).toBe(7); // curl: couldn't connect
      // The socket layer's view: a reset is ECONNREFUSED (a silent drop would time out).
      const node = phone(process.execPath, ['-e', `require('net').connect(${SENTINEL_PORT}, '127.0.0.1').on('error', (e) => console.log(e.code)).on('connect', () => console.log('connected')).setTimeout(10000, () => { console.log('timeout'); process.exit(0); });`]);
      expect(node.out.trim()).toBe('ECONNREFUSED');
      const rows = await eventuallyFlows(2, "source = 'vpn' AND kind = 'raw' AND host = '127.0.0.1' AND port = ?", SENTINEL_PORT);
      expect(rows).toHaveLength(2);
      const row = rows[0];
      expect(row).toMatchObject({ client_ip: '10.77.0.2', url: `tcp://127.0.0.1:${SENTINEL_PORT}` });
      expect(JSON.parse(String(row.tags))).toEqual(['loopback-refused']);
      expect(String(row.error)).toMatch(/127\.0\.0\.1 is this laptop's own loopback address.*; the phone got a reset$/);
      expect(sentinelLines()).toEqual([]);
    }, 60000);

    test('the phone\'s UDP to 127.0.0.1 gets ICMP prohibited (EHOSTUNREACH) and a flow row; the sentinel sees nothing', async () => {
      const r = phone(process.execPath, ['-e', `
        const s = require('dgram').createSocket('udp4');
        s.on('error', (e) => { console.log('error ' + e.code); s.close(); });
        s.on('message', (m) => { console.log('reply ' + m); s.close(); });
        s.connect(${SENTINEL_UDP_PORT}, '127.0.0.1', () => { s.send('udp-probe'); setTimeout(() => s.send('udp-probe'), 300); });
        setTimeout(() => { console.log('timeout'); process.exit(0); }, 5000).unref();`]);
      expect(r.out.trim()).toBe('error EHOSTUNREACH');
      const [row] = await eventuallyFlows(1, "source = 'vpn' AND kind = 'udp' AND port = ?", SENTINEL_UDP_PORT);
      expect(row).toMatchObject({ client_ip: '10.77.0.2', host: '127.0.0.1', url: `udp://127.0.0.1:${SENTINEL_UDP_PORT}` });
      expect(JSON.parse(String(row.tags))).toEqual(['udp', 'loopback-refused']);
      expect(Buffer.from(row.request_body as Buffer).toString()).toBe('udp-probe');
      expect(sentinelLines()).toEqual([]);
    }, 60000);

    test('the setup page at 10.77.0.1 and DNS forwarded to the laptop\'s loopback resolver still work; ordinary hosts too', async () => {
      const page = phone('curl', ['-sS', '--max-time', '15', 'http://10.77.0.1/']);
      expect(page.err).toBe('');
      expect(page.out).toMatch(/ca\.pem/);
      const name = `still-works-${pair.id}.example`;
      const dig = phone('dig', ['+short', '+time=3', '+tries=2', '@10.77.0.1', name, 'A']);
      expect(dig.out.trim()).toBe(DNS_ANSWER);
      await waitFor(() => servers.output().includes(`dns-query ${name}`), 5000, 'the loopback resolver to be asked');
      const ordinary = phone('curl', ['-sS', '--max-time', '15', `http://${TEST_HOST}/through-the-tunnel`]);
      expect(ordinary.out).toBe('ordinary host /through-the-tunnel');
    }, 60000);
  });

  describe('restarted with --allow-loopback-targets', () => {
    beforeAll(async () => {
      await stopPhonehome();
      await startPhonehome(['--allow-loopback-targets']);
      expect(phonehome.output()).toContain('warning: --allow-loopback-targets');
      // The new process has no session with the phone: remove and re-add the peer so it handshakes again.
      const pub = configValue(config, 'PublicKey');
      pair.execIn(pair.phoneNs, 'wg', ['set', pair.wgIface, 'peer', pub, 'remove']);
      pair.execIn(pair.phoneNs, 'wg', ['set', pair.wgIface, 'peer', pub, 'allowed-ips', '0.0.0.0/0,::/0', 'endpoint', `${LAPTOP_UNDERLAY}:${WG_PORT}`]);
    }, 60000);

    test('the same requests reach the laptop\'s loopback, except phonehome\'s own ports', async () => {
      const curl = phone('curl', ['-sS', '--noproxy', '', '-x', `http://${LAPTOP_UNDERLAY}:${PROXY_PORT}`, `http://127.0.0.1:${SENTINEL_PORT}/secret`]);
      expect(curl.out).toBe('loopback secret /secret');
      expect(throughProxy([plain(`0x7f000001:${SENTINEL_PORT}`, '/spelled'), connect(`[::1]:${SENTINEL_PORT}`), connect(`${LAPTOP_UNDERLAY}:${PROXY_PORT}`), plain(`127.0.0.1:${DASHBOARD_PORT}`, '/api/setup')]))
        .toEqual(['HTTP/1.1 200 OK', 'HTTP/1.1 200 Connection established', 'HTTP/1.1 403 Forbidden', 'HTTP/1.1 403 Forbidden']);
      const tunnelled = phone('curl', ['-sS', '--max-time', '15', `http://127.0.0.1:${SENTINEL_PORT}/from-the-tunnel`]);
      expect(tunnelled.out).toBe('loopback secret /from-the-tunnel');
      const udp = phone(process.execPath, ['-e', `
        const s = require('dgram').createSocket('udp4');
        s.on('message', (m) => { console.log('reply ' + m); s.close(); });
        s.on('error', (e) => { console.log('error ' + e.code); s.close(); });
        s.send('udp-allowed', ${SENTINEL_UDP_PORT}, '127.0.0.1');`]);
      expect(udp.out.trim()).toBe('reply echo:udp-allowed');
      await waitFor(() => sentinelLines().length >= 5, 5000, 'the sentinels to log');
      expect(sentinelLines()).toEqual(['sentinel-tcp 127.0.0.1', 'sentinel-tcp 127.0.0.1', 'sentinel-tcp ::1', 'sentinel-tcp 127.0.0.1', 'sentinel-udp udp-allowed']);
    }, 60000);
  });
});
