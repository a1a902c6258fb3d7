/**
 * VPN mode end to end, as a user runs it: `phonehome wireguard add`, then `phonehome start
 * --wireguard` (the built CLI) in a "laptop" network namespace, and Debian's wireguard-go as the
 * phone's WireGuard app in a "phone" namespace with the printed config (full tunnel, IPv4 and IPv6).
 * Checks the handshake (`wg show`), and through the tunnel: DNS answered by a resolver in the
 * laptop namespace and recorded in the `dns` table, a UDP echo, ping, QUIC refused, TCP to a closed
 * port failing fast, and HTTP over the tunnelled TCP recorded as the phone's flow.
 * Needs root, /dev/net/tun, wireguard-go and wireguard-tools (CI installs them).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import Database from 'better-sqlite3';
import { CLI } from './helpers/phonehome';
import { makeTempDir, removeDir } from './helpers/tmp';
import { Background, canRunNetns, LAPTOP_UNDERLAY, NetnsPair, TEST_HOST, waitFor } from '../../scripts/vpn-netns';

const describeNetns = canRunNetns() ? describe : describe.skip;
const WG_PORT = 51820;
const ECHO_PORT = 5353;
const HTTP_PORT = 8080;
const DNS_ANSWER = '198.18.0.7';

/** UDP echo on TEST_HOST and a tiny authoritative-for-everything DNS server on 127.0.0.1:53. */
const LAPTOP_SERVERS = `
const dgram = require('dgram');
const echo = dgram.createSocket('udp4');
echo.on('message', (m, r) => echo.send(Buffer.concat([Buffer.from('echo:'), m]), r.port, r.address));
echo.bind(${ECHO_PORT}, '${TEST_HOST}');
require('http').createServer((req, res) => res.end('hello over the tunnel ' + req.url)).listen(${HTTP_PORT}, '${TEST_HOST}');
// TXT for big.*: 8 strings of 250 bytes (~2.1 KB, more than fits the tunnel's 1420-byte MTU).
// big.mtu.*: answered whole over UDP (phonehome must truncate it for the tunnel);
// big.tc.*: over UDP only the header with TC set, as a resolver with a small UDP limit answers.
function txtFor(i) { return Buffer.concat([Buffer.from([250]), Buffer.alloc(250, 97 + i)]); }
function answer(q, overTcp) {
  let o = 12; const labels = [];
  while (q[o]) { labels.push(q.subarray(o + 1, o + 1 + q[o]).toString()); o += q[o] + 1; }
  const name = labels.join('.');
  const qtype = q.readUInt16BE(o + 1);
  const question = q.subarray(12, o + 5);
  const header = Buffer.alloc(12);
  q.copy(header, 0, 0, 2);
  header.writeUInt16BE(0x8180 | (q.readUInt16BE(2) & 0x0100), 2);
  header.writeUInt16BE(1, 4);
  const answers = [];
  if (qtype === 1) {
    const a = Buffer.alloc(16);
    a.writeUInt16BE(0xc00c, 0); a.writeUInt16BE(1, 2); a.writeUInt16BE(1, 4); a.writeUInt32BE(60, 6); a.writeUInt16BE(4, 10);
    Buffer.from('${DNS_ANSWER}'.split('.').map(Number)).copy(a, 12);
    answers.push(a);
  }
  if (qtype === 16 && name.startsWith('big.')) {
    if (name.startsWith('big.tc.') && !overTcp) header.writeUInt16BE(0x8380 | (q.readUInt16BE(2) & 0x0100), 2);
    else for (let i = 0; i < 8; i++) {
      const rr = Buffer.alloc(12); const txt = txtFor(i);
      rr.writeUInt16BE(0xc00c, 0); rr.writeUInt16BE(16, 2); rr.writeUInt16BE(1, 4); rr.writeUInt32BE(60, 6); rr.writeUInt16BE(txt.length, 10);
      answers.push(rr, txt);
    }
  }
  header.writeUInt16BE(qtype === 16 ? answers.length / 2 : answers.length, 6);
  console.log('query ' + name + ' ' + qtype + (overTcp ? ' tcp' : ''));
  return Buffer.concat([header, question, ...answers]);
}
const dns = dgram.createSocket('udp4');
dns.on('message', (q, r) => dns.send(answer(q, false), r.port, r.address));
require('net').createServer((c) => {
  let buf = Buffer.alloc(0);
  c.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const out = answer(buf.subarray(2, 2 + buf.readUInt16BE(0)), true);
      buf = buf.subarray(2 + buf.readUInt16BE(0));
      const len = Buffer.alloc(2); len.writeUInt16BE(out.length);
      c.write(Buffer.concat([len, out]));
    }
  });
  c.on('error', () => {});
}).listen(53, '127.0.0.1');
dns.bind(53, '127.0.0.1');
console.log('servers up');
`;

/** Runs a short node script in the phone namespace and returns its stdout. */
function phoneNode(pair: NetnsPair, script: string, timeout = 15000): { out: string; status: number | null; ms: number } {
  const t0 = Date.now();
  const r = spawnSync('ip', ['netns', 'exec', pair.phoneNs, process.execPath, '-e', script], { encoding: 'utf8', timeout });
  return { out: (r.stdout ?? '') + (r.stderr ?? ''), status: r.status, ms: Date.now() - t0 };
}

function configValue(config: string, key: string): string {
  const m = new RegExp(`^${key} = (.+)$`, 'm').exec(config);
  if (!m) throw new Error(`no ${key} in config:\n${config}`);
  return m[1].trim();
}

describeNetns('VPN mode over WireGuard (wireguard-go as the phone, in network namespaces)', () => {
  const pair = new NetnsPair();
  let dataDir: string;
  let phonehome: Background;
  let servers: Background;
  let config: string;

  beforeAll(async () => {
    dataDir = makeTempDir('phonehome-vpn-');
    pair.setup();
    // What a user does first: make a phone and get its config.
    const add = spawnSync(process.execPath, [CLI, 'wireguard', 'add', 'pixel', '--data-dir', dataDir, '--endpoint', `${LAPTOP_UNDERLAY}:${WG_PORT}`, '--no-qr'], { encoding: 'utf8', timeout: 20000 });
    if (add.status !== 0) throw new Error(`wireguard add failed: ${add.stdout}${add.stderr}`);
    config = add.stdout;
    const keyFile = path.join(dataDir, 'phone-under-test.key');
    fs.writeFileSync(keyFile, configValue(config, 'PrivateKey') + '\n', { mode: 0o600 });

    const serversJs = path.join(dataDir, 'laptop-servers.js');
    fs.writeFileSync(serversJs, LAPTOP_SERVERS);
    servers = pair.spawnIn(pair.laptopNs, process.execPath, [serversJs]);
    await waitFor(() => servers.output().includes('servers up'), 10000, 'laptop servers');

    phonehome = pair.spawnIn(pair.laptopNs, process.execPath, [CLI, 'start', '--wireguard', '--wireguard-port', String(WG_PORT),
      '--port', '0', '--dashboard-port', '0', '--data-dir', dataDir, '--dns-upstream', '127.0.0.1']);
    await waitFor(() => /Press Ctrl\+C/.test(phonehome.output()) || phonehome.child.exitCode !== null, 30000, 'phonehome start');
    if (phonehome.child.exitCode !== null) throw new Error(`phonehome exited: ${phonehome.output()}`);

    const [ipv4, ipv6] = configValue(config, 'Address').split(',').map((a) => a.trim().replace(/\/\d+$/, ''));
    await pair.startPhone({
      privateKeyFile: keyFile, serverPublicKey: configValue(config, 'PublicKey'), endpoint: configValue(config, 'Endpoint'), ipv4, ipv6,
    });
  }, 90000);

  afterAll(async () => {
    await pair.destroy();
    removeDir(dataDir);
  }, 30000);

  test('`wireguard add` prints a full-tunnel config: both address families, DNS via phonehome, keepalive', () => {
    expect(configValue(config, 'Address')).toBe('10.77.0.2/32, fd77::2/128');
    expect(configValue(config, 'DNS')).toBe('10.77.0.1, fd77::1');
    expect(configValue(config, 'AllowedIPs')).toBe('0.0.0.0/0, ::/0');
    expect(configValue(config, 'Endpoint')).toBe(`${LAPTOP_UNDERLAY}:${WG_PORT}`);
    expect(configValue(config, 'PersistentKeepalive')).toBe('25');
    expect(configValue(config, 'MTU')).toBe('1420');
    // start prints the same phone's config (and a QR code) for the user to scan
    expect(phonehome.output()).toContain(`PublicKey = ${configValue(config, 'PublicKey')}`);
    expect(phonehome.output()).toContain(`UDP port ${WG_PORT}`);
    // keys are owner-only
    for (const f of ['server.key', 'peer-pixel.key', 'peers.json']) expect(fs.statSync(path.join(dataDir, 'wireguard', f)).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(dataDir, 'wireguard')).mode & 0o777).toBe(0o700);
    expect(phonehome.output()).not.toContain(fs.readFileSync(path.join(dataDir, 'wireguard', 'server.key'), 'utf8').trim());
  });

  test('the phone completes a handshake with phonehome (wg show)', async () => {
    // Any packet into the tunnel makes wireguard-go initiate.
    phoneNode(pair, `const s=require('dgram').createSocket('udp4'); s.send('hi', ${ECHO_PORT}, '${TEST_HOST}', () => s.close());`);
    await waitFor(() => pair.latestHandshake() > 0, 15000, 'handshake in wg show');
    const show = pair.execIn(pair.phoneNs, 'wg', ['show', pair.wgIface]);
    expect(show).toMatch(/latest handshake: (Now|\d+ seconds? ago)/);
    expect(show).toMatch(/transfer: .* received/);
  });

  test('DNS over TCP: an answer too big for the tunnel comes back truncated, and the phone\'s TCP retry gets it whole', async () => {
    // dig retries over TCP by itself when the UDP answer has TC set, as phones' resolvers do.
    const expected = Array.from({ length: 8 }, (_, i) => `"${String.fromCharCode(97 + i).repeat(250)}"`);
    for (const name of [`big.mtu.${pair.id}.example`, `big.tc.${pair.id}.example`]) {
      const r = spawnSync('ip', ['netns', 'exec', pair.phoneNs, 'dig', '+short', '+time=3', '+tries=2', '@10.77.0.1', name, 'TXT'], { encoding: 'utf8', timeout: 20000 });
      expect(r.stdout.trim().split('\n').sort()).toEqual(expected);
    }
    // Asked over TCP from the start, too (dig +tcp), and of another resolver address (apps hard-code 8.8.8.8).
    const tcp = spawnSync('ip', ['netns', 'exec', pair.phoneNs, 'dig', '+tcp', '+short', '+time=3', '+tries=1', '@8.8.8.8', `tcp-only.${pair.id}.example`, 'A'], { encoding: 'utf8', timeout: 20000 });
    expect(tcp.stdout.trim()).toBe(DNS_ANSWER);
    // The resolver was asked over TCP only where its UDP answer was truncated.
    await waitFor(() => servers.output().includes(`query big.tc.${pair.id}.example 16 tcp`), 5000, 'the TCP query upstream');
    expect(servers.output()).not.toContain(`query big.mtu.${pair.id}.example 16 tcp`);
    const db = new Database(path.join(dataDir, 'phonehome.db'), { readonly: true, fileMustExist: true });
    try {
      const overTcp = () => db.prepare("SELECT host FROM flows WHERE kind = 'dns' AND tags LIKE '%dns-over-tcp%' ORDER BY host").all().map((r) => (r as { host: string }).host);
      await waitFor(() => overTcp().length >= 3, 10000, 'the TCP lookups recorded');
      expect(overTcp()).toEqual([`big.mtu.${pair.id}.example`, `big.tc.${pair.id}.example`, `tcp-only.${pair.id}.example`]);
      const row = db.prepare('SELECT answers, resolver FROM dns WHERE name = ? AND flow_id IN (SELECT id FROM flows WHERE tags LIKE \'%dns-over-tcp%\')').get(`big.tc.${pair.id}.example`) as { answers: string; resolver: string };
      expect(JSON.parse(row.answers)).toHaveLength(8);
      expect(db.prepare('SELECT resolver FROM dns WHERE name = ?').get(`tcp-only.${pair.id}.example`)).toEqual({ resolver: '8.8.8.8' });
    } finally {
      db.close();
    }
  });

  test('a DNS lookup through the tunnel is answered by the laptop\'s resolver and recorded in the dns table', async () => {
    const name = `imei-350000000000000.probe-${pair.id}.example`;
    const r = spawnSync('ip', ['netns', 'exec', pair.phoneNs, 'dig', '+short', '+time=3', '+tries=2', '@10.77.0.1', name, 'A'], { encoding: 'utf8', timeout: 20000 });
    expect(r.stdout.trim()).toBe(DNS_ANSWER);
    // (spawnSync blocked this process: the resolver's log line is read once the event loop runs)
    await waitFor(() => servers.output().includes(`query ${name} 1`), 5000, 'the resolver to log the query');
    const db = new Database(path.join(dataDir, 'phonehome.db'), { readonly: true, fileMustExist: true });
    try {
      let row: { client_ip: string; name: string; type: string; answers: string; source: string } | undefined;
      await waitFor(() => !!(row = db.prepare('SELECT * FROM dns WHERE name = ?').get(name) as typeof row), 10000, 'dns row');
      expect(row!.client_ip).toBe('10.77.0.2');
      expect(row!.type).toBe('A');
      expect(row!.source).toBe('vpn');
      expect(JSON.parse(row!.answers)).toEqual([expect.objectContaining({ type: 'A', data: DNS_ANSWER })]);
    } finally {
      db.close();
    }
  });

  test('a UDP datagram to a host on the laptop side round-trips (relayed and echoed)', () => {
    const r = phoneNode(pair, `
      const s = require('dgram').createSocket('udp4');
      const t = setTimeout(() => { console.log('timeout'); process.exit(1); }, 8000);
      s.on('message', (m) => { console.log(String(m)); clearTimeout(t); s.close(); });
      s.send('ping-${pair.id}', ${ECHO_PORT}, '${TEST_HOST}');`);
    expect(r.out.trim()).toBe(`echo:ping-${pair.id}`);
  });

  test('ping through the tunnel (IPv4 and IPv6) is answered', () => {
    const v4 = spawnSync('ip', ['netns', 'exec', pair.phoneNs, 'ping', '-c', '2', '-W', '3', TEST_HOST], { encoding: 'utf8', timeout: 15000 });
    expect(v4.stdout).toMatch(/2 received/);
    const v6 = spawnSync('ip', ['netns', 'exec', pair.phoneNs, 'ping', '-6', '-c', '2', '-W', '3', 'fd77::1'], { encoding: 'utf8', timeout: 15000 });
    expect(v6.stdout).toMatch(/2 received/);
  });

  test('QUIC (UDP 443) is refused at once with ICMP port unreachable', () => {
    const r = phoneNode(pair, `
      const s = require('dgram').createSocket('udp4');
      const t = setTimeout(() => { console.log('no error'); process.exit(1); }, 5000);
      let done = false;
      s.on('error', (e) => { if (done) return; done = true; console.log(e.code); clearTimeout(t); s.close(); });
      s.connect(443, '${TEST_HOST}', () => { s.send('quic initial'); setTimeout(() => done || s.send('again'), 300); });`);
    expect(r.out.trim()).toBe('ECONNREFUSED');
    expect(r.ms).toBeLessThan(5000);
  });

  test('a TCP connect to a port nobody listens on fails fast with a reset', () => {
    const r = phoneNode(pair, `
      const t0 = Date.now();
      const c = require('net').connect(9, '${TEST_HOST}');
      c.on('connect', () => { console.log('connected'); process.exit(1); });
      c.on('error', (e) => console.log(e.code + ' ' + (Date.now() - t0)));`);
    const [code, ms] = r.out.trim().split(' ');
    expect(code).toBe('ECONNREFUSED');
    expect(Number(ms)).toBeLessThan(3000);
  });

  test('HTTP over tunnelled TCP reaches the server and is recorded as a flow of the phone', async () => {
    const r = spawnSync('ip', ['netns', 'exec', pair.phoneNs, 'curl', '-sS', '--max-time', '10', `http://${TEST_HOST}:${HTTP_PORT}/vpn-${pair.id}?imei=350000000000000`], { encoding: 'utf8', timeout: 20000 });
    expect(r.stdout).toBe(`hello over the tunnel /vpn-${pair.id}?imei=350000000000000`);
    const db = new Database(path.join(dataDir, 'phonehome.db'), { readonly: true, fileMustExist: true });
    try {
      let row: { client_ip: string; url: string } | undefined;
      await waitFor(() => !!(row = db.prepare("SELECT * FROM flows WHERE url LIKE ?").get(`%vpn-${pair.id}%`) as typeof row), 10000, 'flow row');
      expect(row!.client_ip).toBe('10.77.0.2');
    } finally {
      db.close();
    }
  });
});
