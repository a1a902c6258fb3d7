/**
 * The flow mix of the detection benchmark (scripts/bench-detect.ts), seeded and realistic: mostly
 * small analytics/ad/check-in payloads in every encoding, plus 1 MB bodies (JSON arrays, gzip text,
 * binary images). In its own module so that profiling and comparison scripts run the same flows.
 */
import * as zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import type { Flow, Header } from '../proxy/flow';
import { luhnComplete as luhn, prng, randomDigits, randomHex, randomPick, randomUuid } from './fixtures/random';

export const SMALL_LIMIT = 16 * 1024;

const rand = prng(20190301);
const pick = <T>(xs: T[]): T => randomPick(rand, xs);
const hex = (n: number) => randomHex(rand, n);
const uuid = () => randomUuid(rand);
const digits = (n: number) => randomDigits(rand, n);

export const PHONE = { imei: luhn('35403109012345'), iccid: luhn('8947080012345678901'), imsi: '242016712345678', mac: 'd4:6a:6a:12:34:56', gaid: '5b0cbd2e-6e43-4d6e-9c9a-2f6b1f4e8a17', phone: '+4791234567' };

function flow(url: string, headers: Header[], body: Buffer | string = ''): Flow {
  const u = new URL(url);
  const bytes = Buffer.from(body);
  return {
    kind: 'http', source: 'proxy', startedAt: 0, clientIp: '192.168.1.20', method: bytes.length ? 'POST' : 'GET', url,
    scheme: u.protocol === 'https:' ? 'https' : 'http', host: u.hostname, port: Number(u.port) || (u.protocol === 'https:' ? 443 : 80),
    tls: u.protocol === 'https:', requestHeaders: headers, requestBody: { bytes, size: bytes.length, truncated: false },
    responseHeaders: [], responseBody: { bytes: Buffer.alloc(0), size: 0, truncated: false }, timings: {}, tags: [],
  };
}

const UA: Header = ['User-Agent', 'Dalvik/2.1.0 (Linux; U; Android 9; TA-1046 Build/PPR1.180610.011)'];

function analyticsEvent(leak: boolean) {
  return {
    event: pick(['app_open', 'screen_view', 'purchase', 'level_up', 'session_start']),
    ts: 1551434400000 + Math.floor(rand() * 1e7),
    event_id: uuid(),
    properties: { screen: pick(['home', 'settings', 'shop']), value: Math.round(rand() * 10000) / 100, currency: 'NOK', session: hex(16) },
    device: { model: 'TA-1046', os: 'Android', os_version: '9', locale: 'nb_NO', carrier: 'Telenor', ...(leak ? { adid: PHONE.gaid, android_id: '9774d56d682e549c' } : {}) },
  };
}

/** One generator per kind of request; `kind` names it in the slowest-flows breakdown. */
export const generators: Array<() => Flow> = [
  () => flow('https://api2.amplitude.example/batch', [UA, ['Content-Type', 'application/json']], JSON.stringify({ api_key: hex(32), events: Array.from({ length: 1 + Math.floor(rand() * 25) }, () => analyticsEvent(rand() < 0.5)) })),
  () => flow('https://collector.example/i', [UA, ['Content-Type', 'application/json'], ['Content-Encoding', 'gzip']], zlib.gzipSync(JSON.stringify({ batch: Array.from({ length: 5 + Math.floor(rand() * 40) }, () => analyticsEvent(rand() < 0.3)) }))),
  () => flow(`https://ads.example/openrtb?ifa=${PHONE.gaid}&bundle=com.example.game&w=320&h=50&ts=${Date.now()}&cb=${hex(12)}`, [UA, ['Cookie', `uid=${uuid()}; s=${hex(24)}`]]),
  () => flow('https://sdk.example/track', [UA, ['Content-Type', 'application/x-www-form-urlencoded']], `app=com.example&v=3.2.1&data=${encodeURIComponent(Buffer.from(JSON.stringify(analyticsEvent(true))).toString('base64'))}&sig=${hex(40)}`),
  () => flow('http://zzhc.vnet.cn:9999/', [UA, ['Content-Type', 'application/encrypted-json']], Buffer.from(JSON.stringify({ IMEI1: PHONE.imei, SIM1ICCID: PHONE.iccid, SIM1LTEIMSI: PHONE.imsi, SIM1CELLID: digits(8), MACID: PHONE.mac, REGDATE: '2019-02-14 10:12:03' })).toString('base64').replace(/(.{76})/g, '$1\n') + '\n'),
  () => {
    const str = (n: number, s: string) => { const b = Buffer.from(s); return Buffer.concat([Buffer.from([(n << 3) | 2, b.length]), b]); };
    const inner = Buffer.concat([str(1, PHONE.iccid), str(2, PHONE.mac), str(3, 'Telenor')]);
    return flow('https://android.clients.google.example/checkin', [UA, ['Content-Type', 'application/x-protobuffer'], ['Content-Encoding', 'gzip']], zlib.gzipSync(Buffer.concat([str(1, 'checkin'), Buffer.from([0x12, inner.length]), inner, Buffer.from([0x18, 0x96, 0x01])])));
  },
  () => flow(`https://cdn.example/assets/${hex(32)}.png?v=${digits(10)}`, [UA, ['Accept', 'image/*']]),
  () => flow('https://api.example/v2/update', [UA, ['Content-Type', 'application/json'], ['Authorization', `Bearer eyJhbGciOiJIUzI1NiJ9.${Buffer.from(JSON.stringify({ sub: uuid(), exp: 1700000000 })).toString('base64url')}.${hex(43)}`]], JSON.stringify({ request_id: uuid(), sha256: createHash('sha256').update(hex(8)).digest('hex'), build: 30201, order_id: luhn(digits(14)) })),
];

export function largeFlows(each: number): Flow[] {
  const out: Flow[] = [];
  for (let i = 0; i < each; i++) {
    const arr: unknown[] = [];
    while (JSON.stringify(arr).length < 1024 * 1024) arr.push(analyticsEvent(rand() < 0.1));
    out.push(flow('https://bulk.example/upload', [UA, ['Content-Type', 'application/json']], JSON.stringify(arr)));
    const lines: string[] = [];
    let size = 0;
    while (size < 4 * 1024 * 1024) {
      const l = `${new Date(1551434400000 + size).toISOString()} I/ActivityManager( ${digits(4)}): Start proc ${digits(5)}:com.example.${hex(6)}/u0a${digits(3)} for service\n`;
      lines.push(l);
      size += l.length;
    }
    const gz = zlib.gzipSync(lines.join(''));
    out.push(flow('https://logs.example/ingest', [UA, ['Content-Type', 'text/plain'], ['Content-Encoding', 'gzip']], gz.subarray(0, Math.min(gz.length, 1024 * 1024))));
    const img = Buffer.alloc(1024 * 1024);
    for (let j = 0; j < img.length; j++) img[j] = Math.floor(rand() * 256);
    img.set([0xff, 0xd8, 0xff, 0xe0], 0);
    out.push(flow('https://photos.example/upload', [UA, ['Content-Type', 'image/jpeg']], img));
  }
  return out;
}

/** Names of the generators, in order (what each kind of flow imitates). */
export const GENERATOR_KINDS = ['json batch', 'gzip json batch', 'openrtb query + cookie', 'form with base64 json', 'nokia base64 json', 'gzip protobuf checkin', 'asset GET', 'json with jwt'];

/** `count` small flows (bodies under SMALL_LIMIT), each tagged with its generator's index. */
export function smallFlows(count: number): Array<{ flow: Flow; kind: number }> {
  const out: Array<{ flow: Flow; kind: number }> = [];
  for (let i = 0; i < count; i++) {
    const kind = Math.floor(rand() * generators.length);
    const f = generators[kind]!();
    if (f.requestBody.bytes.length < SMALL_LIMIT) out.push({ flow: f, kind });
  }
  return out;
}
