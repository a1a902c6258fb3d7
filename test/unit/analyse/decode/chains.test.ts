/**
 * End to end through decodeFlow: whole requests as phones send them, one per encoding chain,
 * starting with the Nokia 7 Plus case (China Telecom self-registration, 2019).
 */
import * as zlib from 'node:zlib';
import { decodeFlowRelaxed as decodeFlow } from './helpers';
import { androidBase64, fieldAt, gzip, IDS, makeFlow, pb } from './helpers';

describe('the Nokia 7 Plus self-registration request', () => {
  const payload = {
    IMEI1: IDS.imei,
    IMEI2: IDS.imei2,
    MEID: IDS.meid,
    MODEL: 'TA-1046',
    SWVER: '00WW_2_39B',
    SIM1ICCID: IDS.iccid,
    SIM1LTEIMSI: IDS.imsi,
    SIM1CELLID: '21456789',
    SIM1TYPE: '2',
    MACID: IDS.mac,
    ACCESSTYPE: '1',
    REGDATE: '2019-02-14 10:12:03',
  };
  const bodyText = androidBase64(JSON.stringify(payload));
  const flow = makeFlow({
    url: 'http://zzhc.vnet.cn:9999/',
    method: 'POST',
    headers: [
      ['Content-Type', 'application/encrypted-json'],
      ['Content-Length', String(bodyText.length)],
      ['Host', 'zzhc.vnet.cn:9999'],
      ['Connection', 'Keep-Alive'],
      ['User-Agent', 'Apache-HttpClient/UNAVAILABLE (java 1.4)'],
    ],
    body: bodyText,
  });

  test('the body really is Android Base64.DEFAULT (76-column lines)', () => {
    const lines = bodyText.split('\n');
    expect(lines.length).toBeGreaterThan(2);
    expect(lines[0]).toHaveLength(76);
    expect(bodyText.endsWith('\n')).toBe(true);
  });

  test.each(Object.entries(payload))('%s is a field under body>base64>json', (key, value) => {
    const f = fieldAt(decodeFlow(flow), `body>base64>json:$.${key}`);
    expect(f).toEqual({ path: `body>base64>json:$.${key}`, key, keyPath: [key], value, chain: ['base64', 'json'], group: 'body>base64>json:$' });
  });

  test('nothing else is guessed from the body, and no limit is hit', () => {
    const r = decodeFlow(flow);
    const bodyFields = r.fields.filter((f) => f.path.startsWith('body'));
    expect(bodyFields).toHaveLength(Object.keys(payload).length);
    expect(r.limitsHit).toEqual([]);
    expect(r.notes).toEqual([]);
  });
});

describe('one request per encoding chain', () => {
  const imeiJson = JSON.stringify({ imei: IDS.imei });
  const cases: Array<[string, ReturnType<typeof makeFlow>, string]> = [
    [
      'gzip Content-Encoding > form > base64 > JSON',
      makeFlow({
        url: 'https://sdk.example/collect',
        headers: [['Content-Type', 'application/x-www-form-urlencoded'], ['Content-Encoding', 'gzip']],
        body: gzip(`v=3&p=${encodeURIComponent(Buffer.from(imeiJson).toString('base64'))}`),
      }),
      'body>gzip>form:p>base64>json:$.imei',
    ],
    [
      'query > percent > base64 > gzip > JSON',
      makeFlow({ url: `http://t.example/e?d=${encodeURIComponent(encodeURIComponent(gzip(imeiJson).toString('base64')))}` }),
      'query:d>percent>base64>gzip>json:$.imei',
    ],
    [
      'protobuf > string field > JSON',
      makeFlow({ url: 'https://android.example/checkin', headers: [['Content-Type', 'application/x-protobuffer']], body: pb.message(pb.field(1, 4), pb.field(2, imeiJson)) }),
      'body>protobuf:2>json:$.imei',
    ],
    [
      'multipart > gzip part > JSON',
      makeFlow({
        url: 'https://crash.example/upload',
        headers: [['Content-Type', 'multipart/form-data; boundary=XyZ']],
        body: Buffer.concat([Buffer.from('--XyZ\r\nContent-Disposition: form-data; name="report"\r\nContent-Type: application/gzip\r\n\r\n'), gzip(imeiJson), Buffer.from('\r\n--XyZ--\r\n')]),
      }),
      'body>multipart:report>gzip>json:$.imei',
    ],
    [
      'JSON > hex > zlib > XML',
      makeFlow({ url: 'https://x.example/', headers: [['Content-Type', 'application/json']], body: JSON.stringify({ data: zlib.deflateSync(`<r><imei>${IDS.imei}</imei></r>`).toString('hex') }) }),
      'body>json:$.data>hex>deflate>xml:/r/imei',
    ],
    [
      'header > JWT > JSON',
      makeFlow({ url: 'https://x.example/', headers: [['X-Auth', `eyJhbGciOiJub25lIn0.${Buffer.from(imeiJson).toString('base64url')}.`]] }),
      'header:X-Auth>jwt>json:$.imei',
    ],
    [
      'cookie > base64 > form',
      makeFlow({ url: 'https://x.example/', headers: [['Cookie', `a=1; dev=${Buffer.from(`imei=${IDS.imei}&os=android`).toString('base64')}`]] }),
      'cookie:dev>base64>form:imei',
    ],
    [
      'brotli Content-Encoding > JSON > JSON string',
      makeFlow({ url: 'https://x.example/', headers: [['Content-Type', 'application/json'], ['Content-Encoding', 'br']], body: zlib.brotliCompressSync(JSON.stringify({ event: imeiJson })) }),
      'body>br>json:$.event>json:$.imei',
    ],
  ];
  test.each(cases)('%s', (_name, flow, path) => {
    const r = decodeFlow(flow);
    const f = fieldAt(r, path);
    if (!f) throw new Error(`no field at ${path}; got:\n${r.fields.map((x) => x.path).join('\n')}`);
    expect(f.value).toBe(IDS.imei);
    expect(f.key).toBe('imei');
    expect(r.limitsHit).toEqual([]);
  });
});
