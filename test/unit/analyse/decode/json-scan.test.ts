/** The streaming JSON reader: same leaves as JSON.parse on valid JSON, partial on cut bodies, nothing on non-JSON. */
import { decodeBytesRelaxed as decodeBytes } from './helpers';
import { IDS, prng } from './helpers';

/** Reference: leaves of JSON.parse's result, located the same way. */
function referenceLeaves(doc: unknown, locator = '$', out: Array<[string, string]> = []): Array<[string, string]> {
  if (Array.isArray(doc)) doc.forEach((v, i) => referenceLeaves(v, `${locator}[${i}]`, out));
  else if (doc && typeof doc === 'object') {
    for (const [k, v] of Object.entries(doc)) referenceLeaves(v, /^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(k) ? `${locator}.${k}` : `${locator}[${JSON.stringify(k)}]`, out);
  } else if (doc !== null && !(typeof doc === 'string' && /^[ \t\r\n\ufeff]*$/.test(doc))) out.push([`body>json:${locator}`, String(doc)]);
  return out;
}

function randomDoc(rand: () => number, depth: number): unknown {
  const r = rand();
  const pieces = ['a', 'Ø', '"', '\\', '\n', '\u2028', '😀', '{', ']', ',', ':', ' ', 'imei', '\t', '/'];
  const str = () => Array.from({ length: Math.floor(rand() * 8) }, () => pieces[Math.floor(rand() * pieces.length)]).join('');
  if (depth > 4 || r < 0.35) {
    const k = Math.floor(rand() * 6);
    return [str(), Math.floor(rand() * 1e6) - 5e5, rand() * 100, true, false, null][k];
  }
  if (r < 0.65) return Array.from({ length: Math.floor(rand() * 4) }, () => randomDoc(rand, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = 0; i < Math.floor(rand() * 4); i++) o[`k${i}${str()}`] = randomDoc(rand, depth + 1);
  return o;
}

test('500 random documents (escapes, unicode, nesting, odd keys): same leaves as JSON.parse', () => {
  const rand = prng(7);
  for (let n = 0; n < 500; n++) {
    const doc = { root: randomDoc(rand, 0), list: [randomDoc(rand, 1)] };
    const text = JSON.stringify(doc, null, n % 2 ? 2 : undefined);
    const got = decodeBytes(Buffer.from(text), 'application/json').fields.filter((f) => f.chain.length === 1).map((f) => [f.path, f.value]);
    const want = referenceLeaves(JSON.parse(text)).map(([p, v]) => [p, v]);
    const norm = (xs: string[][]) => xs.map(([p, v]) => `${p}=${Number.isFinite(Number(v)) && v.trim() !== '' && !/^0\d/.test(v) ? Number(v) : v}`).sort();
    expect({ n, leaves: norm(got) }).toEqual({ n, leaves: norm(want) });
  }
});

test('numbers keep their exact text', () => {
  const r = decodeBytes(Buffer.from(`{"iccid":${IDS.iccid},"lat":59.91270,"e":1e-7,"neg":-0.5}`), 'application/json');
  expect(r.fields.map((f) => f.value)).toEqual([IDS.iccid, '59.91270', '1e-7', '-0.5']);
});

test('a body cut by the capture limit still yields the fields before the cut, with a note', () => {
  const text = JSON.stringify({ imei: IDS.imei, events: Array.from({ length: 50 }, (_, i) => ({ n: i, s: 'x'.repeat(20) })) });
  const r = decodeBytes(Buffer.from(text.slice(0, 400)), 'application/json');
  expect(r.fields.find((f) => f.path === 'body>json:$.imei')?.value).toBe(IDS.imei);
  expect(r.notes.join()).toMatch(/JSON at body ends before the document does/);
});

test.each([
  ['a log line in brackets', '[2019-03-01 10:00:00] started ok'],
  ['JSON followed by more text', '{"a":1} and then some'],
  ['braces around prose', '{hello world}'],
  ['a bad escape', '{"a":"\\q"}'],
  ['leading zeros', '[0123]'],
])('not JSON: %s', (_what, text) => {
  const r = decodeBytes(Buffer.from(text), 'text/plain');
  expect(r.fields.some((f) => f.chain.includes('json'))).toBe(false);
});

test('numbers: every JSON number is kept digit for digit, and a malformed one makes the text not JSON', () => {
  const rand = prng(13);
  const pieces = ['-', '0', '1', '9', '07', '.', '.5', 'e', 'E', '+', '-', '12', '3e', '0.0'];
  let valid = 0;
  for (let n = 0; n < 2000; n++) {
    const number = Array.from({ length: 1 + Math.floor(rand() * 5) }, () => pieces[Math.floor(rand() * pieces.length)]).join('');
    const text = `{"n":${number},"k":"v"}`;
    let parsed = true;
    try {
      JSON.parse(text);
    } catch {
      parsed = false;
    }
    const fields = decodeBytes(Buffer.from(text), 'application/json').fields.filter((f) => f.path.startsWith('body>json:'));
    if (parsed) {
      valid++;
      expect({ text, leaves: fields.map((f) => f.value) }).toEqual({ text, leaves: [number, 'v'] });
    } else {
      expect({ text, leaves: fields.map((f) => f.path) }).toEqual({ text, leaves: [] });
    }
  }
  expect(valid).toBeGreaterThan(200);
});
