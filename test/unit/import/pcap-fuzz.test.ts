/**
 * Hostile and broken captures: truncated at every length, corrupted records, random bytes behind a
 * valid header, random bit flips. The importer must always finish quickly, report corruption with
 * the byte offset, and keep every flow that was complete before it. Seeded, so failures replay.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { importCapture, type CapturedFlow, type CaptureImportResult } from '../../../proxy/capture/import/pcap/capture-import';
import { prng as seededRandom } from '../../../scripts/fixtures/random';
import { ethernet, ipv4, pcapFile, PcapngWriter, tcp, TCP, tcpConversation } from './pcap-packets';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-pcap-fuzz-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function run(bytes: Buffer): { flows: CapturedFlow[]; result: CaptureImportResult; ms: number } {
  const file = path.join(dir, 'f.cap');
  fs.writeFileSync(file, bytes);
  const flows: CapturedFlow[] = [];
  const t = Date.now();
  const result = importCapture(file, (f) => flows.push(f));
  return { flows, result, ms: Date.now() - t };
}

const T0 = 1_700_000_000_000;
const conv = (i: number) => tcpConversation({ ip: '10.0.0.2', port: 40000 + i }, { ip: '10.0.0.1', port: 9999 }, [
  { from: 'c', data: Buffer.from(`POST /r${i} HTTP/1.1\r\nHost: h.example\r\nContent-Length: 20\r\n\r\nimei=354031090123453`) },
  { from: 's', data: Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok') },
], { t0: T0 + i * 1000, mss: 60 });
const frames = [0, 1, 2, 3].flatMap((i) => conv(i)).map((f) => ({ ts: f.ts, data: ethernet(f.data) }));
const pcap = pcapFile(frames);
const pcapng = (() => {
  const w = new PcapngWriter().section().iface(1, 9);
  for (const f of frames) w.epb(0, f);
  return w.bytes();
})();

/** Offsets where a record (pcap) or block (pcapng) ends. */
function recordEnds(b: Buffer): Set<number> {
  const out = new Set<number>();
  if (b.readUInt32LE(0) === 0xa1b2c3d4) for (let o = 24; o < b.length; o += 16 + b.readUInt32LE(o + 8)) out.add(o);
  else for (let o = 0; o < b.length; o += b.readUInt32LE(o + 4)) if (o > 0) out.add(o);
  return out;
}

describe.each([['pcap', pcap], ['pcapng', pcapng]])('%s', (_name, whole) => {
  test('truncated at every length: never throws, names the offset, keeps what came before', () => {
    const full = run(whole).flows.length;
    expect(full).toBe(4);
    const ends = recordEnds(whole);
    let previous = 0;
    for (let len = 0; len < whole.length; len += 7) {
      const { flows, result } = run(whole.subarray(0, len));
      if (ends.has(len)) expect(result.error).toBeUndefined(); // cut between records: a valid, shorter capture
      else {
        expect(result.error?.message).toMatch(/at byte offset \d+/);
        expect(result.error!.offset).toBeLessThanOrEqual(len);
      }
      /* Flows only grow as more of the file is there. */
      const complete = flows.filter((f) => f.flow.responseStatus === 200 && !f.flow.error).length;
      expect(complete).toBeGreaterThanOrEqual(previous - 1);
      previous = Math.max(previous, complete);
    }
  });

  test('a corrupt record length in the middle: error at that record, the flows before it kept', () => {
    const bytes = Buffer.from(whole);
    /* Find the record of the first packet of the third conversation and break its length. */
    const marker = bytes.indexOf(Buffer.from('POST /r2'));
    let rec = -1;
    if (whole === pcap) {
      for (let o = 24; o < bytes.length; ) {
        const len = bytes.readUInt32LE(o + 8);
        if (o + 16 + len > marker) break;
        rec = o + 16 + len;
        o = rec;
      }
      bytes.writeUInt32LE(0x7fffffff, rec + 8);
    } else {
      for (let o = 0; o < bytes.length; ) {
        const len = bytes.readUInt32LE(o + 4);
        if (o + len > marker) break;
        rec = o + len;
        o = rec;
      }
      bytes.writeUInt32LE(13, rec + 4);
    }
    const { flows, result } = run(bytes);
    expect(result.error?.offset).toBe(rec);
    expect(result.error?.message).toMatch(new RegExp(`at byte offset ${rec}$`));
    const done = flows.filter((f) => f.flow.responseStatus === 200).map((f) => f.flow.url);
    expect(done).toEqual(['http://h.example:9999/r0', 'http://h.example:9999/r1']);
  });

  test('random bit flips: never throws, finishes fast', () => {
    const rnd = seededRandom(whole === pcap ? 1 : 2);
    for (let i = 0; i < 300; i++) {
      const bytes = Buffer.from(whole);
      const flips = 1 + Math.floor(rnd() * 20);
      for (let k = 0; k < flips; k++) {
        const at = 24 + Math.floor(rnd() * (bytes.length - 24));
        bytes[at] ^= 1 << Math.floor(rnd() * 8);
      }
      const { ms } = run(bytes);
      expect(ms).toBeLessThan(2000);
    }
  });
});

test('random bytes behind valid headers, and random files: an error or nothing, never a crash', () => {
  const rnd = seededRandom(3);
  const headers = [pcap.subarray(0, 24), pcapng.subarray(0, pcapng.readUInt32LE(4) + pcapng.readUInt32LE(pcapng.readUInt32LE(4) + 4)), Buffer.alloc(0)];
  for (let i = 0; i < 300; i++) {
    const body = Buffer.alloc(Math.floor(rnd() * 4000));
    for (let k = 0; k < body.length; k++) body[k] = Math.floor(rnd() * 256);
    const { result, ms } = run(Buffer.concat([headers[i % 3], body]));
    expect(ms).toBeLessThan(2000);
    if (i % 3 === 2 && body.length) expect(result.error?.message).toMatch(/not a pcap or pcapng file|too short/);
  }
});

test('a flood of half-open connections and out-of-order segments stays bounded', () => {
  /* 3000 connections each with one segment far beyond its start: every one waits, none completes. */
  const rnd = seededRandom(4);
  const many = [];
  const data = Buffer.alloc(1000, 0x41);
  for (let i = 0; i < 3000; i++) {
    const isn = Math.floor(rnd() * 2 ** 32);
    const port = 1024 + i;
    many.push({ ts: T0 + i, data: ipv4('10.1.0.2', '10.1.0.1', 6, tcp(port, 80, isn, 0, TCP.SYN)) });
    for (let k = 1; k <= 3; k++) many.push({ ts: T0 + i, data: ipv4('10.1.0.2', '10.1.0.1', 6, tcp(port, 80, isn + 1 + k * 5000, 0, TCP.ACK, data)) });
  }
  const { flows, result, ms } = run(pcapFile(many, { linkType: 101 }));
  expect(result.error).toBeUndefined();
  /* Each connection ends (end of capture) as raw TCP data behind a gap, recorded, not lost. */
  expect(flows).toHaveLength(3000);
  expect(result.notes.join()).toMatch(/bytes of TCP data were missing/);
  expect(ms).toBeLessThan(5000);
});

test('hostile slicing stays linear: a head in one-byte segments, a datagram in hundreds of 8-byte fragments', () => {
  const head = Buffer.from(`GET /${'a'.repeat(30_000)} HTTP/1.1\r\nHost: slow.example\r\n${'X-Pad: y\r\n'.repeat(3000)}\r\n`);
  const conv = tcpConversation({ ip: '10.2.0.2', port: 40000 }, { ip: '10.2.0.1', port: 80 }, [{ from: 'c', data: head }], { t0: T0, mss: 1 });
  const frags = [];
  for (let k = 0; k < 1000; k++) frags.push({ ts: T0, data: ipv4('10.2.0.3', '10.2.0.1', 17, Buffer.alloc(8), { id: 9, fragOffset: k * 8, more: true }) });
  const { flows, ms } = run(pcapFile([...conv, ...frags], { linkType: 101 }));
  expect(flows.map((f) => f.flow.host)).toEqual(['slow.example']);
  expect(ms).toBeLessThan(15_000);
});
