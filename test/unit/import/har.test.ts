/** HAR import over exports shaped like Chrome DevTools, mitmproxy and Charles (test/fixtures/har). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { readHar } from '../../../proxy/capture/import/har';
import { decodeFlowRelaxed as decodeFlow } from '../analyse/decode/helpers';

const dir = path.join(__dirname, '../../fixtures/har');
const load = (name: string) => readHar(fs.readFileSync(path.join(dir, name), 'utf8'), name);

describe('Chrome DevTools export', () => {
  const har = load('chrome-devtools.har');
  test('every entry becomes a flow, in order, with no errors', () => {
    expect(har.errors).toEqual([]);
    expect(har.flows.map((f) => f.host)).toEqual(['www.googleadservices.com', 'api.mixpanel.com', 'fonts.gstatic.example']);
    expect(har.entryIndex).toEqual([0, 1, 2]);
  });
  test('HTTPS, server address without brackets, times and HTTP/2 pseudo-headers dropped', () => {
    const f = har.flows[0];
    expect(f).toMatchObject({ kind: 'http', source: 'har', clientIp: 'har', scheme: 'https', tls: true, port: 443, method: 'GET', serverIp: '2a00:1450:400f:80d::2002', responseStatus: 200 });
    expect(f.startedAt).toBe(Date.parse('2019-03-01T10:00:00.120Z'));
    expect(f.endedAt).toBeCloseTo(f.startedAt + 48.3);
    expect(f.timings.totalMs).toBe(48.3);
    expect(f.requestHeaders.map(([n]) => n)).toEqual(['accept', 'user-agent']);
  });
  test('base64 response content is decoded to its bytes', () => {
    expect(har.flows[0].responseBody.bytes.subarray(0, 6).toString('latin1')).toBe('GIF89a');
  });
  test('the form body is the postData text, and decodes down to the JSON inside', () => {
    const flow = har.flows[1];
    expect(flow.requestBody.bytes.toString().startsWith('data=')).toBe(true);
    const fields = decodeFlow(flow).fields;
    const id = fields.find((x) => x.path === 'body>form:data>base64>json:$[0].properties.$device_id');
    expect(id?.value).toBe('5b0cbd2e-6e43-4d6e-9c9a-2f6b1f4e8a17');
    expect(id?.chain).toEqual(['form', 'base64', 'json']);
  });
});

describe('mitmproxy export', () => {
  const har = load('mitmproxy-nokia.har');
  test('cleartext HTTP on a custom port', () => {
    expect(har.errors).toEqual([]);
    expect(har.flows[0]).toMatchObject({ scheme: 'http', tls: false, host: 'zzhc.vnet.cn', port: 9999, serverIp: '202.96.128.86', method: 'POST' });
    expect(har.flows[0].timings).toMatchObject({ connectMs: 95.1, totalMs: 210.5 });
  });
  test('the Nokia body arrives byte for byte (76-column base64 lines)', () => {
    const text = har.flows[0].requestBody.bytes.toString();
    expect(text.split('\n')[0]).toHaveLength(76);
    expect(JSON.parse(Buffer.from(text, 'base64').toString()).MACID).toBe('d4:6a:6a:12:34:56');
    expect(decodeFlow(har.flows[0]).fields.find((f) => f.path === 'body>base64>json:$.IMEI1')?.value).toBe('354031090123453');
  });
  test('a binary request body given as base64 (postData.encoding) is decoded, and the client address kept', () => {
    const flow = har.flows[2];
    expect(flow.clientIp).toBe('192.168.1.20');
    expect(zlib.gunzipSync(flow.requestBody.bytes)[0]).toBe(0x0a);
    expect(decodeFlow(flow).fields.find((f) => f.path === 'body>gzip>protobuf:2')?.value).toBe('d4:6a:6a:12:34:56');
  });
});

describe('broken input', () => {
  test('a file cut in the middle of its second entry: the first is read, and one error names the byte where it breaks off', () => {
    const har = load('corrupt-truncated.har');
    expect(har.flows.map((f) => f.host)).toEqual(['zzhc.vnet.cn']);
    expect(har.errors).toEqual([{ entry: null, message: 'corrupt-truncated.har: the file ends at byte 3104, inside a string in entry 1 (truncated?); the 1 entry before it was read' }]);
  });
  test('a file cut before its first entry is no HAR, with the byte named', () => {
    const text = fs.readFileSync(path.join(dir, 'mitmproxy-nokia.har'), 'utf8');
    const har = readHar(text.slice(0, text.indexOf('"entries"') + 5), 'cut.har');
    expect(har.flows).toEqual([]);
    expect(har.errors).toEqual([{ entry: null, message: expect.stringMatching(/^cut\.har: not a HAR file \(invalid JSON: the file ends at byte \d+, inside a string\)$/) }]);
  });
  test('broken entries are named by index; the others are imported', () => {
    const har = load('charles-broken-entries.har');
    expect(har.entryIndex).toEqual([0, 4]);
    expect(har.errors.map((e) => e.entry)).toEqual([1, 2, 3]);
    expect(har.errors[0].message).toBe('charles-broken-entries.har: entry 1 request.url is missing');
    expect(har.errors[1].message).toBe('charles-broken-entries.har: entry 2 is not an object');
    expect(har.errors[2].message).toMatch(/entry 3 request\.postData\.text says encoding "base64" but is not base64/);
  });
  test('form params without text are rebuilt as a urlencoded body', () => {
    const flow = load('charles-broken-entries.har').flows[1];
    expect(flow.requestBody.bytes.toString()).toBe('email=Ola.Nordmann%40example.no&imei=354031090123453');
    expect(flow.requestHeaders).toContainEqual(['Content-Type', 'application/x-www-form-urlencoded']);
  });
  test.each([
    ['JSON that is not a HAR', '{"hello": 1}', /no log\.entries list/],
    ['an empty file', '', /invalid JSON/],
    ['a JSON array', '[1,2]', /no log\.entries list/],
  ])('%s', (_what, text, message) => {
    const har = readHar(text, 'x.har');
    expect(har.flows).toEqual([]);
    expect(har.errors[0].message).toMatch(message);
    expect(har.errors[0].message.startsWith('x.har: ')).toBe(true);
  });
  test.each([
    ['a relative URL', { request: { method: 'GET', url: '/just/a/path' } }, /not an absolute URL/],
    ['a non-HTTP scheme', { request: { method: 'GET', url: 'ftp://x.example/' } }, /scheme "ftp:"/],
    ['headers that are not a list', { request: { method: 'GET', url: 'http://x.example/', headers: 'Host: x' } }, /headers is not a list/],
    ['no method', { request: { url: 'http://x.example/' } }, /method is missing/],
  ])('an entry with %s is an error, its neighbours still import', (_what, bad, message) => {
    const good = { request: { method: 'GET', url: 'http://ok.example/?a=1' } };
    const har = readHar(JSON.stringify({ log: { entries: [good, bad, good] } }), 'y.har');
    expect(har.entryIndex).toEqual([0, 2]);
    expect(har.errors).toHaveLength(1);
    expect(har.errors[0]).toEqual({ entry: 1, message: expect.stringMatching(message) });
  });
});
