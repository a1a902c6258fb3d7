/**
 * Why: users compare phonehome with mitmproxy; this measures what they would feel. Small GETs
 * (HTTP and HTTPS through CONNECT, keep-alive, concurrency 1 and 32), 64 KB POSTs and 1 MB
 * downloads go through phonehome with recording on, straight to the origin (direct), and through
 * Debian's mitmdump when it is installed, interleaved in each round. Prints requests/s, p50/p99
 * latency, proxy CPU ms per request, max proxy RSS, and ratios (medians of the rounds).
 * Run: npm run bench:proxy [-- --seconds S --rounds N --json FILE --only SCENARIO,... --cpu-prof DIR]
 * (--cpu-prof writes a V8 CPU profile of the phonehome process into DIR, for chrome://inspect;
 *  --phonehome-node-flags "FLAGS" and --phonehome-log FILE help to look inside it, e.g. with --trace-gc.)
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { performance } from 'perf_hooks';
import Database from 'better-sqlite3';
import { Agent, Dispatcher, ProxyAgent, request } from 'undici';
import { CertificateAuthority } from '../certs/ca';
import { DB_FILE_NAME } from '../proxy/store/db';
import { LeafMinter } from '../certs/leaf';
import { freePort, median, percentile, processCpuMs, RssSampler, spawnChild, stopChild, waitForPort } from './bench-lib';

interface Scenario {
  name: string;
  scheme: 'http' | 'https';
  method: 'GET' | 'POST';
  path: string;
  body?: Buffer;
  expectBytes: number;
  concurrency: number;
}

const POST_BODY = Buffer.alloc(64 * 1024, 'p');
const SCENARIOS: Scenario[] = [
  { name: 'GET small http c1', scheme: 'http', method: 'GET', path: '/small', expectBytes: 100, concurrency: 1 },
  { name: 'GET small http c32', scheme: 'http', method: 'GET', path: '/small', expectBytes: 100, concurrency: 32 },
  { name: 'GET small https c1', scheme: 'https', method: 'GET', path: '/small', expectBytes: 100, concurrency: 1 },
  { name: 'GET small https c32', scheme: 'https', method: 'GET', path: '/small', expectBytes: 100, concurrency: 32 },
  { name: 'POST 64KB https c1', scheme: 'https', method: 'POST', path: '/upload', body: POST_BODY, expectBytes: String(POST_BODY.length).length, concurrency: 1 },
  { name: 'POST 64KB https c8', scheme: 'https', method: 'POST', path: '/upload', body: POST_BODY, expectBytes: String(POST_BODY.length).length, concurrency: 8 },
  { name: 'GET 1MB https c4', scheme: 'https', method: 'GET', path: '/1mb', expectBytes: 1024 * 1024, concurrency: 4 },
];

interface Target {
  name: 'direct' | 'phonehome' | 'mitmdump';
  proxyUrl?: string;
  /** CA the client must trust for HTTPS through this target. */
  caPem: string;
  pid?: number;
  rss?: RssSampler;
}

interface RunResult {
  requests: number;
  errors: number;
  rps: number;
  p50: number;
  p99: number;
  cpuMsPerRequest: number;
  maxRssMb: number;
}

interface Options {
  seconds: number;
  rounds: number;
  json?: string;
  only?: string[];
  cpuProfDir?: string;
  phonehomeNodeFlags: string[];
  phonehomeLog?: string;
}

function parseOptions(argv: string[]): Options {
  const opts: Options = { seconds: 3, rounds: 3, phonehomeNodeFlags: [] };
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1];
    switch (argv[i]) {
      case '--seconds': opts.seconds = Number(value); i++; break;
      case '--rounds': opts.rounds = Number(value); i++; break;
      case '--json': opts.json = value; i++; break;
      case '--only': opts.only = value.split(','); i++; break;
      case '--cpu-prof': opts.cpuProfDir = path.resolve(value); i++; break;
      case '--phonehome-node-flags': opts.phonehomeNodeFlags = value.split(/\s+/).filter(Boolean); i++; break;
      case '--phonehome-log': opts.phonehomeLog = path.resolve(value); i++; break;
      default: throw new Error(`unknown option ${argv[i]} (options: --seconds S --rounds N --json FILE --only NAME,... --cpu-prof DIR)`);
    }
  }
  if (!(opts.seconds > 0) || !(opts.rounds >= 1)) throw new Error('--seconds and --rounds must be positive');
  return opts;
}

function dispatcherFor(target: Target, scenario: Scenario, originCaPem: string): Dispatcher {
  const connections = scenario.concurrency;
  if (!target.proxyUrl) return new Agent({ connections, connect: { ca: originCaPem } });
  return new ProxyAgent({
    uri: target.proxyUrl,
    connections,
    // Plain HTTP goes to the proxy in absolute form, as a phone's browser sends it; HTTPS via CONNECT.
    proxyTunnel: scenario.scheme === 'https',
    requestTls: { ca: target.caPem },
  });
}

async function drive(target: Target, scenario: Scenario, origin: string, originCaPem: string, seconds: number): Promise<RunResult> {
  const dispatcher = dispatcherFor(target, scenario, originCaPem);
  const url = `${origin}${scenario.path}`;
  const latencies: number[] = [];
  let errors = 0;
  let lastError = '';
  let measuring = false;
  let stopAt = 0;
  const once = async () => {
    const start = performance.now();
    try {
      const res = await request(url, { dispatcher, method: scenario.method, body: scenario.body });
      let bytes = 0;
      for await (const chunk of res.body) bytes += (chunk as Buffer).length;
      if (res.statusCode !== 200 || bytes !== scenario.expectBytes) throw new Error(`status ${res.statusCode}, ${bytes} bytes`);
      if (measuring) latencies.push(performance.now() - start);
    } catch (err) {
      if (measuring) errors++;
      lastError = (err as Error).message;
    }
  };
  const worker = async () => {
    while (performance.now() < stopAt) await once();
  };
  // Warm-up: connections, tunnels and certificates exist before measuring, as they would on a phone.
  target.rss?.resetWindow();
  stopAt = performance.now() + 300;
  await Promise.all(Array.from({ length: scenario.concurrency }, worker));
  measuring = true;
  const cpuBefore = target.pid ? processCpuMs(target.pid) : 0;
  const started = performance.now();
  stopAt = started + seconds * 1000;
  await Promise.all(Array.from({ length: scenario.concurrency }, worker));
  const elapsed = (performance.now() - started) / 1000;
  const cpuMs = target.pid ? processCpuMs(target.pid) - cpuBefore : NaN;
  await dispatcher.close();
  if (errors > latencies.length / 100) process.stderr.write(`  ! ${target.name} ${scenario.name}: ${errors} errors (last: ${lastError})\n`);
  latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    errors,
    rps: latencies.length / elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    cpuMsPerRequest: cpuMs / Math.max(1, latencies.length),
    maxRssMb: target.rss ? (target.rss.sample(), target.rss.windowMaxMb) : NaN,
  };
}

async function startOrigins(originCert: { key: string; cert: string }): Promise<{ child: ChildProcess; http: number; https: number }> {
  const child = spawn(process.execPath, [path.join(__dirname, 'bench-proxy-origin.js')], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdin?.end(JSON.stringify(originCert));
  const line = await new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout?.on('data', (c: Buffer) => {
      buf += c.toString();
      if (buf.includes('\n')) resolve(buf.split('\n')[0]);
    });
    child.once('exit', (code) => reject(new Error(`origin server exited (${code})`)));
  });
  const ports = JSON.parse(line) as { http: number; https: number };
  return { child, ...ports };
}

async function startPhonehome(work: string, originCaFile: string, opts: Options): Promise<{ child: ChildProcess; target: Target }> {
  const dataDir = path.join(work, 'phonehome');
  const port = await freePort();
  const bin = path.join(__dirname, '..', '..', 'bin', 'phonehome.js');
  const nodeFlags = [...opts.phonehomeNodeFlags, ...(opts.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', opts.cpuProfDir] : [])];
  const child = spawnChild(process.execPath, [...nodeFlags, bin, 'start', '--data-dir', dataDir, '--port', String(port), '--listen-host', '127.0.0.1', '--dashboard-port', String(await freePort()),
    '--allow-loopback-targets' /* the origin is on loopback */], {
    env: { ...process.env, NODE_EXTRA_CA_CERTS: originCaFile },
  });
  if (opts.phonehomeLog) {
    const log = fs.createWriteStream(opts.phonehomeLog);
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
  } else {
    child.stdout?.resume();
  }
  try {
    await waitForPort(port, child);
  } catch (err) {
    throw new Error(`phonehome did not start: ${(err as Error).message}\n${child.tail()}`);
  }
  const caPem = fs.readFileSync(path.join(dataDir, 'ca.pem'), 'utf8');
  return { child, target: { name: 'phonehome', proxyUrl: `http://127.0.0.1:${port}`, caPem, pid: child.pid } };
}

function mitmdumpPath(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, 'mitmdump');
    if (fs.existsSync(candidate)) return candidate;
  }
  return undefined;
}

async function startMitmdump(work: string): Promise<{ child: ChildProcess; target: Target } | undefined> {
  const bin = mitmdumpPath();
  if (!bin) return undefined;
  const confdir = path.join(work, 'mitmproxy');
  const port = await freePort();
  const child = spawnChild(bin, ['--listen-host', '127.0.0.1', '-p', String(port), '-q', '--set', 'ssl_insecure=true', '--set', `confdir=${confdir}`], {});
  try {
    await waitForPort(port, child, 60000);
  } catch (err) {
    throw new Error(`mitmdump did not start: ${(err as Error).message}\n${child.tail()}`);
  }
  const caPem = fs.readFileSync(path.join(confdir, 'mitmproxy-ca-cert.pem'), 'utf8');
  return { child, target: { name: 'mitmdump', proxyUrl: `http://127.0.0.1:${port}`, caPem, pid: child.pid } };
}

function fmt(n: number, digits = 0): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const scenarios = opts.only ? SCENARIOS.filter((s) => opts.only?.some((o) => s.name.includes(o))) : SCENARIOS;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-bench-proxy-'));
  const children: ChildProcess[] = [];
  const stopAll = () => Promise.all(children.map(stopChild));
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));
  try {
    // The origin's HTTPS certificate comes from a throwaway CA the proxies are told to trust.
    const originCa = CertificateAuthority.loadOrCreate(path.join(work, 'origin-ca'), { warn: () => undefined });
    const originCert = await new LeafMinter(originCa).pemFor('127.0.0.1');
    const origins = await startOrigins(originCert);
    children.push(origins.child);

    const targets: Target[] = [{ name: 'direct', caPem: originCa.certPem }];
    const ph = await startPhonehome(work, originCa.certPath, opts);
    children.push(ph.child);
    targets.push(ph.target);
    const mitm = await startMitmdump(work);
    if (mitm) {
      children.push(mitm.child);
      targets.push(mitm.target);
    } else {
      process.stderr.write('mitmdump not found on PATH: comparing with direct only (apt-get install mitmproxy)\n');
    }
    for (const t of targets) if (t.pid) t.rss = new RssSampler(t.pid);

    const results: Record<string, Record<string, RunResult[]>> = {};
    for (let round = 1; round <= opts.rounds; round++) {
      for (const scenario of scenarios) {
        const origin = `${scenario.scheme}://127.0.0.1:${scenario.scheme === 'http' ? origins.http : origins.https}`;
        for (const target of targets) {
          const r = await drive(target, scenario, origin, originCa.certPem, opts.seconds);
          ((results[scenario.name] ??= {})[target.name] ??= []).push(r);
          process.stderr.write(`round ${round}/${opts.rounds} ${scenario.name.padEnd(20)} ${target.name.padEnd(9)} ${fmt(r.rps)} req/s  p50 ${fmt(r.p50, 2)} ms  p99 ${fmt(r.p99, 2)} ms  RSS ${fmt(r.maxRssMb)} MB\n`);
        }
      }
    }
    for (const t of targets) t.rss?.stop();
    const sentThroughPhonehome = Object.values(results).reduce((n, byTarget) => n + byTarget.phonehome.reduce((m, r) => m + r.requests, 0), 0);
    const db = new Database(path.join(work, 'phonehome', DB_FILE_NAME), { readonly: true, fileMustExist: true });
    const recorded = (db.prepare('SELECT count(*) AS n FROM flows').get() as { n: number }).n;
    db.close();

    const summary = scenarios.map((s) => {
      const row: Record<string, unknown> = { scenario: s.name };
      for (const t of targets) {
        const runs = results[s.name][t.name];
        row[t.name] = {
          rps: median(runs.map((r) => r.rps)),
          p50Ms: median(runs.map((r) => r.p50)),
          p99Ms: median(runs.map((r) => r.p99)),
          cpuMsPerRequest: median(runs.map((r) => r.cpuMsPerRequest)),
          maxRssMb: Math.max(...runs.map((r) => r.maxRssMb)),
          errors: runs.reduce((a, r) => a + r.errors, 0),
        };
      }
      return row;
    });
    printTable(summary, targets);
    const rss = Object.fromEntries(targets.filter((t) => t.rss).map((t) => [t.name, t.rss?.maxMb]));
    console.log(`\nflows recorded by phonehome: ${recorded} (measured requests: ${sentThroughPhonehome}, plus warm-up)`);
    console.log(`max RSS through the whole run: ${Object.entries(rss).map(([k, v]) => `${k} ${fmt(v ?? NaN)} MB`).join(', ')}   [target: phonehome < 200 MB]`);
    const c32 = summary.find((r) => r.scenario === 'GET small https c32') as Record<string, { rps: number }> | undefined;
    if (c32?.mitmdump) console.log(`small HTTPS c32: phonehome/mitmdump = ${(c32.phonehome.rps / c32.mitmdump.rps).toFixed(2)}×   [target ≥ 3×]`);
    if (opts.json) {
      const meta = { date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, seconds: opts.seconds, rounds: opts.rounds, loadavg: os.loadavg() };
      fs.writeFileSync(opts.json, JSON.stringify({ meta, results: summary, maxRssMb: rss, raw: results }, null, 2));
      console.log(`JSON written to ${opts.json}`);
    }
  } finally {
    await stopAll();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function printTable(summary: Record<string, unknown>[], targets: Target[]): void {
  const header = ['scenario', 'target', 'req/s', 'p50 ms', 'p99 ms', 'CPU ms/req', 'max RSS MB', 'vs direct', 'vs mitmdump'];
  const rows: string[][] = [header];
  for (const row of summary) {
    const cell = (name: string) => row[name] as { rps: number; p50Ms: number; p99Ms: number; cpuMsPerRequest: number; maxRssMb: number } | undefined;
    for (const t of targets) {
      const c = cell(t.name);
      if (!c) continue;
      const direct = cell('direct');
      const mitm = cell('mitmdump');
      rows.push([
        row.scenario as string, t.name, fmt(c.rps), fmt(c.p50Ms, 2), fmt(c.p99Ms, 2), fmt(c.cpuMsPerRequest, 3), fmt(c.maxRssMb),
        direct && t.name !== 'direct' ? `${((c.rps / direct.rps) * 100).toFixed(0)}%` : '',
        mitm && t.name === 'phonehome' ? `${(c.rps / mitm.rps).toFixed(2)}×` : '',
      ]);
    }
  }
  const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  console.log('');
  for (const r of rows) console.log(r.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
