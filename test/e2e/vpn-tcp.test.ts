/**
 * VPN mode's TCP end to end, as a user runs it: `phonehome start --wireguard` (the built CLI) in a
 * "laptop" network namespace with HTTP, HTTPS and raw TCP origins on a test host there, and
 * wireguard-go as the phone in a "phone" namespace. From the phone, with no proxy settings: curl to
 * the HTTP origin (an IMEI in a form body) and to the HTTPS origin (phonehome's CA trusted with
 * --cacert), a raw TCP echo on an unusual port, IPv6, and a 20 MB download checked by hash. The
 * flows, their bodies and the IMEI finding must be in the database with source 'vpn', and the
 * finding's alert on the dashboard's WebSocket stream.
 * Needs root, /dev/net/tun, wireguard-go, wireguard-tools and curl (CI installs them).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import Database from 'better-sqlite3';
import { CLI } from './helpers/phonehome';
import { originCert, patternSha256 } from './helpers/origin';
import { makeTempDir, removeDir } from './helpers/tmp';
import { Background, canRunNetns, LAPTOP_UNDERLAY, NetnsPair, TEST_HOST, waitFor } from '../../scripts/vpn-netns';

const describeNetns = canRunNetns() ? describe : describe.skip;
const WG_PORT = 51820;
const RAW_PORT = 7777;
const IMEI = '356938035643809';
const TEST_HOST6 = 'fd99::1';

/** HTTP :80 and HTTPS :443 origins (echo a JSON summary, /bytes?n= streams n bytes) and a raw echo. */
function laptopServers(certFile: string, keyFile: string): string {
  return `
const http = require('http'), https = require('https'), net = require('net'), fs = require('fs'), crypto = require('crypto');
function pattern(size) { const b = Buffer.alloc(size); for (let i = 0; i < size; i++) b[i] = (i * 31 + 7) & 0xff; return b; }
function handler(req, res) {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/bytes') {
    let left = Number(url.searchParams.get('n'));
    res.writeHead(200, { 'Content-Length': String(left), 'Content-Type': 'application/octet-stream' });
    const chunk = pattern(64 * 1024);
    const pump = () => { while (left > 0) { const t = Math.min(left, chunk.length); left -= t; if (!res.write(t === chunk.length ? chunk : chunk.subarray(0, t))) return void res.once('drain', pump); } res.end(); };
    return pump();
  }
  const parts = []; req.on('data', (c) => parts.push(c));
  req.on('end', () => { const body = JSON.stringify({ host: req.headers.host, got: Buffer.concat(parts).toString() }); res.writeHead(200, { 'Content-Type': 'application/json' }); res.end(body); });
}
let up = 0; const ready = () => { if (++up === 4) console.log('servers up'); };
http.createServer(handler).listen(80, '${TEST_HOST}', ready);
http.createServer(handler).listen(80, '${TEST_HOST6}', ready);
https.createServer({ cert: fs.readFileSync('${certFile}'), key: fs.readFileSync('${keyFile}') }, handler).listen(443, '${TEST_HOST}', ready);
net.createServer((s) => { s.on('error', () => {}); s.on('data', (d) => s.write(Buffer.concat([Buffer.from('ECHO '), d]))); s.on('end', () => s.end()); }).listen(${RAW_PORT}, '${TEST_HOST}', ready);
`;
}

function configValue(config: string, key: string): string {
  const m = new RegExp(`^${key} = (.+)$`, 'm').exec(config);
  if (!m) throw new Error(`no ${key} in config:\n${config}`);
  return m[1].trim();
}

describeNetns('VPN mode TCP over WireGuard (wireguard-go as the phone, curl without proxy settings)', () => {
  const pair = new NetnsPair();
  let dataDir: string;
  let phonehome: Background;
  let servers: Background;

  /** Runs a command in the phone namespace. */
  function phone(cmd: string, args: string[], timeout = 60000): { out: string; err: string; status: number | null } {
    const r = spawnSync('ip', ['netns', 'exec', pair.phoneNs, cmd, ...args], { encoding: 'utf8', timeout, maxBuffer: 64 * 1024 * 1024 });
    return { out: r.stdout ?? '', err: r.stderr ?? '', status: r.status };
  }

  function query<T>(sql: string, ...params: unknown[]): T[] {
    const db = new Database(path.join(dataDir, 'phonehome.db'), { readonly: true, fileMustExist: true });
    try {
      return db.prepare(sql).all(...params) as T[];
    } finally {
      db.close();
    }
  }

  async function flowWhere(cond: string, ...params: unknown[]): Promise<Record<string, unknown>> {
    let row: Record<string, unknown> | undefined;
    await waitFor(() => !!(row = query<Record<string, unknown>>(`SELECT * FROM flows WHERE ${cond}`, ...params)[0]), 15000, `a flow where ${cond}`);
    return row!;
  }

  beforeAll(async () => {
    dataDir = makeTempDir('phonehome-vpn-tcp-');
    pair.setup();
    pair.execIn(pair.laptopNs, 'ip', ['-6', 'addr', 'add', `${TEST_HOST6}/128`, 'dev', 'lo', 'nodad']);
    const add = spawnSync(process.execPath, [CLI, 'wireguard', 'add', 'pixel', '--data-dir', dataDir, '--endpoint', `${LAPTOP_UNDERLAY}:${WG_PORT}`, '--no-qr'], { encoding: 'utf8', timeout: 20000 });
    if (add.status !== 0) throw new Error(`wireguard add failed: ${add.stdout}${add.stderr}`);
    const config = add.stdout;
    const keyFile = path.join(dataDir, 'phone-under-test.key');
    fs.writeFileSync(keyFile, configValue(config, 'PrivateKey') + '\n', { mode: 0o600 });

    const cert = originCert();
    const originKey = path.join(dataDir, 'origin-key.pem');
    fs.writeFileSync(originKey, cert.keyPem, { mode: 0o600 });
    const serversJs = path.join(dataDir, 'laptop-servers.js');
    fs.writeFileSync(serversJs, laptopServers(cert.certFile, originKey));
    servers = pair.spawnIn(pair.laptopNs, process.execPath, [serversJs]);
    await waitFor(() => servers.output().includes('servers up') || servers.child.exitCode !== null, 10000, 'laptop servers');
    if (servers.child.exitCode !== null) throw new Error(`servers exited: ${servers.output()}`);

    // The origin's self-signed certificate is trusted by phonehome the documented way.
    phonehome = pair.spawnIn(pair.laptopNs, process.execPath, [CLI, 'start', '--wireguard', '--wireguard-port', String(WG_PORT),
      '--port', '0', '--dashboard-port', '0', '--data-dir', dataDir, '--dns-upstream', '127.0.0.1'], { env: { ...process.env, NODE_EXTRA_CA_CERTS: cert.certFile } });
    await waitFor(() => /Press Ctrl\+C/.test(phonehome.output()) || phonehome.child.exitCode !== null, 30000, 'phonehome start');
    if (phonehome.child.exitCode !== null) throw new Error(`phonehome exited: ${phonehome.output()}`);

    const [ipv4, ipv6] = configValue(config, 'Address').split(',').map((a) => a.trim().replace(/\/\d+$/, ''));
    await pair.startPhone({ privateKeyFile: keyFile, serverPublicKey: configValue(config, 'PublicKey'), endpoint: configValue(config, 'Endpoint'), ipv4, ipv6 });
  }, 90000);

  afterAll(async () => {
    await pair.destroy();
    removeDir(dataDir);
  }, 30000);

  test('curl over plain HTTP: answered by the origin; flow, form body and IMEI finding recorded for the phone', async () => {
    const r = phone('curl', ['-sS', '--max-time', '20', '-d', `imei=${IMEI}&model=Nokia`, `http://${TEST_HOST}/register`]);
    expect(r.err).toBe('');
    expect(JSON.parse(r.out)).toEqual({ host: TEST_HOST, got: `imei=${IMEI}&model=Nokia` });
    const flow = await flowWhere("url = ? AND source = 'vpn'", `http://${TEST_HOST}/register`);
    expect(flow).toMatchObject({ client_ip: '10.77.0.2', method: 'POST', response_status: 200, tls: 0 });
    let findings: Array<{ type: string; value: string }> = [];
    await waitFor(() => (findings = query('SELECT type, value FROM findings WHERE flow_id = ?', flow.id)).some((f) => f.type === 'imei'), 20000, 'the IMEI finding');
    expect(findings).toContainEqual(expect.objectContaining({ type: 'imei', value: IMEI }));

    // The dashboard's live stream (replayed from the start with ?since=0) carries its alert.
    const [, dashboard, token] = /dashboard:\s+(http:\/\/127\.0\.0\.1:\d+)\/\?token=(\S+)/.exec(phonehome.output()) ?? [];
    expect(dashboard).toBeDefined();
    const wsScript = `
      const WebSocket = require(${JSON.stringify(require.resolve('ws'))});
      const ws = new WebSocket('${dashboard!.replace('http', 'ws')}/ws?since=0', { headers: { Authorization: 'Bearer ${token}' } });
      const got = [];
      ws.on('message', (m) => got.push(JSON.parse(String(m))));
      ws.on('error', (e) => { console.log('error ' + e.message); process.exit(1); });
      setTimeout(() => { console.log(JSON.stringify(got.filter((e) => e.type === 'alert').map((e) => e.data))); process.exit(0); }, 2000);`;
    const ws = spawnSync('ip', ['netns', 'exec', pair.laptopNs, process.execPath, '-e', wsScript], { encoding: 'utf8', timeout: 15000 });
    const alerts = JSON.parse(ws.stdout.trim()) as Array<{ flowId: number; clientIp: string; types: string[]; url: string }>;
    expect(alerts).toContainEqual(expect.objectContaining({ flowId: flow.id, clientIp: '10.77.0.2', types: expect.arrayContaining(['imei']) }));
  }, 60000);

  test('curl over HTTPS with the CA trusted: intercepted, decrypted body recorded', async () => {
    const ca = path.join(dataDir, 'ca.pem');
    const r = phone('curl', ['-sS', '--max-time', '20', '--cacert', ca, '--resolve', `origin.test:443:${TEST_HOST}`, '-d', `IMEI1=${IMEI}`, 'https://origin.test/tls']);
    expect(r.err).toBe('');
    expect(JSON.parse(r.out)).toEqual({ host: 'origin.test', got: `IMEI1=${IMEI}` });
    // Without our CA, curl refuses our certificate: the interception is real.
    const untrusted = phone('curl', ['-sS', '--max-time', '20', '--resolve', `origin.test:443:${TEST_HOST}`, 'https://origin.test/x']);
    expect(untrusted.status).not.toBe(0);
    const flow = await flowWhere("url = 'https://origin.test/tls' AND source = 'vpn'");
    expect(flow).toMatchObject({ client_ip: '10.77.0.2', tls: 1, sni: 'origin.test', response_status: 200, host: 'origin.test' });
    expect(Buffer.from(flow.request_body as Buffer).toString()).toBe(`IMEI1=${IMEI}`);
  }, 60000);

  test('a raw TCP protocol on an unusual port is relayed and recorded', async () => {
    const r = phone(process.execPath, ['-e', `
      const c = require('net').connect(${RAW_PORT}, '${TEST_HOST}', () => c.end('hello-${pair.id}'));
      let got = ''; c.on('data', (d) => (got += d)); c.on('close', () => console.log(got)); c.on('error', (e) => console.log('error ' + e.code));`]);
    expect(r.out.trim()).toBe(`ECHO hello-${pair.id}`);
    const flow = await flowWhere("port = ? AND kind = 'raw' AND source = 'vpn'", RAW_PORT);
    expect(Buffer.from(flow.request_body as Buffer).toString()).toBe(`hello-${pair.id}`);
  }, 60000);

  test('IPv6 through the tunnel', async () => {
    const r = phone('curl', ['-sS', '--max-time', '20', '-d', 'v6=yes', `http://[${TEST_HOST6}]/six`]);
    expect(r.err).toBe('');
    expect(JSON.parse(r.out).got).toBe('v6=yes');
    const flow = await flowWhere("url LIKE '%/six' AND source = 'vpn'");
    expect(flow.client_ip).toBe('10.77.0.2');
  }, 60000);

  test('the setup page and the CA come through the tunnel: phonehome.setup resolves to phonehome, no proxy setting needed', async () => {
    const dig = phone('dig', ['+short', '+time=3', '+tries=2', '@10.77.0.1', 'phonehome.setup', 'A']);
    expect(dig.out.trim()).toBe('10.77.0.1');
    const dig6 = phone('dig', ['+short', '+time=3', '+tries=2', '@10.77.0.1', 'phonehome.setup', 'AAAA']);
    expect(dig6.out.trim()).toBe('fd77::1');
    const ca = phone('curl', ['-sS', '--max-time', '20', '--resolve', 'phonehome.setup:80:10.77.0.1', 'http://phonehome.setup/ca.pem']);
    expect(ca.err).toBe('');
    expect(ca.out.trim()).toBe(fs.readFileSync(path.join(dataDir, 'ca.pem'), 'utf8').trim());
    const page = phone('curl', ['-sS', '--max-time', '20', 'http://10.77.0.1/']);
    expect(page.out).toMatch(/phonehome/i);
    expect(page.out).toMatch(/ca\.pem/);
    let lookup: Record<string, unknown> | undefined;
    await waitFor(() => !!(lookup = query<Record<string, unknown>>("SELECT * FROM dns WHERE name = 'phonehome.setup' AND type = 'A'")[0]), 15000, 'the dns row of phonehome.setup');
    expect(JSON.parse(lookup!.answers as string)).toEqual([{ type: 'A', data: '10.77.0.1', ttl: 60 }]);
  }, 60000);

  test('a 20 MB download arrives intact', () => {
    const n = 20 * 1024 * 1024;
    const r = phone('sh', ['-c', `curl -sS --max-time 120 'http://${TEST_HOST}/bytes?n=${n}' | sha256sum`], 150000);
    expect(r.err).toBe('');
    expect(r.out.split(' ')[0]).toBe(patternSha256(n));
  }, 180000);
});
