/**
 * The loopback classifier (proxy/capture/loopback.ts) over the spellings a hostile phone can use:
 * every IPv4 spelling that WHATWG's URL parser (Node's `URL`, an independent implementation of the
 * same rules glibc's inet_aton follows) reads as an address must be read as the same address, and
 * loopback must be recognised in every IPv6 form that carries it. Ordinary hosts must not be.
 */
import * as crypto from 'crypto';
import { canonicalAddress, isLocalhostName, looseIpv4, loopbackSpelling } from '../../../proxy/capture/loopback';

/** What Node's WHATWG URL parser makes of a host: a dotted quad, a name, or a failure. */
function urlHost(host: string): string {
  try {
    return new URL(`http://${host}/`).hostname;
  } catch {
    return 'INVALID';
  }
}

const LOOPBACK_SPELLINGS: Array<[string, string]> = [
  ['127.0.0.1', '127.0.0.1'],
  ['127.1', '127.0.0.1'],
  ['127.0.1', '127.0.0.1'],
  ['2130706433', '127.0.0.1'],
  ['0x7f000001', '127.0.0.1'],
  ['0X7F000001', '127.0.0.1'],
  ['017700000001', '127.0.0.1'],
  ['0177.0.0.1', '127.0.0.1'],
  ['0177.1', '127.0.0.1'],
  ['0x7f.1', '127.0.0.1'],
  ['0x7f.0x0.0x0.0x1', '127.0.0.1'],
  ['127.000.000.001', '127.0.0.1'],
  ['127.0x00000000000001', '127.0.0.1'],
  ['127.0.0.1.', '127.0.0.1'],
  ['127.255.255.254', '127.255.255.254'],
  ['127.0.1.1', '127.0.1.1'], // Debian's /etc/hosts entry for the machine's own name
  ['2147483647', '127.255.255.255'],
  ['::1', '::1'],
  ['0:0:0:0:0:0:0:1', '::1'],
  ['0000::0001', '::1'],
  ['::1%lo', '::1'],
  ['::ffff:127.0.0.1', '127.0.0.1'],
  ['::FFFF:127.0.0.1', '127.0.0.1'],
  ['::ffff:7f00:1', '127.0.0.1'],
  ['0:0:0:0:0:ffff:7f00:0001', '127.0.0.1'],
  ['::127.0.0.1', '127.0.0.1'],
  ['::7f00:1', '127.0.0.1'],
  ['::ffff:0:127.0.0.1', '127.0.0.1'],
  ['64:ff9b::127.0.0.1', '127.0.0.1'],
  ['64:ff9b::7f00:1', '127.0.0.1'],
];

const UNSPECIFIED_SPELLINGS: Array<[string, string]> = [
  ['0.0.0.0', '0.0.0.0'],
  ['0', '0.0.0.0'],
  ['0x0', '0.0.0.0'],
  ['00', '0.0.0.0'],
  ['0.0.0.0.', '0.0.0.0'],
  ['0.1.2.3', '0.1.2.3'],
  ['::', '::'],
  ['0:0:0:0:0:0:0:0', '::'],
  ['::ffff:0.0.0.0', '0.0.0.0'],
  ['::ffff:0:0', '0.0.0.0'],
];

const NOT_LOCAL: string[] = [
  '128.0.0.1', '126.255.255.255', '1.0.0.0', '10.0.0.1', '10.77.0.1', '172.16.0.1', '192.168.1.10', '169.254.1.1', '100.64.0.1',
  '8.8.8.8', '198.18.0.1', '255.255.255.255', '2130706431' /* 126.255.255.255 */, '2164260864' /* 129.0.0.0 */, '0x80000001',
  '::2', '::0.0.0.2', '::ffff:0:0:0', '64:ff9b::', '::ffff:128.0.0.1', '::ffff:10.0.0.1', '64:ff9b::8.8.8.8', 'fe80::1', 'fd77::1', '2001:db8::1', '1::1', '::1:0', 'ff02::1',
];

const NAMES: string[] = [
  'example.com', 'zzhc.vnet.cn', 'phonehome.setup', '127.example.com', 'localhost.example.com', 'mylocalhost', 'local', 'loopback',
  '0x7g000001', '127.0.0.1.nip.io', 'a127.0.0.1', '1.2.3.4.5', '256.0.0.1', '127.0.0.256', '4294967296', '1..2', '0x7f000001x',
];

describe('looseIpv4 reads IPv4 spellings as WHATWG URL (and inet_aton) do', () => {
  test.each([...LOOPBACK_SPELLINGS, ...UNSPECIFIED_SPELLINGS].filter(([s]) => !s.includes(':')))('%s is %s', (spelling, address) => {
    expect(urlHost(spelling)).toBe(address); // the reference agrees with the table
    expect(canonicalAddress(spelling)?.address).toBe(address);
  });

  test.each(NAMES)('%s is not an IPv4 address', (name) => {
    expect(looseIpv4(name)).toBeUndefined();
    expect(/^\d+\.\d+\.\d+\.\d+$/.test(urlHost(name))).toBe(false);
  });

  test('10,000 generated spellings of random addresses agree with the URL parser', () => {
    const rand = (n: number) => crypto.randomInt(n);
    const spell = (n: number): string => {
      const style = rand(3);
      const zeros = '0'.repeat(rand(3));
      if (style === 0) return String(n);
      if (style === 1) return `0${zeros}${n.toString(8)}`;
      return `0${rand(2) ? 'x' : 'X'}${zeros}${n.toString(16)}`;
    };
    for (let i = 0; i < 10_000; i++) {
      const value = crypto.randomBytes(4).readUInt32BE(0);
      const parts = 1 + rand(4);
      const bytes = [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255];
      const head = bytes.slice(0, parts - 1);
      const tail = bytes.slice(parts - 1).reduce((acc, b) => acc * 256 + b, 0);
      let text = [...head, tail].map(spell).join('.');
      if (rand(10) === 0) text += '.';
      const expected = urlHost(text);
      const got = canonicalAddress(text)?.address;
      if (got !== expected) throw new Error(`${text}: URL says ${expected}, classifier says ${got}`);
      expect(got).toBe(bytes.join('.'));
    }
  });
});

describe('loopbackSpelling', () => {
  test.each(LOOPBACK_SPELLINGS)('%s is loopback (%s)', (spelling, address) => {
    expect(loopbackSpelling(spelling)).toEqual({ address, kind: 'loopback' });
    expect(loopbackSpelling(spelling.toUpperCase())).toEqual({ address, kind: 'loopback' });
  });

  test.each(UNSPECIFIED_SPELLINGS)('%s is the unspecified address (%s): it reaches the laptop too', (spelling, address) => {
    expect(loopbackSpelling(spelling)).toEqual({ address, kind: 'unspecified' });
  });

  test.each(['localhost', 'LOCALHOST', 'localhost.', 'LocalHost.', 'app.localhost', 'a.b.localhost.'])('%s is loopback by name (RFC 6761)', (name) => {
    expect(isLocalhostName(name)).toBe(true);
    expect(loopbackSpelling(name)).toEqual({ address: 'localhost', kind: 'loopback' });
  });

  test.each([...NOT_LOCAL, ...NAMES])('%s is not loopback as spelled', (host) => {
    expect(loopbackSpelling(host)).toBeUndefined();
  });

  test('IPv6 addresses that are not loopback keep their own canonical form', () => {
    expect(canonicalAddress('FD77:0::1')).toEqual({ address: 'fd77::1', family: 6 });
    expect(canonicalAddress('::ffff:10.0.0.1')).toEqual({ address: '10.0.0.1', family: 4 });
  });
});
