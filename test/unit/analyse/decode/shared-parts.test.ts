/**
 * Decoding shares work across flows: JSON places of the request body (paths and key paths made
 * once per document shape) and header values remembered as the fields they became. Each shortcut
 * must give exactly what the long way gives: checked here against the long way itself (a body
 * under Content-Encoding gzip is read at a position that shares nothing).
 */
import * as zlib from 'node:zlib';
import { decodeFlow } from '../../../../proxy/analyse/decode';
import type { DecodeResult } from '../../../../proxy/analyse/types';
import { makeFlow, prng } from './helpers';

/** The same result with the gzip step taken out of paths and chains (what the body gives unwrapped). */
function withoutGzip(r: DecodeResult): unknown {
  return {
    ...r,
    decodedBytes: 0,
    fields: r.fields.map((f) => ({ ...f, path: f.path.replace('body>gzip', 'body'), group: f.group.replace('body>gzip', 'body'), chain: f.chain.filter((c) => c !== 'gzip') })),
    notes: r.notes.map((n) => n.replace('body>gzip', 'body')),
  };
}

function jsonFlow(body: string, gzip = false) {
  const headers: [string, string][] = [['Content-Type', 'application/json']];
  if (gzip) headers.push(['Content-Encoding', 'gzip']);
  return makeFlow({ method: 'POST', url: 'http://t.example/v1/e', headers, body: gzip ? zlib.gzipSync(body) : body });
}

function randomDocument(rand: () => number, keys: string[], depth = 0): unknown {
  const pick = rand();
  if (depth > 3 || pick < 0.3) {
    const leaves = ['app_open', 'TA-1046', '354812345678453', 'a87789b2d653c725', '14139c84-6241-41df-ad45-1c24c9503d3d', 'aGVsbG8gd29ybGQgaGVsbG8=', 'x"y\\z', 7, 3.5, true, null, '', '   ', '48656c6c6f20776f726c64'];
    return leaves[Math.floor(rand() * leaves.length)];
  }
  if (pick < 0.55) return Array.from({ length: Math.floor(rand() * (depth === 0 ? 40 : 5)) }, () => randomDocument(rand, keys, depth + 1));
  const o: Record<string, unknown> = {};
  const n = 1 + Math.floor(rand() * 6);
  for (let i = 0; i < n; i++) o[keys[Math.floor(rand() * keys.length)]!] = randomDocument(rand, keys, depth + 1);
  return o;
}

/** Big enough that the clock never stops a document (the comparison is of what decoding finds). */
const NO_CLOCK = { timeBudgetMs: 60_000 };

describe('JSON bodies share their places across flows', () => {
  test('the same fields as a body read where nothing is shared, flow after flow, for repeated and ever-new shapes', () => {
    const rand = prng(77);
    /* Few keys (shapes repeat), then many (the places fill up and start over), including keys that need ["..."] and long ones. */
    const few = ['event', 'device', 'model', 'items', 'imei', 'a b', 'x-y', '$id'];
    const many = Array.from({ length: 3000 }, (_, i) => (i % 7 === 0 ? `key with space ${i}` : i % 11 === 0 ? `k${'z'.repeat(70)}${i}` : `key${i}`));
    for (let round = 0; round < 400; round++) {
      const body = JSON.stringify(randomDocument(rand, round < 200 ? few : many));
      const shared = decodeFlow(jsonFlow(body), NO_CLOCK);
      const again = decodeFlow(jsonFlow(body), NO_CLOCK);
      const unshared = decodeFlow(jsonFlow(body, true), NO_CLOCK);
      expect(again).toEqual(shared);
      expect(withoutGzip(shared)).toEqual(withoutGzip(unshared));
    }
  });

  test('places are never changed by a later document: fields handed out earlier keep their paths', () => {
    const first = decodeFlow(jsonFlow('{"device":{"model":"TA-1046","os":"Android 9"},"items":["a","b"]}'));
    const snapshot = JSON.parse(JSON.stringify(first)) as unknown;
    decodeFlow(jsonFlow('{"device":{"model":"X","serial":"R58M1234"},"items":["c","d","e"],"extra":{"device":1}}'));
    expect(JSON.parse(JSON.stringify(first))).toEqual(snapshot);
  });
});

describe('header values remembered as their fields', () => {
  const ua = 'Dalvik/2.1.0 (Linux; U; Android 9; TA-1046 Build/00WW_3_16A)';
  const flow = (value: string, name = 'User-Agent') => makeFlow({ url: 'http://t.example/config', headers: [[name, value]] });

  test('a repeated value gives the same field as the first time, under any name case', () => {
    const a = decodeFlow(flow(ua));
    const b = decodeFlow(flow(ua));
    expect(b).toEqual(a);
    expect(b.fields.find((f) => f.key === 'User-Agent')).toEqual({ path: 'header:User-Agent', key: 'User-Agent', keyPath: ['User-Agent'], value: ua, chain: [], group: 'header' });
    const lower = decodeFlow(flow(ua, 'user-agent'));
    expect(lower.fields.find((f) => f.key === 'user-agent')?.path).toBe('header:user-agent');
  });

  test('apps with their own User-Agent, in turn: each flow gets its own value', () => {
    const agents = [ua, 'okhttp/3.12.1', 'Dalvik/2.1.0 (Linux; U; Android 9; TA-1046)', 'com.example.app/7.1 (Android 9)', 'Mozilla/5.0 (Linux; Android 9)'];
    for (let i = 0; i < 60; i++) {
      const value = agents[(i * 7) % agents.length]!;
      expect(decodeFlow(flow(value)).fields.filter((f) => f.key === 'User-Agent').map((f) => f.value)).toEqual([value]);
    }
  });

  test('what a value was under other limits decides nothing: a field limit cuts it, and the next flow is whole again', () => {
    decodeFlow(flow(ua));
    const cut = decodeFlow(flow(ua), { maxFieldLength: 10 });
    expect(cut.fields.find((f) => f.key === 'User-Agent')?.value).toBe(ua.slice(0, 10));
    expect(cut.limitsHit).toContain('maxFieldLength');
    const whole = decodeFlow(flow(ua));
    expect(whole.fields.find((f) => f.key === 'User-Agent')?.value).toBe(ua);
    expect(whole.limitsHit).toEqual([]);
    const none = decodeFlow(flow(ua), { maxFields: 1 });
    expect(none.fields.filter((f) => f.key === 'User-Agent')).toEqual([]);
    expect(none.limitsHit).toContain('maxFields');
  });

  test('values that decode are decoded every time, and values that change are each their own field', () => {
    const encoded = Buffer.from('{"imei":"354812345678453"}').toString('base64');
    for (let i = 0; i < 3; i++) {
      const r = decodeFlow(flow(encoded, 'X-Device'));
      expect(r.fields.some((f) => f.value === '354812345678453' && f.path === 'header:X-Device>base64>json:$.imei')).toBe(true);
    }
    for (let i = 0; i < 40; i++) {
      const id = `req-${i}-${'q'.repeat(i % 5)}`;
      expect(decodeFlow(flow(id, 'X-Request-Id')).fields.find((f) => f.key === 'X-Request-Id')?.value).toBe(id);
    }
  });

  test('header roles: transport headers in any case are skipped, others are read; a non-ASCII name is lowered as toLowerCase does', () => {
    const r = decodeFlow(makeFlow({ url: 'http://t.example/', headers: [['HOST', 't.example'], ['Content-LENGTH', '5'], ['X-Imei', '354812345678453'], ['\u212Aeep-Alive', 'timeout=5']] }));
    expect(r.fields.map((f) => f.key)).toEqual(['X-Imei']);
  });
});

describe('URL parameters remembered as their fields', () => {
  test('a repeated parameter gives the field the long way gives; one that decodes is decoded every time', () => {
    const encoded = Buffer.from('{"imei":"354812345678453"}').toString('base64');
    for (let i = 0; i < 6; i++) {
      const app = i % 2 ? 'com.example.app' : 'org.example.other';
      const r = decodeFlow(makeFlow({ url: `http://t.example/config?app=${app}&v=${7000 + i}&d=${encodeURIComponent(encoded)}` }));
      expect(r.fields.find((f) => f.key === 'app')).toEqual({ path: 'query:app', key: 'app', keyPath: ['app'], value: app, chain: ['query'], group: 'query' });
      expect(r.fields.some((f) => f.path === 'query:d>base64>json:$.imei' && f.value === '354812345678453')).toBe(true);
      expect(r.fields.find((f) => f.key === 'v')?.value).toBe(String(7000 + i));
    }
    const cut = decodeFlow(makeFlow({ url: 'http://t.example/config?app=com.example.app' }), { maxFieldLength: 5 });
    expect(cut.fields.find((f) => f.key === 'app')?.value).toBe('com.e');
  });
});
