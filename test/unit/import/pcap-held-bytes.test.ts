/**
 * Out-of-order bytes held across connections are capped (CaptureImportOptions.maxHeldOutOfOrderBytes,
 * default 32 MiB): a capture whose connections all wait on holes (a one-sided capture shows none of
 * the ACKs that would declare them) cannot grow memory with its size. Past the cap, the connections
 * that have been waiting longest give their holes up: recorded as gaps (tag capture-gap, the error
 * naming the missing bytes), their data delivered, a note for the capture.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { importCapture, type CapturedFlow } from '../../../proxy/capture/import/pcap/capture-import';
import { MAX_HELD_OUT_OF_ORDER_BYTES } from '../../../proxy/capture/import/pcap/tcp-reassembly';
import { heldBackConnections, writePcapFile } from './pcap-packets';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-pcap-held-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const IMEI = '354031090123453';
/** Eight connections of ~100 KB each, every second segment sent only after all the rest: ~790 KB wait at once. */
const capture = (hole: 'late' | 'none') => {
  const file = path.join(dir, `${hole}.pcap`);
  writePcapFile(file, heldBackConnections({ connections: 8, bytesEach: 100_000, bodyBytes: 2000, mss: 1400, hole, firstBody: `imei=${IMEI}` }));
  return file;
};

function read(file: string, maxHeldOutOfOrderBytes?: number) {
  const flows: CapturedFlow[] = [];
  const result = importCapture(file, (f) => flows.push(f), { maxHeldOutOfOrderBytes });
  /* Per connection (client port), its first request. */
  const firsts = flows.filter((f) => f.flow.kind === 'http' && /\/r0$/.test(f.flow.url ?? '')).sort((a, b) => a.flow.clientPort! - b.flow.clientPort!);
  return { flows, result, firsts };
}

test('the default is 32 MiB', () => {
  expect(MAX_HELD_OUT_OF_ORDER_BYTES).toBe(32 * 1024 * 1024);
});

test('under the limit, holes filled late are repaired: every request whole, no gap', () => {
  const { flows, result, firsts } = read(capture('late'));
  const complete = read(capture('none'));
  expect(flows.length).toBe(complete.flows.length);
  expect(firsts).toHaveLength(8);
  for (const f of firsts) {
    expect(f.flow.tags).not.toContain('capture-gap');
    expect(f.flow.requestBody.bytes.toString().startsWith(`imei=${IMEI}`)).toBe(true);
    expect(f.flow.requestBody.size).toBe(2000);
  }
  expect(result.notes).toEqual(complete.result.notes);
});

test('past the limit, the connections waiting longest give up their holes: gaps, marked, and a note', () => {
  const { result, firsts } = read(capture('late'), 256 * 1024);
  expect(firsts).toHaveLength(8);
  const gapped = firsts.map((f) => f.flow.tags.includes('capture-gap'));
  /* The oldest holders go first: gapped connections are a prefix, and the newest kept theirs (the late segment repaired them). */
  expect(gapped[0]).toBe(true);
  expect(gapped[7]).toBe(false);
  expect(gapped.indexOf(false)).toBeGreaterThan(0);
  expect(gapped.slice(gapped.indexOf(false)).every((g) => !g)).toBe(true);
  const cut = firsts[0].flow;
  expect(cut.error).toMatch(/capture gap: 1400 bytes/);
  /* What came before the hole is kept: the IMEI is in the first segment. */
  expect(cut.requestBody.bytes.toString().startsWith(`imei=${IMEI}`)).toBe(true);
  expect(result.notes.join('\n')).toMatch(/out-of-order TCP data waiting for missing segments reached 262144 bytes across connections \(\d+ times\): the oldest holes were recorded as gaps/);
  expect(result.notes.join('\n')).toMatch(/bytes of TCP data were missing from the capture/);
});
