/**
 * Why: a phone opening a new HTTPS host must not stall every other connection while a
 * certificate is minted. This measures the event-loop time one new host costs (target ≤ 5 ms),
 * a burst of 200 concurrent new hosts, and how long a timer waits meanwhile.
 * Run: npm run build && node dist/scripts/bench-certs.js [--hosts N]
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import { CertificateAuthority } from '../certs/ca';
import { LeafMinter } from '../certs/leaf';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function summary(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  return `median ${percentile(s, 50).toFixed(2)} ms, p99 ${percentile(s, 99).toFixed(2)} ms, max ${s[s.length - 1].toFixed(2)} ms (n=${s.length})`;
}

async function main(): Promise<void> {
  const hostsFlag = process.argv.indexOf('--hosts');
  const sequentialHosts = hostsFlag > 0 ? Number(process.argv[hostsFlag + 1]) : 500;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-bench-certs-'));
  try {
    let t = performance.now();
    const ca = CertificateAuthority.loadOrCreate(dir);
    console.log(`CA created (RSA-2048 key + certificate): ${(performance.now() - t).toFixed(0)} ms, once per install`);

    const minter = new LeafMinter(ca);
    t = performance.now();
    await minter.warmUp();
    console.log(`shared leaf key generated (off the event loop): ${(performance.now() - t).toFixed(0)} ms, once per process`);

    // Sequential: the event loop's busy time per new host (what it costs other connections),
    // and the wall time a caller waits (one extra loop turn, since mints are queued per turn).
    // CPU time is reported too: on a loaded machine, busy time includes being descheduled.
    const busyPerHost: number[] = [];
    const cpuPerHost: number[] = [];
    const wallPerHost: number[] = [];
    for (let i = 0; i < sequentialHosts; i++) {
      const elu = performance.eventLoopUtilization();
      const cpu = process.cpuUsage();
      const start = performance.now();
      await minter.secureContextFor(`host-${i}.bench.test`);
      wallPerHost.push(performance.now() - start);
      const used = process.cpuUsage(cpu);
      cpuPerHost.push((used.user + used.system) / 1000);
      busyPerHost.push(performance.eventLoopUtilization(elu).active);
    }
    console.log(`new host, event-loop busy time: ${summary(busyPerHost)}   [target ≤ 5 ms]`);
    console.log(`new host, CPU time: ${summary(cpuPerHost)}`);
    console.log(`new host, wall time for the caller: ${summary(wallPerHost)}`);

    const cachedTimes: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const start = performance.now();
      await minter.secureContextFor(`host-${i % sequentialHosts}.bench.test`);
      cachedTimes.push(performance.now() - start);
    }
    console.log(`known host (cache hit): ${summary(cachedTimes)}`);

    // Burst: 200 new hosts at once, while a 1 ms interval timer measures how late it fires.
    const lateness: number[] = [];
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      lateness.push(now - last - 1);
      last = now;
    }, 1);
    await new Promise((r) => setTimeout(r, 20));
    t = performance.now();
    await Promise.all(Array.from({ length: 200 }, (_, i) => minter.secureContextFor(`burst-${i}.bench.test`)));
    const burstMs = performance.now() - t;
    clearInterval(timer);
    console.log(`200 concurrent new hosts: ${burstMs.toFixed(0)} ms total (${(burstMs / 200).toFixed(2)} ms/host), mints=${minter.mintCount}`);
    console.log(`timer lateness during the run: ${summary(lateness)}`);

    const dupStart = performance.now();
    const before = minter.mintCount;
    await Promise.all(Array.from({ length: 200 }, () => minter.secureContextFor('one-new-host.bench.test')));
    console.log(`200 concurrent first requests to one new host: ${(performance.now() - dupStart).toFixed(1)} ms, minted ${minter.mintCount - before} time(s)`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
