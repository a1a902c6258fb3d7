/**
 * Offline GeoIP/ASN lookup: range search on small hand-made tables (quoted owners, unsorted input,
 * IPv6, private addresses), and the shipped databases answering for well-known public addresses.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildGeoTables, createGeoLookup, geoLookupOver, loadGeoLookup, parsePublicAddress } from '../../../proxy/geo';
import { cacheFileName, deserializeGeoTables, readGeoCache, serializeGeoTables, writeGeoCache } from '../../../proxy/geo/cache';
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

describe('cache file name', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-geo-name-'));
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
  const install = (where: string, version: string, rows: string): string => {
    const dir = path.join(root, where, 'node_modules', '@ip-location-db', 'asn');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: '@ip-location-db/asn', version }));
    fs.writeFileSync(path.join(dir, 'asn-ipv4-num.csv'), rows);
    return path.join(dir, 'asn-ipv4-num.csv');
  };

  it('is the same for two checkouts of the same database release, and changes with the release or the data', () => {
    const a = install('checkout-a', '2.3.2026061719', '16777216,16777471,13335,Cloudflare\n');
    const b = install('checkout-b', '2.3.2026061719', '16777216,16777471,13335,Cloudflare\n');
    const newer = install('checkout-c', '2.3.2026070119', '16777216,16777471,13335,Cloudflare\n');
    const bigger = install('checkout-d', '2.3.2026061719', '16777216,16777471,13335,Cloudflare, Inc.\n');
    expect(cacheFileName([a])).toBe(cacheFileName([b]));
    expect(cacheFileName([newer])).not.toBe(cacheFileName([a]));
    expect(cacheFileName([bigger])).not.toBe(cacheFileName([a]));
    expect(cacheFileName([a])).toMatch(/^geo-[0-9a-f]{20}\.bin$/);
  });
});

describe('binary cache format', () => {
  const sources = {
    countryV4: () => '16777472,16778239,CN\n16777216,16777471,AU\n',
    asnV4: () => '16777216,16777471,13335,"Cloudflare, Inc."\n16777472,16778239,4134,Chinanet\n',
    countryV6: () => '2001:db9::,2001:db9:ffff:ffff:ffff:ffff:ffff:ffff,NO\n',
    asnV6: () => '2001:db9::,2001:db9:ffff:ffff:ffff:ffff:ffff:ffff,2119,"Telenor ""Norge"" AS"\n',
  };
  const bytes = serializeGeoTables(buildGeoTables(sources), 'sig-1');

  it('answers exactly like the CSV tables it was built from', () => {
    const csv = createGeoLookup(sources);
    const cached = geoLookupOver(deserializeGeoTables(bytes, 'sig-1'), 'cache');
    for (const ip of ['1.0.0.1', '1.0.1.7', '1.0.8.1', '2001:db9:1::5', '10.0.0.1', '::ffff:1.0.0.1']) {
      expect({ ip, facts: cached.lookup(ip) }).toEqual({ ip, facts: csv.lookup(ip) });
    }
    expect(cached.lookup('2001:db9:1::5')).toEqual({ country: 'NO', asn: 2119, org: 'Telenor "Norge" AS' });
  });

  it('refuses a file from other sources, a cut file, and garbage', () => {
    expect(() => deserializeGeoTables(bytes, 'sig-2')).toThrow(/other source files/);
    for (const cut of [10, 40, bytes.length - 9]) expect(() => deserializeGeoTables(bytes.subarray(0, cut), 'sig-1')).toThrow();
    expect(() => deserializeGeoTables(Buffer.from('PK\u0003\u0004 not a cache'), 'sig-1')).toThrow(/not a phonehome geo cache/);
  });

  it('reads from an unaligned buffer too', () => {
    const shifted = Buffer.alloc(bytes.length + 3);
    bytes.copy(shifted, 3);
    expect(geoLookupOver(deserializeGeoTables(shifted.subarray(3), 'sig-1'), 'cache').lookup('1.0.1.7')).toMatchObject({ asn: 4134 });
  });
});

/** Real public addresses whose owner and country are well known; pure lookups, no packet is sent. */
const WELL_KNOWN: Array<[ip: string, country: string | undefined, asn: number, org: RegExp]> = [
  ['8.8.8.8', 'US', 15169, /^Google LLC$/], // Google Public DNS
  ['2001:4860:4860::8888', 'US', 15169, /^Google LLC$/],
  ['1.1.1.1', undefined, 13335, /^Cloudflare, Inc\.$/], // Cloudflare DNS (registered to APNIC research: AU in whois)
  ['202.96.128.86', 'CN', 4134, /^Chinanet$/], // China Telecom Guangdong DNS
  ['193.213.112.4', 'NO', 2119, /^Telenor Norge AS$/], // Telenor Norway
  ['77.88.8.8', 'RU', 13238, /^YANDEX LLC$/], // Yandex DNS
];

describe('loadGeoLookup (shipped offline databases) through the binary cache', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-geo-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  // The first load parses the CSV files and writes the cache; the second reads the cache.
  const built = loadGeoLookup({ cacheDir: dir });
  const cached = loadGeoLookup({ cacheDir: dir });

  it('builds the cache once, then loads from it', () => {
    expect(built.source).toBe('csv');
    expect(cached.source).toBe('cache');
    const files = fs.readdirSync(dir);
    expect(files).toEqual([expect.stringMatching(/^geo-[0-9a-f]{20}\.bin$/)]);
    expect(fs.statSync(path.join(dir, files[0]!)).mode & 0o777).toBe(0o600);
  });

  it.each(WELL_KNOWN)('%s → %s, AS%s', (ip, country, asn, org) => {
    for (const geo of [built, cached]) {
      const facts = geo.lookup(ip)!;
      expect(facts.asn).toBe(asn);
      expect(facts.org).toMatch(org);
      if (country) expect(facts.country).toBe(country);
      else expect(facts.country).toMatch(/^[A-Z]{2}$/);
    }
  });

  it('private, loopback and link-local addresses are not looked up', () => {
    for (const ip of ['10.1.2.3', '127.0.0.1', '192.168.1.1', '169.254.0.5', 'fe80::1', '::1', 'fd00::5']) expect(cached.lookup(ip)).toBeUndefined();
  });

  it('a damaged cache reads as missing (the loader then rebuilds it); an unwritable directory is not an error', () => {
    const name = fs.readdirSync(dir)[0]!;
    const file = path.join(dir, name);
    expect(readGeoCache(file, name)).toBeDefined();
    const copy = path.join(dir, 'damaged.bin');
    fs.writeFileSync(copy, fs.readFileSync(file).subarray(0, 1000));
    expect(readGeoCache(copy, name)).toBeUndefined();
    expect(readGeoCache(path.join(dir, 'missing.bin'), name)).toBeUndefined();
    const blocker = path.join(dir, 'a-file');
    fs.writeFileSync(blocker, '');
    expect(writeGeoCache(path.join(blocker, 'cache', name), buildGeoTables({ countryV4: () => '', asnV4: () => '' }), name)).toBe(false);
  });
});
