/**
 * Memory of `phonehome analyze` follows the largest entry or the capped out-of-order bytes, not the
 * file: the real CLI (compiled; npm test builds first) runs in a child process that reports its own
 * peak resident memory as it exits, on a small and a ~100 MB input of the same
 * kind, and the difference is compared with the file's size. Before the streaming HAR reader, a
 * 100 MB HAR cost several times its size; before the shared out-of-order cap, a capture whose
 * connections all wait on holes cost the bytes waiting.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { heldBackConnections, writePcapFile } from '../unit/import/pcap-packets';

const root = path.join(__dirname, '../..');
const MiB = 1024 * 1024;
let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-memory-'));
  /*
   * The peak of the child's own memory: VmHWM of /proc/self/status. (process.resourceUsage().maxRSS
   * would do on its own, but Linux carries it over from the forked copy of this test process, whose
   * size then hides the child's.)
   */
  fs.writeFileSync(path.join(dir, 'report-rss.js'), "process.on('exit', () => process.stderr.write(`\\nmaxRSS ${/VmHWM:\\s*(\\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]}\\n`));\n");
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Peak resident memory (MiB) of `phonehome analyze FILE --format jsonl`, and what it printed. */
function analyzePeak(file: string): { mib: number; stdout: string; stderr: string } {
  if (!fs.existsSync(path.join(root, 'dist/proxy/cli.js'))) throw new Error('dist/ is missing: run npm run build (npm test does)');
  const r = spawnSync(process.execPath, ['-r', path.join(dir, 'report-rss.js'), path.join(root, 'bin/phonehome.js'), 'analyze', file, '--format', 'jsonl'], {
    encoding: 'utf8', timeout: 180_000, maxBuffer: 64 * MiB,
  });
  expect(r.status).toBe(0);
  const m = /maxRSS (\d+)/.exec(r.stderr);
  expect(m).not.toBeNull();
  return { mib: Number(m![1]) / 1024, stdout: r.stdout, stderr: r.stderr };
}

/** A HAR of `entries` entries, each a small leaking request and a ~48 KB base64 response (a devtools export with images). */
function writeHar(file: string, entries: number): number {
  const image = Buffer.alloc(36 * 1024, 0xa5).toString('base64');
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, '{"log":{"version":"1.2","creator":{"name":"test","version":"1"},"entries":[');
    for (let i = 0; i < entries; i++) {
      const e = {
        startedDateTime: '2026-11-28T10:00:00.000Z', time: 12,
        request: { method: 'POST', url: `http://zzhc.example/reg/${i}`, headers: [{ name: 'Content-Type', value: 'application/x-www-form-urlencoded' }], postData: { mimeType: 'application/x-www-form-urlencoded', text: `imei=354031090123453&n=${i}` } },
        response: { status: 200, headers: [], content: { size: 36 * 1024, mimeType: 'image/png', encoding: 'base64', text: image } },
        serverIPAddress: '192.0.2.1',
      };
      fs.writeSync(fd, (i ? ',' : '') + JSON.stringify(e));
    }
    fs.writeSync(fd, ']}}');
  } finally {
    fs.closeSync(fd);
  }
  return fs.statSync(file).size;
}

test('a 100 MB HAR costs about what a 1 MB one does: the file is read entry by entry', () => {
  const small = path.join(dir, 'small.har');
  const big = path.join(dir, 'big.har');
  writeHar(small, 20);
  const size = writeHar(big, 2200);
  expect(size).toBeGreaterThan(100 * MiB);
  const a = analyzePeak(small);
  const b = analyzePeak(big);
  /* Every entry was read and analysed. */
  expect(b.stdout.trim().split('\n')).toHaveLength(2200);
  expect(b.mib - a.mib).toBeLessThan(40);
}, 240_000);

test('a capture whose connections all wait on holes: memory stays at the 32 MiB cap, twice the file costs no more', () => {
  /*
   * TLS uploads seen from one side, every connection's second segment sent last: nothing of their
   * data is kept, so what waits in reassembly is all there is. Uncapped, ~1 MB per connection waits
   * at once (70 and 140 MB here).
   */
  const shape = { bytesEach: 1_000_000, bodyBytes: 16_000, mss: 16_384, tls: true, hole: 'late' as const };
  const half = path.join(dir, 'holes-70.pcap');
  const full = path.join(dir, 'holes-140.pcap');
  writePcapFile(half, heldBackConnections({ ...shape, connections: 70 }));
  writePcapFile(full, heldBackConnections({ ...shape, connections: 140 }));
  const a = analyzePeak(half);
  const b = analyzePeak(full);
  expect(a.stderr).toMatch(/reached 32 MiB across connections/);
  expect(b.stderr).toMatch(/reached 32 MiB across connections/);
  expect(b.mib - a.mib).toBeLessThan(24);
}, 240_000);
