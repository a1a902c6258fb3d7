/** Builders shared by the decode tests: flows as the proxy records them, and field lookups. */
import * as zlib from 'node:zlib';
import type { Flow, Header } from '../../../../proxy/flow';
import type { DecodedField, DecodeResult } from '../../../../proxy/analyse/types';
import { decodeBytes, decodeFlow, type DecodeLimits } from '../../../../proxy/analyse/decode';
import { luhnComplete, prng } from '../../../../scripts/fixtures/random';
import { varint } from '../../../../scripts/fixtures/values';

export { luhnComplete, prng };

export function makeFlow(opts: { url?: string; method?: string; headers?: Header[]; body?: Buffer | string }): Flow {
  const url = opts.url ?? 'http://example.test/';
  const u = new URL(url);
  const bytes = typeof opts.body === 'string' ? Buffer.from(opts.body) : opts.body ?? Buffer.alloc(0);
  return {
    kind: 'http',
    source: 'proxy',
    startedAt: 0,
    clientIp: '192.168.1.20',
    method: opts.method ?? (bytes.length ? 'POST' : 'GET'),
    url,
    scheme: u.protocol === 'https:' ? 'https' : 'http',
    host: u.hostname,
    port: Number(u.port) || (u.protocol === 'https:' ? 443 : 80),
    tls: u.protocol === 'https:',
    requestHeaders: opts.headers ?? [],
    requestBody: { bytes, size: bytes.length, truncated: false },
    responseHeaders: [],
    responseBody: { bytes: Buffer.alloc(0), size: 0, truncated: false },
    timings: {},
    tags: [],
  };
}

export function fieldAt(result: DecodeResult, path: string): DecodedField | undefined {
  return result.fields.find((f) => f.path === path);
}

export function valuesOf(result: DecodeResult): string[] {
  return result.fields.map((f) => f.value);
}

/** Android's Base64.DEFAULT: standard alphabet, padded, a newline every 76 characters and at the end. */
export function androidBase64(data: Buffer | string): string {
  const b64 = Buffer.from(data).toString('base64');
  return b64.replace(/(.{76})/g, '$1\n').replace(/\n?$/, '\n');
}

/** Synthetic identifiers (valid shapes, not anyone's phone). */
export const IDS = {
  imei: luhnComplete('35403109012345'),
  imei2: luhnComplete('35403109012346'),
  meid: 'A0000049A1B2C3',
  iccid: luhnComplete('8947080012345678901'),
  imsi: '242016712345678',
  mac: 'd4:6a:6a:12:34:56',
  gaid: '38400000-8cf0-11bd-b23e-10b96e4ef00d',
  androidId: '9774d56d682e549c',
  phone: '+4791234567',
};

export function randomBytes(rand: () => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

/** Minimal protobuf writer for fixtures (the decoder under test is the reader). */
export const pb = {
  varint(n: number | bigint): Buffer {
    return varint(BigInt(n));
  },
  field(num: number, value: number | bigint | string | Buffer): Buffer {
    if (typeof value === 'number' || typeof value === 'bigint') return Buffer.concat([pb.varint((num << 3) | 0), pb.varint(value)]);
    const bytes = Buffer.from(value);
    return Buffer.concat([pb.varint((num << 3) | 2), pb.varint(bytes.length), bytes]);
  },
  double(num: number, value: number): Buffer {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(value);
    return Buffer.concat([pb.varint((num << 3) | 1), b]);
  },
  message(...fields: Buffer[]): Buffer {
    return Buffer.concat(fields);
  },
};

export const gzip = (data: Buffer | string) => zlib.gzipSync(Buffer.from(data));

/**
 * Functional tests are about what is found, not how fast: a generous time budget keeps a cold,
 * loaded CI machine from cutting a decode short. The time limit has its own tests.
 */
export const RELAXED: Partial<DecodeLimits> = { timeBudgetMs: 60_000 };
export const decodeFlowRelaxed = (flow: Flow, limits?: Partial<DecodeLimits>) => decodeFlow(flow, { ...RELAXED, ...limits });
export const decodeBytesRelaxed = (bytes: Buffer, contentType: string | undefined, limits?: Partial<DecodeLimits>, contentEncoding?: string) =>
  decodeBytes(bytes, contentType, { ...RELAXED, ...limits }, contentEncoding);
