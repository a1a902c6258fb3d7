/** Every decode limit has a name, a default, and a test that hits it with hostile input. */
import * as zlib from 'node:zlib';
import { analyseFlow } from '../../../../proxy/analyse';
import { decodeBytes, decodeFlow, DEFAULT_DECODE_LIMITS, RATIO_FLOOR_INPUT_BYTES } from '../../../../proxy/analyse/decode';
import { IDS, makeFlow, RELAXED } from './helpers';

const MiB = 1024 * 1024;

test('defaults are the documented ones', () => {
  expect(DEFAULT_DECODE_LIMITS).toEqual({ maxDepth: 8, maxDecodedBytes: 32 * MiB, maxRatio: 100, maxFields: 5000, maxFieldLength: 64 * 1024, timeBudgetMs: 100 });
});

describe('maxDepth', () => {
  const wrapped = (layers: number) => {
    let text = JSON.stringify({ imei: IDS.imei });
    for (let i = 0; i < layers; i++) text = Buffer.from(text).toString('base64');
    return text;
  };
  test('ten base64 layers stop at the default depth of 8, keeping the value there', () => {
    const r = decodeBytes(Buffer.from(wrapped(10)), undefined, RELAXED);
    expect(r.limitsHit).toContain('maxDepth');
    expect(r.notes.join('\n')).toMatch(/depth limit of 8/);
    const deepest = r.fields.find((f) => f.chain.length === 8);
    expect(deepest?.path).toBe('body' + '>base64'.repeat(8));
    expect(r.fields.some((f) => f.value === IDS.imei)).toBe(false);
  });
  test('a lower limit is honoured and a higher one reaches the value', () => {
    expect(decodeBytes(Buffer.from(wrapped(3)), undefined, { ...RELAXED, maxDepth: 2 }).limitsHit).toContain('maxDepth');
    const r = decodeBytes(Buffer.from(wrapped(10)), undefined, { ...RELAXED, maxDepth: 12 });
    expect(r.limitsHit).toEqual([]);
    expect(r.fields.find((f) => f.value === IDS.imei)?.chain).toEqual([...Array(10).fill('base64'), 'json']);
  });
  test('JSON nested 100 000 levels deep is not walked to the bottom, and does not throw', () => {
    const deep = '['.repeat(100000) + '"x"' + ']'.repeat(100000);
    const r = decodeBytes(Buffer.from(deep), 'application/json', RELAXED);
    expect(r.limitsHit).toContain('maxDepth');
  });
});

describe('maxRatio and maxDecodedBytes (decompression bombs)', () => {
  test('a gzip expanding more than 100:1 is cut at the ratio limit, keeping the start', () => {
    const text = Buffer.alloc(20 * MiB, 'imei 1; ');
    const small = zlib.gzipSync(text, { level: 9 });
    expect(small.length).toBeLessThan(RATIO_FLOOR_INPUT_BYTES);
    const r = decodeBytes(small, 'text/plain', { maxFieldLength: 64, timeBudgetMs: 60_000 });
    expect(r.limitsHit).toContain('maxRatio');
    expect(r.notes.join('\n')).toMatch(new RegExp(`gzip at body cut at ${RATIO_FLOOR_INPUT_BYTES * 100} bytes`));
    expect(r.decodedBytes).toBe(RATIO_FLOOR_INPUT_BYTES * 100);
    expect(r.fields[0].value).toBe('imei 1; '.repeat(8));
  });

  test('a 1 GB bomb in a few KB (gzip of 1024 gzip members of 1 MiB zeros) costs no more than the byte budget', () => {
    const member = zlib.gzipSync(Buffer.alloc(MiB), { level: 9 });
    const inner = Buffer.concat(Array(1024).fill(member));
    const bomb = zlib.gzipSync(inner, { level: 9 });
    expect(bomb.length).toBeLessThan(16 * 1024);
    const r = decodeBytes(bomb, 'application/octet-stream', { timeBudgetMs: 60_000 });
    expect(r.limitsHit).toContain('maxDecodedBytes');
    expect(r.notes.join('\n')).toMatch(/gzip at body>gzip cut at \d+ bytes: the flow's decoded-bytes budget/);
    expect(r.decodedBytes).toBeLessThanOrEqual(DEFAULT_DECODE_LIMITS.maxDecodedBytes);
    expect(r.decodedBytes).toBeGreaterThan(DEFAULT_DECODE_LIMITS.maxDecodedBytes - 2 * MiB);
  });

  test('the same bomb under a 1 ms time budget stops expanding early', () => {
    const member = zlib.gzipSync(Buffer.alloc(MiB), { level: 9 });
    const bomb = zlib.gzipSync(Buffer.concat(Array(1024).fill(member)), { level: 9 });
    const r = decodeBytes(bomb, 'application/octet-stream', { timeBudgetMs: 1 });
    expect(r.limitsHit).toContain('timeBudgetMs');
    expect(r.decodedBytes).toBeLessThan(DEFAULT_DECODE_LIMITS.maxDecodedBytes / 2);
  });

  test('Content-Encoding bomb with a small budget: cut, noted, the flow still decodes its URL', () => {
    const flow = makeFlow({ url: `http://x.test/?imei=${IDS.imei}`, headers: [['Content-Encoding', 'gzip']], body: zlib.gzipSync(Buffer.alloc(50 * MiB)) });
    const r = decodeFlow(flow, { ...RELAXED, maxDecodedBytes: MiB });
    expect(r.limitsHit).toContain('maxDecodedBytes');
    expect(r.decodedBytes).toBeLessThanOrEqual(MiB);
    expect(r.fields.find((f) => f.path === 'query:imei')?.value).toBe(IDS.imei);
  });

  test('once the budget is spent, base64 is not decoded either', () => {
    const json = JSON.stringify({ a: Buffer.from('x'.repeat(3000)).toString('base64'), b: Buffer.from('y'.repeat(3000)).toString('base64') });
    const r = decodeBytes(Buffer.from(json), 'application/json', { ...RELAXED, maxDecodedBytes: 4000 });
    expect(r.limitsHit).toContain('maxDecodedBytes');
    expect(r.decodedBytes).toBeLessThanOrEqual(4000);
  });
});

describe('maxFields', () => {
  const many = JSON.stringify(Object.fromEntries(Array.from({ length: 12000 }, (_, i) => [`k${i}`, i])));
  test('the default keeps 5000 fields and says so', () => {
    const r = decodeBytes(Buffer.from(many), 'application/json', RELAXED);
    expect(r.fields).toHaveLength(5000);
    expect(r.limitsHit).toContain('maxFields');
  });
  test('a custom limit is honoured', () => {
    const r = decodeBytes(Buffer.from(many), 'application/json', { ...RELAXED, maxFields: 10 });
    expect(r.fields).toHaveLength(10);
    expect(r.notes.join()).toMatch(/field limit of 10/);
  });
});

describe('maxFieldLength', () => {
  test('a 100 KB text value is kept up to 64 KiB', () => {
    const r = decodeBytes(Buffer.alloc(100 * 1024, 'abc '), 'text/plain', RELAXED);
    expect(r.fields[0].value).toHaveLength(64 * 1024);
    expect(r.limitsHit).toEqual(['maxFieldLength']);
  });
  test('the cut applies to the kept text only: a value beyond it was still decoded', () => {
    const json = JSON.stringify({ pad: 'p'.repeat(200), imei: IDS.imei });
    const r = decodeBytes(Buffer.from(Buffer.from(json).toString('base64')), undefined, { ...RELAXED, maxFieldLength: 100 });
    expect(r.fields.find((f) => f.key === 'imei')?.value).toBe(IDS.imei);
    expect(r.fields.find((f) => f.key === 'pad')?.value).toHaveLength(100);
  });
});

describe('timeBudgetMs', () => {
  test('a spent budget stops decoding with a note, and what was found stays', () => {
    const json = JSON.stringify(Array.from({ length: 3000 }, (_, i) => ({ v: Buffer.from(`{"n":${i}}`).toString('base64') })));
    const full = decodeBytes(Buffer.from(json), 'application/json', { timeBudgetMs: 60_000, maxFields: 100_000 });
    const cut = decodeBytes(Buffer.from(json), 'application/json', { timeBudgetMs: 0 });
    expect(full.limitsHit).toEqual([]);
    expect(cut.limitsHit).toContain('timeBudgetMs');
    expect(cut.fields.length).toBeLessThan(full.fields.length);
  });
});

describe('timeBudgetMs on a big body: read in order, what was found stays', () => {
  const FORM = 'application/x-www-form-urlencoded';
  const filler = 'x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa&';

  test('a 400 MB form with the IMEI in its first bytes: the IMEI is reported, and the note says how far the body was read', () => {
    const body = Buffer.alloc(400 * MiB, filler);
    body.write(`imei=${IDS.imei}&`);
    const flow = makeFlow({ url: 'http://upload.test/batch', headers: [['Content-Type', FORM]], body });
    /* The budget `phonehome analyze` and `import` give each request. */
    const r = analyseFlow(flow, { limits: { timeBudgetMs: 2000 } });
    expect(r.findings.map((f) => [f.type, f.value, f.path])).toEqual([['imei', IDS.imei, 'body>form:imei']]);
    const read = r.notes.map((n) => /^form at body read up to byte (\d+) of (\d+); the rest was not read$/.exec(n)).find(Boolean);
    expect(read).toBeTruthy();
    expect(Number(read![2])).toBe(400 * MiB);
    expect(Number(read![1])).toBeLessThan(400 * MiB);
  });

  test('a budget spent before the body could be read (0 ms): the first pairs are still read, the rest is not, and the notes say so', () => {
    /* Each value is base64 of JSON: reading all of this 64 MB form takes seconds. */
    const value = Buffer.from(JSON.stringify({ event: 'tick', n: 1234567, tags: ['a', 'b', 'c'] })).toString('base64');
    const body = Buffer.alloc(64 * MiB, `ev=${encodeURIComponent(value)}&`);
    const head = `imei=${IDS.imei}&model=TA-1046&`;
    body.write(head);
    const r = decodeBytes(Buffer.concat([Buffer.from(head), body]), FORM, { timeBudgetMs: 0 });
    expect(r.fields.slice(0, 2).map((f) => [f.path, f.value])).toEqual([['body>form:imei', IDS.imei], ['body>form:model', 'TA-1046']]);
    expect(r.limitsHit).toContain('timeBudgetMs');
    expect(r.notes).toContainEqual(expect.stringMatching(/^decoding stopped after the time budget of 0 ms/));
    expect(r.notes).toContainEqual(expect.stringMatching(/^form at body read up to byte \d+ of \d+; the rest was not read$/));
  });

  test('a form body within every budget is read to its end, with no such note', () => {
    const r = decodeBytes(Buffer.from(`imei=${IDS.imei}&${filler.repeat(100)}`), FORM, RELAXED);
    expect(r.notes).toEqual([]);
    expect(r.fields).toHaveLength(101);
  });
});

describe('hostile documents', () => {
  test('billion laughs: entities declared in a DOCTYPE are never expanded', () => {
    const lol = `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">${Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i || ''};`.repeat(10)}">`).join('')}]><lolz>&lol9;</lolz>`;
    const r = decodeBytes(Buffer.from(lol), 'application/xml', RELAXED);
    expect(r.fields).toEqual([expect.objectContaining({ path: 'body>xml:/lolz', value: '&lol9;' })]);
  });
  test('a truncated gzip yields what it holds and a note-free partial decode', () => {
    const gz = zlib.gzipSync(Buffer.from(`${'hello '.repeat(2000)}imei=${IDS.imei}`));
    const r = decodeBytes(gz.subarray(0, gz.length - 30), undefined, RELAXED);
    expect(r.fields[0].chain).toEqual(['gzip']);
  });
  test('decompressors reused from flow to flow: a corrupt, a cut bomb or a truncated body leaves no trace on the next one', () => {
    const plain = `imei=${IDS.imei}&${'x=1&'.repeat(300)}`;
    const kinds = [
      { encoding: 'gzip', pack: (b: Buffer) => zlib.gzipSync(b) },
      { encoding: 'deflate', pack: (b: Buffer) => zlib.deflateSync(b) },
      { encoding: 'deflate', pack: (b: Buffer) => zlib.deflateRawSync(b) },
      { encoding: 'br', pack: (b: Buffer) => zlib.brotliCompressSync(b) },
    ];
    for (const { encoding, pack } of kinds) {
      const good = pack(Buffer.from(plain));
      const corrupt = Buffer.from(good);
      corrupt.fill(0xff, 4, 24);
      const bomb = pack(Buffer.alloc(8 * MiB));
      const before = [corrupt, bomb, good.subarray(0, good.length >> 1), good];
      for (const body of before) decodeBytes(body, 'application/x-www-form-urlencoded', { maxRatio: 2 }, encoding);
      const r = decodeBytes(good, 'application/x-www-form-urlencoded', RELAXED, encoding);
      expect({ encoding, imei: r.fields.find((f) => f.key === 'imei')?.value, notes: r.notes }).toEqual({ encoding, imei: IDS.imei, notes: [] });
      expect(r.decodedBytes).toBe(plain.length);
    }
  });
});
