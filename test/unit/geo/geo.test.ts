/**
 * Offline GeoIP/ASN lookup: range search on small hand-made tables (quoted owners, unsorted input,
 * IPv6, private addresses), and the shipped databases answering for well-known public addresses.
 */
import { createGeoLookup, loadGeoLookup, parsePublicAddress } from '../../../proxy/geo';
import { splitCsvLine } from '../../../proxy/geo/ranges';

describe('createGeoLookup', () => {
  let countryReads = 0;
  const geo = createGeoLookup({
    countryV4: () => { countryReads++; return '16777472,16778239,CN\n16777216,16777471,AU\n'; },
    asnV4: () => '16777216,16777471,13335,"Cloudflare, Inc."\n16777472,16778239,4134,Chinanet\nnot,a,row\n',
    countryV6: () => '2001:db9::,2001:db9:ffff:ffff:ffff:ffff:ffff:ffff,NO\n',
    asnV6: () => '2001:db9::,2001:db9:ffff:ffff:ffff:ffff:ffff:ffff,2119,"Telenor ""Norge"" AS"\nzz::,::1,1,bad\n',
  });

  it('finds the range holding an address, with a quoted owner name', () => {
    expect(geo.lookup('1.0.0.1')).toEqual({ country: 'AU', asn: 13335, org: 'Cloudflare, Inc.' });
    expect(geo.lookup('1.0.1.7')).toEqual({ country: 'CN', asn: 4134, org: 'Chinanet' });
  });

  it('answers unknown between ranges and for non-public addresses', () => {
    for (const ip of ['1.0.8.1', '10.1.2.3', '127.0.0.1', '192.168.0.10', '172.20.0.1', '169.254.1.1', '100.64.0.1', '::1', 'fe80::1', 'fd00::1', 'not an ip', '']) {
      expect({ ip, facts: geo.lookup(ip) }).toEqual({ ip, facts: undefined });
    }
  });

  it('looks up IPv6 and IPv4-mapped addresses', () => {
    expect(geo.lookup('2001:db9:1::5')).toEqual({ country: 'NO', asn: 2119, org: 'Telenor "Norge" AS' });
    expect(geo.lookup('::ffff:1.0.0.1')).toEqual({ country: 'AU', asn: 13335, org: 'Cloudflare, Inc.' });
  });

  it('reads each table once, lazily', () => {
    geo.lookup('1.0.0.2');
    geo.lookup('1.0.0.3');
    expect(countryReads).toBe(1);
  });
});

describe('parsePublicAddress / splitCsvLine', () => {
  it('parses bracketed and zoned addresses', () => {
    expect(parsePublicAddress('[2001:db9:7::1]')).toEqual({ family: 6, key: 0x20010db90007 });
    expect(parsePublicAddress('2001:db9:::1')).toBeUndefined();
    expect(parsePublicAddress('8.8.8.8')).toEqual({ family: 4, key: 134744072 });
  });

  it('splits quoted CSV fields', () => {
    expect(splitCsvLine('1,2,3,"a, ""b"" c"')).toEqual(['1', '2', '3', 'a, "b" c']);
  });
});

describe('loadGeoLookup (shipped offline databases)', () => {
  const geo = loadGeoLookup();
  beforeAll(() => geo.warm());
  it('knows well-known public resolvers', () => {
    expect(geo.lookup('8.8.8.8')).toMatchObject({ country: 'US', asn: 15169 });
    expect(geo.lookup('1.1.1.1')).toMatchObject({ asn: 13335 });
    expect(geo.lookup('2001:4860:4860::8888')).toMatchObject({ asn: 15169 });
  });
  it('knows China Telecom address space', () => {
    expect(geo.lookup('202.96.128.86')).toMatchObject({ country: 'CN', asn: 4134 });
  });
});
