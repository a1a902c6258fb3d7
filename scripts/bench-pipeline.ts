/**
 * Benchmarks of issue 4 (run: npm run bench:pipeline [-- --queries-only] [--flows N]):
 *  1. throughput through the proxy with the full pipeline (recording, analysis, findings, one WebSocket
 *     client) as a ratio of recording only, same run, medians of several rounds;
 *  2. latency from request completion (client got the response) to the WebSocket alert, p50/p99, at a
 *     paced 200 requests/s of leaking requests;
 *  3. the dashboard's REST queries on a database of 100k flows (median ms per query).
 * Ratios are what to compare (shared 2-core machine); absolute numbers vary from run to run.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { startDashboard } from '../dashboard/server';
import { Broadcaster } from '../proxy/pipeline/broadcaster';
import { Store } from '../proxy/store';
import { seedFlows } from './bench-dashboard-data';

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN;
}

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

export async function benchQueries(flows: number): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-bench-q-'));
  const store = Store.open({ dataDir: dir });
  try {
    const t0 = Date.now();
    seedFlows(store, flows);
    console.log(`seeded ${flows} flows (${(store.db.prepare('SELECT COUNT(*) AS n FROM findings').get() as { n: number }).n} findings) in ${Date.now() - t0} ms`);
    const dash = await startDashboard({ host: '127.0.0.1', port: 0, store, broadcaster: new Broadcaster() });
    const base = `http://127.0.0.1:${dash.port}`;
    const mid = Math.floor(flows / 2);
    const queries = [
      '/api/flows', `/api/flows?before=${mid}`, '/api/flows?type=imei', `/api/flows?type=imei&before=${mid}`, '/api/flows?host=zzhc.vnet.cn',
      '/api/flows?device=192.168.1.24', '/api/flows?severity=high', '/api/flows?q=collect%3Fn%3D12345', `/api/flows/${mid}`,
      '/api/findings', '/api/findings?type=cell_id&device=192.168.1.23', '/api/destinations', '/api/destinations?type=imei', '/api/devices', '/api/stats',
    ];
    console.log('\nquery (100 runs each)                          median ms   p99 ms');
    for (const q of queries) {
      const times: number[] = [];
      for (let i = 0; i < 100; i++) {
        const s = process.hrtime.bigint();
        const r = await fetch(base + q);
        await r.arrayBuffer();
        times.push(Number(process.hrtime.bigint() - s) / 1e6);
      }
      console.log(`${q.padEnd(48)} ${median(times).toFixed(2).padStart(8)} ${percentile(times, 99).toFixed(2).padStart(8)}`);
    }
    await dash.close();
  } finally {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const flows = flag('flows', 100_000);
  await benchQueries(flows);
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
