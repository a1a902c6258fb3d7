/**
 * Detection benchmark (npm run bench:detect): a seeded, realistic mix of phone requests — mostly
 * small analytics/ad/check-in payloads in every encoding, plus 1 MB bodies (JSON arrays, gzip text,
 * binary images) — run through analyseFlow on one core. Prints per-flow latency (p50/p99) for flows
 * under 16 KB, throughput in MB/s of request payload, and the same with a device profile loaded,
 * including a profile with ten times more values to show matching does not grow with the variants.
 */
import * as zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import { analyseFlow, compileProfile, type CompiledProfile } from '../proxy/analyse';
import { decodeFlow } from '../proxy/analyse/decode';
import type { Flow, Header } from '../proxy/flow';
import { benchGeo } from './bench-geo';
import { luhnComplete as luhn, prng, randomDigits, randomHex, randomPick, randomUuid } from './fixtures/random';

const SMALL_FLOWS = Number(process.env.BENCH_SMALL ?? 3000);
const LARGE_EACH = Number(process.env.BENCH_LARGE ?? 6);
const SMALL_LIMIT = 16 * 1024;

const rand = prng(20190301);
const pick = <T>(xs: T[]): T => randomPick(rand, xs);
const hex = (n: number) => randomHex(rand, n);
const uuid = () => randomUuid(rand);
const digits = (n: number) => randomDigits(rand, n);

const PHONE = { imei: luhn('35403109012345'), iccid: luhn('8947080012345678901'), imsi: '242016712345678', mac: 'd4:6a:6a:12:34:56', gaid: '5b0cbd2e-6e43-4d6e-9c9a-2f6b1f4e8a17', phone: '+4791234567' };

function flow(url: string, headers: Header[], body: Buffer | string = ''): Flow {
  const u = new URL(url);
  const bytes = Buffer.from(body);
  return {
    kind: 'http', source: 'proxy', startedAt: 0, clientIp: '192.168.1.20', method: bytes.length ? 'POST' : 'GET', url,
    scheme: u.protocol === 'https:' ? 'https' : 'http', host: u.hostname, port: Number(u.port) || (u.protocol === 'https:' ? 443 : 80),
    tls: u.protocol === 'https:', requestHeaders: headers, requestBody: { bytes, size: bytes.length, truncated: false },
    responseHeaders: [], responseBody: { bytes: Buffer.alloc(0), size: 0, truncated: false }, timings: {}, tags: [],
  };
}

const UA: Header = ['User-Agent', 'Dalvik/2.1.0 (Linux; U; Android 9; TA-1046 Build/PPR1.180610.011)'];

function analyticsEvent(leak: boolean) {
  return {
    event: pick(['app_open', 'screen_view', 'purchase', 'level_up', 'session_start']),
    ts: 1551434400000 + Math.floor(rand() * 1e7),
    event_id: uuid(),
    properties: { screen: pick(['home', 'settings', 'shop']), value: Math.round(rand() * 10000) / 100, currency: 'NOK', session: hex(16) },
    device: { model: 'TA-1046', os: 'Android', os_version: '9', locale: 'nb_NO', carrier: 'Telenor', ...(leak ? { adid: PHONE.gaid, android_id: '9774d56d682e549c' } : {}) },
  };
}

const generators: Array<() => Flow> = [
  () => flow('https://api2.amplitude.example/batch', [UA, ['Content-Type', 'application/json']], JSON.stringify({ api_key: hex(32), events: Array.from({ length: 1 + Math.floor(rand() * 25) }, () => analyticsEvent(rand() < 0.5)) })),
  () => flow('https://collector.example/i', [UA, ['Content-Type', 'application/json'], ['Content-Encoding', 'gzip']], zlib.gzipSync(JSON.stringify({ batch: Array.from({ length: 5 + Math.floor(rand() * 40) }, () => analyticsEvent(rand() < 0.3)) }))),
  () => flow(`https://ads.example/openrtb?ifa=${PHONE.gaid}&bundle=com.example.game&w=320&h=50&ts=${Date.now()}&cb=${hex(12)}`, [UA, ['Cookie', `uid=${uuid()}; s=${hex(24)}`]]),
  () => flow('https://sdk.example/track', [UA, ['Content-Type', 'application/x-www-form-urlencoded']], `app=com.example&v=3.2.1&data=${encodeURIComponent(Buffer.from(JSON.stringify(analyticsEvent(true))).toString('base64'))}&sig=${hex(40)}`),
  () => flow('http://zzhc.vnet.cn:9999/', [UA, ['Content-Type', 'application/encrypted-json']], Buffer.from(JSON.stringify({ IMEI1: PHONE.imei, SIM1ICCID: PHONE.iccid, SIM1LTEIMSI: PHONE.imsi, SIM1CELLID: digits(8), MACID: PHONE.mac, REGDATE: '2019-02-14 10:12:03' })).toString('base64').replace(/(.{76})/g, '$1\n') + '\n'),
  () => {
    const str = (n: number, s: string) => { const b = Buffer.from(s); return Buffer.concat([Buffer.from([(n << 3) | 2, b.length]), b]); };
    const inner = Buffer.concat([str(1, PHONE.iccid), str(2, PHONE.mac), str(3, 'Telenor')]);
    return flow('https://android.clients.google.example/checkin', [UA, ['Content-Type', 'application/x-protobuffer'], ['Content-Encoding', 'gzip']], zlib.gzipSync(Buffer.concat([str(1, 'checkin'), Buffer.from([0x12, inner.length]), inner, Buffer.from([0x18, 0x96, 0x01])])));
  },
  () => flow(`https://cdn.example/assets/${hex(32)}.png?v=${digits(10)}`, [UA, ['Accept', 'image/*']]),
  () => flow('https://api.example/v2/update', [UA, ['Content-Type', 'application/json'], ['Authorization', `Bearer eyJhbGciOiJIUzI1NiJ9.${Buffer.from(JSON.stringify({ sub: uuid(), exp: 1700000000 })).toString('base64url')}.${hex(43)}`]], JSON.stringify({ request_id: uuid(), sha256: createHash('sha256').update(hex(8)).digest('hex'), build: 30201, order_id: luhn(digits(14)) })),
];

function largeFlows(): Flow[] {
  const out: Flow[] = [];
  for (let i = 0; i < LARGE_EACH; i++) {
    const arr: unknown[] = [];
    while (JSON.stringify(arr).length < 1024 * 1024) arr.push(analyticsEvent(rand() < 0.1));
    out.push(flow('https://bulk.example/upload', [UA, ['Content-Type', 'application/json']], JSON.stringify(arr)));
    const lines: string[] = [];
    let size = 0;
    while (size < 4 * 1024 * 1024) {
      const l = `${new Date(1551434400000 + size).toISOString()} I/ActivityManager( ${digits(4)}): Start proc ${digits(5)}:com.example.${hex(6)}/u0a${digits(3)} for service\n`;
      lines.push(l);
      size += l.length;
    }
    const gz = zlib.gzipSync(lines.join(''));
    out.push(flow('https://logs.example/ingest', [UA, ['Content-Type', 'text/plain'], ['Content-Encoding', 'gzip']], gz.subarray(0, Math.min(gz.length, 1024 * 1024))));
    const img = Buffer.alloc(1024 * 1024);
    for (let j = 0; j < img.length; j++) img[j] = Math.floor(rand() * 256);
    img.set([0xff, 0xd8, 0xff, 0xe0], 0);
    out.push(flow('https://photos.example/upload', [UA, ['Content-Type', 'image/jpeg']], img));
  }
  return out;
}

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

function measure(small: Flow[], large: Flow[], run: (f: Flow) => void): Run {
  settle();
  const lat: number[] = [];
  let smallBytes = 0;
  let smallTime = 0;
  for (const f of small) {
    const t = clock();
    run(f);
    const dt = clock() - t;
    lat.push(dt);
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
  lat.sort((a, b) => a - b);
  const mbs = (bytes: number, ms: number) => bytes / (1024 * 1024) / (ms / 1000);
  return { p50: percentile(lat, 50), p99: percentile(lat, 99), smallMBs: mbs(smallBytes, smallTime), largeMBs: mbs(largeBytes, largeTime), allMBs: mbs(smallBytes + largeBytes, smallTime + largeTime) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function main(): void {
  const small = Array.from({ length: SMALL_FLOWS }, () => pick(generators)()).filter((f) => f.requestBody.bytes.length < SMALL_LIMIT);
  const large = largeFlows();
  const profile1 = compileProfile({ name: 'bench', imei: PHONE.imei, iccid: PHONE.iccid, mac: PHONE.mac, phone: PHONE.phone, ad_id: PHONE.gaid });
  const manyImeis = Array.from({ length: 10 }, (_, i) => luhn(`354031090${String(10000 + i).padStart(5, '0')}`));
  const profile10 = compileProfile({ name: 'bench x10', imei: manyImeis, iccid: Array.from({ length: 10 }, (_, i) => luhn(`894708001234567${String(1000 + i)}`)), mac: PHONE.mac, phone: PHONE.phone, ad_id: PHONE.gaid });
  const configs: Array<[string, (f: Flow) => void]> = [
    ['decodeFlow only', (f) => decodeFlow(f)],
    ['analyseFlow, no profile', (f) => analyseFlow(f)],
    [`analyseFlow, profile (${profile1.variants.size} variants)`, (f) => analyseFlow(f, { profile: profile1 as CompiledProfile })],
    [`analyseFlow, profile (${profile10.variants.size} variants)`, (f) => analyseFlow(f, { profile: profile10 as CompiledProfile })],
  ];
  const totalSmall = small.reduce((n, f) => n + f.requestBody.bytes.length, 0);
  console.log(`mix: ${small.length} flows < 16 KB (mean body ${(totalSmall / small.length / 1024).toFixed(1)} KB), ${large.length} large bodies of ~1 MB (JSON array, gzip log text, JPEG-like binary)`);
  const gcNote = (globalThis as { gc?: unknown }).gc ? 'garbage collected between passes' : 'run with --expose-gc to collect garbage between passes';
  console.log(`clock: ${process.env.BENCH_CLOCK === 'wall' ? 'wall time (BENCH_CLOCK=wall)' : 'CPU time of this process (set BENCH_CLOCK=wall for wall time)'}`);
  console.log(`node ${process.version}, one core; each configuration: 1 warm-up pass, then 5 passes (small and large flows in separate passes, ${gcNote}); medians shown\n`);
  for (const [, run] of configs) measure(small, large, run);
  const rows: string[][] = [['configuration', 'p50 ms (<16KB)', 'p99 ms (<16KB)', 'MB/s (<16KB)', 'MB/s (1 MB bodies)', 'MB/s (all)']];
  for (const [name, run] of configs) {
    const runs = Array.from({ length: 5 }, () => measure(small, large, run));
    rows.push([
      name,
      median(runs.map((r) => r.p50)).toFixed(3),
      median(runs.map((r) => r.p99)).toFixed(3),
      median(runs.map((r) => r.smallMBs)).toFixed(1),
      median(runs.map((r) => r.largeMBs)).toFixed(1),
      median(runs.map((r) => r.allMBs)).toFixed(1),
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
  console.log('\ntargets: p99 < 1 ms for flows under 16 KB; >= 50 MB/s on large bodies; profile cost independent of its variant count');
  if (process.env.BENCH_GEO !== '0') benchGeo();
}

main();
