import { HostPatternList, parseAuthority } from '../../../proxy/capture/target';

describe('capture/target: validating where a phone asks to go', () => {
  it.each([
    ['zzhc.vnet.cn:9999', undefined, { host: 'zzhc.vnet.cn', port: 9999, isIp: false }],
    ['Example.COM:443', undefined, { host: 'example.com', port: 443, isIp: false }],
    ['example.com', 80, { host: 'example.com', port: 80, isIp: false }],
    ['10.0.0.1:8443', undefined, { host: '10.0.0.1', port: 8443, isIp: true }],
    ['[2001:db8::1]:443', undefined, { host: '2001:db8::1', port: 443, isIp: true }],
    ['[::1]', 80, { host: '::1', port: 80, isIp: true }],
    ['_dmarc.example.com:53', undefined, { host: '_dmarc.example.com', port: 53, isIp: false }],
    ['example.com.:443', undefined, { host: 'example.com', port: 443, isIp: false }],
  ])('accepts %s', (text, def, expected) => {
    expect(parseAuthority(text, def)).toEqual(expected);
  });

  it.each([
    ['127.0.0.1:99999', /out of range/],
    ['127.0.0.1:0', /out of range/],
    ['127.0.0.1:-5', /invalid port/],
    ['x:', /invalid port/],
    ['../../x:443', /invalid hostname/],
    ['..:443', /invalid hostname/],
    ['a/b:443', /invalid hostname/],
    ['host name:443', /invalid hostname/],
    ['2001:db8::1:443', /brackets/],
    ['[2001:db8::1:443', /unterminated/],
    ['[not-v6]:443', /invalid IPv6/],
    ['-bad.example:443', /invalid hostname/],
    [`${'a'.repeat(64)}.example:443`, /invalid hostname/],
    ['example.com', /port missing/],
    [':443', /invalid hostname/],
  ])('refuses %s', (text, message) => {
    expect(() => parseAuthority(text)).toThrow(message);
  });

  it('--ignore-hosts: exact names and *.suffix wildcards, case-insensitive', () => {
    const list = new HostPatternList(['*.apple.com', 'Example.org', '10.0.0.1']);
    expect(list.matches('gsp-ssl.ls.apple.com')).toBe(true);
    expect(list.matches('GS.APPLE.COM')).toBe(true);
    expect(list.matches('apple.com')).toBe(false);
    expect(list.matches('notapple.com')).toBe(false);
    expect(list.matches('example.org')).toBe(true);
    expect(list.matches('www.example.org')).toBe(false);
    expect(list.matches('10.0.0.1')).toBe(true);
    expect(list.matches(undefined)).toBe(false);
  });

  it.each(['*', 'a.*.com', 'bad host', '*.'])('refuses the host pattern %s', (p) => {
    expect(() => new HostPatternList([p])).toThrow(/invalid host pattern/);
  });
});
