/**
 * Property tests with a seeded PRNG (failures print their seed and reproduce): random bytes,
 * truncated payloads of every format and mutated payloads, through every decoder and through the
 * whole decode. Nothing may throw, and every limit holds.
 */
import * as zlib from 'node:zlib';
import { ALL_DECODERS, decodeBytes, decodeFlow, type DecodeLimits } from '../../../../proxy/analyse/decode';
import { DecodeContext } from '../../../../proxy/analyse/decode/context';
import { formBytesDecoder } from '../../../../proxy/analyse/decode/decoders/form';
import { resolveLimits } from '../../../../proxy/analyse/decode/limits';
import type { DecodeResult } from '../../../../proxy/analyse/types';
import { androidBase64, gzip, IDS, makeFlow, pb, prng, randomBytes } from './helpers';

const CONTENT_TYPES = [
  undefined, 'application/json', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=B0undary', 'text/xml',
  'application/x-protobuf', 'application/grpc', 'application/gzip', 'application/octet-stream', 'text/plain', 'application/encrypted-json',
];
const ENCODINGS = [undefined, 'gzip', 'deflate', 'br', 'gzip, br', 'compress'];

const SMALL_LIMITS: Partial<DecodeLimits> = { maxDepth: 5, maxDecodedBytes: 256 * 1024, maxFields: 300, maxFieldLength: 512 };

function assertWithinLimits(r: DecodeResult, limits: Partial<DecodeLimits>, seed: string): void {
  const l = resolveLimits(limits);
  const where = `(case ${seed})`;
  if (r.notes.some((n) => n.startsWith('decoding stopped early'))) throw new Error(`decode threw ${where}: ${r.notes.join('; ')}`);
  if (r.fields.length > l.maxFields) throw new Error(`too many fields ${where}`);
  if ((r.decodedBytes ?? 0) > l.maxDecodedBytes) throw new Error(`decoded ${r.decodedBytes} bytes ${where}`);
  for (const f of r.fields) {
    if (f.value.length > l.maxFieldLength) throw new Error(`field too long ${where}`);
    if (f.chain.length > l.maxDepth + 2) throw new Error(`chain ${f.chain.join('>')} deeper than the limit ${where}`);
    if (typeof f.path !== 'string' || !Array.isArray(f.keyPath) || typeof f.group !== 'string') throw new Error(`malformed field ${where}`);
  }
}

const imeiJson = JSON.stringify({ device: { imei: IDS.imei, cells: [{ mcc: 242, mnc: 1, cid: 123 }] }, email: 'a@b.c' });
const FIXTURES: Array<[string, Buffer, string | undefined, string | undefined]> = [
  ['json', Buffer.from(imeiJson), 'application/json', undefined],
  ['form', Buffer.from(`a=1&d=${encodeURIComponent(imeiJson)}&b=%E2%82%AC`), 'application/x-www-form-urlencoded', undefined],
  ['multipart', Buffer.from(`--B0undary\r\nContent-Disposition: form-data; name="m"\r\nContent-Type: application/json\r\n\r\n${imeiJson}\r\n--B0undary--\r\n`), 'multipart/form-data; boundary=B0undary', undefined],
  ['xml', Buffer.from(`<?xml version="1.0"?><!DOCTYPE r><r a="1"><imei>${IDS.imei}</imei><![CDATA[x]]><!-- c --><s name="k">&amp;&#x41;</s></r>`), 'text/xml', undefined],
  ['protobuf', pb.message(pb.field(1, 'x'), pb.field(2, pb.message(pb.field(1, IDS.imei), pb.field(2, 1234567), pb.double(3, 59.9)))), 'application/x-protobuf', undefined],
  ['gzip', gzip(imeiJson), 'application/json', 'gzip'],
  ['br', zlib.brotliCompressSync(imeiJson), 'application/json', 'br'],
  ['deflate-sniffed', zlib.deflateSync(imeiJson), undefined, undefined],
  ['base64-android', Buffer.from(androidBase64(imeiJson)), 'application/encrypted-json', undefined],
  ['hex', Buffer.from(Buffer.from(imeiJson).toString('hex')), 'text/plain', undefined],
  ['percent', Buffer.from(encodeURIComponent(encodeURIComponent(imeiJson))), undefined, undefined],
  ['jwt', Buffer.from(`eyJhbGciOiJIUzI1NiJ9.${Buffer.from(imeiJson).toString('base64url')}.c2ln`), undefined, undefined],
];

describe('every decoder on its own never throws', () => {
  test('2000 random strings and byte buffers per decoder', () => {
    const rand = prng(1);
    const alphabet = 'eyJ{}[]<>/="&%+-_.:;,0123456789abcdefABCDEF \n\r\tx\u00e9\u20ac';
    for (let i = 0; i < 2000; i++) {
      const len = Math.floor(rand() * 300);
      const bytes = randomBytes(rand, len);
      let text = '';
      for (let j = 0; j < len; j++) text += alphabet[Math.floor(rand() * alphabet.length)];
      for (const d of [...ALL_DECODERS, formBytesDecoder]) {
        for (const input of [text, bytes, bytes.toString('latin1')]) {
          for (const declared of [false, true]) {
            const ctx = new DecodeContext(resolveLimits(SMALL_LIMITS));
            try {
              const out = d.decode(input, ctx, { declared, contentType: 'multipart/form-data; boundary=x' });
              /* A stream does its reading as it is drained. */
              if (out?.kind === 'stream') while (out.stream.next() !== null);
            } catch (err) {
              throw new Error(`decoder ${d.type} threw on case 1/${i} (${JSON.stringify(typeof input === 'string' ? input : input.toString('hex'))}): ${err}`);
            }
          }
        }
      }
    }
  });
});

describe('whole decode on hostile bodies', () => {
  test('3000 random bodies under every Content-Type and Content-Encoding', () => {
    const rand = prng(2);
    for (let i = 0; i < 3000; i++) {
      const bytes = randomBytes(rand, Math.floor(rand() * 2048));
      const ct = CONTENT_TYPES[i % CONTENT_TYPES.length];
      const ce = ENCODINGS[Math.floor(rand() * ENCODINGS.length)];
      assertWithinLimits(decodeBytes(bytes, ct, SMALL_LIMITS, ce), SMALL_LIMITS, `2/${i}`);
    }
  });

  test('every fixture truncated at 60 points, under its own and every other Content-Type', () => {
    let n = 0;
    for (const [name, bytes, ct, ce] of FIXTURES) {
      for (let k = 0; k <= 60; k++) {
        const cut = bytes.subarray(0, Math.floor((bytes.length * k) / 60));
        for (const type of [ct, ...CONTENT_TYPES]) {
          assertWithinLimits(decodeBytes(cut, type, SMALL_LIMITS, ce), SMALL_LIMITS, `truncate ${name}@${k} ${type}`);
          n++;
        }
      }
    }
    expect(n).toBeGreaterThan(8000);
  });

  test('4000 mutations (flipped, inserted, deleted bytes) of the fixtures', () => {
    const rand = prng(3);
    for (let i = 0; i < 4000; i++) {
      const [name, bytes, ct, ce] = FIXTURES[i % FIXTURES.length];
      const m = Buffer.from(bytes);
      const edits = 1 + Math.floor(rand() * 4);
      let out = m;
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(rand() * out.length);
        const op = Math.floor(rand() * 3);
        if (op === 0) out[at] = Math.floor(rand() * 256);
        else if (op === 1) out = Buffer.concat([out.subarray(0, at), Buffer.from([Math.floor(rand() * 256)]), out.subarray(at)]);
        else out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1)]);
      }
      assertWithinLimits(decodeBytes(out, ct, SMALL_LIMITS, ce), SMALL_LIMITS, `3/${i} ${name}`);
    }
  });

  test('1000 hostile requests: random URLs, headers and cookies', () => {
    const rand = prng(4);
    const pieces = ['%', '%25', '%7B', '?', '&', '=', '/', '//', 'http://', 'eyJ', '==', ';', '"', '\u0000', 'a', '1', '+', '#', '\u00ff'];
    for (let i = 0; i < 1000; i++) {
      let junk = '';
      for (let j = 0; j < 40; j++) junk += pieces[Math.floor(rand() * pieces.length)];
      const flow = makeFlow({ url: 'http://fuzz.test/' });
      flow.url = `http://fuzz.test/${junk}?${junk}`;
      flow.requestHeaders = [['Cookie', junk], ['Authorization', `Bearer ${junk}`], ['X-J', junk]];
      flow.requestBody = { bytes: randomBytes(rand, 64), size: 64, truncated: false };
      assertWithinLimits(decodeFlow(flow, SMALL_LIMITS), SMALL_LIMITS, `4/${i}`);
    }
  });
});

describe('regex-hostile text (catastrophic backtracking would hang these)', () => {
  const N = 200_000;
  const attacks: Record<string, string> = {
    'a nested-URL lookalike': 'http://' + 'a'.repeat(N) + ' ',
    'ampersand runs': 'a=1' + '&'.repeat(N) + ' ',
    'equals runs': 'a' + '='.repeat(N) + ' ',
    'semicolon pair lists': 'a=1' + ';a=1'.repeat(N / 4) + ';;',
    'semicolons and spaces': 'a=' + '; '.repeat(N) + 'x',
    'long digit runs in JSON': '[' + '1234567890123456,'.repeat(N / 17) + 'x',
    'a JWT lookalike': 'eyJ' + 'a'.repeat(N) + '.' + 'b'.repeat(N) + '.!',
    'percent signs': '%'.repeat(N) + '%2',
    'wrapped base64 with a bad tail': ('QUFB'.repeat(19) + '\n').repeat(N / 77) + '!',
    'hex with a bad tail': 'ab'.repeat(N) + 'g',
    'XML attributes': '<a ' + 'b="1" '.repeat(N / 6) + '>',
    'unclosed XML attributes': '<a ' + 'b='.repeat(N / 2) + '>',
    'opening tags': '<a>'.repeat(N / 3),
    'an XML tag with one long attribute name': '<a ' + 'b'.repeat(N) + '>x</a>',
    'a pair list with trailing spaces': 'a=1;b=' + ' '.repeat(60_000) + ';;',
  };
  test.each(Object.entries(attacks))('%s', (_name, text) => {
    for (const ct of [undefined, 'application/x-www-form-urlencoded', 'text/xml', 'application/json']) {
      assertWithinLimits(decodeBytes(Buffer.from(text), ct, { timeBudgetMs: 60_000 }), { timeBudgetMs: 60_000 }, `${_name} ${ct}`);
    }
    const flow = makeFlow({ url: 'http://h.test/' });
    flow.url = `http://h.test/${text.slice(0, 50_000)}?q=${text.slice(0, 50_000)}`;
    flow.requestHeaders = [['X-A', text], ['Cookie', text]];
    assertWithinLimits(decodeFlow(flow, { timeBudgetMs: 60_000 }), { timeBudgetMs: 60_000 }, `${_name} in a request`);
  });
});
