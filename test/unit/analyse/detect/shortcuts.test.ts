/**
 * The shortcuts detection takes for speed must answer exactly what the plain definitions answer:
 * digit runs found by sampling, placeholder digits and Luhn without regexes, key facts from a
 * direct-mapped slot, explanations reusing the words of a place already described, and the
 * candidate bookkeeping that switches from direct comparison to a map past a few candidates.
 */
import { detectFields } from '../../../../proxy/analyse/detect';
import { hasDigitRun, traitsOf, COLON, AT, DIGIT_RUN } from '../../../../proxy/analyse/detect/traits';
import { currentTac, isPlaceholderDigits, luhnCheckDigit, luhnValid, plausibleTac } from '../../../../proxy/analyse/detect/validate';
import { keyInfo } from '../../../../proxy/analyse/detect/keys';
import type { DecodedField } from '../../../../proxy/analyse/types';
import { prng } from '../../../../scripts/fixtures/random';
import { jsonField, luhn, queryField, textField } from './fields';

function randomText(rand: () => number, alphabet: string, max: number): string {
  const length = Math.floor(rand() * max);
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[Math.floor(rand() * alphabet.length)];
  return out;
}

/** A run of digits counting up (wrapping 9 to 0), sometimes broken at the end. */
function ascending(rand: () => number): string {
  const start = Math.floor(rand() * 10);
  let out = '';
  for (let i = 0, n = Math.floor(rand() * 24); i < n; i++) out += String((start + i) % 10);
  return rand() < 0.3 ? `${out.slice(0, -1)}7` : out;
}

describe('value traits', () => {
  it('finds a run of n digits exactly where /\\d{n}/ does', () => {
    const rand = prng(11);
    for (let i = 0; i < 5000; i++) {
      const text = randomText(rand, rand() < 0.5 ? '0123456789x' : '0123456789abcdef-:', 80);
      const n = 1 + Math.floor(rand() * 20);
      expect([text, n, hasDigitRun(text, n)]).toEqual([text, n, new RegExp(`\\d{${n}}`).test(text)]);
    }
    expect(hasDigitRun('ab35403109012345x', 14)).toBe(true);
    expect(hasDigitRun('3540310901234', 14)).toBe(false);
  });

  it("says whether a value has ':', '@' and 14 digits in a row", () => {
    expect(traitsOf('app_open', true)).toBe(0);
    expect(traitsOf('tel:+4791234567', true)).toBe(COLON);
    expect(traitsOf('ola@example.com', true)).toBe(AT);
    expect(traitsOf('imei=354031090123453', true)).toBe(DIGIT_RUN);
    expect(traitsOf('geo:59.91,10.75 ola@x.no 35403109012345', true)).toBe(COLON | AT | DIGIT_RUN);
    expect(traitsOf('geo:59.91,10.75 ola@x.no 35403109012345', false)).toBe(COLON | AT);
    /* Too short for what needs them: a@b.no is the shortest email, tel: and 7 digits the shortest text needing a ':'. */
    expect([traitsOf('a@b.n', true), traitsOf('a@b.no', true), traitsOf('tel:123456', true), traitsOf('tel:1234567', true)]).toEqual([0, AT, 0, COLON]);
  });
});

describe('digit checks without regexes', () => {
  const rand = prng(12);
  const samples = ['', '0', '00', '01', '0001', '00010', '000a', '5', 'a', '0123456789', '01234567890123456789', '012345678901234567890',
    '12345678901234567890', '890123', '9012', '5555555555555555', '0000000000000007'];
  for (let i = 0; i < 5000; i++) {
    const r = rand();
    samples.push(r < 0.3 ? ascending(rand) : r < 0.5 ? String(Math.floor(rand() * 10)).repeat(Math.floor(rand() * 20)) + (rand() < 0.5 ? String(Math.floor(rand() * 10)) : '')
      : randomText(rand, r < 0.8 ? '0123456789' : '0000001x', 22));
  }

  it('placeholder digits: one digit repeated, a piece of 0123456789..., or zeros and one last digit', () => {
    for (const s of samples) {
      const plain = /^(\d)\1*$/.test(s) || '01234567890123456789'.includes(s) || '12345678901234567890'.includes(s) || /^0+[1-9]?$/.test(s);
      expect([s, isPlaceholderDigits(s)]).toEqual([s, plain]);
    }
  });

  it('Luhn and TAC prefixes answer as the textbook definitions', () => {
    const checkDigit = (body: string): number => {
      let sum = 0;
      [...body].reverse().forEach((ch, i) => {
        const d = (ch.charCodeAt(0) - 48) * (i % 2 === 0 ? 2 : 1);
        sum += d > 9 ? d - 9 : d;
      });
      return (10 - (sum % 10)) % 10;
    };
    for (const s of samples) {
      /* Both are only ever asked about digits. */
      if (/^\d+$/.test(s)) {
        expect([s, luhnCheckDigit(s)]).toEqual([s, checkDigit(s)]);
        expect([s, luhnValid(s)]).toEqual([s, s.length > 1 && checkDigit(s.slice(0, -1)) === Number(s.slice(-1))]);
      }
      expect([s, currentTac(s)]).toEqual([s, ['01', '35', '86', '91', '99'].includes(s.slice(0, 2))]);
      expect([s, plausibleTac(s)]).toEqual([s, ['01', '10', '30', '33', '35', '44', '45', '49', '50', '51', '52', '53', '54', '86', '91', '98', '99'].includes(s.slice(0, 2))]);
    }
  });
});

describe('key facts', () => {
  it('answers each key with its own facts, whatever keys shared a slot before', () => {
    /* Same length, first and last character: the same direct-mapped slot. */
    const pairs: Array<[string, string | undefined]> = [['imei', 'imei'], ['iami', undefined], ['imsi', 'imsi'], ['imei', 'imei'], ['lat', undefined], ['lot', undefined]];
    for (let round = 0; round < 3; round++) {
      for (const [key, cls] of pairs) {
        const fresh = `${key} `.slice(0, key.length);
        expect([key, keyInfo(fresh).cls]).toEqual([key, cls]);
        expect(keyInfo(fresh).key).toBe(key);
      }
    }
  });
});

describe('explanations of repeated places', () => {
  const imei = luhn('35403109012345');

  it('are the same words as for a place seen the first time', () => {
    const first = detectFields([jsonField('imei', imei, { parents: ['device'] })]);
    const again = detectFields([jsonField('imei', imei, { parents: ['device'] })]);
    expect(again[0]!.explanation).toBe(first[0]!.explanation);
    expect(first[0]!.explanation).toBe('IMEI 354…453 (Luhn-valid) in JSON key imei.');
  });

  it('tell apart places with one path but another key or decoding chain', () => {
    const path = 'body>base64>json:$.device.x';
    const field = (key: string | null, chain: string[]): DecodedField => ({ path, key, keyPath: key ? ['device', key] : ['device'], value: imei, chain, group: 'body>base64>json:$.device' });
    const texts = [
      detectFields([field('imei', ['base64', 'json'])])[0]!.explanation,
      detectFields([field('IMEI1', ['base64', 'json'])])[0]!.explanation,
      detectFields([field('imei', ['gzip', 'base64', 'json'])])[0]!.explanation,
      detectFields([field('imei', ['base64', 'json'])])[0]!.explanation,
    ];
    expect(texts).toEqual([
      'IMEI 354…453 (Luhn-valid) in JSON key imei, inside a base64 body.',
      'IMEI 354…453 (Luhn-valid) in JSON key IMEI1, inside a base64 body.',
      'IMEI 354…453 (Luhn-valid) in JSON key imei, inside a base64, gzip-compressed body.',
      'IMEI 354…453 (Luhn-valid) in JSON key imei, inside a base64 body.',
    ]);
  });
});

describe('candidate bookkeeping', () => {
  it('keeps one finding per value and place, in the order they were first seen, past the few compared directly', () => {
    const imeis = Array.from({ length: 12 }, (_, i) => luhn(`354031090${String(10000 + i)}`));
    /* Each value under a telling key and, again, in free text: key and pattern compete for the same text. */
    const fields = imeis.flatMap((v, i) => [queryField(`imei${i % 2 ? '' : '1'}`, v), textField(`id ${v} end`)]);
    const found = detectFields([...fields, ...fields]);
    expect(found.map((f) => [f.value, f.detector, f.path])).toEqual(imeis.flatMap((v, i) => [[v, 'key', `query:imei${i % 2 ? '' : '1'}`], [v, 'pattern', 'body']]));
  });

  it('a lat/lon pair and a cell ID next to its MCC and MNC are still found after fields examined early', () => {
    const found = detectFields([
      jsonField('event', 'app_open'),
      jsonField('imei', luhn('35403109012345'), { parents: ['device'] }),
      jsonField('cid', '12345678', { parents: ['cell'] }),
      jsonField('mcc', '242', { parents: ['cell'] }),
      jsonField('mnc', '01', { parents: ['cell'] }),
      jsonField('lat', '59.9139', { parents: ['loc'] }),
      jsonField('lon', '10.7522', { parents: ['loc'] }),
    ]);
    expect(found.map((f) => f.type)).toEqual(['imei', 'cell_id', 'location']);
    expect(found[1]!.explanation).toContain('with MCC 242, MNC 01');
  });
});
