/** Profile files: valid ones load; every mistake is reported with the file, the key and the reason. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadProfileFile, ProfileFileError } from '../../proxy/profile-file';

let dir: string;
beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'phonehome-profile-')); });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

describe('loadProfileFile', () => {
  it('loads a valid profile as written', () => {
    const path = write('ok.json', JSON.stringify({ name: 'Nokia 7 plus', imei: ['354201098765437'], phone: '+47 912 34 567', mac: 'D4:6A:6A:12:34:56' }));
    expect(loadProfileFile(path)).toEqual({ name: 'Nokia 7 plus', imei: ['354201098765437'], phone: '+47 912 34 567', mac: 'D4:6A:6A:12:34:56' });
  });

  it.each([
    ['unknown key', { imie: '354201098765437' }, /unknown key "imie"/],
    ['bad IMEI check digit', { imei: '354201098765430' }, /"imei": "354201098765430" is not valid: .*check digit should be 7/],
    ['non-string in a list', { imei: ['354201098765437', 42] }, /"imei" must be a string or a list of strings/],
    ['number instead of string', { phone: 4791234567 }, /"phone" must be a string/],
    ['not an object', ['354201098765437'], /JSON object/],
    ['name not a string', { name: 7 }, /"name" must be a string/],
  ])('reports %s', (_what, content, message) => {
    const path = write('bad.json', JSON.stringify(content));
    expect(() => loadProfileFile(path)).toThrow(ProfileFileError);
    expect(() => loadProfileFile(path)).toThrow(message);
    expect(() => loadProfileFile(path)).toThrow(path);
  });

  it('reports every problem at once', () => {
    const path = write('many.json', JSON.stringify({ imei: '1', iccid: '123', colour: 'red' }));
    expect(() => loadProfileFile(path)).toThrow(/"imei".*; "iccid".*; unknown key "colour"|"imei".*"iccid".*"colour"/);
  });

  it('reports invalid JSON and missing files with the path', () => {
    const bad = write('broken.json', '{"imei": ');
    expect(() => loadProfileFile(bad)).toThrow(new RegExp(`${bad}: not valid JSON`));
    expect(() => loadProfileFile(join(dir, 'absent.json'))).toThrow(/absent\.json: cannot read the profile: ENOENT/);
  });
});
