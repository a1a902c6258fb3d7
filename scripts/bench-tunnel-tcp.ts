/**
 * Why: in VPN mode every TCP byte a phone receives passes through phonehome's userspace TCP, and,
 * when intercepted, through its HTTP parser too. This measures one TCP download from a server on
 * the laptop side to the phone namespace (wireguard-go as the phone's app), with phonehome as the
 * laptop side — relayed (a server-speaks-first stream: raw relay, no interception) and intercepted
 * (HTTP GET: parsed, forwarded, recorded) — and, in the same run, with wireguard-go + the kernel's
 * TCP as the laptop side (the physical reference on this machine). Alternating rounds; reports
 * medians of Mbit/s, ratios against wireguard-go, and phonehome's CPU time per MB. Needs root.
 *
 *   npm run bench:tunnel-tcp            BENCH_MB=50 BENCH_ROUNDS=3
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { median, processCpuMs } from './bench-lib';
import { startLaptopSides, switchPhoneTo } from './bench-tunnel-sides';
import { canRunNetns, NetnsPair, TEST_HOST, waitFor } from './vpn-netns';

const MB = Number(process.env.BENCH_MB ?? 50);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const HTTP_PORT = 8000;
const RAW_PORT = 9000;

/** HTTP /bytes?n= and a raw server that sends n bytes on connect (n in the first line it gets is not needed: fixed size). */
const SERVERS_JS = `
const http = require('http'), net = require('net');
const chunk = Buffer.alloc(64 * 1024, 0x5a);
function pump(w, left, done) {
  const go = () => { while (left > 0) { const t = Math.min(left, chunk.length); left -= t; if (!w.write(t === chunk.length ? chunk : chunk.subarray(0, t))) return void w.once('drain', go); } done(); };
  go();
}
http.createServer((req, res) => {
  const n = Number(new URL(req.url, 'http://x').searchParams.get('n'));
  res.writeHead(200, { 'Content-Length': String(n) });
  pump(res, n, () => res.end());
}).listen(${HTTP_PORT}, '${TEST_HOST}');
net.createServer((s) => { s.on('error', () => {}); pump(s, ${MB * 1024 * 1024}, () => s.end()); }).listen(${RAW_PORT}, '${TEST_HOST}', () => console.log('servers up'));`;

/** The phone's download: raw (read until close) or HTTP GET; prints bytes and seconds. */
const CLIENT_JS = `
const [mode, host, port, n] = process.argv.slice(2);
const t0 = process.hrtime.bigint();
let bytes = 0;
const c = require('net').connect(Number(port), host, () => {
  if (mode === 'http') c.write('GET /bytes?n=' + n + ' HTTP/1.1\\r\\nHost: bench.test\\r\\nConnection: close\\r\\n\\r\\n');
});
c.on('data', (d) => (bytes += d.length));
c.on('close', () => console.log(JSON.stringify({ bytes, secs: Number(process.hrtime.bigint() - t0) / 1e9 })));
c.on('error', (e) => { console.error(e.message); process.exit(1); });`;

interface Sample { mbit: number; cpuMsPerMb: number }

function download(pair: NetnsPair, dir: string, mode: 'raw' | 'http', laptopPid: number): Sample {
  const bytesWanted = MB * 1024 * 1024;
  const before = processCpuMs(laptopPid);
  const r = spawnSync('ip', ['netns', 'exec', pair.phoneNs, process.execPath, path.join(dir, 'client.js'), mode, TEST_HOST, String(mode === 'raw' ? RAW_PORT : HTTP_PORT), String(bytesWanted)],
    { encoding: 'utf8', timeout: 300_000 });
  const cpuMs = processCpuMs(laptopPid) - before;
  if (r.status !== 0) throw new Error(`download failed: ${r.stdout}${r.stderr}`);
  const { bytes, secs } = JSON.parse(r.stdout.trim().split('\n').pop()!) as { bytes: number; secs: number };
  if (bytes < bytesWanted) throw new Error(`short download: ${bytes} of ${bytesWanted} bytes`);
  return { mbit: (bytes * 8) / secs / 1e6, cpuMsPerMb: cpuMs / MB };
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

    const { phonehome, wireguardGo } = await startLaptopSides(pair, dir);
    const modes = [
      { name: 'phonehome relay', kind: 'raw' as const, side: phonehome },
      { name: 'phonehome intercept', kind: 'http' as const, side: phonehome },
      { name: 'wireguard-go', kind: 'http' as const, side: wireguardGo },
    ];
    const samples = new Map<string, Sample[]>(modes.map((m) => [m.name, []]));
    let current: string | undefined = phonehome.peer;
    console.log(`bench:tunnel-tcp one ${MB} MB TCP download to the phone namespace, ${ROUNDS} rounds per side, ${os.cpus().length} CPUs`);
    for (let round = 0; round < ROUNDS; round++) {
      for (const m of modes) {
        current = switchPhoneTo(pair, current, m.side);
        const s = download(pair, dir, m.kind, m.side.pid);
        samples.get(m.name)!.push(s);
        console.log(`  round ${round + 1} ${m.name.padEnd(20)} ${s.mbit.toFixed(1).padStart(7)} Mbit/s  ${s.cpuMsPerMb.toFixed(1).padStart(6)} ms CPU/MB (laptop-side process)`);
      }
    }
    const med = (name: string, k: keyof Sample) => median(samples.get(name)!.map((s) => s[k]));
    console.log('medians:');
    for (const m of modes) console.log(`  ${m.name.padEnd(20)} ${med(m.name, 'mbit').toFixed(1).padStart(7)} Mbit/s  ${med(m.name, 'cpuMsPerMb').toFixed(1).padStart(6)} ms CPU/MB`);
    const ref = med('wireguard-go', 'mbit');
    console.log(`ratio to wireguard-go throughput: relay ${(med('phonehome relay', 'mbit') / ref).toFixed(2)}, intercept ${(med('phonehome intercept', 'mbit') / ref).toFixed(2)}`);
    console.log('(wireguard-go\'s CPU excludes the kernel TCP stack it hands packets to; phonehome does TCP in its own process)');
  } finally {
    await pair.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
