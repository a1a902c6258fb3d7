import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseProfileArgs } from '../../../proxy/pipeline/profiles';

describe('--profile FILE and IP=FILE', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-profiles-'));
    fs.writeFileSync(path.join(dir, 'nokia.json'), JSON.stringify({ name: 'Nokia 7 plus', imei: '490154203237518' }));
    fs.writeFileSync(path.join(dir, 'other.json'), JSON.stringify({ name: 'Other', phone: '+4791234567' }));
    fs.writeFileSync(path.join(dir, 'typo.json'), JSON.stringify({ imei: '490154203237519' }));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('takes a bare FILE as the default and IP=FILE per device', () => {
    const p = parseProfileArgs([path.join(dir, 'nokia.json'), `192.168.1.23=${path.join(dir, 'other.json')}`, `fe80::1=${path.join(dir, 'nokia.json')}`]);
    expect(p.defaultProfile).toEqual({ name: 'Nokia 7 plus', imei: '490154203237518' });
    expect(p.devices).toEqual([['192.168.1.23', { name: 'Other', phone: '+4791234567' }], ['fe80::1', { name: 'Nokia 7 plus', imei: '490154203237518' }]]);
  });

  it('refuses two defaults and reports an invalid identifier with the file name', () => {
    expect(() => parseProfileArgs([path.join(dir, 'nokia.json'), path.join(dir, 'other.json')])).toThrow(/only one default profile/);
    expect(() => parseProfileArgs([path.join(dir, 'typo.json')])).toThrow(/typo\.json.*imei/);
  });
});
