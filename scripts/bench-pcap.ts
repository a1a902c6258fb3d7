/**
 * pcap import benchmark (npm run bench:pcap): generates a seeded Ethernet pcap of mostly small HTTP
 * flows (phone check-ins, analytics, forms; some chunked or gzip; a few carrying an IMEI), then
 * measures, in one run, a single-threaded node process reading and analysing it (MB/s of capture),
 * reading it only, and `tshark -r FILE -Y http.request` on the same file (median of runs, and the
 * ratio). Then the peak RSS of read+analyse over a large capture (BENCH_PCAP_LARGE_MB, default
 * 1024) with some large bodies in it, to show memory does not grow with the file.
 *
 * `node dist/scripts/bench-pcap.js --generate FILE MB [large]` only writes a capture (for profiling).
 *   BENCH_PCAP_SMALL_MB (default 100)  BENCH_PCAP_LARGE_MB (default 1024, 0 to skip)  BENCH_RUNS (3)
 *   BENCH_BASELINE=DIR also runs another build's importer and analyser (DIR is its compiled output,
 *   e.g. the dist/ of a checkout of main after `npm run build`) on the same capture, run by run
 *   alternating with this one, and prints the ratios: on a shared machine only same-run comparisons
 *   mean much.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { analyseFlow } from '../proxy/analyse';
import { importCapture } from '../proxy/capture/import/pcap/capture-import';
import { RssSampler } from './bench-lib';
import { luhnComplete, prng, randomDigits, randomHex, randomUuid } from './fixtures/random';

const SMALL_MB = Number(process.env.BENCH_PCAP_SMALL_MB ?? 100);
const LARGE_MB = Number(process.env.BENCH_PCAP_LARGE_MB ?? 1024);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const BASELINE = process.env.BENCH_BASELINE ? path.resolve(process.env.BENCH_BASELINE, 'scripts', 'bench-pcap.js') : undefined;

// ---- capture generator ---------------------------------------------------------------------------

/** Streams pcap records to a file through one reusable buffer. */
class PcapWriter {
  private buf = Buffer.allocUnsafe(8 * 1024 * 1024);
  private len = 0;
  bytes = 0;
  private readonly fd: number;
  constructor(file: string) {
    this.fd = fs.openSync(file, 'w');
    const h = Buffer.alloc(24);
    h.writeUInt32LE(0xa1b2c3d4, 0);
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeUInt32LE(262144, 16);
    h.writeUInt32LE(1, 20);
    this.put(h);
  }
  private put(b: Buffer): void {
    if (this.len + b.length > this.buf.length) this.flush();
    b.copy(this.buf, this.len);
    this.len += b.length;
    this.bytes += b.length;
  }
  /** One Ethernet/IPv4/TCP packet. */
  packet(tsMs: number, src: number, dst: number, sport: number, dport: number, seq: number, ack: number, flags: number, payload?: Buffer, off = 0, n = 0): void {
    const total = 16 + 14 + 20 + 20 + n;
    if (this.len + total > this.buf.length) this.flush();
    const b = this.buf;
    let o = this.len;
    const sec = Math.floor(tsMs / 1000);
    b.writeUInt32LE(sec, o);
    b.writeUInt32LE(Math.floor((tsMs - sec * 1000) * 1000), o + 4);
    b.writeUInt32LE(total - 16, o + 8);
    b.writeUInt32LE(total - 16, o + 12);
    o += 16;
    b.fill(0, o, o + 12);
    b[o + 5] = 1;
    b[o + 11] = 2;
    b.writeUInt16BE(0x0800, o + 12);
    o += 14;
    b[o] = 0x45;
    b[o + 1] = 0;
    b.writeUInt16BE(40 + n, o + 2);
    b.writeUInt32BE(0x40000000, o + 4); // id 0, DF
    b[o + 8] = 64;
    b[o + 9] = 6;
    b.writeUInt16BE(0, o + 10);
    b.writeUInt32BE(src >>> 0, o + 12);
    b.writeUInt32BE(dst >>> 0, o + 16);
    o += 20;
    b.writeUInt16BE(sport, o);
    b.writeUInt16BE(dport, o + 2);
    b.writeUInt32BE(seq >>> 0, o + 4);
    b.writeUInt32BE(ack >>> 0, o + 8);
    b[o + 12] = 0x50;
    b[o + 13] = flags;
    b.writeUInt32BE(0xffff0000, o + 14);
    b.writeUInt16BE(0, o + 18);
    o += 20;
    if (n) payload!.copy(b, o, off, off + n);
    this.len += total;
    this.bytes += total;
  }
  flush(): void {
    fs.writeSync(this.fd, this.buf, 0, this.len);
    this.len = 0;
  }
  close(): void {
    this.flush();
    fs.closeSync(this.fd);
  }
}

const SYN = 2, ACK = 16, PSH = 8, FIN = 1;
const MSS = 1448;

function generate(file: string, targetMb: number, seed: number, largeBodies: boolean): { bytes: number; requests: number } {
  const rand = prng(seed);
  const imei = luhnComplete('35403109012345');
  const w = new PcapWriter(file);
  const server = (203 << 24) | (0 << 16) | (113 << 8) | 7;
  const gzJson = zlib.gzipSync(JSON.stringify({ ok: true, config: { interval: 3600, features: ['a', 'b', 'c'] }, ts: 1700000000 }));
  const big = largeBodies ? Buffer.alloc(4 * 1024 * 1024, 'B') : Buffer.alloc(0);
  let ts = 1_700_000_000_000;
  let requests = 0;
  let conn = 0;
  while (w.bytes < targetMb * 1024 * 1024) {
    const client = (10 << 24) | (0 << 16) | ((conn >> 8) & 0xff) << 8 | (conn & 0xff);
    const sport = 1024 + (conn % 60000);
    const dport = [80, 8080, 9999, 9998][conn % 4];
    let cs = Math.floor(rand() * 2 ** 32);
    let ss = Math.floor(rand() * 2 ** 32);
    w.packet((ts += 0.05), client, server, sport, dport, cs, 0, SYN);
    cs++;
    w.packet((ts += 0.05), server, client, dport, sport, ss, cs, SYN | ACK);
    ss++;
    w.packet((ts += 0.05), client, server, sport, dport, cs, ss, ACK);
    const send = (fromClient: boolean, data: Buffer) => {
      for (let o = 0; o < data.length; o += MSS) {
        const n = Math.min(MSS, data.length - o);
        if (fromClient) {
          w.packet((ts += 0.02), client, server, sport, dport, cs, ss, ACK | PSH, data, o, n);
          cs += n;
        } else {
          w.packet((ts += 0.02), server, client, dport, sport, ss, cs, ACK | PSH, data, o, n);
          ss += n;
        }
      }
      w.packet((ts += 0.01), fromClient ? server : client, fromClient ? client : server, fromClient ? dport : sport, fromClient ? sport : dport, fromClient ? ss : cs, fromClient ? cs : ss, ACK);
    };
    const perConn = 1 + Math.floor(rand() * 3);
    for (let r = 0; r < perConn; r++) {
      const kind = rand();
      const host = `api${conn % 50}.tracker.example`;
      let req: Buffer;
      if (kind < 0.45) {
        const body = JSON.stringify({ event: 'app_open', device: { model: 'TA-1046', os: 'Android 9', ...(rand() < 0.1 ? { imei } : {}) }, session: randomUuid(rand), seq: requests, items: Array.from({ length: 1 + Math.floor(rand() * 8) }, () => randomHex(rand, 16)) });
        req = Buffer.from(`POST /v1/events?sdk=4.2&n=${requests} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: Dalvik/2.1.0 (Linux; U; Android 9; TA-1046)\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      } else if (kind < 0.75) {
        req = Buffer.from(`GET /config?app=com.example.app&v=${randomDigits(rand, 4)}&n=${requests} HTTP/1.1\r\nHost: ${host}\r\nAccept: application/json\r\nUser-Agent: okhttp/3.12.1\r\n\r\n`);
      } else {
        const body = `imsi=2420${randomDigits(rand, 11)}&model=TA-1046&lang=nb_NO&token=${randomHex(rand, 32)}`;
        req = Buffer.from(`POST /register HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`);
      }
      send(true, req);
      requests++;
      let res: Buffer;
      if (largeBodies && rand() < 0.001) res = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${big.length}\r\n\r\n`), big]);
      else if (rand() < 0.3) res = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: ${gzJson.length}\r\n\r\n`), gzJson]);
      else {
        const body = `{"status":"ok","id":"${randomHex(rand, 24)}"}`;
        res = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\n\r\n${body}`);
      }
      send(false, res);
    }
    w.packet((ts += 0.05), client, server, sport, dport, cs, ss, FIN | ACK);
    cs++;
    w.packet((ts += 0.05), server, client, dport, sport, ss, cs, FIN | ACK);
    ss++;
    w.packet((ts += 0.05), client, server, sport, dport, cs, ss, ACK);
    conn++;
  }
  w.close();
  return { bytes: w.bytes, requests };
}

// ---- measured runs -------------------------------------------------------------------------------

/** Child mode: read (and analyse) one capture, print what it did as JSON. */
function worker(mode: string, file: string): void {
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  let findings = 0;
  const result = importCapture(file, ({ flow, requestIndex }) => {
    if (mode === 'analyse' && flow.kind === 'http' && requestIndex !== undefined) findings += analyseFlow(flow, { limits: { timeBudgetMs: 2000 } }).findings.length;
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  process.stdout.write(JSON.stringify({ ms, cpuMs, requests: result.httpRequests, findings, error: result.error?.message }) + '\n');
}

interface RunResult {
  ms: number;
  /** CPU time of the process (user + system): what one core spent, whatever else ran on the machine. */
  cpuMs: number;
  requests: number;
  findings: number;
  peakRssMb: number;
}

function runWorker(mode: string, file: string, script = __filename): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--single-threaded', script, '--worker', mode, file], { stdio: ['ignore', 'pipe', 'inherit'] });
    const rss = new RssSampler(child.pid!, 50);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => {
      rss.stop();
      if (code !== 0) return reject(new Error(`worker exited ${code}`));
      resolve({ ...JSON.parse(out), peakRssMb: rss.maxMb });
    });
  });
}

/** tshark's wall time, and its CPU time from the children's rusage (getrusage RUSAGE_CHILDREN via /proc/self). */
function runTshark(file: string): { ms: number; cpuMs: number; requests: number } | null {
  const t0 = process.hrtime.bigint();
  const before = childrenCpuMs();
  const r = spawnSync('tshark', ['-r', file, '-n', '-Y', 'http.request', '-T', 'fields', '-e', 'frame.number'], { encoding: 'utf8', maxBuffer: 1024 * 1024 * 1024 });
  if (r.error || r.status !== 0) return null;
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, cpuMs: childrenCpuMs() - before, requests: r.stdout.split('\n').filter(Boolean).length };
}

/** CPU time (user + system) of this process's waited-for children, from /proc/self/stat (cutime, cstime). */
function childrenCpuMs(): number {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / 100;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-bench-pcap-'));
  try {
    const small = path.join(dir, 'small-flows.pcap');
    const gen = generate(small, SMALL_MB, 20190301, false);
    const mb = gen.bytes / (1024 * 1024);
    console.log(`capture of small HTTP flows: ${mb.toFixed(0)} MB, ${gen.requests} requests (${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(1)})`);
    const ours: RunResult[] = [];
    const readOnly: RunResult[] = [];
    const tshark: Array<{ ms: number; cpuMs: number; requests: number }> = [];
    const baseAnalyse: RunResult[] = [];
    const baseRead: RunResult[] = [];
    for (let i = 0; i < RUNS; i++) {
      if (BASELINE) baseAnalyse.push(await runWorker('analyse', small, BASELINE));
      ours.push(await runWorker('analyse', small));
      if (BASELINE) baseRead.push(await runWorker('read', small, BASELINE));
      readOnly.push(await runWorker('read', small));
      const t = runTshark(small);
      if (t) tshark.push(t);
    }
    const rate = (ms: number) => (mb / (ms / 1000)).toFixed(1);
    const report = (name: string, runs: Array<{ ms: number; cpuMs: number }>, extra: string) => {
      const ms = median(runs.map((r) => r.ms));
      const cpuMs = median(runs.map((r) => r.cpuMs));
      console.log(`${name.padEnd(24)} ${rate(cpuMs).padStart(6)} MB/s per CPU-second, ${rate(ms).padStart(6)} MB/s wall (medians of ${runs.length}: ${(cpuMs / 1000).toFixed(2)} s CPU, ${(ms / 1000).toFixed(2)} s wall)${extra}`);
      return { ms, cpuMs };
    };
    const a = report('phonehome read+analyse', ours, `; ${ours[0].requests} requests, ${ours[0].findings} findings, peak RSS ${median(ours.map((r) => r.peakRssMb)).toFixed(0)} MB`);
    const r = report('phonehome read only', readOnly, '');
    if (BASELINE) {
      const ba = report('baseline read+analyse', baseAnalyse, `; ${baseAnalyse[0].requests} requests, ${baseAnalyse[0].findings} findings`);
      const br = report('baseline read only', baseRead, '');
      const same = baseAnalyse[0].requests === ours[0].requests && baseAnalyse[0].findings === ours[0].findings;
      console.log(`ratio this build vs baseline: read+analyse ${(ba.cpuMs / a.cpuMs).toFixed(2)}x the throughput per CPU-second (${(ba.ms / a.ms).toFixed(2)}x wall), read only ${(br.cpuMs / r.cpuMs).toFixed(2)}x (${(br.ms / r.ms).toFixed(2)}x wall); same requests and findings: ${same ? 'yes' : 'NO'}`);
    }
    if (tshark.length) {
      const t = report('tshark -Y http.request', tshark, `; ${tshark[0].requests} requests`);
      console.log(`ratio phonehome read+analyse vs tshark: ${(t.cpuMs / a.cpuMs).toFixed(2)}x the throughput per CPU-second, ${(t.ms / a.ms).toFixed(2)}x wall`);
    } else console.log('tshark not installed or failed: no comparison');
    fs.rmSync(small);

    if (LARGE_MB > 0) {
      const large = path.join(dir, 'large.pcap');
      const g = generate(large, LARGE_MB, 7, true);
      const lmb = g.bytes / (1024 * 1024);
      const r = await runWorker('analyse', large);
      console.log(`large capture: ${lmb.toFixed(0)} MB (${g.requests} requests, 0.1% with a 4 MiB response): read+analyse ${(lmb / (r.cpuMs / 1000)).toFixed(1)} MB/s per CPU-second (${(lmb / (r.ms / 1000)).toFixed(1)} wall), peak RSS ${r.peakRssMb.toFixed(0)} MB`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--worker') worker(process.argv[3], process.argv[4]);
else if (process.argv[2] === '--generate') console.log(generate(process.argv[3], Number(process.argv[4] ?? SMALL_MB), 20190301, process.argv[5] === 'large'));
else main().catch((err) => {
  console.error(err);
  process.exit(1);
});
