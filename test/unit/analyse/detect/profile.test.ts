/**
 * Device profile: values are found however an app dresses them (separators, case, check digit,
 * IMEISV, phone formats, MD5/SHA-1/SHA-256 in hex or base64), a profile match outranks a pattern
 * guess, and invalid profile values are refused with the reason.
 */
import { createHash } from 'node:crypto';
import { compileProfile, matchProfileText, normalizeProfileValue, ProfileValueError } from '../../../../proxy/analyse/profile';
import { detectFields } from '../../../../proxy/analyse/detect';
import { prng, randomHex, randomPick } from '../../../../scripts/fixtures/random';
import { jsonField, luhn, textField } from './fields';

const IMEI = luhn('35420109876543');
const MAC = 'd4:6a:6a:12:34:56';
const ICCID = luhn('894701234567890123');
const profile = compileProfile({ name: 'Nokia 7 plus', imei: [IMEI], phone: '+4791234567', mac: MAC, ad_id: '3F2C1A9E-7B4D-4C1E-9A2B-5D6E7F8A9B0C', email: 'Kari@Example.no', iccid: ICCID, android_id: 'F1B2C3D4E5F60718' });

const hash = (alg: string, text: string, enc: 'hex' | 'base64' = 'hex'): string => createHash(alg).update(text).digest(enc);

describe('compileProfile', () => {
  it.each([
    ['IMEI as is', IMEI, 'imei', ''],
    ['IMEI without check digit', IMEI.slice(0, 14), 'imei', 'without its check digit'],
    ['IMEISV with any software version', `${IMEI.slice(0, 14)}07`, 'imei', 'as IMEISV'],
    ['MD5 of the IMEI', hash('md5', IMEI), 'imei', 'as its MD5 hash'],
    ['SHA-1 of the IMEI, upper-case hex', hash('sha1', IMEI).toUpperCase(), 'imei', 'as its SHA-1 hash'],
    ['SHA-256 of the IMEI in base64', hash('sha256', IMEI, 'base64'), 'imei', 'as its SHA-256 hash'],
    ['MD5 of the 14-digit IMEI', hash('md5', IMEI.slice(0, 14)), 'imei', 'without its check digit, as its MD5 hash'],
    ['phone without +', '4791234567', 'phone', 'without +'],
    ['phone national', '91234567', 'phone', 'in national format'],
    ['phone international formatted', '+47 91 23 45 67', 'phone', 'in international format'],
    ['MAC upper case, no separators', 'D46A6A123456', 'mac', 'without separators'],
    ['MAC with dashes', 'D4-6A-6A-12-34-56', 'mac', 'with dashes'],
    ['SHA-1 of the upper-case bare MAC', hash('sha1', 'D46A6A123456'), 'mac', 'without separators, as its SHA-1 hash'],
    ['ICCID without its check digit', ICCID.slice(0, -1), 'iccid', 'without its check digit'],
    ['Android ID as the signed 64-bit integer check-in sends', (BigInt('0xf1b2c3d4e5f60718') - 2n ** 64n).toString(), 'android_id', 'as a decimal number'],
    ['ad id without dashes', '3f2c1a9e7b4d4c1e9a2b5d6e7f8a9b0c', 'ad_id', 'without dashes'],
    ['SHA-256 of the lower-case email', hash('sha256', 'kari@example.no'), 'email', 'as its SHA-256 hash'],
  ])('matches %s', (_name, text, type, variant) => {
    const match = matchProfileText(profile, text);
    expect(match && { type: match.type, variant: match.variant }).toEqual({ type, variant });
  });

  it('does not match near misses', () => {
    expect(matchProfileText(profile, '+47 912 34 567')).toBeUndefined(); // grouping is undone by the detector, not the table
    expect(matchProfileText(profile, hash('md5', `${IMEI}x`))).toBeUndefined();
    expect(matchProfileText(profile, IMEI.slice(0, 13))).toBeUndefined();
    expect(matchProfileText(profile, 'd4:6a:6a:12:34:57')).toBeUndefined();
  });

  it('normalizes the values it keeps', () => {
    expect(profile.values).toEqual([
      { type: 'imei', value: IMEI },
      { type: 'iccid', value: ICCID },
      { type: 'phone', value: '+4791234567' },
      { type: 'mac', value: MAC },
      { type: 'android_id', value: 'f1b2c3d4e5f60718' },
      { type: 'ad_id', value: '3f2c1a9e-7b4d-4c1e-9a2b-5d6e7f8a9b0c' },
      { type: 'email', value: 'kari@example.no' },
    ]);
    expect(profile.country).toBe('NO');
  });

  it('precomputes variants, so adding values grows the table but not the work per lookup', () => {
    const small = compileProfile({ imei: IMEI });
    const big = compileProfile({ imei: [IMEI, luhn('35420109876544'), luhn('86420109876543')] });
    expect(big.variants.size).toBeGreaterThan(small.variants.size * 2.5);
    expect(big.variants).toBeInstanceOf(Map);
  });

  it('refuses unknown keys and non-string values, naming them', () => {
    expect(() => compileProfile({ imie: IMEI })).toThrow(/unknown key "imie"/);
    expect(() => compileProfile({ imei: [IMEI, 7 as unknown as string] })).toThrow(/values must be strings/);
  });

  it.each([
    ['imei', '354201098765430', /check digit should be/],
    ['imei', '3542', /15 digits/],
    ['iccid', '1234567890123456789', /starting with 89/],
    ['phone', '12', /not a valid phone number/],
    ['mac', 'zz:zz', /MAC address/],
    ['ad_id', 'not-a-uuid', /UUID/],
    ['location', '95.1,10', /lat,lon/],
  ] as const)('refuses %s %s', (type, value, reason) => {
    expect(() => normalizeProfileValue(type, value)).toThrow(ProfileValueError);
    expect(() => normalizeProfileValue(type, value)).toThrow(reason);
  });
});

describe('profile detection', () => {
  it('finds the phone\'s values hashed or reformatted, with detector "profile" and full confidence', () => {
    const found = detectFields([
      jsonField('did', hash('md5', IMEI)),
      jsonField('h', hash('sha256', 'D46A6A123456').toUpperCase()),
      textField(`msisdn=4791234567&x=1`),
    ], profile);
    expect(found.map((d) => [d.type, d.value, d.detector, d.confidence]).sort()).toEqual([
      ['imei', IMEI, 'profile', 1],
      ['mac', MAC, 'profile', 1],
      ['phone', '+4791234567', 'profile', 1],
    ]);
    expect(found.find((d) => d.type === 'imei')!.explanation).toMatch(/matches your device profile, as its MD5 hash/);
  });

  it('outranks key and pattern readings of the same value', () => {
    const found = detectFields([jsonField('imei', IMEI), textField(IMEI)], profile);
    expect(found.map((d) => [d.path, d.detector])).toEqual([['body>json:$.imei', 'profile'], ['body', 'profile']]);
  });

  it('matches the profile phone written with any grouping', () => {
    const found = detectFields([jsonField('contact', '+47 912 34 567'), jsonField('c2', '(+47) 91-23-45-67')], profile);
    expect(found.map((d) => [d.type, d.value, d.detector])).toEqual([['phone', '+4791234567', 'profile'], ['phone', '+4791234567', 'profile']]);
  });

  it('gives national numbers the profile\'s country', () => {
    const other = compileProfile({ phone: '+4741234567' });
    const found = detectFields([jsonField('phone', '912 34 567')], other);
    expect(found.map((d) => [d.type, d.value, d.detector])).toEqual([['phone', '+4791234567', 'key']]);
  });
});

/**
 * The tokens a text is cut into, written as the plain regexes they stand for: the detector scans
 * with hand-written loops and a signature filter instead, and must find exactly the same variants.
 */
function tokensByRegex(text: string): string[] {
  const tokens = [text];
  if (/^(?=(?:\D*\d){7})[+\d\s\-().\/]{7,24}$/.test(text)) tokens.push(text.replace(/[\s\-().\/]/g, ''));
  if (text.length <= profile.minVariantLength) return tokens;
  /* Each shape beyond alphanumeric runs is tried only when the text holds the punctuation it needs. */
  const shapes: Array<[RegExp, RegExp]> = [
    [/./, /[A-Za-z0-9]+/g],
    [/[+\/_=\-]/, /[A-Za-z0-9+\/_\-]+={0,2}/g],
    [/[+@.\-]/, /\+?[A-Za-z0-9@._\-]+/g],
    [/[:\-]/, /(?:[0-9A-Fa-f]{2}[:\-]){5}[0-9A-Fa-f]{2}/g],
  ];
  for (const [needs, re] of shapes) if (needs.test(text)) for (const m of text.matchAll(re)) tokens.push(m[0]);
  return tokens;
}

describe('profile values inside longer text', () => {
  it('are found exactly where a regex tokenizer finds them (seeded random texts of variants, hex and punctuation)', () => {
    const rand = prng(31);
    const variants = [...profile.variants.keys()];
    const glue = [' ', '-', '+', '=', '==', '/', '_', '@', '.', ':', ',', ';', '|', '(', ')', '"', '+47 ', 'é', '\t', '%'];
    let withHits = 0;
    for (let i = 0; i < 3000; i++) {
      const parts: string[] = [];
      for (let j = 0, n = 1 + Math.floor(rand() * 4); j < n; j++) {
        parts.push(rand() < 0.5 ? randomPick(rand, variants) : randomHex(rand, 1 + Math.floor(rand() * 40)));
        if (rand() < 0.6) parts.push(randomPick(rand, glue));
      }
      let text = parts.join('');
      if (rand() < 0.3) text = text.toUpperCase();
      text = text.trim();
      const expected = new Set<string>();
      for (const t of tokensByRegex(text)) {
        const m = matchProfileText(profile, t);
        if (m) expected.add(`${m.type} ${m.value}`);
      }
      const found = new Set(detectFields([textField(text)], profile).filter((d) => d.detector === 'profile').map((d) => `${d.type} ${d.value}`));
      expect({ text, found: [...found].sort() }).toEqual({ text, found: [...expected].sort() });
      if (expected.size) withHits++;
    }
    expect(withHits).toBeGreaterThan(1000);
  });
});

