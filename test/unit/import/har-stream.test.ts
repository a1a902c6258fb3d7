/**
 * The streaming HAR reader against JSON.parse, the reference: the entries it hands over are exactly
 * log.entries of the whole document, whatever the chunk boundaries (down to a byte at a time) and
 * whatever the strings hold (escaped quotes, backslashes, brackets, non-ASCII); a cut or corrupted
 * file ends with a HarSyntaxError naming a byte offset inside the file, after a prefix of the
 * entries, and never with another exception.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HarSyntaxError, scanHar, scanHarBytes, scanHarFile } from '../../../proxy/capture/import/har-stream';
import { readHar, readHarFile } from '../../../proxy/capture/import/har';
import { prng } from '../analyse/decode/helpers';

/** Reads `bytes` at most `most` bytes per call (1: every boundary there is). */
function chunked(bytes: Buffer, most: (n: number) => number) {
  let position = 0;
  let call = 0;
  return (into: Buffer, at: number, length: number) => {
    const n = bytes.copy(into, at, position, Math.min(bytes.length, position + Math.min(length, most(call++))));
    position += n;
    return n;
  };
}

function entriesOf(bytes: Buffer, most: (n: number) => number = () => 1 << 20): unknown[] {
  const out: unknown[] = [];
  scanHar(chunked(bytes, most), bytes.length, { entry: (b) => out.push(JSON.parse(b.toString('utf8'))) });
  return out;
}

const STRING_PIECES = ['a', 'Z', ' ', '\\"', '\\\\', '\\\\\\"', '{', '}', '[', ']', ',', ':', '\\n', '\\u00e9', 'é', '😀', '\\/', '"'];

function randomString(rand: () => number): string {
  let s = '';
  for (let i = Math.floor(rand() * 12); i > 0; i--) {
    const piece = STRING_PIECES[Math.floor(rand() * STRING_PIECES.length)];
    s += piece === '"' ? '\\"' : piece;
  }
  return `"${s}"`;
}

function randomValue(rand: () => number, depth: number): string {
  const r = rand();
  if (depth > 4 || r < 0.3) return randomString(rand);
  if (r < 0.4) return String(Math.floor(rand() * 1e6) / 100);
  if (r < 0.45) return ['true', 'false', 'null', '-1.5e3'][Math.floor(rand() * 4)];
  const n = Math.floor(rand() * 4);
  const space = () => [' ', '', '\n  ', '\t'][Math.floor(rand() * 4)];
  if (r < 0.7) return `[${space()}${Array.from({ length: n }, () => randomValue(rand, depth + 1)).join(`,${space()}`)}${space()}]`;
  return `{${space()}${Array.from({ length: n }, () => `${randomString(rand)}${space()}:${space()}${randomValue(rand, depth + 1)}`).join(`,${space()}`)}${space()}}`;
}

function randomHar(rand: () => number): string {
  const entries = Array.from({ length: Math.floor(rand() * 6) }, () => (rand() < 0.8 ? `{"request": ${randomValue(rand, 1)}, "x": ${randomValue(rand, 1)}}` : randomValue(rand, 1)));
  const before = rand() < 0.5 ? '"version": "1.2", "pages": [{"id": "p\\"1"}], ' : '';
  const after = rand() < 0.5 ? ', "comment": "}]}"' : '';
  const top = rand() < 0.5 ? '"other": {"entries": [1, 2]}, ' : '';
  return `${rand() < 0.2 ? '\ufeff' : ''}{${top}"log": {${before}"entries": [${entries.join(', ')}]${after}}}\n`;
}

describe('entries are what JSON.parse finds in log.entries', () => {
  test('1000 random documents, read in chunks of 1 to 7 bytes and whole', () => {
    const rand = prng(21);
    const mismatches: object[] = [];
    for (let k = 0; k < 1000; k++) {
      const text = randomHar(rand);
      const want = (JSON.parse(text.replace(/^\ufeff/, '')) as { log: { entries: unknown[] } }).log.entries;
      const bytes = Buffer.from(text);
      for (const most of [() => 1 << 20, (n: number) => 1 + (n % 7)]) {
        const got = entriesOf(bytes, most);
        if (JSON.stringify(got) !== JSON.stringify(want)) mismatches.push({ text, got, want });
      }
    }
    expect(mismatches.slice(0, 2)).toEqual([]);
  });

  test('keys written with escapes, entries after other members, an empty list', () => {
    expect(entriesOf(Buffer.from('{"\\u006cog": {"pages": [], "entr\\u0069es": [{"a": 1}]}}'))).toEqual([{ a: 1 }]);
    expect(entriesOf(Buffer.from('{"log": {"entries": []}}'))).toEqual([]);
    expect(scanHarBytes(Buffer.from('{"log": {"creator": {}}}'), { entry: () => undefined }).sawEntries).toBe(false);
    expect(scanHarBytes(Buffer.from('[{"log": {"entries": [1]}}]'), { entry: () => undefined }).sawEntries).toBe(false);
  });
});

describe('broken files', () => {
  const good = Buffer.from(JSON.stringify({ log: { version: '1.2', entries: [{ request: { url: 'http://a.test/"}]' } }, { request: { url: 'http://b.test/' } }, { n: [1, 2, { x: '\\' }] }] } }, null, 1));

  test('cut at every length: a prefix of the entries, then an error at a byte inside the file', () => {
    const all = entriesOf(good);
    for (let cut = 0; cut < good.length; cut++) {
      const got: unknown[] = [];
      let error: unknown;
      try {
        scanHarBytes(good.subarray(0, cut), { entry: (b) => got.push(JSON.parse(b.toString('utf8'))) });
      } catch (err) {
        error = err;
      }
      expect({ cut, error: error instanceof HarSyntaxError && error.offset <= cut && error.truncated }).toEqual({ cut, error: true });
      expect(got).toEqual(all.slice(0, got.length));
    }
  });

  test('2000 random corruptions: entries or a HarSyntaxError, never another exception', () => {
    const rand = prng(22);
    const junk = [0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x00, 0xff, 0x20, 0x61];
    for (let k = 0; k < 2000; k++) {
      const bad = Buffer.from(good);
      for (let m = 1 + Math.floor(rand() * 3); m > 0; m--) bad[Math.floor(rand() * bad.length)] = junk[Math.floor(rand() * junk.length)];
      try {
        scanHarBytes(bad, { entry: () => undefined });
      } catch (err) {
        expect(err).toBeInstanceOf(HarSyntaxError);
        expect((err as HarSyntaxError).offset).toBeLessThanOrEqual(bad.length);
      }
    }
  });

  test('an entry that is not valid JSON inside balanced brackets costs only that entry', () => {
    const har = readHar('{"log": {"entries": [{"request": tru}, {"request": {"method": "GET", "url": "http://ok.test/"}}]}}', 'x.har');
    expect(har.flows.map((f) => f.host)).toEqual(['ok.test']);
    expect(har.errors).toEqual([{ entry: 0, message: expect.stringMatching(/^x\.har: entry 0 is not valid JSON \(.*; it starts at byte 21\)$/) }]);
  });

  test.each([
    ['a bracket closing the wrong thing', '{"log": {"entries": [{"a": [1}]}}', /^x\.har: not a HAR file \(invalid JSON at byte 29 in entry 0: a '\}' that closes no object\)$/],
    ['text after the HAR', '{"log": {"entries": [{"request": {"method": "GET", "url": "http://ok.test/"}}]}} trailing', /^x\.har: invalid JSON at byte 81 \(unexpected text after the end of the HAR\); the 1 entry before it was read$/],
    ['a broken value outside the entries', '{"log": {"version": 1.2.3, "entries": []}}', /^x\.har: not a HAR file \(invalid JSON at byte 20: invalid JSON \(/],
    ['nesting 100 000 deep', `{"log": {"entries": [${'['.repeat(100000)}]}}`, /^x\.har: not a HAR file \(invalid JSON at byte \d+ in entry 0: brackets nested more than 4096 levels deep\)$/],
  ])('%s', (_what, text, message) => {
    const har = readHar(text, 'x.har');
    expect(har.errors).toEqual([{ entry: null, message: expect.stringMatching(message) }]);
  });
});

describe('from a file', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-har-stream-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('an entry bigger than the read chunk (3 MB of body), a BOM, progress to the last byte', () => {
    const big = 'imei=354031090123453&' + 'x'.repeat(3 * 1024 * 1024);
    const doc = { log: { entries: [{ request: { method: 'POST', url: 'http://a.test/up', postData: { mimeType: 'application/x-www-form-urlencoded', text: big } } }, { request: { method: 'GET', url: 'http://b.test/' } }] } };
    const file = path.join(dir, 'big.har');
    fs.writeFileSync(file, '\ufeff' + JSON.stringify(doc));
    const size = fs.statSync(file).size;
    const progress: number[] = [];
    const hosts: string[] = [];
    const result = readHarFile(file, 'big.har', (flow) => hosts.push(`${flow.host} ${flow.requestBody.bytes.length}`), { onProgress: (done, total) => progress.push(done / total) });
    expect(result).toEqual({ entries: 2, flows: 2, errors: [], read: true });
    expect(hosts).toEqual([`a.test ${big.length}`, 'b.test 0']);
    expect(progress[progress.length - 1]).toBe(1);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(scanHarFile(file, { entry: () => undefined }).entries).toBe(2);
  });
});
