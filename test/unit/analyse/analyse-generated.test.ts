/**
 * Generated traffic beyond the hand-written corpus: seeded random telemetry full of numbers, hashes,
 * UUIDs and decimals under everyday keys (must raise next to no alarms), and random leaks — valid
 * identifiers under the key names SDKs use, wrapped in random encodings — that must all be found.
 * Precision and recall are printed; the thresholds are what a user can live with.
 */
import { gzipSync } from 'node:zlib';
import { analyseFlow } from '../../../proxy/analyse';
import type { Flow, Header } from '../../../proxy/flow';
import type { IdentifierType } from '../../../proxy/analyse/types';
import { prng, randomHex, randomPick, randomUuid } from '../../../scripts/fixtures/random';
import { luhn } from './detect/fields';

const rand = prng(2024);
const pick = <T>(xs: readonly T[]): T => randomPick(rand, xs);
const digits = (n: number): string => Array.from({ length: n }, (_, i) => String(Math.floor(rand() * 10) || (i === 0 ? 1 : 0))).join('');
const hex = (n: number): string => randomHex(rand, n);
const uuid = (): string => randomUuid(rand);

const BENIGN_KEYS = ['id', 'uid', 'user_id', 'item_id', 'count', 'value', 'data', 'ts', 'time', 'price', 'score', 'seq', 'version', 'token', 'session', 'hash', 'name', 'title', 'lang', 'width', 'height', 'order_id', 'request_id', 'duration', 'amount', 'campaign', 'slot', 'event', 'nonce', 'etag', 'x', 'y', 'level', 'build', 'page', 'offset', 'crc', 'ref'];

function benignValue(): string | number {
  switch (Math.floor(rand() * 10)) {
    case 0: return Number(digits(1 + Math.floor(rand() * 15)));
    case 1: return digits(10 + Math.floor(rand() * 11));
    case 2: return 1700000000000 + Math.floor(rand() * 1e9);
    case 3: return uuid();
    case 4: return hex(pick([16, 32, 40, 64]));
    case 5: return Number((rand() * 180 - 90).toFixed(4));
    case 6: return `${Math.floor(rand() * 20)}.${Math.floor(rand() * 20)}.${Math.floor(rand() * 999)}`;
    case 7: return Buffer.from(hex(24), 'hex').toString('base64');
    case 8: return pick(['ok', 'home', 'nb-NO', 'screen_view', 'true', 'android', 'Pixel 7']);
    default: return Number((rand() * 1000).toFixed(2));
  }
}

function benignObject(n: number): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) o[`${pick(BENIGN_KEYS)}${rand() < 0.3 ? `_${i}` : ''}`] = benignValue();
  return o;
}

const LEAKS: Array<{ type: IdentifierType; keys: string[]; make: () => { sent: string; normalized: string } }> = [
  { type: 'imei', keys: ['imei', 'IMEI1', 'device_imei', 'imei2', 'deviceImei'], make: () => { const v = luhn(pick(['35', '86', '01', '99']) + digits(12)); return { sent: v, normalized: v }; } },
  { type: 'iccid', keys: ['iccid', 'SIM1ICCID', 'sim_serial', 'simSerialNumber'], make: () => { const v = luhn(`89${pick(['47', '86', '44', '01'])}${digits(14)}`); return { sent: v, normalized: v }; } },
  { type: 'imsi', keys: ['imsi', 'SIM1LTEIMSI', 'subscriber_id', 'subscriberId'], make: () => { const v = pick(['24201', '46011', '23410', '310260', '26201']); const full = v + digits(15 - v.length); return { sent: full, normalized: full }; } },
  { type: 'mac', keys: ['mac', 'wifi_mac', 'MACID', 'macAddress'], make: () => { const v = `d4:6a:${hex(2)}:${hex(2)}:${hex(2)}:${hex(2)}`; return { sent: rand() < 0.5 ? v.toUpperCase() : v.replace(/:/g, '-'), normalized: v }; } },
  { type: 'ad_id', keys: ['gaid', 'gps_adid', 'advertising_id', 'idfa', 'ifa', 'adid'], make: () => { const v = uuid(); return { sent: rand() < 0.5 ? v.toUpperCase() : v, normalized: v }; } },
  { type: 'android_id', keys: ['android_id', 'androidId', 'ssaid'], make: () => { const v = `f${hex(15)}`; return { sent: v, normalized: v }; } },
  { type: 'email', keys: ['email', 'user_email', 'login'], make: () => { const v = `user${digits(4)}@mail${digits(2)}.example.com`; return { sent: v, normalized: v }; } },
  // International forms only: a number without + or 00 is read in the flow's own country (from an IMSI,
  // a country or locale key), so "4798449319" beside a US IMSI is, rightly, the US number +14798449319.
  { type: 'phone', keys: ['msisdn', 'phone', 'mobile', 'phoneNumber'], make: () => { const v = `+479${digits(7)}`; return { sent: rand() < 0.5 ? v : `00${v.slice(1)}`, normalized: v }; } },
  { type: 'serial', keys: ['serial', 'serialno', 'ro.serialno', 'device_serial'], make: () => { const v = `R5${digits(2)}M${hex(6).toUpperCase()}`; return { sent: v, normalized: v }; } },
];

function flowOf(url: string, body: Buffer, headers: Header[]): Flow {
  const u = new URL(url);
  return {
    kind: 'http', source: 'proxy', startedAt: 0, clientIp: '192.168.1.23', method: 'POST', url, scheme: 'https', host: u.hostname, port: 443, tls: true,
    requestHeaders: headers, requestBody: { bytes: body, size: body.length, truncated: false }, responseHeaders: [],
    responseBody: { bytes: Buffer.alloc(0), size: 0, truncated: false }, timings: {}, tags: [],
  };
}

const pairs = (d: Record<string, unknown>): Array<[string, string]> => Object.entries(d).map(([k, v]) => [k, String(v)]);

type Wrap = (doc: Record<string, unknown>) => { url: string; body: Buffer; headers: Header[] };
const WRAPS: Array<[string, Wrap]> = [
  ['json', (d) => ({ url: 'https://t.example/e', body: Buffer.from(JSON.stringify(d)), headers: [['Content-Type', 'application/json']] })],
  ['gzip json', (d) => ({ url: 'https://t.example/e', body: gzipSync(JSON.stringify(d)), headers: [['Content-Type', 'application/json'], ['Content-Encoding', 'gzip']] })],
  ['base64 json', (d) => ({ url: 'https://t.example/e', body: Buffer.from(Buffer.from(JSON.stringify(d)).toString('base64')), headers: [['Content-Type', 'text/plain']] })],
  ['form', (d) => ({ url: 'https://t.example/e', body: Buffer.from(new URLSearchParams(pairs(d)).toString()), headers: [['Content-Type', 'application/x-www-form-urlencoded']] })],
  ['query', (d) => ({ url: `https://t.example/e?${new URLSearchParams(pairs(d)).toString()}`, body: Buffer.alloc(0), headers: [] })],
  ['json in form value', (d) => ({ url: 'https://t.example/e', body: Buffer.from(new URLSearchParams({ payload: JSON.stringify(d), v: '2' }).toString()), headers: [['Content-Type', 'application/x-www-form-urlencoded']] })],
];

describe('generated traffic', () => {
  it('random benign telemetry raises (almost) no alarms', () => {
    let flows = 0;
    let alarmed = 0;
    const falseFindings: string[] = [];
    for (let i = 0; i < 400; i++) {
      const [, wrap] = pick(WRAPS);
      const { url, body, headers } = wrap(benignObject(5 + Math.floor(rand() * 25)));
      const result = analyseFlow(flowOf(url, body, headers));
      flows++;
      if (result.findings.length) {
        alarmed++;
        falseFindings.push(...result.findings.map((f) => `${f.type} ${f.value} (${f.detector}) at ${f.path}`));
      }
    }
    process.stdout.write(`benign generated: ${alarmed}/${flows} flows with a finding${falseFindings.length ? `: ${falseFindings.slice(0, 5).join('; ')}` : ''}\n`);
    expect(alarmed / flows).toBeLessThan(0.02);
  });

  it('random leaks under SDK key names, in random encodings, are all found', () => {
    let injected = 0;
    let found = 0;
    let extra = 0;
    const missed: string[] = [];
    for (let i = 0; i < 300; i++) {
      const doc = benignObject(3 + Math.floor(rand() * 10));
      const wanted = new Set<string>();
      for (let j = 0; j < 1 + Math.floor(rand() * 3); j++) {
        const leak = pick(LEAKS);
        const key = pick(leak.keys);
        if (key in doc) continue;
        const { sent, normalized } = leak.make();
        doc[key] = sent;
        wanted.add(`${leak.type} ${normalized}`);
      }
      const [wrapName, wrap] = pick(WRAPS);
      const { url, body, headers } = wrap(doc);
      const got = new Set(analyseFlow(flowOf(url, body, headers)).findings.map((f) => `${f.type} ${f.value}`));
      for (const w of wanted) {
        injected++;
        if (got.has(w)) found++;
        else missed.push(`${w} via ${wrapName} (got ${[...got].join(', ')}; doc ${JSON.stringify(doc)})`);
      }
      for (const g of got) if (!wanted.has(g)) extra++;
    }
    const recall = found / injected;
    const precision = found / (found + extra);
    process.stdout.write(`leaks generated: recall ${recall.toFixed(3)} (${found}/${injected}), precision ${precision.toFixed(3)} (${extra} extra)${missed.length ? `; missed: ${missed.slice(0, 5).join('; ')}` : ''}\n`);
    expect(missed).toEqual([]);
    expect(precision).toBeGreaterThan(0.97);
  });
});
