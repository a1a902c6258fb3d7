/**
 * Detection benchmark (npm run bench:detect): a seeded, realistic mix of phone requests
 * (scripts/bench-detect-mix.ts) run through analyseFlow on one core. Prints per-flow latency
 * (p50/p99) for flows under 16 KB, throughput in MB/s of request payload, and the same with a
 * device profile loaded, including a profile with ten times more values to show matching does not
 * grow with the variants; which kinds of flow make up the slowest 1%; and the detection quality
 * that speed work must not cost: precision and recall on the fixture corpus, and the false-alarm
 * rate of pattern-only IMEIs on random Luhn-valid numbers.
 *
 * BENCH_BASELINE=DIR also runs another build's analyser (DIR is its compiled output, e.g. the dist/
 * of a checkout of main after `npm run build`) in the same process, pass by pass alternating with
 * this one, and prints the ratios: on a shared, noisy machine only same-run comparisons mean much.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as current from '../proxy/analyse';
import * as currentDecode from '../proxy/analyse/decode';
import type { CompiledProfile } from '../proxy/analyse';
import type { Flow } from '../proxy/flow';
import type { CorpusFixture } from './fixtures/types';
import { GENERATOR_KINDS, largeFlows, PHONE, smallFlows } from './bench-detect-mix';
import { benchGeo } from './bench-geo';
import { luhnComplete as luhn, prng, randomDigits, randomPick } from './fixtures/random';

const SMALL_FLOWS = Number(process.env.BENCH_SMALL ?? 3000);
const LARGE_EACH = Number(process.env.BENCH_LARGE ?? 6);
const PASSES = Number(process.env.BENCH_PASSES ?? 5);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

interface Run {
  p50: number;
  p99: number;
  smallMBs: number;
  largeMBs: number;
  allMBs: number;
}

/** Collects garbage between passes when node runs with --expose-gc, so one pass's garbage is not billed to the next. */
function settle(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) gc();
}

/**
 * Milliseconds of CPU this process spent (user + system). On a shared machine wall-clock time
 * mostly measures the neighbours; CPU time measures our work. Run with --single-threaded so GC
 * helper threads do not add their CPU to the count.
 */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

const clock = process.env.BENCH_CLOCK === 'wall' ? () => performance.now() : cpuMs;

interface Measured extends Run {
  /** Per small flow, its latency (same order as the input). */
  latencies: number[];
}

function measure(small: Flow[], large: Flow[], run: (f: Flow) => void): Measured {
  settle();
  const latencies: number[] = [];
  let smallBytes = 0;
  let smallTime = 0;
  for (const f of small) {
    const t = clock();
    run(f);
    const dt = clock() - t;
    latencies.push(dt);
    smallTime += dt;
    smallBytes += f.requestBody.bytes.length + (f.url?.length ?? 0);
  }
  settle();
  let largeBytes = 0;
  let largeTime = 0;
  for (const f of large) {
    const t = clock();
    run(f);
    largeTime += clock() - t;
    largeBytes += f.requestBody.bytes.length;
  }
  const lat = [...latencies].sort((a, b) => a - b);
  const mbs = (bytes: number, ms: number) => bytes / (1024 * 1024) / (ms / 1000);
  return { latencies, p50: percentile(lat, 50), p99: percentile(lat, 99), smallMBs: mbs(smallBytes, smallTime), largeMBs: mbs(largeBytes, largeTime), allMBs: mbs(smallBytes + largeBytes, smallTime + largeTime) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** The analyser entry points a configuration needs, from this build or a baseline build. */
interface Analyser {
  label: string;
  analyseFlow: typeof current.analyseFlow;
  compileProfile: typeof current.compileProfile;
  decodeFlow: typeof currentDecode.decodeFlow;
}

function loadBaseline(dir: string): Analyser {
  const root = resolve(dir);
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const a = require(join(root, 'proxy', 'analyse')) as typeof current;
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const d = require(join(root, 'proxy', 'analyse', 'decode')) as typeof currentDecode;
  return { label: 'baseline', analyseFlow: a.analyseFlow, compileProfile: a.compileProfile, decodeFlow: d.decodeFlow };
}

function configurations(an: Analyser): Array<[string, (f: Flow) => void]> {
  const profile1 = an.compileProfile({ name: 'bench', imei: PHONE.imei, iccid: PHONE.iccid, mac: PHONE.mac, phone: PHONE.phone, ad_id: PHONE.gaid });
  const manyImeis = Array.from({ length: 10 }, (_, i) => luhn(`354031090${String(10000 + i).padStart(5, '0')}`));
  const profile10 = an.compileProfile({ name: 'bench x10', imei: manyImeis, iccid: Array.from({ length: 10 }, (_, i) => luhn(`894708001234567${String(1000 + i)}`)), mac: PHONE.mac, phone: PHONE.phone, ad_id: PHONE.gaid });
  return [
    ['decodeFlow only', (f) => an.decodeFlow(f)],
    ['analyseFlow, no profile', (f) => an.analyseFlow(f)],
    [`analyseFlow, profile (${profile1.variants.size} variants)`, (f) => an.analyseFlow(f, { profile: profile1 as CompiledProfile })],
    [`analyseFlow, profile (${profile10.variants.size} variants)`, (f) => an.analyseFlow(f, { profile: profile10 as CompiledProfile })],
  ];
}

function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
}

/** Which kinds of flow the slowest 1% of small flows are (summed over passes). */
function slowestKinds(kinds: number[], passes: Measured[]): string {
  const counts = new Map<number, number>();
  let total = 0;
  for (const m of passes) {
    const order = m.latencies.map((t, i) => [t, i] as const).sort((a, b) => b[0] - a[0]);
    for (const [, i] of order.slice(0, Math.max(1, Math.floor(order.length / 100)))) {
      counts.set(kinds[i]!, (counts.get(kinds[i]!) ?? 0) + 1);
      total++;
    }
  }
  return [...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${GENERATOR_KINDS[k]} ${Math.round((100 * n) / total)}%`).join(', ');
}

const CORPUS_DIR = join(__dirname, '..', '..', 'test', 'fixtures', 'corpus');

function fixtureFlow(f: CorpusFixture): Flow {
  const url = new URL(f.request.url);
  const bytes = f.request.bodyBase64 !== undefined ? Buffer.from(f.request.bodyBase64, 'base64') : Buffer.from(f.request.body ?? '', 'utf8');
  const https = url.protocol === 'https:';
  return {
    kind: 'http', source: 'har', startedAt: 0, clientIp: '192.168.1.23', method: f.request.method, url: f.request.url,
    scheme: https ? 'https' : 'http', host: url.hostname, port: Number(url.port || (https ? 443 : 80)), tls: https,
    requestHeaders: f.request.headers, requestBody: { bytes, size: bytes.length, truncated: false },
    responseHeaders: [], responseBody: { bytes: Buffer.alloc(0), size: 0, truncated: false }, timings: {}, tags: [],
  };
}

/** Precision and recall on the fixture corpus (test/fixtures/corpus), as the corpus test counts them. */
function corpusQuality(an: Analyser): string {
  const files = readdirSync(CORPUS_DIR).filter((f) => f.endsWith('.json')).sort();
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (const file of files) {
    const fixture = JSON.parse(readFileSync(join(CORPUS_DIR, file), 'utf8')) as CorpusFixture;
    const profile = fixture.profile ? an.compileProfile(fixture.profile) : undefined;
    const found = new Set(an.analyseFlow(fixtureFlow(fixture), { profile }).findings.map((x) => `${x.type} ${x.value}`));
    const wanted = new Set(fixture.expected.map((x) => `${x.type} ${x.value}`));
    for (const k of found) if (wanted.has(k)) tp++; else fp++;
    for (const k of wanted) if (!found.has(k)) fn++;
  }
  const precision = tp + fp === 0 ? 1 : tp / (tp + fp);
  const recall = tp + fn === 0 ? 1 : tp / (tp + fn);
  return `${files.length} fixtures, ${tp} true positives, ${fp} false positives, ${fn} missed: precision ${precision.toFixed(3)}, recall ${recall.toFixed(3)}`;
}

const NEUTRAL_KEYS = ['id', 'uid', 'value', 'data', 'n', 'x', 'account', 'num', 'code', 'object_id'];

/**
 * Pattern-only IMEI false alarms: random Luhn-valid 15-digit numbers (first digit 1-9) under
 * neutral keys, in JSON, and how many are reported as IMEIs. Real IMEIs are found by key anyway;
 * this is the price of finding them without one.
 */
function imeiFalseAlarmRate(an: Analyser, n = 20000): string {
  const rand = prng(15);
  let alarms = 0;
  for (let i = 0; i < n; i++) {
    const number = luhn(String(1 + Math.floor(rand() * 9)) + randomDigits(rand, 13));
    const body = Buffer.from(JSON.stringify({ [randomPick(rand, NEUTRAL_KEYS)]: number }));
    const flow: Flow = {
      kind: 'http', source: 'proxy', startedAt: 0, clientIp: '192.168.1.20', method: 'POST', url: 'https://api.example/v1/x', scheme: 'https', host: 'api.example', port: 443, tls: true,
      requestHeaders: [['Content-Type', 'application/json']], requestBody: { bytes: body, size: body.length, truncated: false },
      responseHeaders: [], responseBody: { bytes: Buffer.alloc(0), size: 0, truncated: false }, timings: {}, tags: [],
    };
    if (an.analyseFlow(flow).findings.some((f) => f.type === 'imei')) alarms++;
  }
  return `${alarms} of ${n} (${((100 * alarms) / n).toFixed(2)}%)`;
}

function main(): void {
  const tagged = smallFlows(SMALL_FLOWS);
  const small = tagged.map((t) => t.flow);
  const kinds = tagged.map((t) => t.kind);
  const large = largeFlows(LARGE_EACH);
  const analysers: Analyser[] = [{ label: 'this build', analyseFlow: current.analyseFlow, compileProfile: current.compileProfile, decodeFlow: currentDecode.decodeFlow }];
  if (process.env.BENCH_BASELINE) analysers.push(loadBaseline(process.env.BENCH_BASELINE));
  const configs = analysers.map(configurations);
  const totalSmall = small.reduce((n, f) => n + f.requestBody.bytes.length, 0);
  console.log(`mix: ${small.length} flows < 16 KB (mean body ${(totalSmall / small.length / 1024).toFixed(1)} KB), ${large.length} large bodies of ~1 MB (JSON array, gzip log text, JPEG-like binary)`);
  const gcNote = (globalThis as { gc?: unknown }).gc ? 'garbage collected between passes' : 'run with --expose-gc to collect garbage between passes';
  console.log(`clock: ${process.env.BENCH_CLOCK === 'wall' ? 'wall time (BENCH_CLOCK=wall)' : 'CPU time of this process (set BENCH_CLOCK=wall for wall time)'}`);
  console.log(`node ${process.version}, one core; each configuration: 1 warm-up pass, then ${PASSES} passes (small and large flows in separate passes, ${gcNote})${analysers.length > 1 ? ', alternating with the baseline build' : ''}; medians shown\n`);
  for (const cs of configs) for (const [, run] of cs) measure(small, large, run);
  /* passes[analyser][config] */
  const passes: Measured[][][] = analysers.map(() => configs[0].map(() => []));
  for (let p = 0; p < PASSES; p++) {
    for (let c = 0; c < configs[0].length; c++) {
      for (let a = 0; a < analysers.length; a++) passes[a][c].push(measure(small, large, configs[a][c][1]));
    }
  }
  const row = (name: string, runs: Measured[]) => [
    name,
    median(runs.map((r) => r.p50)).toFixed(3),
    median(runs.map((r) => r.p99)).toFixed(3),
    median(runs.map((r) => r.smallMBs)).toFixed(1),
    median(runs.map((r) => r.largeMBs)).toFixed(1),
    median(runs.map((r) => r.allMBs)).toFixed(1),
  ];
  const rows: string[][] = [['configuration', 'p50 ms (<16KB)', 'p99 ms (<16KB)', 'MB/s (<16KB)', 'MB/s (1 MB bodies)', 'MB/s (all)']];
  for (let c = 0; c < configs[0].length; c++) {
    for (let a = 0; a < analysers.length; a++) rows.push(row(analysers.length > 1 ? `${configs[a][c][0]} [${analysers[a].label}]` : configs[a][c][0], passes[a][c]));
  }
  printTable(rows);
  if (analysers.length > 1) {
    console.log('\nthis build / baseline (medians of per-pass ratios; below 1 is faster for latency, above 1 is faster for MB/s):');
    const ratio = (c: number, pick: (m: Measured) => number) => median(passes[0][c].map((m, p) => pick(m) / pick(passes[1][c][p]))).toFixed(2);
    const ratioRows: string[][] = [['configuration', 'p50', 'p99', 'MB/s (<16KB)', 'MB/s (1 MB bodies)']];
    for (let c = 0; c < configs[0].length; c++) ratioRows.push([configs[0][c][0], ratio(c, (m) => m.p50), ratio(c, (m) => m.p99), ratio(c, (m) => m.smallMBs), ratio(c, (m) => m.largeMBs)]);
    printTable(ratioRows);
  }
  console.log(`\nslowest 1% of small flows, analyseFlow without profile: ${slowestKinds(kinds, passes[0][1])}`);
  console.log('\ntargets: p99 < 1 ms for flows under 16 KB; >= 50 MB/s on large bodies; profile cost independent of its variant count');
  console.log('\ndetection quality:');
  for (const an of analysers) {
    console.log(`  corpus [${an.label}]: ${corpusQuality(an)}`);
    console.log(`  pattern-only IMEI false alarms on random Luhn-valid 15-digit numbers under neutral keys [${an.label}]: ${imeiFalseAlarmRate(an)}`);
  }
  if (process.env.BENCH_GEO !== '0') benchGeo();
}

main();
