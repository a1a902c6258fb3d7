import { ClientAccessList, parseCidr } from '../../../proxy/capture/access';

describe('capture/access: who may use the proxy', () => {
  const defaults = new ClientAccessList();

  it.each([
    ['127.0.0.1', true],
    ['192.168.1.23', true],
    ['10.200.0.7', true],
    ['172.16.0.1', true],
    ['172.31.255.254', true],
    ['169.254.10.10', true],
    ['::1', true],
    ['fe80::1c2b:3ff:fe4d:5e6f', true],
    ['fd12:3456::9', true],
    ['::ffff:192.168.1.5', true],
    ['::ffff:8.8.8.8', false],
    ['172.32.0.1', false],
    ['8.8.8.8', false],
    ['2001:4860:4860::8888', false],
    ['', false],
    ['not-an-ip', false],
  ])('default list: %s → %s', (addr, allowed) => {
    expect(defaults.allows(addr)).toBe(allowed);
  });

  it('an explicit list replaces the defaults, and single addresses work as /32', () => {
    const only = new ClientAccessList(['10.1.2.0/24', '203.0.113.9']);
    expect(only.allows('10.1.2.200')).toBe(true);
    expect(only.allows('10.1.3.1')).toBe(false);
    expect(only.allows('203.0.113.9')).toBe(true);
    expect(only.allows('203.0.113.10')).toBe(false);
    expect(only.allows('127.0.0.1')).toBe(false);
  });

  it.each(['10.0.0.0/33', 'everyone', '10.0.0/8', '::/129', '1.2.3.4/x'])('rejects %s with a clear error', (bad) => {
    expect(() => parseCidr(bad)).toThrow(/not an IP address|prefix length/);
  });

  it('0.0.0.0/0 opens IPv4 only when a user asks for it explicitly', () => {
    const open = new ClientAccessList(['0.0.0.0/0']);
    expect(open.allows('8.8.8.8')).toBe(true);
    expect(open.allows('2001:db8::1')).toBe(false);
  });
});
