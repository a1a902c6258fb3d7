/**
 * VPN mode over a Wi-Fi that loses and reorders: wireguard-go as the phone in a "phone" namespace,
 * `phonehome start --wireguard` (the built CLI) in a "laptop" namespace, and between them a
 * user-space UDP relay (this kernel has no netem) that drops 3% of datagrams each way and delays
 * each by 20-40 ms, so they also overtake each other. In the same run the same transfers go
 * through the same relay to wireguard-go + the laptop kernel's TCP, the reference. A user checks
 * that 5 MB downloads and uploads arrive byte for byte; a capture on the phone's tunnel interface,
 * read by tshark, shows the options really in use (SACK blocks from phonehome, timestamps). Then a
 * flood of replayed handshake initiations: the phone's wireguard-go still gets its handshake,
 * which takes a cookie reply it can open. Speed is measured by bench:tunnel-tcp, not here.
 * Needs root, /dev/net/tun, wireguard-go, wireguard-tools, tcpdump and tshark (CI installs them);
 * `npm run build` first (the relay runs from dist/).
 */
import { spawnSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { makeTempDir, removeDir } from './helpers/tmp';
import { LaptopSide, relayOnly, startLaptopSides, startRelays, switchPhoneTo, type PhoneTarget } from '../../scripts/bench-tunnel-sides';
import { canRunNetns, LAPTOP_UNDERLAY, NetnsPair, TEST_HOST, waitFor } from '../../scripts/vpn-netns';

const describeNetns = canRunNetns() ? describe : describe.skip;
const HTTP_PORT = 8000;
const SINK_PORT = 9002;
const SIZE = 5 * 1024 * 1024;

/** The bytes of every transfer: a seeded 64 KiB chunk repeated (the same text runs on both ends). */
const PATTERN_JS = `
function patternChunk() {
  const b = Buffer.alloc(64 * 1024); let a = 2026;
  for (let i = 0; i < b.length; i++) { a = (a + 0x6d2b79f5) >>> 0; let t = Math.imul(a ^ (a >>> 15), a | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); b[i] = (t ^ (t >>> 14)) & 0xff; }
  return b;
}
function pump(w, left, done) {
  const chunk = patternChunk();
  const go = () => { while (left > 0) { const t = Math.min(left, chunk.length); left -= t; if (!w.write(t === chunk.length ? chunk : chunk.subarray(0, t))) return void w.once('drain', go); } done(); };
  go();
}`;

const SERVERS_JS = `${PATTERN_JS}
const http = require('http'), net = require('net'), crypto = require('crypto');
http.createServer((req, res) => {
  const n = Number(new URL(req.url, 'http://x').searchParams.get('n'));
  res.writeHead(200, { 'Content-Length': String(n) });
  pump(res, n, () => res.end());
}).listen(${HTTP_PORT}, '${TEST_HOST}');
net.createServer((s) => {
  s.on('error', () => {});
  const h = crypto.createHash('sha256'); let n = 0;
  s.on('data', (d) => { n += d.length; h.update(d); });
  s.on('end', () => s.end(n + ' ' + h.digest('hex')));
}).listen(${SINK_PORT}, '${TEST_HOST}', () => console.log('servers up'));`;

/** The phone: a GET (body hashed after the head) or an upload; prints bytes and SHA-256. */
const CLIENT_JS = `${PATTERN_JS}
const [mode, host, port, n] = process.argv.slice(2);
const h = require('crypto').createHash('sha256');
let bytes = 0, reply = '', head = mode === 'get' ? Buffer.alloc(0) : undefined;
const c = require('net').connect(Number(port), host, () => {
  if (mode === 'get') c.write('GET /bytes?n=' + n + ' HTTP/1.1\\r\\nHost: lossy.test\\r\\nConnection: close\\r\\n\\r\\n');
  else pump(c, Number(n), () => c.end());
});
c.on('data', (d) => {
  if (mode === 'upload') return void (reply += d);
  if (head) { head = Buffer.concat([head, d]); const at = head.indexOf('\\r\\n\\r\\n'); if (at < 0) return; d = head.subarray(at + 4); head = undefined; }
  bytes += d.length; h.update(d);
});
c.on('close', () => {
  if (mode === 'upload') { const [got, sha] = reply.trim().split(' '); console.log(JSON.stringify({ bytes: Number(got), sha })); }
  else console.log(JSON.stringify({ bytes, sha: h.digest('hex') }));
});
c.on('error', (e) => { console.error(e.message); process.exit(1); });`;

function expectedSha(bytes: number): string {
  const chunk = new Function(`${PATTERN_JS}; return patternChunk();`)() as Buffer;
  const h = crypto.createHash('sha256');
  for (let left = bytes; left > 0; left -= chunk.length) h.update(left >= chunk.length ? chunk : chunk.subarray(0, left));
  return h.digest('hex');
}

describeNetns('VPN mode over a lossy, reordering link (3% loss each way, 20-40 ms) against the kernel', () => {
  const pair = new NetnsPair();
  let dir: string;
  let sides: { phonehome: LaptopSide; wireguardGo: LaptopSide };
  let lossy: { phonehome: LaptopSide; kernel: LaptopSide };
  let current: PhoneTarget | undefined;

  function phoneRun(mode: 'get' | 'upload', side: LaptopSide): { bytes: number; sha: string } {
    current = switchPhoneTo(pair, current, side);
    // A new handshake through the relay may take a retry (5 s) when a handshake datagram is lost.
    waitForPing();
    const port = mode === 'get' ? HTTP_PORT : SINK_PORT;
    const r = spawnSync('ip', ['netns', 'exec', pair.phoneNs, process.execPath, path.join(dir, 'client.js'), mode, TEST_HOST, String(port), String(SIZE)],
      { encoding: 'utf8', timeout: 150_000 });
    if (r.status !== 0) throw new Error(`${mode} failed: ${r.stdout}${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as { bytes: number; sha: string };
  }

  function waitForPing(): void {
    for (let i = 0; i < 40; i++) {
      if (spawnSync('ip', ['netns', 'exec', pair.phoneNs, 'ping', '-c', '1', '-W', '1', TEST_HOST], { timeout: 5000 }).status === 0) return;
    }
    throw new Error('no ping through the tunnel');
  }

  beforeAll(async () => {
    dir = makeTempDir('phonehome-vpn-lossy-');
    pair.setup();
    fs.writeFileSync(path.join(dir, 'servers.js'), SERVERS_JS);
    fs.writeFileSync(path.join(dir, 'client.js'), CLIENT_JS);
    const servers = pair.spawnIn(pair.laptopNs, process.execPath, [path.join(dir, 'servers.js')]);
    await waitFor(() => servers.output().includes('servers up'), 10_000, 'servers');
    sides = await startLaptopSides(pair, dir);
    current = { peer: sides.phonehome.peer, endpoint: sides.phonehome.endpoint };
    const [[ph, kernel]] = await startRelays(pair, [sides.phonehome, sides.wireguardGo], [{ loss: 0.03, delayMs: 20, jitterMs: 20 }]);
    lossy = { phonehome: ph, kernel };
    relayOnly(pair, true); // no way around the relay
  }, 120_000);

  afterAll(async () => {
    await pair.destroy();
    removeDir(dir);
  }, 30_000);

  test('5 MB downloads (HTTP, intercepted by phonehome) arrive byte for byte, through phonehome and through the kernel', () => {
    const want = expectedSha(SIZE);
    expect(phoneRun('get', lossy.phonehome)).toEqual({ bytes: SIZE, sha: want });
    expect(phoneRun('get', lossy.kernel)).toEqual({ bytes: SIZE, sha: want });
  }, 400_000);

  test('5 MB uploads arrive byte for byte; on the tunnel, phonehome answers with SACK blocks and timestamps', () => {
    const want = expectedSha(SIZE);
    const pcap = path.join(dir, 'upload.pcap');
    current = switchPhoneTo(pair, current, lossy.phonehome);
    waitForPing();
    const dump = pair.spawnIn(pair.phoneNs, 'tcpdump', ['-i', pair.wgIface, '-n', '-s', '120', '-U', '-w', pcap, 'tcp']);
    try {
      spawnSync('sleep', ['1']);
      expect(phoneRun('upload', lossy.phonehome)).toEqual({ bytes: SIZE, sha: want });
    } finally {
      process.kill(dump.child.pid!, 'SIGINT');
    }
    spawnSync('sleep', ['1']);
    const fields = (filter: string, f: string[]) => spawnSync('tshark', ['-r', pcap, '-n', '-Y', filter, '-T', 'fields', ...f.flatMap((x) => ['-e', x])], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
    // The SYN-ACK from the server (phonehome, answering as 198.18.0.1) agrees SACK and timestamps with the phone's kernel.
    const synAck = fields(`ip.src == ${TEST_HOST} && tcp.flags.syn == 1 && tcp.flags.ack == 1 && tcp.srcport == ${SINK_PORT}`, ['tcp.options.sack_perm', 'tcp.options.timestamp.tsval']);
    expect(synAck.length).toBeGreaterThanOrEqual(1);
    expect(synAck[0].split('\t').every((v) => v !== '')).toBe(true);
    // Lost and overtaken segments: phonehome's ACKs carry SACK blocks, and D-SACK for duplicates.
    const sacks = fields(`ip.src == ${TEST_HOST} && tcp.options.sack_le`, ['tcp.options.sack_le']);
    expect(sacks.length).toBeGreaterThan(20);
    // Every segment from phonehome after the handshake carries timestamps.
    const withoutTs = fields(`ip.src == ${TEST_HOST} && tcp.srcport == ${SINK_PORT} && !tcp.options.timestamp.tsval && tcp.flags.reset == 0`, ['frame.number']);
    expect(withoutTs).toEqual([]);
    expect(phoneRun('upload', lossy.kernel)).toEqual({ bytes: SIZE, sha: want });
  }, 400_000);

  test('under a flood of replayed initiations the phone\'s wireguard-go still gets a handshake (via a cookie reply)', async () => {
    // Direct (no relay) so the only obstacle is the flood: replays of one initiation, from the laptop side.
    relayOnly(pair, false);
    current = switchPhoneTo(pair, current, sides.phonehome);
    waitForPing();
    const phoneKey = fs.readFileSync(path.join(dir, 'phone.key'), 'utf8').trim();
    const serverPub = sides.phonehome.peer;
    const floodJs = `
      const { createInitiation } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'dist', 'proxy', 'capture', 'tunnel', 'wireguard', 'handshake.js'))});
      const { decodeKey, privateKeyFromRaw, tai64n } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'dist', 'proxy', 'capture', 'tunnel', 'wireguard', 'crypto.js'))});
      const msg = createInitiation(privateKeyFromRaw(decodeKey('${phoneKey}')), decodeKey('${serverPub}'), 99, tai64n(Date.now() - 3600e3)).message;
      const s = require('dgram').createSocket('udp4');
      s.bind(0, '127.0.0.1', () => { console.log('flooding'); setInterval(() => { for (let i = 0; i < 5; i++) s.send(msg, ${sides.phonehome.endpoint.split(':')[1]}, '${LAPTOP_UNDERLAY}'); }, 1); });`;
    const flooder = pair.spawnIn(pair.laptopNs, process.execPath, ['-e', floodJs]);
    try {
      await waitFor(() => flooder.output().includes('flooding'), 10_000, 'the flood');
      await new Promise((r) => setTimeout(r, 1500));
      // A fresh session: the phone's peer is removed and set again, so its next packet needs a handshake.
      pair.execIn(pair.phoneNs, 'wg', ['set', pair.wgIface, 'peer', sides.phonehome.peer, 'remove']);
      current = switchPhoneTo(pair, undefined, sides.phonehome);
      const before = pair.latestHandshake();
      expect(before).toBe(0);
      waitForPing();
      expect(pair.latestHandshake()).toBeGreaterThan(0);
      expect(flooder.child.exitCode).toBeNull(); // the flood was on all along
    } finally {
      process.kill(flooder.child.pid!, 'SIGTERM');
    }
  }, 120_000);
});
