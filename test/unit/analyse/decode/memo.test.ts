/**
 * Texts no decoder can read are remembered across flows, so a User-Agent or an app name is not
 * offered to every decoder on every request. Whether a decoder declines can depend on the limits
 * (a JSON text with trailing junk is read when the field limit stops the reader before the junk),
 * so what was remembered under one set of limits must not decide a flow decoded under another.
 */
import { decodeFlow } from '../../../../proxy/analyse/decode';
import { makeFlow } from './helpers';

const JUNK_AFTER_JSON = '{"a":"1","b":"2"} x';
const flow = () => makeFlow({ url: `http://example.test/?q=${encodeURIComponent(JUNK_AFTER_JSON)}` });

describe('undecodable texts remembered across flows', () => {
  test('a text declined under the default limits is still read under limits that read it', () => {
    const first = decodeFlow(flow());
    expect(first.fields.find((f) => f.key === 'q')?.value).toBe(JUNK_AFTER_JSON);
    expect(first.fields.some((f) => f.path.includes('json'))).toBe(false);

    const limited = decodeFlow(flow(), { maxFields: 1 });
    expect(limited.fields.map((f) => f.path)).toContain('query:q>json:$.a');
  });

  test('the same flow decodes the same way the first time and after its texts were remembered', () => {
    const ua = 'Mozilla/5.0 (Linux; Android 9; TA-1046 Build/PPR1.180610.011) AppleWebKit/537.36';
    const f = () => makeFlow({ url: 'http://example.test/config?app=com.example.app&v=7', headers: [['User-Agent', ua]] });
    const a = decodeFlow(f());
    const b = decodeFlow(f());
    expect(b).toEqual(a);
    expect(a.fields.find((x) => x.key === 'User-Agent')?.value).toBe(ua);
  });
});
