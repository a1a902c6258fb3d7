/**
 * Why: VPN mode puts phonehome's userspace WireGuard + IP layer in the path of every packet a
 * phone sends. This measures UDP through the tunnel — phone namespace (wireguard-go as the phone's
 * app) to a UDP echo on the laptop side, closed loop with a window of datagrams in flight — with
 * phonehome as the laptop side and, in the same run, wireguard-go + the kernel as the laptop side,
 * alternating, and reports medians: echoes/s, payload Mbit/s (each direction) and the laptop-side
 * process's CPU time per echo (one packet in and one out of the endpoint). Needs root (namespaces).
 *
 *   npm run bench:tunnel            BENCH_SECONDS=5 BENCH_ROUNDS=3 BENCH_SIZE=1000 BENCH_WINDOW=32
 *   BENCH_CPU_PROF=DIR              also write a CPU profile of phonehome into DIR (node --cpu-prof)
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { median, processCpuMs } from './bench-lib';
import { PhoneTarget, startLaptopSides, switchPhoneTo } from './bench-tunnel-sides';
import { canRunNetns, NetnsPair, TEST_HOST, waitFor } from './vpn-netns';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SIZE = Number(process.env.BENCH_SIZE ?? 1000);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 32);
const ECHO_PORT = 5353;

const ECHO_JS = `
const s = require('dgram').createSocket('udp4');
s.on('message', (m, r) => s.send(m, r.port, r.address));
s.bind(${ECHO_PORT}, '${TEST_HOST}', () => console.log('echo up'));`;

/** Closed-loop UDP load: WINDOW datagrams in flight, one new per echo, refilled if the loop stalls. */
const LOAD_JS = `
const dgram = require('dgram');
const [host, port, size, seconds, win] = process.argv.slice(2).map((v, i) => (i ? Number(v) : v));
const s = dgram.createSocket('udp4');
const payload = Buffer.alloc(size, 0x61);
let received = 0, measuredFrom = 0, measuredTo = -1, running = true, last = 0;
const send = () => s.send(payload, port, host);
s.on('message', () => { received++; if (running) send(); });
s.bind(0, () => {
  for (let i = 0; i < win; i++) send();
  const refill = setInterval(() => { if (received === last) for (let i = 0; i < win; i++) send(); last = received; }, 200);
  let t0;
  setTimeout(() => { measuredFrom = received; t0 = process.hrtime.bigint(); }, 500);
  setTimeout(() => {
    measuredTo = received; running = false; clearInterval(refill);
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    setTimeout(() => { console.log(JSON.stringify({ echoes: measuredTo - measuredFrom, secs, total: received })); process.exit(0); }, 300);
  }, 500 + seconds * 1000);
});`;

interface Sample { echoesPerSec: number; mbitPerSec: number; cpuUsPerEcho: number }

function runLoad(pair: NetnsPair, dir: string, laptopPid: number): Sample {
  const load = path.join(dir, 'load.js');
  const before = processCpuMs(laptopPid);
  const r = spawnSync('ip', ['netns', 'exec', pair.phoneNs, process.execPath, load, TEST_HOST, String(ECHO_PORT), String(SIZE), String(SECONDS), String(WINDOW)],
    { encoding: 'utf8', timeout: (SECONDS + 30) * 1000 });
  const cpuMs = processCpuMs(laptopPid) - before;
  if (r.status !== 0) throw new Error(`load generator failed: ${r.stdout}${r.stderr}`);
  const { echoes, secs, total } = JSON.parse(r.stdout.trim().split('\n').pop()!) as { echoes: number; secs: number; total: number };
  return { echoesPerSec: echoes / secs, mbitPerSec: (echoes * SIZE * 8) / secs / 1e6, cpuUsPerEcho: total ? (cpuMs * 1000) / total : NaN };
}

async function main(): Promise<void> {
  if (!canRunNetns()) throw new Error('bench:tunnel needs root, /dev/net/tun, ip, wg and wireguard-go');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-tunnel-'));
  const pair = new NetnsPair();
  try {
    pair.setup();
    fs.writeFileSync(path.join(dir, 'echo.js'), ECHO_JS);
    fs.writeFileSync(path.join(dir, 'load.js'), LOAD_JS);
    const echo = pair.spawnIn(pair.laptopNs, process.execPath, [path.join(dir, 'echo.js')]);
    await waitFor(() => echo.output().includes('echo up'), 10000, 'echo server');

    // phonehome (its own UDP relay carries the echo traffic) and wireguard-go + kernel, the reference
    const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(process.env.BENCH_CPU_PROF)] : [];
    const { phonehome, wireguardGo } = await startLaptopSides(pair, dir, prof);
    const modes = [
      { name: 'phonehome', side: phonehome },
      { name: 'wireguard-go', side: wireguardGo },
    ];
    const samples = new Map<string, Sample[]>(modes.map((m) => [m.name, []]));
    let current: PhoneTarget | undefined = { peer: phonehome.peer, endpoint: phonehome.endpoint };
    console.log(`bench:tunnel UDP echo, ${SIZE}-byte payloads, window ${WINDOW}, ${SECONDS} s x ${ROUNDS} rounds per side, ${os.cpus().length} CPUs`);
    for (let round = 0; round < ROUNDS; round++) {
      for (const m of modes) {
        current = switchPhoneTo(pair, current, m.side);
        const s = runLoad(pair, dir, m.side.pid);
        samples.get(m.name)!.push(s);
        console.log(`  round ${round + 1} ${m.name.padEnd(12)} ${s.echoesPerSec.toFixed(0).padStart(7)} echoes/s ${s.mbitPerSec.toFixed(1).padStart(7)} Mbit/s each way  ${s.cpuUsPerEcho.toFixed(1).padStart(6)} µs CPU/echo`);
      }
    }
    const med = (name: string, k: keyof Sample) => median(samples.get(name)!.map((s) => s[k]));
    console.log('medians:');
    for (const m of modes) {
      console.log(`  ${m.name.padEnd(12)} ${med(m.name, 'echoesPerSec').toFixed(0).padStart(7)} echoes/s ${med(m.name, 'mbitPerSec').toFixed(1).padStart(7)} Mbit/s each way  ${med(m.name, 'cpuUsPerEcho').toFixed(1).padStart(6)} µs CPU/echo (${(med(m.name, 'cpuUsPerEcho') / 2).toFixed(1)} µs per packet)`);
    }
    console.log(`ratio phonehome / wireguard-go: throughput ${(med('phonehome', 'echoesPerSec') / med('wireguard-go', 'echoesPerSec')).toFixed(2)}, CPU per echo ${(med('phonehome', 'cpuUsPerEcho') / med('wireguard-go', 'cpuUsPerEcho')).toFixed(2)}`);
    console.log('(laptop-side process CPU only: wireguard-go leaves UDP echo routing to the kernel; phonehome relays it in the same process)');
  } finally {
    await pair.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
