/**
 * Why: in VPN mode every TCP byte a phone sends or receives passes through phonehome's userspace
 * TCP (and, when intercepted, its HTTP parser). This measures TCP between the phone namespace
 * (wireguard-go as the phone's app, the phone kernel's TCP) and servers on the laptop side, with
 * phonehome as the laptop side and, in the same run, wireguard-go + the laptop kernel's TCP (the
 * reference on this machine):
 *  - clean link: one BENCH_MB download relayed (server speaks first: raw relay, no interception)
 *    and intercepted (HTTP GET: parsed, forwarded, recorded), one upload relayed; Mbit/s, CPU/MB;
 *  - lossy links, through scripts/lossy-udp-relay.ts between the phone and the laptop side:
 *    3% loss each way + 20-40 ms delay (reordering), reordering only, 3% loss only (fixed 25 ms);
 *    one BENCH_LOSSY_MB download (HTTP GET) and upload (raw) each, seconds, and phonehome's time
 *    over the kernel's.
 * Rounds alternate sides; medians are reported. Every transfer is checked (bytes and SHA-256).
 * BENCH_BASELINE=DIR adds another build of phonehome (DIR = its checkout with bin/ and a built
 * dist/, e.g. main) on the clean link, and with BENCH_BASELINE_LOSSY=1 on the lossy links too.
 * Needs root.
 *
 *   npm run bench:tunnel-tcp   BENCH_MB=50 BENCH_LOSSY_MB=5 BENCH_ROUNDS=3 BENCH_CASES=clean,lossy,reorder,loss
 */
import { spawnSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { median, processCpuMs } from './bench-lib';
import { LaptopSide, LinkProfile, PhoneTarget, relayOnly, startLaptopSides, startRelays, switchPhoneTo } from './bench-tunnel-sides';
import { canRunNetns, NetnsPair, TEST_HOST, waitFor } from './vpn-netns';

const MB = Number(process.env.BENCH_MB ?? 50);
const LOSSY_MB = Number(process.env.BENCH_LOSSY_MB ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CASES = (process.env.BENCH_CASES ?? 'clean,lossy,reorder,loss').split(',');
const HTTP_PORT = 8000;
const RAW_PORT = 9000;
const SINK_PORT = 9002;

const PROFILES: Record<string, LinkProfile & { label: string }> = {
  lossy: { label: '3% loss + 20-40 ms', loss: 0.03, delayMs: 20, jitterMs: 20 },
  reorder: { label: 'reordering only, 20-40 ms', loss: 0, delayMs: 20, jitterMs: 20 },
  loss: { label: '3% loss only, 25 ms', loss: 0.03, delayMs: 25, jitterMs: 0 },
};

/** The bytes every transfer carries: a seeded 64 KiB chunk repeated (the same text runs on both ends). */
const PATTERN_JS = `
function patternChunk() {
  const b = Buffer.alloc(64 * 1024); let a = 12345;
  for (let i = 0; i < b.length; i++) { a = (a + 0x6d2b79f5) >>> 0; let t = Math.imul(a ^ (a >>> 15), a | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); b[i] = (t ^ (t >>> 14)) & 0xff; }
  return b;
}
function pump(w, left, done) {
  const chunk = patternChunk();
  const go = () => { while (left > 0) { const t = Math.min(left, chunk.length); left -= t; if (!w.write(t === chunk.length ? chunk : chunk.subarray(0, t))) return void w.once('drain', go); } done(); };
  go();
}`;

/** HTTP /bytes?n=, raw servers that send a fixed size on connect, and a sink that answers "bytes sha256" at EOF. */
const SERVERS_JS = `${PATTERN_JS}
const http = require('http'), net = require('net'), crypto = require('crypto');
http.createServer((req, res) => {
  const n = Number(new URL(req.url, 'http://x').searchParams.get('n'));
  res.writeHead(200, { 'Content-Length': String(n) });
  pump(res, n, () => res.end());
}).listen(${HTTP_PORT}, '${TEST_HOST}');
net.createServer((s) => { s.on('error', () => {}); pump(s, ${MB * 1024 * 1024}, () => s.end()); }).listen(${RAW_PORT}, '${TEST_HOST}');
net.createServer((s) => {
  s.on('error', () => {});
  const h = crypto.createHash('sha256'); let n = 0;
  s.on('data', (d) => { n += d.length; h.update(d); });
  s.on('end', () => s.end(n + ' ' + h.digest('hex')));
}).listen(${SINK_PORT}, '${TEST_HOST}', () => console.log('servers up'));`;

/** The phone: download (raw: read until close; http: GET, body after the head) or upload; prints bytes, seconds, SHA-256. */
const CLIENT_JS = `${PATTERN_JS}
const [mode, host, port, n] = process.argv.slice(2);
const t0 = process.hrtime.bigint();
const secs = () => Number(process.hrtime.bigint() - t0) / 1e9;
const h = require('crypto').createHash('sha256');
let bytes = 0, reply = '', head = mode === 'http' ? Buffer.alloc(0) : undefined;
const c = require('net').connect(Number(port), host, () => {
  if (mode === 'http') c.write('GET /bytes?n=' + n + ' HTTP/1.1\\r\\nHost: bench.test\\r\\nConnection: close\\r\\n\\r\\n');
  if (mode === 'upload') pump(c, Number(n), () => c.end());
});
c.on('data', (d) => {
  if (mode === 'upload') return void (reply += d);
  if (head) {
    head = Buffer.concat([head, d]);
    const at = head.indexOf('\\r\\n\\r\\n');
    if (at < 0) return;
    d = head.subarray(at + 4);
    head = undefined;
  }
  bytes += d.length;
  h.update(d);
});
c.on('close', () => {
  if (mode === 'upload') { const [got, sha] = reply.trim().split(' '); console.log(JSON.stringify({ bytes: Number(got), sha, secs: secs() })); }
  else console.log(JSON.stringify({ bytes, sha: h.digest('hex'), secs: secs() }));
});
c.on('error', (e) => { console.error(e.message); process.exit(1); });`;

type Mode = 'raw' | 'http' | 'upload';
interface Sample { secs: number; mbit: number; cpuMsPerMb: number }

function expectedSha(bytes: number): string {
  const chunk = new Function(`${PATTERN_JS}; return patternChunk();`)() as Buffer;
  const h = crypto.createHash('sha256');
  for (let left = bytes; left > 0; left -= chunk.length) h.update(left >= chunk.length ? chunk : chunk.subarray(0, left));
  return h.digest('hex');
}

function transfer(pair: NetnsPair, dir: string, mode: Mode, port: number, mb: number, laptopPid: number): Sample {
  const bytesWanted = mb * 1024 * 1024;
  const before = processCpuMs(laptopPid);
  const r = spawnSync('ip', ['netns', 'exec', pair.phoneNs, process.execPath, path.join(dir, 'client.js'), mode, TEST_HOST, String(port), String(bytesWanted)],
    { encoding: 'utf8', timeout: 600_000 });
  const cpuMs = processCpuMs(laptopPid) - before;
  if (r.status !== 0) throw new Error(`${mode} failed: ${r.stdout}${r.stderr}`);
  const { bytes, sha, secs } = JSON.parse(r.stdout.trim().split('\n').pop()!) as { bytes: number; sha: string; secs: number };
  if (bytes !== bytesWanted) throw new Error(`${mode}: ${bytes} of ${bytesWanted} bytes`);
  if (sha !== expectedSha(bytesWanted)) throw new Error(`${mode}: the bytes differ from what was sent`);
  return { secs, mbit: (bytes * 8) / secs / 1e6, cpuMsPerMb: cpuMs / mb };
}

interface Measure {
  name: string;
  side: LaptopSide;
  mode: Mode;
  port: number;
  mb: number;
}

/**
 * After the phone switched laptop sides its WireGuard needs a new handshake (5 s per lost attempt
 * over a lossy relay): pings until one is answered, so no transfer is timed with a handshake in it.
 */
function warmUp(pair: NetnsPair): void {
  for (let i = 0; i < 30; i++) {
    if (spawnSync('ip', ['netns', 'exec', pair.phoneNs, 'ping', '-c', '1', '-W', '1', TEST_HOST], { timeout: 5000 }).status === 0) return;
  }
  throw new Error('the tunnel does not answer pings');
}

/** Runs every measure ROUNDS times, alternating; returns the samples per name. */
function runRounds(pair: NetnsPair, dir: string, measures: Measure[], state: { current?: PhoneTarget }, show: (m: Measure, s: Sample) => string): Map<string, Sample[]> {
  const samples = new Map<string, Sample[]>(measures.map((m) => [m.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const m of measures) {
      state.current = switchPhoneTo(pair, state.current, m.side);
      try {
        warmUp(pair);
        const s = transfer(pair, dir, m.mode, m.port, m.mb, m.side.pid);
        samples.get(m.name)!.push(s);
        console.log(`  round ${round + 1} ${m.name.padEnd(34)} ${show(m, s)}`);
      } catch (err) {
        // A failed transfer is a result too (and must be seen), not the end of the run.
        samples.get(m.name)!.push({ secs: NaN, mbit: NaN, cpuMsPerMb: NaN });
        console.log(`  round ${round + 1} ${m.name.padEnd(34)} FAILED: ${(err as Error).message.split('\n')[0]}`);
      }
    }
  }
  return samples;
}

function medianOf(samples: Map<string, Sample[]>, name: string, k: keyof Sample): number {
  return median(samples.get(name)!.map((s) => s[k]));
}

function cleanLink(pair: NetnsPair, dir: string, sides: { phonehome: LaptopSide; wireguardGo: LaptopSide; baseline?: LaptopSide }, state: { current?: PhoneTarget }): void {
  const measures: Measure[] = [
    { name: 'phonehome relay download', side: sides.phonehome, mode: 'raw', port: RAW_PORT, mb: MB },
    { name: 'phonehome intercept download', side: sides.phonehome, mode: 'http', port: HTTP_PORT, mb: MB },
    { name: 'phonehome relay upload', side: sides.phonehome, mode: 'upload', port: SINK_PORT, mb: MB },
    { name: 'wireguard-go download', side: sides.wireguardGo, mode: 'http', port: HTTP_PORT, mb: MB },
    { name: 'wireguard-go upload', side: sides.wireguardGo, mode: 'upload', port: SINK_PORT, mb: MB },
  ];
  if (sides.baseline) {
    measures.push({ name: 'baseline relay download', side: sides.baseline, mode: 'raw', port: RAW_PORT, mb: MB });
    measures.push({ name: 'baseline intercept download', side: sides.baseline, mode: 'http', port: HTTP_PORT, mb: MB });
    measures.push({ name: 'baseline relay upload', side: sides.baseline, mode: 'upload', port: SINK_PORT, mb: MB });
  }
  console.log(`clean link: one ${MB} MB transfer per measure, ${ROUNDS} rounds`);
  const samples = runRounds(pair, dir, measures, state, (_m, s) => `${s.mbit.toFixed(1).padStart(7)} Mbit/s  ${s.cpuMsPerMb.toFixed(1).padStart(6)} ms CPU/MB (laptop-side process)`);
  console.log('clean link medians:');
  for (const m of measures) console.log(`  ${m.name.padEnd(34)} ${medianOf(samples, m.name, 'mbit').toFixed(1).padStart(7)} Mbit/s  ${medianOf(samples, m.name, 'cpuMsPerMb').toFixed(1).padStart(6)} ms CPU/MB`);
  const mbit = (name: string) => medianOf(samples, name, 'mbit');
  console.log(`  throughput ratio to wireguard-go: relay download ${(mbit('phonehome relay download') / mbit('wireguard-go download')).toFixed(2)}, intercept ${(mbit('phonehome intercept download') / mbit('wireguard-go download')).toFixed(2)}, upload ${(mbit('phonehome relay upload') / mbit('wireguard-go upload')).toFixed(2)}`);
  if (sides.baseline) {
    console.log(`  throughput ratio to the baseline build: relay download ${(mbit('phonehome relay download') / mbit('baseline relay download')).toFixed(2)}, intercept ${(mbit('phonehome intercept download') / mbit('baseline intercept download')).toFixed(2)}, upload ${(mbit('phonehome relay upload') / mbit('baseline relay upload')).toFixed(2)}`);
  }
  console.log('  (wireguard-go\'s CPU excludes the kernel TCP stack it hands packets to; phonehome does TCP in its own process)');
}

async function lossyLinks(pair: NetnsPair, dir: string, sides: { phonehome: LaptopSide; wireguardGo: LaptopSide; baseline?: LaptopSide }, state: { current?: PhoneTarget }): Promise<void> {
  const names = CASES.filter((c) => PROFILES[c]);
  if (!names.length) return;
  const withBaseline = sides.baseline && process.env.BENCH_BASELINE_LOSSY === '1';
  const laptopSides = [sides.phonehome, sides.wireguardGo, ...(withBaseline ? [sides.baseline!] : [])];
  const relayed = await startRelays(pair, laptopSides, names.map((n) => PROFILES[n]));
  const measures: Measure[] = [];
  names.forEach((n, i) => {
    const [ph, kernel, base] = relayed[i];
    for (const dirName of ['download', 'upload'] as const) {
      // Downloads are HTTP GETs, as a phone's are (intercepted by phonehome, parsed and recorded).
      const mode: Mode = dirName === 'download' ? 'http' : 'upload';
      const port = dirName === 'download' ? HTTP_PORT : SINK_PORT;
      measures.push({ name: `${n} ${dirName} phonehome`, side: ph, mode, port, mb: LOSSY_MB });
      measures.push({ name: `${n} ${dirName} kernel`, side: kernel, mode, port, mb: LOSSY_MB });
      if (base) measures.push({ name: `${n} ${dirName} baseline`, side: base, mode, port, mb: LOSSY_MB });
    }
  });
  console.log(`lossy links (user-space relay between the phone and the laptop side): one ${LOSSY_MB} MB transfer per measure, ${ROUNDS} rounds`);
  relayOnly(pair, true);
  const samples = runRounds(pair, dir, measures, state, (_m, s) => `${s.secs.toFixed(2).padStart(7)} s`);
  relayOnly(pair, false);
  console.log(`lossy link medians (${LOSSY_MB} MB; ratio = phonehome's time / the kernel's):`);
  console.log(`  ${'link'.padEnd(28)} ${'direction'.padEnd(9)} ${'phonehome'.padStart(10)} ${'kernel'.padStart(8)} ${'ratio'.padStart(6)}${withBaseline ? `${'baseline'.padStart(10)}` : ''}`);
  for (const n of names) {
    for (const d of ['download', 'upload']) {
      const ph = medianOf(samples, `${n} ${d} phonehome`, 'secs');
      const k = medianOf(samples, `${n} ${d} kernel`, 'secs');
      const base = withBaseline ? `${medianOf(samples, `${n} ${d} baseline`, 'secs').toFixed(2).padStart(9)}s` : '';
      console.log(`  ${PROFILES[n].label.padEnd(28)} ${d.padEnd(9)} ${ph.toFixed(2).padStart(9)}s ${k.toFixed(2).padStart(7)}s ${(ph / k).toFixed(2).padStart(5)}x${base}`);
    }
  }
}

async function main(): Promise<void> {
  if (!canRunNetns()) throw new Error('bench:tunnel-tcp needs root, /dev/net/tun, ip, wg and wireguard-go');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-tunnel-tcp-'));
  const pair = new NetnsPair();
  try {
    pair.setup();
    fs.writeFileSync(path.join(dir, 'servers.js'), SERVERS_JS);
    fs.writeFileSync(path.join(dir, 'client.js'), CLIENT_JS);
    const servers = pair.spawnIn(pair.laptopNs, process.execPath, [path.join(dir, 'servers.js')]);
    await waitFor(() => servers.output().includes('servers up'), 10000, 'servers');
    const sides = await startLaptopSides(pair, dir);
    const state: { current?: PhoneTarget } = { current: { peer: sides.phonehome.peer, endpoint: sides.phonehome.endpoint } };
    console.log(`bench:tunnel-tcp TCP between the phone namespace and the laptop side, ${os.cpus().length} CPUs${sides.baseline ? `, baseline ${process.env.BENCH_BASELINE}` : ''}`);
    if (CASES.includes('clean')) cleanLink(pair, dir, sides, state);
    await lossyLinks(pair, dir, sides, state);
  } finally {
    await pair.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
