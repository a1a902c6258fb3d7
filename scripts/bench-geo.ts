/**
 * Geo and judge benchmark (part of npm run bench:detect; alone: npm run bench:geo): how long the
 * offline address tables take to load from the binary cache (and, with BENCH_GEO_BUILD=1, to
 * build from the CSV files), the memory they hold, and what one lookup and one destination
 * judgement (lookup + registrable domain + tracker match) cost, in microseconds.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { judgeDestination, trackerList } from '../proxy/analyse/judge';
import type { Flow } from '../proxy/flow';
import { loadGeoLookup, prepareGeoCache } from '../proxy/geo';
import { geoCacheDirOf } from '../proxy/judge-config';
import { prng } from './fixtures/random';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

export function benchGeo(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  console.log('\ngeo: offline address tables (@ip-location-db asn + geo-whois-asn-country) and the destination judgement');
  let cacheDir = geoCacheDirOf(os.tmpdir());
  if (process.env.BENCH_GEO_BUILD === '1') {
    cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-bench-geo-'));
    const t0 = process.hrtime.bigint();
    prepareGeoCache(cacheDir);
    console.log(`  build from CSV and write the cache (once per release): ${ms(t0).toFixed(0)} ms`);
  } else if (prepareGeoCache(cacheDir) === 'built') console.log('  (cache built first: set BENCH_GEO_BUILD=1 to time that)');
  const file = fs.readdirSync(cacheDir).find((f) => /^geo-[0-9a-f]{20}\.bin$/.test(f));
  const loads: number[] = [];
  let external = 0;
  for (let i = 0; i < 5; i++) {
    gc?.();
    const before = process.memoryUsage();
    const t0 = process.hrtime.bigint();
    const geo = loadGeoLookup({ cacheDir });
    loads.push(ms(t0));
    if (geo.source !== 'cache') throw new Error('expected a cache hit');
    external = process.memoryUsage().arrayBuffers - before.arrayBuffers;
  }
  const geo = loadGeoLookup({ cacheDir });
  console.log(`  load from the cache: median ${median(loads).toFixed(1)} ms of 5 (min ${Math.min(...loads).toFixed(1)}); memory held: ${(external / 1048576).toFixed(1)} MiB (cache file ${file ? (fs.statSync(path.join(cacheDir, file)).size / 1048576).toFixed(1) : '?'} MiB)`);

  const rand = prng(42);
  const v4 = Array.from({ length: 200_000 }, () => `${1 + Math.floor(rand() * 222)}.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}`);
  const v6 = Array.from({ length: 50_000 }, () => `2a0${Math.floor(rand() * 10)}:${Math.floor(rand() * 65536).toString(16)}:${Math.floor(rand() * 65536).toString(16)}::1`);
  const perLookup = (ips: string[]) => {
    const runs: number[] = [];
    let hits = 0;
    for (let r = 0; r < 5; r++) {
      const t0 = process.hrtime.bigint();
      hits = 0;
      for (const ip of ips) if (geo.lookup(ip)) hits++;
      runs.push((ms(t0) * 1000) / ips.length);
    }
    return { us: median(runs), hits: hits / ips.length };
  };
  const a = perLookup(v4);
  const b = perLookup(v6);
  console.log(`  lookup: IPv4 ${a.us.toFixed(2)} µs (random addresses, ${(a.hits * 100).toFixed(0)}% known), IPv6 ${b.us.toFixed(2)} µs (median of 5 passes)`);

  const trackers = trackerList();
  const hosts = ['zzhc.vnet.cn', 'report.appmetrica.yandex.net', 'www.google-analytics.com', 'api.example-weather.app', 'graph.facebook.com', 'cdn.example.co.uk'];
  const flows: Flow[] = v4.slice(0, 50_000).map((ip, i) => ({
    kind: 'http', source: 'proxy', startedAt: 0, clientIp: '192.168.1.2', scheme: 'https', host: hosts[i % hosts.length]!, port: 443, tls: true, serverIp: ip,
    requestHeaders: [], requestBody: { bytes: Buffer.alloc(0), size: 0, truncated: false }, responseHeaders: [], responseBody: { bytes: Buffer.alloc(0), size: 0, truncated: false }, timings: {}, tags: [],
  }));
  const runs: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = process.hrtime.bigint();
    for (const f of flows) judgeDestination(f, geo, trackers);
    runs.push((ms(t0) * 1000) / flows.length);
  }
  console.log(`  judgeDestination (lookup + registrable domain + tracker match): ${median(runs).toFixed(2)} µs per flow (median of 5 passes)`);
}

if (require.main === module) benchGeo();
