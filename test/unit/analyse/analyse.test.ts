/**
 * analyseFlow end to end: decode → detect → judge on whole flows. The Nokia case with no hints,
 * deduplication and ranking, severity and destination, and hostile input (random, truncated and
 * mutated bytes, bombs) that must never throw and must respect the limits.
 */
import { gzipSync } from 'node:zlib';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { analyseFlow, compileProfile } from '../../../proxy/analyse';
import { IDENTIFIER_TYPES, SEVERITIES } from '../../../proxy/analyse/types';
import { createGeoLookup } from '../../../proxy/geo';
import type { Flow, Header } from '../../../proxy/flow';
import type { CorpusFixture } from '../../../scripts/fixtures/types';
import { prng } from '../../../scripts/fixtures/random';
import { luhn } from './detect/fields';

function flow(url: string, body: Buffer | string = '', headers: Header[] = [], over: Partial<Flow> = {}): Flow {
  const u = new URL(url);
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const https = u.protocol === 'https:';
  return {
    kind: 'http', source: 'proxy', startedAt: 0, clientIp: '192.168.1.23', method: bytes.length ? 'POST' : 'GET', url,
    scheme: https ? 'https' : 'http', host: u.hostname, port: Number(u.port || (https ? 443 : 80)), tls: https,
    requestHeaders: headers, requestBody: { bytes, size: bytes.length, truncated: false }, responseHeaders: [],
    responseBody: { bytes: Buffer.alloc(0), size: 0, truncated: false }, timings: {}, tags: [], ...over,
  };
}

const IMEI = luhn('86420109876543');

describe('analyseFlow', () => {
  it('catches the Nokia/China Telecom case unaided, critical because cleartext', () => {
    const payload = JSON.stringify({ IMEI1: IMEI, MEID: IMEI.slice(0, 14), SIM1ICCID: luhn('898600123456789012'), SIM1LTEIMSI: '460031234567890', SIM1CELLID: '158327555', MACID: 'D4:6A:6A:12:34:56' });
    const body = Buffer.from(payload).toString('base64').replace(/(.{76})/g, '$1\n');
    const geo = createGeoLookup({ countryV4: () => '3395354624,3395354879,CN\n', asnV4: () => '3395354624,3395354879,4134,Chinanet\n' });
    const result = analyseFlow(flow('http://zzhc.vnet.cn:9999/', body, [['Content-Type', 'application/encrypted-json']], { serverIp: '202.97.0.10' }), { geo });
    expect(result.findings.map((f) => f.type).sort()).toEqual(['cell_id', 'iccid', 'imei', 'imsi', 'mac', 'meid']);
    expect(result.severity).toBe('critical');
    expect(result.destination).toMatchObject({ host: 'zzhc.vnet.cn', country: 'CN', asn: 4134, cleartext: true });
    const imei = result.findings.find((f) => f.type === 'imei')!;
    expect(imei).toMatchObject({ value: IMEI, path: 'body>base64>json:$.IMEI1', chain: ['base64', 'json'], detector: 'key', severity: 'critical', key: 'IMEI1' });
    expect(imei.explanation).toBe(`IMEI 864…${IMEI.slice(-3)} (Luhn-valid) in JSON key IMEI1, inside a base64 body.`);
  });

  it('rates the same leak over TLS one step lower', () => {
    const body = JSON.stringify({ imei: IMEI });
    const clear = analyseFlow(flow('http://a.example/', body, [['Content-Type', 'application/json']]));
    const tls = analyseFlow(flow('https://a.example/', body, [['Content-Type', 'application/json']]));
    expect([clear.severity, tls.severity]).toEqual(['critical', 'high']);
  });

  it('reports a value once per place, in every place it was sent', () => {
    const result = analyseFlow(flow(`http://a.example/r?imei=${IMEI}&again=${IMEI}`, JSON.stringify({ imei: IMEI, list: [IMEI] }), [['Content-Type', 'application/json']]));
    const places = result.findings.map((f) => f.path).sort();
    expect(new Set(places).size).toBe(places.length);
    expect(places.length).toBe(4);
    expect(result.findings.every((f) => f.type === 'imei' && f.value === IMEI)).toBe(true);
  });

  it('keeps the profile reading when profile and key both see a value', () => {
    const result = analyseFlow(flow(`http://a.example/r?imei=${IMEI}`), { profile: compileProfile({ imei: IMEI }) });
    expect(result.findings.map((f) => [f.type, f.detector, f.confidence])).toEqual([['imei', 'profile', 1]]);
  });

  it('says "info" and finds nothing in an ordinary request', () => {
    const result = analyseFlow(flow('https://news.example/article?id=123', '', [['User-Agent', 'okhttp/4.11.0']]));
    expect(result.findings).toEqual([]);
    expect(result.severity).toBe('info');
  });

  it('passes decode limits through and records what was cut', () => {
    const bomb = gzipSync(Buffer.alloc(50 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(100 * 1024);
    const result = analyseFlow(flow('http://a.example/', bomb, [['Content-Encoding', 'gzip'], ['Content-Type', 'application/json']]), { limits: { maxRatio: 10 } });
    expect(result.limitsHit.length).toBeGreaterThan(0);
    expect(result.notes.join(' ')).not.toBe('');
    expect(result.findings).toEqual([]);
  });

  it('finds nothing past the depth limit, and notes it', () => {
    let value = JSON.stringify({ imei: IMEI });
    for (let i = 0; i < 6; i++) value = Buffer.from(value).toString('base64');
    const deep = analyseFlow(flow('http://a.example/', value, [['Content-Type', 'text/plain']]), { limits: { maxDepth: 3 } });
    const shallow = analyseFlow(flow('http://a.example/', value, [['Content-Type', 'text/plain']]));
    expect(shallow.findings.map((f) => f.value)).toEqual([IMEI]);
    expect(deep.findings).toEqual([]);
    expect(deep.limitsHit).toContain('maxDepth');
  });
});

describe('purity', () => {
  it('imports nothing that touches files, sockets, SQLite or WebSockets', () => {
    const root = join(__dirname, '..', '..', '..', 'proxy', 'analyse');
    // tldts: the public suffix list as data and pure lookups.
    const allowed = /^(\.{1,2}\/|node:(crypto|zlib|buffer)$|libphonenumber-js|tldts$)/;
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (entry.name.endsWith('.ts')) {
          const text = readFileSync(path, 'utf8');
          for (const m of text.matchAll(/(?:from\s+|require\()\s*'([^']+)'/g)) if (!allowed.test(m[1]!)) offenders.push(`${path}: ${m[1]}`);
        }
      }
    };
    walk(root);
    expect(offenders).toEqual([]);
  });
});

const CONTENT_TYPES = ['application/json', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'text/xml', 'application/x-protobuf', 'application/octet-stream', 'text/plain', 'application/encrypted-json', undefined];
const ENCODINGS = ['gzip', 'deflate', 'br', undefined];

function checkResult(result: ReturnType<typeof analyseFlow>): void {
  expect(SEVERITIES).toContain(result.severity);
  for (const f of result.findings) {
    expect(IDENTIFIER_TYPES).toContain(f.type);
    expect(f.confidence).toBeGreaterThan(0);
    expect(f.confidence).toBeLessThanOrEqual(1);
    expect(typeof f.explanation).toBe('string');
  }
}

describe('hostile input never throws', () => {
  const corpusDir = join(__dirname, '..', '..', 'fixtures', 'corpus');
  const corpus = readdirSync(corpusDir).filter((f) => f.endsWith('.json')).map((f) => JSON.parse(readFileSync(join(corpusDir, f), 'utf8')) as CorpusFixture);
  const bodies = corpus.map((f) => (f.request.bodyBase64 !== undefined ? Buffer.from(f.request.bodyBase64, 'base64') : Buffer.from(f.request.body ?? '')));

  it('random bytes under every content type and encoding', () => {
    const rand = prng(1);
    const profile = compileProfile({ imei: IMEI });
    for (let i = 0; i < 300; i++) {
      const bytes = Buffer.from(Array.from({ length: Math.floor(rand() * 2048) }, () => Math.floor(rand() * 256)));
      const headers: Header[] = [];
      const ct = CONTENT_TYPES[i % CONTENT_TYPES.length];
      const ce = ENCODINGS[Math.floor(rand() * ENCODINGS.length)];
      if (ct) headers.push(['Content-Type', ct]);
      if (ce) headers.push(['Content-Encoding', ce]);
      checkResult(analyseFlow(flow('http://fuzz.example/p?q=%ZZ%%&a=%E0%A4%A', bytes, headers), { profile }));
    }
  });

  it('every corpus body truncated and with flipped bytes', () => {
    const rand = prng(2);
    corpus.forEach((fixture, n) => {
      const body = bodies[n]!;
      for (let k = 0; k < 8; k++) {
        const cut = body.subarray(0, Math.floor(rand() * (body.length + 1)));
        const mutated = Buffer.from(body);
        for (let j = 0; j < 4 && mutated.length; j++) mutated[Math.floor(rand() * mutated.length)] = Math.floor(rand() * 256);
        for (const b of [cut, mutated]) checkResult(analyseFlow(flow(fixture.request.url, b, fixture.request.headers)));
      }
    });
  });

  it('hostile text in keys and values (huge, control characters, deep nesting)', () => {
    const nasty = [
      JSON.stringify({ ['\u0000imei\u202e']: '3'.repeat(100000), lat: '1e309', lon: 'NaN', mac: '\u0000'.repeat(17), phone: '+'.repeat(40) }),
      '['.repeat(50000),
      JSON.stringify({ a: 'geo:'.repeat(20000), b: 'tel:'.repeat(20000), c: '@'.repeat(50000), d: `${'ab:'.repeat(30000)}` }),
      `imei=${'9'.repeat(1_000_000)}`,
    ];
    for (const body of nasty) for (const ct of CONTENT_TYPES) checkResult(analyseFlow(flow('http://x.example/', body, ct ? [['Content-Type', ct]] : [])));
  });
});
