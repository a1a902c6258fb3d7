/**
 * HAR reading benchmark (npm run bench:har): generates a seeded HAR like a long devtools or
 * mitmproxy export (200 000 small entries, 175 MB: API calls, analytics forms and JSON, some
 * carrying an IMEI or an advertising ID, one in a thousand with a 64 KiB base64 response), then runs
 * `phonehome analyze FILE --format jsonl` on it in child processes that report their own peak
 * resident memory and CPU time as they exit. Memory must follow the largest entry, not the file.
 *
 * BENCH_BASELINE=DIR also runs another build (DIR is its compiled output, e.g. the dist/ of a
 * checkout of main after `npm run build`), run by run alternating with this one, and prints the
 * ratios: on a shared machine only same-run comparisons mean much.
 *   BENCH_HAR_ENTRIES (default 200000)  BENCH_RUNS (default 3)  BENCH_HAR_IMPORT=1 also times `import`
 * `node dist/scripts/bench-har.js --generate FILE ENTRIES` only writes the HAR.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { luhnComplete, prng, randomDigits, randomHex, randomUuid } from './fixtures/random';

const ENTRIES = Number(process.env.BENCH_HAR_ENTRIES ?? 200_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const BASELINE = process.env.BENCH_BASELINE ? path.resolve(process.env.BENCH_BASELINE) : undefined;

const HOSTS = ['api.example-weather.com', 'events.analytics.example', 'config.oem.example', 'cdn.example-img.net', 'ads.example-exchange.com'];
const AGENTS = ['okhttp/4.9.3', 'Dalvik/2.1.0 (Linux; U; Android 9; TA-1046 Build/PPR1.180610.011)', 'com.example.weather/5.12.3 (Android 13)'];

function header(name: string, value: string): { name: string; value: string } {
  return { name, value };
}

/** One entry, as devtools and mitmproxy write them (fields HAR 1.2 requires, and serverIPAddress). */
function entry(rand: () => number, i: number): object {
  const host = HOSTS[Math.floor(rand() * HOSTS.length)];
  const kind = rand();
  const started = new Date(Date.UTC(2026, 10, 28, 10, 0, 0) + i * 137).toISOString();
  const headers = [header('Host', host), header('User-Agent', AGENTS[i % AGENTS.length]), header('Accept', '*/*')];
  let method = 'GET';
  let url = `https://${host}/v1/config?app=com.example.weather&ver=5.12.3&n=${i}`;
  let postData: object | undefined;
  if (kind < 0.35) {
    method = 'POST';
    url = `https://${host}/collect`;
    const fields: Record<string, string> = { ev: 'screen_view', sid: randomUuid(rand), ts: String(1_700_000_000_000 + i) };
    if (rand() < 0.05) fields.imei = luhnComplete(`35${randomDigits(rand, 12)}`);
    postData = { mimeType: 'application/x-www-form-urlencoded', text: new URLSearchParams(fields).toString() };
  } else if (kind < 0.6) {
    method = 'POST';
    url = `https://${host}/v2/batch`;
    const body: Record<string, unknown> = { device: { model: 'TA-1046', os: 'Android 9' }, events: [{ name: 'tick', n: i }], req: randomHex(rand, 16) };
    if (rand() < 0.05) body.adid = randomUuid(rand);
    postData = { mimeType: 'application/json', text: JSON.stringify(body) };
  }
  const big = i % 1000 === 999;
  const content = big
    ? { size: 65536, mimeType: 'image/jpeg', encoding: 'base64', text: Buffer.from(randomHex(rand, 65536), 'hex').subarray(0, 49152).toString('base64') }
    : { size: 24, mimeType: 'application/json', text: '{"ok":true,"ttl":3600}' };
  return {
    startedDateTime: started,
    time: Math.round(rand() * 3000) / 10,
    request: { method, url, httpVersion: 'HTTP/1.1', headers, queryString: [], cookies: [], headersSize: -1, bodySize: -1, ...(postData ? { postData } : {}) },
    response: { status: 200, statusText: 'OK', httpVersion: 'HTTP/1.1', headers: [header('Content-Type', content.mimeType)], cookies: [], content, redirectURL: '', headersSize: -1, bodySize: content.size },
    cache: {},
    timings: { send: 0.1, wait: Math.round(rand() * 500) / 10, receive: 1.2 },
    serverIPAddress: `93.184.${i % 250}.${(i >> 8) % 250}`,
  };
}

/** Writes a HAR of `entries` entries to `file` as it generates them; returns its size in bytes. */
export function writeBenchHar(file: string, entries: number, seed = 7): number {
  const rand = prng(seed);
  const fd = fs.openSync(file, 'w');
  let size = 0;
  const write = (text: string) => {
    size += fs.writeSync(fd, text);
  };
  try {
    write('{"log":{"version":"1.2","creator":{"name":"phonehome bench","version":"1"},"pages":[],"entries":[\n');
    let chunk = '';
    for (let i = 0; i < entries; i++) {
      chunk += (i ? ',\n' : '') + JSON.stringify(entry(rand, i));
      if (chunk.length > 1 << 20) {
        write(chunk);
        chunk = '';
      }
    }
    write(chunk + '\n]}}\n');
  } finally {
    fs.closeSync(fd);
  }
  return size;
}

interface Run {
  maxRssMb: number;
  cpuS: number;
  wallS: number;
  out: string;
}

/** Runs a build's CLI in a child that reports its own peak RSS and CPU time as it exits. */
function runCli(dist: string, args: string[], dir: string): Run {
  const runner = path.join(dir, 'runner.js');
  fs.writeFileSync(runner, [
    /* VmHWM where there is /proc: Linux carries ru_maxrss (resourceUsage().maxRSS) over from the forked copy of the parent. */
    "const peakKb = () => { try { return Number(/VmHWM:\\s*(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]); } catch { return process.resourceUsage().maxRSS; } };",
    "process.on('exit', () => { const u = process.resourceUsage(); process.stderr.write(`\\nBENCH ${peakKb()} ${(u.userCPUTime + u.systemCPUTime) / 1e6}\\n`); });",
    "require(process.argv[2]).main(process.argv.slice(3)).then((code) => { process.exitCode = code; });",
  ].join('\n'));
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [runner, path.join(dist, 'proxy', 'cli.js'), ...args], { encoding: 'utf8', maxBuffer: 1 << 30 });
  const wallS = (performance.now() - t0) / 1000;
  const m = /BENCH (\d+) ([\d.]+)/.exec(r.stderr);
  if (!m || r.status !== 0) throw new Error(`phonehome ${args.join(' ')} failed (${r.status}): ${r.stderr.slice(-500)}`);
  return { maxRssMb: Number(m[1]) / 1024, cpuS: Number(m[2]), wallS, out: r.stdout };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function main(): void {
  if (process.argv[2] === '--generate') {
    const size = writeBenchHar(process.argv[3], Number(process.argv[4] ?? ENTRIES));
    process.stdout.write(`${(size / 1048576).toFixed(1)} MB\n`);
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-bench-har-'));
  try {
    const file = path.join(dir, 'bench.har');
    const size = writeBenchHar(file, ENTRIES);
    const builds: [string, string][] = [['this build', path.join(__dirname, '..')]];
    if (BASELINE) builds.push(['baseline', BASELINE]);
    const commands: [string, (run: number) => string[]][] = [['analyze', () => ['analyze', file, '--format', 'jsonl']]];
    if (process.env.BENCH_HAR_IMPORT === '1') commands.push(['import', (run) => ['import', file, '--data-dir', path.join(dir, `data-${run}-${Math.random().toString(36).slice(2)}`)]]);
    process.stdout.write(`HAR of ${ENTRIES} entries, ${(size / 1048576).toFixed(1)} MB; node ${process.version}, ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(1)}; medians of ${RUNS} runs\n`);
    for (const [command, args] of commands) {
      const runs = builds.map((): Run[] => []);
      for (let r = 0; r < RUNS; r++) {
        for (let k = 0; k < builds.length; k++) {
          const b = (k + r) % builds.length;
          runs[b].push(runCli(builds[b][1], args(r), dir));
        }
      }
      const lines = builds.map(([label], b) => {
        const findings = runs[b][0].out.split('\n').filter(Boolean).length;
        return { label, rss: median(runs[b].map((x) => x.maxRssMb)), cpu: median(runs[b].map((x) => x.cpuS)), wall: median(runs[b].map((x) => x.wallS)), findings };
      });
      for (const l of lines) {
        process.stdout.write(`${command} [${l.label}]: peak RSS ${l.rss.toFixed(0)} MB, ${l.cpu.toFixed(1)} s CPU, ${l.wall.toFixed(1)} s wall, ${(size / 1048576 / l.cpu).toFixed(1)} MB/s per CPU-second${command === 'analyze' ? `, ${l.findings} findings` : ''}\n`);
      }
      if (lines.length > 1) {
        const [a, b] = lines;
        process.stdout.write(`${command}: this build / baseline: peak RSS ${(a.rss / b.rss).toFixed(2)}x, CPU ${(a.cpu / b.cpu).toFixed(2)}x${command === 'analyze' ? `; same findings: ${runs[0][0].out === runs[1][0].out ? 'yes' : 'NO'}` : ''}\n`);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) main();
