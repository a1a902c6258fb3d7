/**
 * The hex decoder decides from the digits themselves whether the bytes they stand for are text or
 * compressed data (so declining allocates nothing). That decision must be exactly the one the
 * byte-level checks make on the decoded bytes: checked here against them on random noise, text,
 * every kind of broken UTF-8, and compression headers.
 */
import { isUtf8 } from 'node:buffer';
import * as zlib from 'node:zlib';
import { hexDecoder } from '../../../../proxy/analyse/decode/decoders/hex';
import { DecodeContext } from '../../../../proxy/analyse/decode/context';
import { resolveLimits } from '../../../../proxy/analyse/decode/limits';
import { hasGzipMagic, hasZlibMagic, isMostlyPrintable } from '../../../../proxy/analyse/decode/text';
import { prng } from './helpers';

/** What the decoder said before it read the digits in place: decode, then check the bytes. */
function reference(hex: string): boolean {
  if (!/^(?:[0-9a-fA-F]{2}){4,}$/.test(hex)) return false;
  const bytes = Buffer.from(hex, 'hex');
  return isMostlyPrintable(bytes) || hasGzipMagic(bytes) || hasZlibMagic(bytes);
}

function accepted(hex: string): boolean {
  const out = hexDecoder.decode(hex, new DecodeContext(resolveLimits()), {});
  if (out && out.kind === 'transform') expect(Buffer.compare(out.data as Buffer, Buffer.from(hex, 'hex'))).toBe(0);
  return out !== null;
}

describe('hex decoder: deciding from the digits equals deciding from the bytes', () => {
  const rand = prng(4242);
  const randomBytes = (n: number, pick: () => number) => Buffer.from(Array.from({ length: n }, pick));

  test('random noise, text with a few control characters, and random UTF-8-ish bytes', () => {
    const cases: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const n = 4 + Math.floor(rand() * 60);
      cases.push(randomBytes(n, () => Math.floor(rand() * 256)).toString('hex'));
      cases.push(randomBytes(n, () => (rand() < 0.03 ? Math.floor(rand() * 32) : 0x20 + Math.floor(rand() * 95))).toString('hex'));
      /* Bytes drawn from lead and continuation ranges, so every UTF-8 rule gets exercised. */
      const utf8ish = [0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff];
      cases.push(randomBytes(n, () => utf8ish[Math.floor(rand() * utf8ish.length)]!).toString('hex'));
      /* Valid UTF-8 text of 1- to 4-byte characters, and the same with one byte changed. */
      const points = Array.from({ length: 2 + Math.floor(rand() * 12) }, () => [0x61, 0xe9, 0x4e2d, 0x1f600][Math.floor(rand() * 4)]! + Math.floor(rand() * 20));
      const text = Buffer.from(String.fromCodePoint(...points));
      cases.push(text.toString('hex'));
      const broken = Buffer.from(text);
      broken[Math.floor(rand() * broken.length)] = utf8ish[Math.floor(rand() * utf8ish.length)]!;
      cases.push(broken.toString('hex'));
    }
    let acceptedCount = 0;
    let multibyteText = 0;
    for (const hex of cases) {
      const want = reference(hex);
      expect({ hex, accepted: accepted(hex) }).toEqual({ hex, accepted: want });
      if (want) acceptedCount++;
      const bytes = Buffer.from(hex, 'hex');
      if (want && bytes.some((b) => b >= 0x80) && isUtf8(bytes)) multibyteText++;
    }
    /* The cases cover both answers, multibyte text included. */
    expect(acceptedCount).toBeGreaterThan(500);
    expect(multibyteText).toBeGreaterThan(20);
  });

  test('edge cases: overlong forms, surrogates, beyond U+10FFFF, cut sequences, upper-case digits', () => {
    const texts = ['héllo wörld', 'IMEI 354031090123453 ✓', 'emoji 😀 here', '\u{10FFFF}abcd'];
    const raw = ['c080414243', 'e08080414243', 'eda080414243', 'f4908080414243', 'f5808080414243', '41424344c3', '414243e282', '41424344f09f98', 'c3a9c3a9c3a9c3a9'];
    const cases = [...texts.map((t) => Buffer.from(t).toString('hex')), ...raw, ...texts.map((t) => Buffer.from(t).toString('hex').toUpperCase()), '0g414243', '4142434', '414243'];
    for (const hex of cases) expect({ hex, accepted: accepted(hex) }).toEqual({ hex, accepted: reference(hex) });
  });

  test('gzip and zlib data are recognised by their headers', () => {
    const gz = zlib.gzipSync('imei=354031090123453').toString('hex');
    const zl = zlib.deflateSync('imei=354031090123453').toString('hex');
    expect(accepted(gz)).toBe(true);
    expect(accepted(zl)).toBe(true);
    expect(accepted(gz.slice(0, 18))).toBe(reference(gz.slice(0, 18)));
  });
});
