/**
 * The facts the judge derives without a network: local addresses, registrable domains (public
 * suffix list), known trackers (shipped list + user entries), home region and cross-border, and
 * the phone's home country from profile, IMSI, phone number or configuration.
 */
import {
  compileTrackers, homeCountryOf, homeRegionOf, isCrossBorder, isLocalAddress, registrableDomain, trackerList,
  validateTrackerEntries, TrackerListError, SHIPPED_TRACKERS, TRACKER_CATEGORIES,
} from '../../../../proxy/analyse/judge';
import { compileProfile } from '../../../../proxy/analyse/profile';
import type { Finding } from '../../../../proxy/analyse/types';
import shipped from '../../../../proxy/analyse/judge/trackers.json';

describe('isLocalAddress', () => {
  it.each([
    '127.0.0.1', '127.5.6.7', '10.0.0.1', '172.16.0.1', '172.31.255.254', '192.168.1.23', '169.254.10.1', '100.64.0.1', '0.0.0.0',
    '::1', '::', 'fe80::1', 'FE80::abcd%eth0', 'fd12:3456::1', 'fc00::1', '::ffff:192.168.0.1', '[::1]',
  ])('%s is local', (ip) => expect(isLocalAddress(ip)).toBe(true));

  it.each(['8.8.8.8', '1.1.1.1', '172.32.0.1', '172.15.255.255', '192.169.0.1', '100.128.0.1', '202.96.128.86', '2001:4860:4860::8888', '::ffff:8.8.8.8', 'zzhc.vnet.cn', '', '999.1.1.1'])(
    '%s is not local', (ip) => expect(isLocalAddress(ip)).toBe(false));
});

describe('registrableDomain (public suffix list via tldts)', () => {
  it.each([
    ['zzhc.vnet.cn', 'vnet.cn'],
    ['a.b.example.co.uk', 'example.co.uk'],
    ['report.appmetrica.yandex.net', 'yandex.net'],
    ['WWW.Telenor.NO.', 'telenor.no'],
    ['app-measurement.com', 'app-measurement.com'],
  ])('%s → %s', (host, domain) => expect(registrableDomain(host)).toBe(domain));

  it('has none for IP literals, single labels and suffixes', () => {
    for (const host of ['8.8.8.8', '[2001:db8::1]', 'localhost', 'co.uk', '']) expect({ host, d: registrableDomain(host) }).toEqual({ host, d: undefined });
  });
});

describe('trackers', () => {
  const list = trackerList();

  it('ships a list that names its source and licence, every entry valid', () => {
    expect(shipped.about).toMatch(/Compiled by the phonehome authors/);
    expect(shipped.licence).toMatch(/MIT/);
    expect(SHIPPED_TRACKERS.length).toBe(shipped.entries.length);
    for (const e of SHIPPED_TRACKERS) expect(TRACKER_CATEGORIES).toContain(e.category);
  });

  it('matches a listed domain and its subdomains, most specific entry first', () => {
    expect(list.match('zzhc.vnet.cn')).toMatchObject({ company: 'China Telecom', category: 'activation' });
    expect(list.match('www.googleadservices.com')).toMatchObject({ company: 'Google', category: 'advertising' });
    expect(list.match('firebase-settings.crashlytics.com')).toMatchObject({ category: 'analytics' });
    expect(list.match('x.crashlytics.com')).toMatchObject({ category: 'crash-reporting' });
    expect(list.match('notvnet.cn')).toBeUndefined();
    expect(list.match('cn')).toBeUndefined();
    expect(list.match('example.org')).toBeUndefined();
  });

  it('takes user entries, which win for the same domain', () => {
    const user = validateTrackerEntries({ entries: [
      { domain: '*.telemetry.example.com', company: 'Example Corp', category: 'telemetry' },
      { domain: 'vnet.cn', company: 'My label', category: 'telemetry' },
    ] }, 'user.json');
    const mine = trackerList(user);
    expect(mine.match('a.telemetry.example.com')).toEqual({ domain: 'telemetry.example.com', company: 'Example Corp', category: 'telemetry' });
    expect(mine.match('zzhc.vnet.cn')).toMatchObject({ company: 'My label' });
    expect(compileTrackers([]).match('zzhc.vnet.cn')).toBeUndefined();
  });

  it('rejects malformed user entries, naming each', () => {
    expect(() => validateTrackerEntries([], 'f.json')).toThrow(TrackerListError);
    expect(() => validateTrackerEntries({ entries: [{ domain: 'ok.example', company: 'A', category: 'spying' }, { domain: 'no spaces', company: 'B', category: 'analytics' }] }, 'f.json'))
      .toThrow(/f\.json: entry 0: "category" must be one of .*; entry 1: "domain"/);
  });
});

describe('home region and cross-border', () => {
  it.each([
    ['NO', 'DE', false], ['NO', 'NO', false], ['NO', 'CN', true], ['NO', 'US', true], ['NO', 'GB', false], ['NO', 'CH', false],
    ['NO', 'JP', false], ['DE', 'RU', true], ['GB', 'FR', false], ['CH', 'IN', true],
    ['US', 'US', false], ['US', 'CA', true], ['JP', 'KR', true], ['CN', 'CN', false], ['CN', 'NO', true],
  ])('phone from %s, server in %s → cross-border %s', (home, dest, cross) => {
    expect(isCrossBorder(homeRegionOf(home), dest)).toBe(cross);
  });

  it('gives no verdict when either side is unknown', () => {
    expect(isCrossBorder(undefined, 'CN')).toBeUndefined();
    expect(isCrossBorder(homeRegionOf('NO'), undefined)).toBeUndefined();
  });
});

describe('homeCountryOf', () => {
  const finding = (type: Finding['type'], value: string): Finding =>
    ({ type, value, path: 'x', chain: [], detector: 'key', confidence: 0.9, explanation: '', severity: 'high' });

  it('takes, in order: profile country, IMSI MCC (profile, then flow), phone number (profile, then flow), configured', () => {
    const full = compileProfile({ country: 'se', imsi: '242016712345678', phone: '+4791234567' });
    expect(homeCountryOf(full, [], 'US')).toEqual({ country: 'SE', from: 'profile' });
    expect(homeCountryOf(compileProfile({ imsi: '262011234567890', phone: '+4791234567' }), [finding('imsi', '242016712345678')], 'US'))
      .toEqual({ country: 'DE', from: 'imsi' });
    expect(homeCountryOf(compileProfile({ phone: '+4791234567' }), [finding('imsi', '460001234567890')], 'US')).toEqual({ country: 'CN', from: 'imsi' });
    expect(homeCountryOf(compileProfile({ phone: '+4791234567' }), [finding('phone', '+8613800138000')], 'US')).toEqual({ country: 'NO', from: 'phone' });
    expect(homeCountryOf(undefined, [finding('phone', '+8613800138000')], 'US')).toEqual({ country: 'CN', from: 'phone' });
    expect(homeCountryOf(undefined, [finding('imei', '354031090123453')], 'no')).toEqual({ country: 'NO', from: 'configured' });
    expect(homeCountryOf(undefined, [])).toBeUndefined();
  });

  it('ignores values found by their pattern alone: a bare 15-digit number is no evidence of the SIM country', () => {
    const bare: Finding = { ...finding('imsi', '354726080000004'), detector: 'pattern', confidence: 0.4 };
    expect(homeCountryOf(undefined, [bare], 'NO')).toEqual({ country: 'NO', from: 'configured' });
    expect(homeCountryOf(undefined, [bare])).toBeUndefined();
    expect(homeCountryOf(undefined, [{ ...bare, confidence: 0.9, detector: 'key' }])).toEqual({ country: 'MS', from: 'imsi' });
  });

  it('a profile country must be a two-letter code', () => {
    expect(() => compileProfile({ country: 'Norway' })).toThrow(/two-letter ISO 3166/);
  });
});
