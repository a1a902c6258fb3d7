/** Table-driven tests: one row per decoder and encoding, asserting the fields a detector will see. */
import * as zlib from 'node:zlib';
import { ALL_DECODERS, explainDecoder } from '../../../../proxy/analyse/decode';
import { decodeBytesRelaxed as decodeBytes, decodeFlowRelaxed as decodeFlow } from './helpers';
import type { DecodeResult } from '../../../../proxy/analyse/types';
import { androidBase64, fieldAt, gzip, IDS, makeFlow, pb } from './helpers';

interface Expect {
  path: string;
  value: string;
  chain?: string[];
  key?: string | null;
  keyPath?: string[];
  group?: string;
}

interface Row {
  name: string;
  run: () => DecodeResult;
  expect: Expect[];
}

const imeiJson = JSON.stringify({ imei: IDS.imei });
const body = (b: Buffer | string, ct?: string, ce?: string) => () => decodeBytes(Buffer.from(b), ct, undefined, ce);

function multipartBody(boundary: string): Buffer {
  const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(200, 7)]);
  return Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nTA-1046\r\n`),
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="meta"\r\nContent-Type: application/json\r\n\r\n${imeiJson}\r\n`),
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="log"; filename="log.gz"\r\nContent-Type: application/gzip\r\n\r\n`),
    gzip(`serial=${'R58M12ABCDE'}&iccid=${IDS.iccid}`),
    Buffer.from(`\r\n--${boundary}\r\nContent-Disposition: form-data; name="avatar"; filename="me.png"\r\nContent-Type: image/png\r\n\r\n`),
    png,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
}

const rows: Row[] = [
  {
    name: 'JSON by Content-Type, nested keys and group',
    run: body(JSON.stringify({ device: { imei: IDS.imei, model: 'Nokia 7 plus' }, loc: { lat: 59.91, lon: 10.75 } }), 'application/json; charset=utf-8'),
    expect: [
      { path: 'body>json:$.device.imei', value: IDS.imei, chain: ['json'], key: 'imei', keyPath: ['device', 'imei'], group: 'body>json:$.device' },
      { path: 'body>json:$.loc.lat', value: '59.91', group: 'body>json:$.loc' },
      { path: 'body>json:$.loc.lon', value: '10.75', group: 'body>json:$.loc' },
    ],
  },
  {
    name: 'JSON integer longer than a double keeps every digit (ICCID sent as a number)',
    run: body(`{"iccid": ${IDS.iccid}, "n": 12}`, 'application/json'),
    expect: [{ path: 'body>json:$.iccid', value: IDS.iccid }],
  },
  {
    name: 'JSON arrays and odd keys',
    run: body(JSON.stringify({ cells: [{ mcc: 242, mnc: 1, lac: 1234, cid: 56789 }], 'x-id': 'a', 'with space': 'b' }), 'application/json'),
    expect: [
      { path: 'body>json:$.cells[0].cid', value: '56789', key: 'cid', keyPath: ['cells', 'cid'], group: 'body>json:$.cells[0]' },
      { path: 'body>json:$.x-id', value: 'a' },
      { path: 'body>json:$["with space"]', value: 'b' },
    ],
  },
  {
    name: 'JSON inside a JSON string',
    run: body(JSON.stringify({ payload: imeiJson }), 'application/json'),
    expect: [{ path: 'body>json:$.payload>json:$.imei', value: IDS.imei, chain: ['json', 'json'], keyPath: ['payload', 'imei'] }],
  },
  {
    name: 'form body with JSON inside a value',
    run: body(`app=com.example&deviceinfo=${encodeURIComponent(imeiJson)}&note=two+words`, 'application/x-www-form-urlencoded'),
    expect: [
      { path: 'body>form:deviceinfo>json:$.imei', value: IDS.imei, chain: ['form', 'json'], keyPath: ['deviceinfo', 'imei'], group: 'body>form:deviceinfo>json:$' },
      { path: 'body>form:note', value: 'two words', group: 'body>form' },
    ],
  },
  {
    name: 'form body sniffed without a Content-Type',
    run: body(`imei=${IDS.imei}&ts=1700000000`, undefined),
    expect: [{ path: 'body>form:imei', value: IDS.imei, key: 'imei' }],
  },
  {
    name: 'multipart: text, JSON and gzip parts decoded, image skipped',
    run: body(multipartBody('----WebKitFormBoundary7MA4YWxkTrZu0gW'), 'multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW'),
    expect: [
      { path: 'body>multipart:model', value: 'TA-1046', chain: ['multipart'] },
      { path: 'body>multipart:meta>json:$.imei', value: IDS.imei, chain: ['multipart', 'json'], keyPath: ['meta', 'imei'] },
      { path: 'body>multipart:log>gzip>form:iccid', value: IDS.iccid, chain: ['multipart', 'gzip', 'form'] },
      { path: 'body>multipart:avatar/filename', value: 'me.png' },
    ],
  },
  {
    name: 'XML elements, attributes, entities and CDATA',
    run: body(`<?xml version="1.0"?><req v="2"><dev id="&quot;x&quot;"><imei>${IDS.imei}</imei><note><![CDATA[a<b]]></note><t>fish &amp; chips</t></dev></req>`, 'text/xml'),
    expect: [
      { path: 'body>xml:/req/dev/imei', value: IDS.imei, chain: ['xml'], key: 'imei', group: 'body>xml:/req/dev' },
      { path: 'body>xml:/req/dev/@id', value: '"x"', key: 'id', group: 'body>xml:/req/dev' },
      { path: 'body>xml:/req/dev/note', value: 'a<b' },
      { path: 'body>xml:/req/dev/t', value: 'fish & chips' },
    ],
  },
  {
    name: 'XML maps keyed by name attribute and plist <key>',
    run: body(`<map><string name="imei">${IDS.imei}</string></map><plist><dict><key>idfa</key><string>${IDS.gaid}</string></dict></plist>`, 'application/xml'),
    expect: [
      { path: 'body>xml:/map/string', value: IDS.imei, key: 'imei' },
      { path: 'body>xml:/plist/dict/string', value: IDS.gaid, key: 'idfa' },
    ],
  },
  {
    name: 'protobuf declared: nested message, varint, double, repeated fields',
    run: body(
      pb.message(pb.field(1, 'checkin'), pb.field(3, pb.message(pb.field(1, 7), pb.field(2, IDS.imei), pb.double(4, 59.91))), pb.field(5, 'a'), pb.field(5, 'b'), pb.field(6, -2)),
      'application/x-protobuf',
    ),
    expect: [
      { path: 'body>protobuf:1', value: 'checkin', chain: ['protobuf'], key: '1' },
      { path: 'body>protobuf:3.2', value: IDS.imei, keyPath: ['3', '2'], group: 'body>protobuf:3' },
      { path: 'body>protobuf:3.1', value: '7' },
      { path: 'body>protobuf:3.4', value: '59.91' },
      { path: 'body>protobuf:5[1]', value: 'b' },
      { path: 'body>protobuf:6', value: '-2' },
    ],
  },
  {
    name: 'protobuf sniffed inside gzip without any header',
    run: body(gzip(pb.message(pb.field(1, pb.message(pb.field(2, pb.message(pb.field(3, IDS.iccid))))))), undefined),
    expect: [{ path: 'body>gzip>protobuf:1.2.3', value: IDS.iccid, chain: ['gzip', 'protobuf'] }],
  },
  {
    name: 'gRPC frames',
    run: body(Buffer.concat([Buffer.from([0, 0, 0, 0, 17]), pb.field(1, IDS.imei)]), 'application/grpc'),
    expect: [{ path: 'body>grpc:0>protobuf:1', value: IDS.imei, chain: ['grpc', 'protobuf'] }],
  },
  {
    name: 'Content-Encoding gzip',
    run: body(gzip(imeiJson), 'application/json', 'gzip'),
    expect: [{ path: 'body>gzip>json:$.imei', value: IDS.imei, chain: ['gzip', 'json'] }],
  },
  {
    name: 'Content-Encoding deflate (zlib-wrapped) and raw deflate',
    run: () => {
      const a = decodeBytes(zlib.deflateSync(imeiJson), 'application/json', undefined, 'deflate');
      const b = decodeBytes(zlib.deflateRawSync(imeiJson), 'application/json', undefined, 'deflate');
      return { fields: [...a.fields, ...b.fields.map((f) => ({ ...f, path: 'raw:' + f.path }))], notes: [], limitsHit: [] };
    },
    expect: [
      { path: 'body>deflate>json:$.imei', value: IDS.imei, chain: ['deflate', 'json'] },
      { path: 'raw:body>deflate>json:$.imei', value: IDS.imei },
    ],
  },
  {
    name: 'Content-Encoding br',
    run: body(zlib.brotliCompressSync(imeiJson), 'application/json', 'br'),
    expect: [{ path: 'body>br>json:$.imei', value: IDS.imei, chain: ['br', 'json'] }],
  },
  {
    name: 'zlib recognised by magic bytes, no header',
    run: body(zlib.deflateSync(imeiJson), 'application/octet-stream'),
    expect: [{ path: 'body>deflate>json:$.imei', value: IDS.imei }],
  },
  {
    name: 'base64 standard, padded',
    run: body(Buffer.from(imeiJson).toString('base64'), 'text/plain'),
    expect: [{ path: 'body>base64>json:$.imei', value: IDS.imei, chain: ['base64', 'json'] }],
  },
  {
    name: 'base64 URL-safe, unpadded',
    run: body(Buffer.from(JSON.stringify({ imei: IDS.imei, s: '>>>???' })).toString('base64url'), undefined),
    expect: [{ path: 'body>base64>json:$.imei', value: IDS.imei }],
  },
  {
    name: "base64 line-wrapped at 76 columns (Android Base64.DEFAULT)",
    run: body(androidBase64(JSON.stringify({ imei: IDS.imei, pad: 'x'.repeat(200) })), undefined),
    expect: [{ path: 'body>base64>json:$.imei', value: IDS.imei }],
  },
  {
    name: 'base64 of gzip of JSON',
    run: body(gzip(imeiJson).toString('base64'), undefined),
    expect: [{ path: 'body>base64>gzip>json:$.imei', value: IDS.imei, chain: ['base64', 'gzip', 'json'] }],
  },
  {
    name: 'hex of JSON',
    run: body(Buffer.from(imeiJson).toString('hex'), 'text/plain'),
    expect: [{ path: 'body>hex>json:$.imei', value: IDS.imei, chain: ['hex', 'json'] }],
  },
  {
    name: 'percent-encoding applied twice',
    run: body(encodeURIComponent(encodeURIComponent(imeiJson)), 'text/plain'),
    expect: [{ path: 'body>percent>percent>json:$.imei', value: IDS.imei, chain: ['percent', 'percent', 'json'] }],
  },
  {
    name: 'XML inside base64 inside a JSON string',
    run: body(JSON.stringify({ blob: Buffer.from(`<d><imsi>${IDS.imsi}</imsi></d>`).toString('base64') }), 'application/json'),
    expect: [{ path: 'body>json:$.blob>base64>xml:/d/imsi', value: IDS.imsi, chain: ['json', 'base64', 'xml'], keyPath: ['blob', 'd', 'imsi'] }],
  },
  {
    name: 'JSON Lines (NDJSON batch)',
    run: body(`{"type":"event"}\n${imeiJson}\n{"n":3}\n`, 'application/x-ndjson'),
    expect: [{ path: 'body>jsonl:1>json:$.imei', value: IDS.imei, chain: ['jsonl', 'json'] }],
  },
  {
    name: 'a "form" body that is really base64 JSON falls back to sniffing',
    run: body(Buffer.from(JSON.stringify({ imei: IDS.imei, x: 1 })).toString('base64'), 'application/x-www-form-urlencoded'),
    expect: [{ path: 'body>base64>json:$.imei', value: IDS.imei, chain: ['base64', 'json'] }],
  },
  {
    name: 'a "form" body that is really JSON falls back to sniffing',
    run: body(imeiJson, 'application/x-www-form-urlencoded'),
    expect: [{ path: 'body>json:$.imei', value: IDS.imei }],
  },
  {
    name: 'plain text body is one field',
    run: body('hello from the phone', 'text/plain'),
    expect: [{ path: 'body', value: 'hello from the phone', chain: [], key: null }],
  },
];

describe('decoders (table)', () => {
  test.each(rows.map((r) => [r.name, r] as const))('%s', (_name, row) => {
    const result = row.run();
    for (const e of row.expect) {
      const f = fieldAt(result, e.path);
      if (!f) throw new Error(`no field at ${e.path}; got:\n${result.fields.map((x) => `${x.path} = ${x.value}`).join('\n')}`);
      expect(f.value).toBe(e.value);
      if (e.chain) expect(f.chain).toEqual(e.chain);
      if (e.key !== undefined) expect(f.key).toBe(e.key);
      if (e.keyPath) expect(f.keyPath).toEqual(e.keyPath);
      if (e.group) expect(f.group).toBe(e.group);
    }
    expect(result.limitsHit).toEqual([]);
  });
});

describe('the request around the body', () => {
  const jwtPayload = Buffer.from(JSON.stringify({ sub: 'user-1', email: 'ola@example.no', device_id: IDS.androidId })).toString('base64url');
  const jwt = `eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.${jwtPayload}.c2lnbmF0dXJl`;
  const nested = `https://tracker.example/px?imsi=${IDS.imsi}`;
  /* base64 with '+' sent unescaped in a query: form decoding turns it into a space. */
  const plusBase64 = Buffer.from(JSON.stringify({ mac: IDS.mac, k: '>>>' })).toString('base64');
  expect(plusBase64).toContain('+');
  const flow = makeFlow({
    url: `http://api.example.test/v1/device/${Buffer.from(imeiJson).toString('base64url')}/ping?gaid=${IDS.gaid}&next=${encodeURIComponent(nested)}&d=${encodeURIComponent(Buffer.from(imeiJson).toString('base64'))}&ts=1700000000&${Buffer.from(imeiJson).toString('base64url')}&debug&raw=${plusBase64}`,
    headers: [
      ['Host', 'api.example.test'],
      ['X-Device-Id', IDS.androidId],
      ['X-Client-Info', `os=android; ver=9; imei=${IDS.imei}; model=TA-1046`],
      ['Authorization', `Bearer ${jwt}`],
      ['Cookie', `uid=u123; prefs=${encodeURIComponent(JSON.stringify({ mac: IDS.mac }))}; empty=`],
      ['Content-Type', 'application/json'],
    ],
    body: JSON.stringify({ ok: true }),
  });
  const result = decodeFlow(flow);
  test.each([
    ['query:gaid', IDS.gaid, ['query']],
    ['query:next>url>query:imsi', IDS.imsi, ['query', 'url', 'query']],
    ['query:d>base64>json:$.imei', IDS.imei, ['query', 'base64', 'json']],
    ['path:2>base64>json:$.imei', IDS.imei, ['path', 'base64', 'json']],
    ['path:1', 'device', ['path']],
    ['header:X-Device-Id', IDS.androidId, []],
    ['header:Authorization>jwt>json:$.email', 'ola@example.no', ['jwt', 'json']],
    ['cookie:uid', 'u123', ['cookie']],
    ['cookie:prefs>percent>json:$.mac', IDS.mac, ['cookie', 'percent', 'json']],
    ['body>json:$.ok', 'true', ['json']],
    ['query:#4>base64>json:$.imei', IDS.imei, ['query', 'base64', 'json']],
    ['header:X-Client-Info>pairs:imei', IDS.imei, ['pairs']],
    ['query:raw>base64>json:$.mac', IDS.mac, ['query', 'base64', 'json']],
  ])('%s', (path, value, chain) => {
    const f = fieldAt(result, path);
    if (!f) throw new Error(`no field at ${path}; got:\n${result.fields.map((x) => x.path).join('\n')}`);
    expect(f.value).toBe(value);
    expect(f.chain).toEqual(chain);
  });
  test('transport headers are not fields', () => {
    expect(result.fields.some((f) => f.path === 'header:Host' || f.path === 'header:Content-Type')).toBe(false);
  });
});

describe('look-alikes are left as they were sent', () => {
  test.each([
    ['a random alphanumeric request ID', 'a8F3kQ9zLm2PxR7t'],
    ['an MD5 hex digest', '5d41402abc4b2a76b9719d911017c592'],
    ['a UUID', IDS.gaid],
    ['a timestamp', '1700000000123'],
    ['an English word', 'configuration'],
    ['a version string', '10.3.1-release'],
    ['base64 padding is not a form', 'c2VjcmV0IQ=='.replace('IQ==', 'Iw==')],
  ])('%s', (_what, value) => {
    const r = decodeFlow(makeFlow({ url: `http://x.test/?v=${encodeURIComponent(value)}` }));
    const under = r.fields.filter((f) => f.path.startsWith('query:v'));
    if (value.endsWith('==')) {
      expect(under.every((f) => !f.chain.includes('form'))).toBe(true);
      return;
    }
    expect(under).toEqual([expect.objectContaining({ path: 'query:v', value })]);
  });

  test('a binary image body yields no fields', () => {
    const png = Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), Buffer.alloc(4000, 0x5a).map((_, i) => (i * 37) % 251)]);
    const r = decodeBytes(png, 'image/png');
    expect(r.fields).toEqual([]);
  });
});

describe('the registry', () => {
  test('every decoder has a distinct type and a sentence for the dashboard', () => {
    const types = ALL_DECODERS.map((d) => d.type);
    expect(new Set(types).size).toBe(types.length);
    for (const d of ALL_DECODERS) {
      expect(d.type).toMatch(/^[a-z0-9]+$/);
      expect(d.explain().length).toBeGreaterThan(10);
      expect(explainDecoder(d.type)).toBe(d.explain());
    }
    expect(explainDecoder('query')).toBe('a URL query parameter');
  });

  test('every chain step seen in decoded fields is explained', () => {
    const known = new Set([...ALL_DECODERS.map((d) => d.type), 'query', 'path', 'cookie', 'grpc']);
    const flows = [
      decodeFlow(makeFlow({ url: 'http://x.test/a/b?q=1&u=' + encodeURIComponent('http://y.test/?z=2'), headers: [['Cookie', 'a=b']] })),
      decodeBytes(Buffer.concat([Buffer.from([0, 0, 0, 0, 3]), pb.field(1, 'x')]), 'application/grpc'),
    ];
    for (const r of flows) for (const f of r.fields) for (const step of f.chain) expect(known).toContain(step);
  });
});
