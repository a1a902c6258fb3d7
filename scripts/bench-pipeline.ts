/**
 * Benchmarks of issue 4 (run: npm run bench:pipeline [-- --only=proxy|pipeline|queries] [--flows N] [--rate R] [--seconds S]):
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
import { WebSocket } from 'ws';
import { startDashboard } from '../dashboard/server';
import type { Flow } from '../proxy/flow';
import { startLive } from '../proxy/pipeline/live';
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

/** Opens a WebSocket client and resolves alerts by a marker in their URL: marker → receive time. */
export function alertListener(url: string): Promise<{ ws: WebSocket; alerts: Map<string, number> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const alerts = new Map<string, number>();
    ws.on('message', (d) => {
      const at = performance.now();
      const m = JSON.parse(d.toString()) as { type: string; data: { url?: string } };
      const marker = m.type === 'alert' ? /[?&]req=(\w+)/.exec(m.data.url ?? '')?.[1] : undefined;
      if (marker) alerts.set(marker, at);
    });
    ws.once('open', () => resolve({ ws, alerts }));
    ws.once('error', reject);
  });
}

/** The pipeline alone (store → worker → SQLite → WebSocket), flows stored at a paced rate like capture does. */
export async function benchPipelineLatency(rate: number, seconds: number): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-bench-p-'));
  const store = Store.open({ dataDir: dir });
  const live = await startLive({ store, dashboard: { port: 0 }, log: () => {} });
  try {
    const { ws, alerts } = await alertListener(`ws://127.0.0.1:${live.dashboard!.port}/ws`);
    const storedAt = new Map<string, number>();
    const total = rate * seconds;
    const start = performance.now();
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const body = `imei=490154203237518&SIM1CELLID=${i}&model=Nokia+7+plus`;
      const flow: Flow = {
        kind: 'http', source: 'proxy', startedAt: Date.now(), endedAt: Date.now(), clientIp: '192.168.1.23', method: 'POST',
        url: `http://zzhc.vnet.cn/register?req=p${i}`, scheme: 'http', host: 'zzhc.vnet.cn', port: 80, tls: false,
        requestHeaders: [['Content-Type', 'application/x-www-form-urlencoded']], requestBody: { bytes: Buffer.from(body), size: body.length, truncated: false },
        responseStatus: 200, responseHeaders: [], responseBody: { bytes: Buffer.from('ok'), size: 2, truncated: false }, timings: {}, tags: [],
      };
      store.flows.insert(flow);
      storedAt.set(`p${i}`, performance.now());
      live.onFlow(flow);
    }
    await live.pipeline!.idle();
    await new Promise((r) => setTimeout(r, 200));
    const lat = [...storedAt].filter(([k]) => alerts.has(k)).map(([k, t]) => alerts.get(k)! - t);
    console.log(`\npipeline alone, ${rate} flows/s for ${seconds} s: ${lat.length}/${total} alerts; stored → WebSocket alert p50 ${percentile(lat, 50).toFixed(1)} ms, p99 ${percentile(lat, 99).toFixed(1)} ms`);
    ws.close();
  } finally {
    await live.close();
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7);
  if (!only || only === 'pipeline') await benchPipelineLatency(flag('rate', 200), flag('seconds', 10));
  if (!only || only === 'queries') await benchQueries(flag('flows', 100_000));
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
