/**
 * Benchmarks of issue 4 (run: npm run bench:pipeline [-- --only=proxy|pipeline|queries|writer] [--flows N] [--rate R] [--seconds S]):
 *  1. throughput through the proxy with the full pipeline (recording, analysis, findings, one WebSocket
 *     client) as a ratio of recording only, same run, medians of several rounds;
 *  2. latency from request completion (client got the response) to the WebSocket alert, p50/p99, at a
 *     paced 200 requests/s of leaking requests;
 *  3. the dashboard's REST queries on a database of 100k flows (median ms per query);
 *  4. (--only=writer) CPU per flow of the pipeline alone, by thread, analysis writes in the worker vs on the main thread.
 * Ratios are what to compare (shared 2-core machine); absolute numbers vary from run to run. The
 * throughput rounds also report phonehome's CPU per request: its main thread (the proxy's event loop)
 * and the whole process, and how many flows were still pending analysis when the load stopped (and
 * how long they took). `--cpu-prof DIR` runs the full-pipeline phonehome under `node --cpu-prof`;
 * `--compare-queue-limit N` adds the full pipeline with an in-memory queue of N flows to the rounds,
 * `--compare-env K=V` the full pipeline with that environment (e.g. PHONEHOME_ANALYSIS_YIELD=0).
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import { Pool, request } from 'undici';
import { WebSocket } from 'ws';
import { mainThreadCpuMs, processCpuMs, stopChild, threadCpuMs } from './bench-lib';
import { startDashboard } from '../dashboard/server';
import type { Flow } from '../proxy/flow';
import { startLive } from '../proxy/pipeline/live';
import { AnalysisPipeline, WorkerAnalyser } from '../proxy/pipeline';
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
        const r = await fetch(base + q, { headers: { Authorization: `Bearer ${dash.token}` } });
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

/** Opens a WebSocket client (with the dashboard's token) and resolves alerts by a marker in their URL: marker → receive time. */
export function alertListener(url: string, token: string): Promise<{ ws: WebSocket; alerts: Map<string, number> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${token}` } });
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
    const { ws, alerts } = await alertListener(`ws://127.0.0.1:${live.dashboard!.port}/ws`, live.dashboard!.token);
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

/** A leaking form POST as capture records it (n makes each one distinct). */
function leakingFlow(n: number): Flow {
  const body = `imei=490154203237518&SIM1CELLID=20817&iccid=89470000000000000009&model=Nokia+7+plus&n=${n}`;
  const now = Date.now();
  return {
    kind: 'http', source: 'proxy', startedAt: now, endedAt: now, clientIp: '192.168.1.23', method: 'POST',
    url: `http://zzhc.vnet.cn/register?req=c${n}`, scheme: 'http', host: 'zzhc.vnet.cn', port: 80, tls: false,
    requestHeaders: [['Host', 'zzhc.vnet.cn'], ['Content-Type', 'application/x-www-form-urlencoded'], ['Content-Length', String(body.length)]],
    requestBody: { bytes: Buffer.from(body), size: body.length, truncated: false },
    responseStatus: 200, responseHeaders: [['Content-Length', '2']], responseBody: { bytes: Buffer.from('ok'), size: 2, truncated: false }, timings: {}, tags: [],
  };
}

/**
 * CPU per flow of the pipeline alone, by thread, with the analysis writes in the worker (its own
 * connection; the default) or on the main thread (a worker that returns results, as before): flows
 * are recorded and submitted the way capture does, 50 per event-loop turn, as fast as the pipeline
 * takes them. CPU time (not wall time) is what a loaded machine perturbs least.
 */
export async function benchWriterCpu(flows: number, rounds: number): Promise<void> {
  const rows: { mode: string; main: number; worker: number; waited: number; rate: number }[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const workerStores of round % 2 ? [false, true] : [true, false]) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-bench-w-'));
      const store = Store.open({ dataDir: dir });
      const analyser = new WorkerAnalyser(workerStores ? { dbFile: store.file, writeGate: store.writeGate.buffer } : {});
      const pipeline = new AnalysisPipeline({ store, analyser, log: () => {} });
      pipeline.broadcaster.subscribe((e) => JSON.stringify(e)); // a listener, as the WebSocket hub is
      try {
        const feed = async (from: number, n: number) => {
          for (let i = from; i < from + n; i++) {
            const f = leakingFlow(i);
            store.flows.insert(f);
            pipeline.submit(f);
            if (i % 50 === 49) await new Promise((r) => setImmediate(r));
          }
          await pipeline.idle();
        };
        await feed(0, 500); // warm-up: worker started, code optimised
        const before = { main: mainThreadCpuMs(process.pid), all: processCpuMs(process.pid), waitedMs: store.writeGate.contention.waitedMs };
        const t0 = performance.now();
        await feed(500, flows);
        const wall = performance.now() - t0;
        const main = (mainThreadCpuMs(process.pid) - before.main) / flows;
        const all = (processCpuMs(process.pid) - before.all) / flows;
        const waited = (store.writeGate.contention.waitedMs - before.waitedMs) / flows;
        rows.push({ mode: workerStores ? 'worker writes' : 'main writes', main, worker: all - main, waited, rate: (flows / wall) * 1000 });
        console.log(`round ${round + 1} ${workerStores ? 'worker writes' : 'main writes  '}: CPU ms per flow: main thread ${main.toFixed(3)}, other threads ${(all - main).toFixed(3)}; main thread blocked on the write gate ${waited.toFixed(3)} ms per flow; ${((flows / wall) * 1000).toFixed(0)} flows/s`);
      } finally {
        await pipeline.close();
        store.close();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  for (const mode of ['worker writes', 'main writes']) {
    const of = (k: 'main' | 'worker' | 'waited' | 'rate') => median(rows.filter((r) => r.mode === mode).map((r) => r[k]));
    console.log(`${mode} (medians of ${rounds}): CPU ms per flow: main thread ${of('main').toFixed(3)}, other threads ${of('worker').toFixed(3)}, total ${(of('main') + of('worker')).toFixed(3)}; main blocked on the gate ${of('waited').toFixed(3)} ms/flow; ${of('rate').toFixed(0)} flows/s`);
  }
}

/** The "internet": answers every request with 200 after reading its body (own process, keep-alive). */
const ORIGIN_SOURCE = `
const http = require('http');
const s = http.createServer({ keepAlive: true, noDelay: true }, (req, res) => {
  req.resume();
  req.on('end', () => { res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': 2 }); res.end('ok'); });
});
s.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: s.address().port }) + '\\n'));`;

async function spawnJson<T>(args: string[], env: Record<string, string> = {}): Promise<{ child: ChildProcess; info: T }> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  const info = await new Promise<T>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      if (buf.includes('\n')) resolve(JSON.parse(buf.split('\n')[0]) as T);
    });
    child.once('exit', (code) => reject(new Error(`${args[0]} exited (${code})`)));
  });
  return { child, info };
}

async function startServer(dataDir: string, analysis: boolean, queueLimit?: number, env: Record<string, string> = {}) {
  const profileDir = process.argv.find((a, i) => process.argv[i - 1] === '--cpu-prof');
  const nodeArgs = profileDir && analysis ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  return spawnJson<{ proxyPort: number; dashboardPort: number; dashboardToken: string; analysisTid?: number }>([...nodeArgs, path.join(__dirname, 'bench-pipeline-server.js'), JSON.stringify({ dataDir, analysis, queueLimit })], env);
}

/** A leaking request as a phone sends it to a plain-HTTP proxy: absolute URL, IMEI and cell id in a form body. */
function leak(pool: Pool, originPort: number, marker: string) {
  const body = `imei=490154203237518&SIM1CELLID=20817&iccid=89470000000000000009&model=Nokia+7+plus&n=${marker}`;
  return pool.request({
    method: 'POST',
    path: `http://127.0.0.1:${originPort}/register?req=${marker}`,
    headers: { host: `127.0.0.1:${originPort}`, 'content-type': 'application/x-www-form-urlencoded' },
    body,
  });
}

interface Throughput {
  rps: number;
  /** CPU ms per request of phonehome's main thread, and of the whole process (worker threads included). */
  mainCpuMs: number;
  processCpuMs: number;
  /** ...and of the analysis worker's thread. */
  analysisCpuMs: number;
}

/** Requests/s through the proxy with `concurrency` keep-alive clients for `seconds`; `pid`: phonehome's, `analysisTid`: its analysis thread. */
async function throughput(pid: number, analysisTid: number | undefined, proxyPort: number, originPort: number, concurrency: number, seconds: number): Promise<Throughput> {
  const pool = new Pool(`http://127.0.0.1:${proxyPort}`, { connections: concurrency, pipelining: 1 });
  let done = 0;
  let errors = 0;
  let lastError = '';
  let stopAt = performance.now() + 500;
  let counting = false;
  const worker = async () => {
    while (performance.now() < stopAt) {
      try {
        const r = await leak(pool, originPort, `t${done}`);
        await r.body.text();
        if (r.statusCode !== 200) {
          errors++;
          lastError = `status ${r.statusCode}`;
        } else if (counting) done++;
      } catch (err) {
        errors++;
        lastError = (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker)); // warm-up
  counting = true;
  const started = performance.now();
  const cpuBefore = { main: mainThreadCpuMs(pid), all: processCpuMs(pid), analysis: threadCpuMs(pid, analysisTid) };
  stopAt = started + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, worker));
  const rps = done / ((performance.now() - started) / 1000);
  const cpu = {
    mainCpuMs: (mainThreadCpuMs(pid) - cpuBefore.main) / done,
    processCpuMs: (processCpuMs(pid) - cpuBefore.all) / done,
    analysisCpuMs: (threadCpuMs(pid, analysisTid) - cpuBefore.analysis) / done,
  };
  await pool.close();
  if (errors) process.stderr.write(`  ! ${errors} failed requests (last: ${lastError})\n`);
  return { rps, ...cpu };
}

/** Reads /api/stats until no flow is pending: "; N pending at the end, analysed in T ms". */
async function drainTime(dashboardPort: number, token: string): Promise<string> {
  const stats = async () => (await fetch(`http://127.0.0.1:${dashboardPort}/api/stats`, { headers: { Authorization: `Bearer ${token}` } })).json();
  const pending = async () => ((await stats()) as { queue: { pending: number } }).queue.pending;
  const t0 = performance.now();
  const first = await pending();
  let left = first;
  while (left > 0 && performance.now() - t0 < 60_000) {
    await new Promise((r) => setTimeout(r, 20));
    left = await pending();
  }
  return `; ${first} flows pending when the load stopped, ${left ? `${left} still after 60 s` : `all analysed ${(performance.now() - t0).toFixed(0)} ms later`}`;
}

export async function benchProxy(rounds: number, seconds: number, concurrency: number, rate: number, latencySeconds: number): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-bench-proxy-'));
  const origin = await spawnJson<{ port: number }>(['-e', ORIGIN_SOURCE]);
  try {
    const results: ({ mode: string } & Throughput)[] = [];
    // --compare-queue-limit N: a third configuration, the full pipeline with that in-memory queue limit.
    const compareQueue = flag('compare-queue-limit', 0);
    // --compare-env K=V: a configuration with that environment for phonehome (e.g. PHONEHOME_ANALYSIS_YIELD=0).
    const compareEnv = process.argv.find((a, i) => process.argv[i - 1] === '--compare-env');
    const modes: { mode: string; analysis: boolean; queueLimit?: number; env?: Record<string, string> }[] = [{ mode: 'recording', analysis: false }, { mode: 'full', analysis: true }];
    if (compareQueue) modes.push({ mode: `full, queue ${compareQueue}`, analysis: true, queueLimit: compareQueue });
    if (compareEnv) modes.push({ mode: `full, ${compareEnv}`, analysis: true, env: Object.fromEntries([compareEnv.split('=', 2) as [string, string]]) });
    for (let round = 0; round < rounds; round++) {
      for (const m of round % 2 ? [...modes].reverse() : modes) {
        const dataDir = path.join(work, `r${round}-${m.mode.replace(/\W+/g, '-')}`);
        const server = await startServer(dataDir, m.analysis, m.queueLimit, m.env);
        const { ws } = await alertListener(`ws://127.0.0.1:${server.info.dashboardPort}/ws`, server.info.dashboardToken);
        try {
          const t = await throughput(server.child.pid!, server.info.analysisTid, server.info.proxyPort, origin.info.port, concurrency, seconds);
          results.push({ mode: m.mode, ...t });
          // Did analysis keep up? The flows still pending when the load stops, and how long they take.
          const backlog = m.analysis ? await drainTime(server.info.dashboardPort, server.info.dashboardToken) : '';
          console.log(`round ${round + 1} ${m.mode.padEnd(14)}: ${t.rps.toFixed(0)} req/s; CPU per request: main thread ${t.mainCpuMs.toFixed(3)} ms, process ${t.processCpuMs.toFixed(3)} ms (analysis thread ${t.analysisCpuMs.toFixed(3)} ms)${backlog}`);
        } finally {
          ws.terminate();
          await stopChild(server.child);
        }
      }
    }
    const of = (mode: string, key: keyof Throughput) => median(results.filter((r) => r.mode === mode).map((r) => r[key]));
    const full = of('full', 'rps');
    const rec = of('recording', 'rps');
    console.log(`\nthroughput (leaking form POSTs, ${concurrency} keep-alive clients, ${rounds} rounds of ${seconds} s, medians):`);
    console.log(`  recording only ${rec.toFixed(0)} req/s, full pipeline + 1 WebSocket client ${full.toFixed(0)} req/s, ratio ${(full / rec).toFixed(2)} (target ≥ 0.80)`);
    console.log(`  CPU ms per request, main thread / process: recording only ${of('recording', 'mainCpuMs').toFixed(3)} / ${of('recording', 'processCpuMs').toFixed(3)}, full pipeline ${of('full', 'mainCpuMs').toFixed(3)} / ${of('full', 'processCpuMs').toFixed(3)} (analysis thread ${of('full', 'analysisCpuMs').toFixed(3)})`);
    for (const m of modes.slice(2)) {
      console.log(`  ${m.mode}: ${of(m.mode, 'rps').toFixed(0)} req/s, ratio ${(of(m.mode, 'rps') / rec).toFixed(2)}; CPU ms per request ${of(m.mode, 'mainCpuMs').toFixed(3)} / ${of(m.mode, 'processCpuMs').toFixed(3)} (analysis thread ${of(m.mode, 'analysisCpuMs').toFixed(3)})`);
    }

    // Latency: paced leaking requests; from "client has the whole response" to "alert on the WebSocket".
    const server = await startServer(path.join(work, 'latency'), true);
    try {
      const { ws, alerts } = await alertListener(`ws://127.0.0.1:${server.info.dashboardPort}/ws`, server.info.dashboardToken);
      const pool = new Pool(`http://127.0.0.1:${server.info.proxyPort}`, { connections: 16 });
      const completedAt = new Map<string, number>();
      const inFlight: Promise<void>[] = [];
      const total = rate * latencySeconds;
      const start = performance.now();
      for (let i = 0; i < total; i++) {
        const wait = start + (i * 1000) / rate - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const marker = `L${i}`;
        inFlight.push(
          leak(pool, origin.info.port, marker).then(async (r) => {
            await r.body.text();
            completedAt.set(marker, performance.now());
          }),
        );
      }
      await Promise.all(inFlight);
      const deadline = performance.now() + 10_000;
      while (alerts.size < completedAt.size && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const lat = [...completedAt].filter(([m]) => alerts.has(m)).map(([m, t]) => alerts.get(m)! - t);
      const achieved = total / ((Math.max(...completedAt.values()) - start) / 1000);
      console.log(`\nalert latency at ${rate} req/s for ${latencySeconds} s (achieved ${achieved.toFixed(0)} req/s): ${lat.length}/${total} alerts received`);
      console.log(`  response complete → WebSocket alert: p50 ${percentile(lat, 50).toFixed(1)} ms, p99 ${percentile(lat, 99).toFixed(1)} ms, max ${Math.max(...lat).toFixed(1)} ms (target p99 < 100 ms)`);
      const early = lat.filter((x) => x < 0).length;
      if (early) console.log(`  (${early} alerts arrived before the client had read the whole response: flows are stored when the response ends)`);
      ws.terminate();
      await pool.close();
    } finally {
      await stopChild(server.child);
    }
  } finally {
    await stopChild(origin.child);
    fs.rmSync(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7);
  if (!only || only === 'proxy') await benchProxy(flag('rounds', 3), flag('seconds', 8), flag('concurrency', 16), flag('rate', 200), flag('latency-seconds', 15));
  if (!only || only === 'pipeline') await benchPipelineLatency(flag('rate', 200), flag('seconds', 10));
  if (!only || only === 'queries') await benchQueries(flag('flows', 100_000));
  if (only === 'writer') await benchWriterCpu(flag('flows', 5000), flag('rounds', 3));
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
