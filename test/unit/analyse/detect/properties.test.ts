/**
 * Property tests over seeded random fields: detectors never throw on hostile text, and every
 * finding's value is in the normalized form DESIGN.md promises, whatever the input looked like.
 */
import { detectFields, explainFinding } from '../../../../proxy/analyse/detect';
import { compileProfile } from '../../../../proxy/analyse/profile';
import type { DecodedField, IdentifierType } from '../../../../proxy/analyse/types';
import { prng } from '../../../../scripts/fixtures/random';
import { luhn } from './fields';

const NORMALIZED: Record<IdentifierType, (v: string) => boolean> = {
  imei: (v) => /^\d{15}$/.test(v) && luhn(v.slice(0, 14)) === v,
  meid: (v) => /^[0-9A-F]{14}$/.test(v),
  imsi: (v) => /^\d{14,15}$/.test(v),
  iccid: (v) => /^89\d{16,18}$/.test(v),
  phone: (v) => /^\+[1-9]\d{6,14}$/.test(v),
  cell_id: (v) => /^[1-9]\d*$/.test(v),
  location: (v) => /^-?\d+(\.\d+)?,-?\d+(\.\d+)?$/.test(v),
  mac: (v) => /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(v),
  android_id: (v) => /^[0-9a-f]{13,16}$/.test(v),
  ad_id: (v) => /^[0-9a-f-]{16,64}$/.test(v) && v === v.toLowerCase(),
  serial: (v) => v.length >= 6 && v.trim() === v,
  email: (v) => v === v.toLowerCase() && v.includes('@'),
};

const KEYS = ['imei', 'IMEI1', 'meid', 'imsi', 'SIM1ICCID', 'msisdn', 'phone', 'cid', 'cellid', 'lat', 'lon', 'latitudeE7', 'longitudeE7', 'll', 'mac', 'bssid', 'android_id', 'gaid', 'serial', 'sn', 'email', 'country', 'locale', 'deviceId', 'mcc', 'mnc', 'lac', 'order_id', null, '0', '\u0000', '__proto__', 'constructor'];
const ALPHABETS = ['0123456789', '0123456789abcdefABCDEF', '0123456789:-. +', 'abcdefghijklmnopqrstuvwxyz@.0123456789', '\u0000\u202e\ud800\uffff\n\t"\'<>&;=%', '0123456789,.-'];

function randomValue(rand: () => number): string {
  const alphabet = ALPHABETS[Math.floor(rand() * ALPHABETS.length)]!;
  const length = Math.floor(rand() * (rand() < 0.1 ? 3000 : 40));
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[Math.floor(rand() * alphabet.length)];
  if (rand() < 0.2) out = luhn(out.replace(/\D/g, '').slice(0, 14).padEnd(14, '5'));
  return out;
}

describe('detector properties', () => {
  const profile = compileProfile({ imei: luhn('35420109876543'), phone: '+4791234567', mac: 'd4:6a:6a:12:34:56' });

  it('never throws, and every value it reports is normalized', () => {
    const rand = prng(7);
    let findings = 0;
    for (let round = 0; round < 400; round++) {
      const fields: DecodedField[] = [];
      const groups = ['g1', 'g2'];
      for (let i = 0; i < 12; i++) {
        const key = KEYS[Math.floor(rand() * KEYS.length)]!;
        const parents = rand() < 0.3 ? ['cellTowers', '0'] : rand() < 0.3 ? ['wifi', '1'] : [];
        fields.push({ path: `body>json:$.${key}`, key, keyPath: key === null ? parents : [...parents, key], value: randomValue(rand), chain: ['json'], group: groups[i % 2]! });
      }
      const found = detectFields(fields, round % 2 ? profile : undefined);
      for (const f of found) {
        findings++;
        expect({ type: f.type, value: f.value, ok: NORMALIZED[f.type](f.value) }).toEqual({ type: f.type, value: f.value, ok: true });
        expect(f.confidence).toBeGreaterThan(0);
        expect(f.confidence).toBeLessThanOrEqual(1);
        expect(f.explanation).toMatch(/\.$/);
      }
    }
    expect(findings).toBeGreaterThan(50);
  });

  it('explains a stored finding without its detector evidence', () => {
    expect(explainFinding({ type: 'iccid', value: '8947012345678901234', path: 'body>gzip>json:$.sim.iccid', chain: ['gzip', 'json'], key: 'iccid', detector: 'key' }))
      .toBe('ICCID (SIM card serial) 894…234 in JSON key iccid, inside a gzip-compressed body.');
  });

  it.each([
    [{ path: 'header:Authorization>jwt>json:$.email', chain: ['jwt', 'json'], key: 'email' }, 'in JSON key email, inside a JWT in header Authorization.'],
    [{ path: 'body>form:data>percent>json:$.email', chain: ['form', 'percent', 'json'], key: 'email' }, 'in JSON key email, inside a percent-encoded value in form field data.'],
    [{ path: 'query:u>url>query:email', chain: ['query', 'url', 'query'], key: 'email' }, 'in query parameter email, inside a URL in query parameter u.'],
    [{ path: 'cookie:mail', chain: ['cookie'], key: 'mail' }, 'in cookie mail.'],
    [{ path: 'body>multipart:meta>json:$.email', chain: ['multipart', 'json'], key: 'email' }, 'in JSON key email, inside multipart part meta.'],
  ])('says where: %j', (where, ending) => {
    expect(explainFinding({ type: 'email', value: 'kari@example.no', detector: 'pattern', ...where })).toBe(`Email address k…i@example.no ${ending}`);
  });
});
