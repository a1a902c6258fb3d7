/**
 * Forms as servers read them. A body declared application/x-www-form-urlencoded is split the way the
 * WHATWG URL standard (browsers, and Node's URLSearchParams, the reference here) splits it, whatever
 * its names look like (`a(b)`, `it's`, spaces), so one odd key no longer hides the `imei=` beside
 * it. Undeclared text is read as a form only in the strict shape (precision): the one-pass check
 * must say exactly what the regular expression it replaced said.
 */
import * as zlib from 'node:zlib';
import { analyseFlow } from '../../../../proxy/analyse';
import { FormPairs, splitPairs } from '../../../../proxy/analyse/decode/decoders/form-pairs';
import { isStrictFormShape } from '../../../../proxy/analyse/decode/decoders/form';
import { decodeBytesRelaxed as decodeBytes, IDS, makeFlow, prng } from './helpers';

const FORM = 'application/x-www-form-urlencoded';

describe('a declared form is read whatever its names look like', () => {
  test.each([
    ['a name with parentheses', `a(b)=1&imei=${IDS.imei}`, 'a(b)', '1'],
    ['a name with an apostrophe', `it's=yes&imei=${IDS.imei}`, "it's", 'yes'],
    ['a raw space in a name', `screen size=1080x2340&imei=${IDS.imei}`, 'screen size', '1080x2340'],
    ['raw spaces and parentheses in a value', `ua=Dalvik/2.1.0 (Linux; U; Android 9)&imei=${IDS.imei}`, 'ua', 'Dalvik/2.1.0 (Linux; U; Android 9)'],
    ['a bad percent escape', `q=100%&imei=${IDS.imei}`, 'q', '100%'],
  ])('%s: the IMEI beside it is found as a form field', (_what, body, oddKey, oddValue) => {
    const flow = makeFlow({ url: 'http://fota.example/check', headers: [['Content-Type', FORM]], body });
    const result = analyseFlow(flow, { limits: { timeBudgetMs: 60_000 } });
    expect(result.findings.map((f) => [f.type, f.value, f.path])).toEqual([['imei', IDS.imei, 'body>form:imei']]);
    expect(result.fields.find((f) => f.key === oddKey)).toMatchObject({ path: `body>form:${oddKey}`, value: oddValue, chain: ['form'] });
  });

  test('raw bytes that are not UTF-8 (a Latin-1 name) become U+FFFD, as servers decode them; the pairs around are read', () => {
    const body = Buffer.concat([Buffer.from('name=J'), Buffer.from([0xfc]), Buffer.from(`rgen&imei=${IDS.imei}`)]);
    const r = decodeBytes(body, FORM);
    expect(r.fields.map((f) => [f.path, f.value])).toEqual([['body>form:name', 'J\ufffdrgen'], ['body>form:imei', IDS.imei]]);
  });

  test('undeclared, the same text is not taken for a form (it could be prose): no form fields', () => {
    const r = decodeBytes(Buffer.from(`a(b)=1&imei=${IDS.imei}`), undefined);
    expect(r.fields.some((f) => f.chain.includes('form'))).toBe(false);
  });

  test.each([
    ['XML', `<req><imei>${IDS.imei}</imei><q a="1"/></req>`, 'body>xml:/req/imei'],
    ['gzip (magic bytes, no Content-Encoding)', zlib.gzipSync(`imei=${IDS.imei}&x=1`), 'body>gzip>form:imei'],
    ['percent-encoded JSON', encodeURIComponent(JSON.stringify({ imei: IDS.imei })), 'body>percent>json:$.imei'],
  ])('a "form" that is really %s is read as what it is', (_what, body, path) => {
    const r = decodeBytes(Buffer.from(body), FORM);
    expect(r.fields.find((f) => f.value === IDS.imei)?.path).toBe(path);
  });

  test('text with no "=" declared as a form is one text field', () => {
    expect(decodeBytes(Buffer.from('hello from the phone'), FORM).fields.map((f) => f.path)).toEqual(['body']);
  });
});

/** Random form text: names and values from characters that matter to the parser (and some that do not). */
function randomForm(rand: () => number, alphabet: string[]): string {
  let s = '';
  const n = Math.floor(rand() * 40);
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(rand() * alphabet.length)];
  return s;
}

/**
 * The standard's reading of one name or value, written independently of phonehome's: '+' is a space,
 * %XX (two hex digits) is a byte, anything else stays, and the bytes are UTF-8 (bad sequences U+FFFD).
 */
function standardDecode(s: string): string {
  const latin = Buffer.from(s.replace(/\+/g, ' ')).toString('latin1').replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  return Buffer.from(latin, 'latin1').toString('utf8');
}

describe('pairs are what the WHATWG urlencoded parser reads', () => {
  const alphabet = ['a', 'b', 'Z', '0', '9', '=', '=', '&', '&', '+', '%', '%2', '%41', '%e2%82%ac', '%E2%82', '%FF', '%zz', ' ', "'", '(', ')', 'é', '€', '😀', '"', ';', ',', '.', '-'];
  test('5000 random bodies, read from text, from bytes, and split at once', () => {
    const rand = prng(14);
    let checkedAgainstNode = 0;
    const mismatches: object[] = [];
    for (let k = 0; k < 5000; k++) {
      const body = randomForm(rand, alphabet).replace(/^\?+/, '');
      const expected: [string | null, string][] = [];
      for (const part of body.split('&')) {
        if (!part) continue;
        const eq = part.indexOf('=');
        const name = standardDecode(eq < 0 ? part : part.slice(0, eq));
        const value = eq < 0 ? '' : standardDecode(part.slice(eq + 1));
        /* phonehome's one addition: a nameless part of 8 or more characters is a value (an encoded blob), not a flag. */
        expected.push(eq < 0 && part.length >= 8 ? [null, name] : [name, value]);
      }
      /*
       * Node's URLSearchParams agrees, except that after a good escape it turns a bad one followed by
       * non-ASCII text into U+FFFD ('x=%2a%2é' gives '*%2\ufffd'): it is the cross-check where ASCII only.
       */
      if (/^[\x00-\x7f]*$/.test(body)) {
        expect([...new URLSearchParams(body)]).toEqual(expected.map(([n, v]) => (n === null ? [v, ''] : [n, v])));
        checkedAgainstNode++;
      }
      for (const pairs of [FormPairs.ofText(body, 'form'), FormPairs.ofBytes(Buffer.from(body), 0, Buffer.byteLength(body), null)]) {
        const got: [string | null, string][] = [];
        for (let e = pairs.next(); e !== null; e = pairs.next()) got.push([e.key, e.value as string]);
        if (JSON.stringify(got) !== JSON.stringify(expected) || !pairs.done) mismatches.push({ body, got, expected });
      }
      /* The all-at-once split (URL queries, forms under 1 MiB) gives the same pairs. */
      const split = splitPairs(body, 'form').map((e): [string | null, string] => [e.key, e.value as string]);
      if (JSON.stringify(split) !== JSON.stringify(expected)) mismatches.push({ body, split, expected });
    }
    expect(mismatches.slice(0, 3)).toEqual([]);
    expect(checkedAgainstNode).toBeGreaterThan(200);
  });
});

describe('the strict shape for undeclared text', () => {
  /* The regular expression phonehome used before (it ran out of stack on bodies of some megabytes). */
  const FORM_KEY = '[A-Za-z0-9_.\\-\\[\\]%*+:@$!~|]+';
  const FORM_SHAPE = new RegExp(`^${FORM_KEY}=[^&\\s]*(?:&+${FORM_KEY}(?:=[^&\\s]*)?)*&*$`);

  test('says what the regular expression said, on 20 000 random texts', () => {
    const rand = prng(15);
    const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
    const keyChars = ['a', 'k', '1', '_', '[', ']', '%', '.', '-', '*', '+', ':', '@', '$', '!', '~', '|'];
    const odd = [...Array(24).fill(''), ' ', '\t', '\n', '\u00a0', '\u2028', '\ufeff', '(', "'", '"', '{', '?', '/', 'é', '=', '&'];
    let forms = 0;
    const mismatches: object[] = [];
    for (let k = 0; k < 20_000; k++) {
      let text = pick(['', '', '', '', '&', '=']);
      const pairs = 1 + Math.floor(rand() * 4);
      for (let p = 0; p < pairs; p++) {
        if (p) text += pick(['&', '&', '&&', '&=', '']);
        for (let i = Math.floor(rand() * 4); i >= 0; i--) text += pick(keyChars);
        text += pick(odd);
        if (rand() < 0.8) text += '=' + pick(['v', '1', 'a=b', 'x y', '%41', '']) + pick(odd);
      }
      text += pick(['', '', '&', '&&', ' ']);
      const want = FORM_SHAPE.test(text);
      if (want) forms++;
      if (isStrictFormShape(text) !== want) mismatches.push({ text, want });
    }
    expect(mismatches.slice(0, 3)).toEqual([]);
    expect(forms).toBeGreaterThan(1000);
    expect(forms).toBeLessThan(18_000);
  });

  test('a 50 MB undeclared form (the regular expression ran out of stack on it) is checked and read', () => {
    const body = Buffer.alloc(50 * 1024 * 1024, 'x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa&');
    const head = `imei=${IDS.imei}&`;
    body.write(head);
    expect(decodeBytes(body, undefined).fields[0]).toMatchObject({ path: 'body>form:imei', value: IDS.imei });
  });
});
