/**
 * The verdict a user acts on: the severity table with its cross-border and tracker step, the
 * user's override rules (parsing, validation, matching, and their effect in analyseFlow), and the
 * alert sentence built from the facts.
 */
import { analyseFlow } from '../../../../proxy/analyse';
import { alertSentence, bumpSeverity, matchRule, parseRules, RulesError, severityOf, trackerList } from '../../../../proxy/analyse/judge';
import { compileProfile } from '../../../../proxy/analyse/profile';
import type { Flow } from '../../../../proxy/flow';
import type { IdentifierType, Severity } from '../../../../proxy/analyse/types';
import { createGeoLookup } from '../../../../proxy/geo';

const IMEI = '354031090123453';
const AD_ID = '5b0cbd2e-6e43-4d6e-9c9a-2f6b1f4e8a17';

describe('severity: table value, then one step for cross-border or a known tracker', () => {
  it.each<[IdentifierType, boolean, boolean, boolean, Severity]>([
    // type, cleartext, cross-border, tracker → severity
    ['imei', true, false, false, 'critical'],
    ['imei', false, false, false, 'high'],
    ['imei', false, true, false, 'critical'],
    ['imei', false, false, true, 'critical'],
    ['imei', true, true, true, 'critical'],
    ['iccid', false, true, true, 'critical'],
    ['location', false, true, false, 'critical'],
    ['android_id', false, false, false, 'medium'],
    ['android_id', false, true, false, 'high'],
    ['android_id', true, true, false, 'critical'],
    ['email', false, false, true, 'high'],
    ['ad_id', false, false, false, 'low'],
    ['ad_id', false, false, true, 'medium'],
    ['ad_id', false, true, true, 'medium'],
    ['ad_id', true, true, false, 'high'],
  ])('%s cleartext=%s cross-border=%s tracker=%s → %s', (type, cleartext, crossBorder, tracker, expected) => {
    expect(bumpSeverity(severityOf(type, cleartext, 0.9), { crossBorder, tracker })).toBe(expected);
  });
});

describe('rules', () => {
  const rules = parseRules({ rules: [
    { type: 'ad_id', host: 'test.example.com', action: 'ignore' },
    { type: ['imei', 'meid'], action: 'high', note: 'always high' },
    { host: '*.vnet.cn', country: 'cn', cleartext: true, action: 'critical' },
    { tracker: true, cross_border: false, action: 'medium' },
  ] }, 'rules.json');
  const subject = { type: 'ad_id' as IdentifierType, host: 'test.example.com', cleartext: false, tracker: false };

  it('first match wins; absent keys match anything', () => {
    expect(matchRule(rules, subject)?.index).toBe(1);
    expect(matchRule(rules, { ...subject, host: 'other.example.com' })).toBeUndefined();
    expect(matchRule(rules, { ...subject, type: 'imei', host: 'anything.example' })?.action).toBe('high');
    expect(matchRule(rules, { ...subject, type: 'iccid', host: 'zzhc.vnet.cn', country: 'CN', cleartext: true })?.index).toBe(3);
    expect(matchRule(rules, { ...subject, type: 'iccid', host: 'vnet.cn', country: 'CN', cleartext: true })?.index).toBe(3);
    expect(matchRule(rules, { ...subject, type: 'iccid', host: 'zzhc.vnet.cn', cleartext: true })).toBeUndefined();
    expect(matchRule(rules, { ...subject, type: 'iccid', host: 'x.example', tracker: true, crossBorder: false })?.index).toBe(4);
    expect(matchRule(rules, { ...subject, type: 'iccid', host: 'x.example', tracker: true })).toBeUndefined();
  });

  it('rejects a bad file with every problem named', () => {
    expect(() => parseRules({ rule: [] }, 'r.json')).toThrow(RulesError);
    expect(() => parseRules({ rules: [{ type: 'imie', action: 'high' }, { action: 'loud' }, { host: 'a b', action: 'ignore', extra: 1 }, 'x'] }, 'r.json'))
      .toThrow(/r\.json: rule 1: "type" must be one of .*got imie; rule 2: "action" must be "ignore" or one of .*; rule 3: unknown key "extra".*; rule 3: "host".*; rule 4: must be an object/);
  });

  it('accepts a bare list and "*" wildcards', () => {
    expect(parseRules([{ type: '*', host: '*', action: 'info' }], 'r')).toEqual([{ index: 1, action: 'info' }]);
  });
});

function flow(over: Partial<Flow> & { body?: string }): Flow {
  const bytes = Buffer.from(over.body ?? '');
  return {
    kind: 'http', source: 'har', startedAt: 0, clientIp: '192.168.1.23', method: 'POST', scheme: 'http', host: 'zzhc.vnet.cn', port: 80, tls: false,
    url: `http://${over.host ?? 'zzhc.vnet.cn'}/api`, requestHeaders: [['Content-Type', 'application/x-www-form-urlencoded']],
    requestBody: { bytes, size: bytes.length, truncated: false }, responseHeaders: [], responseBody: { bytes: Buffer.alloc(0), size: 0, truncated: false },
    timings: {}, tags: [], ...over,
  };
}

describe('analyseFlow with the judge', () => {
  const num = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
  const range = (from: string, to: string) => `${num(from)},${num(to)}`;
  // Hand-made tables (the shipped ones are tested in test/unit/geo): China Telecom and Telenor blocks.
  const geo = createGeoLookup({
    countryV4: () => `${range('202.96.128.0', '202.96.128.255')},CN\n${range('193.212.0.0', '193.213.255.255')},NO\n`,
    asnV4: () => `${range('202.96.128.0', '202.96.128.255')},4134,Chinanet\n${range('193.212.0.0', '193.213.255.255')},2119,Telenor Norge AS\n`,
  });
  const trackers = trackerList();
  const nokia = flow({ serverIp: '202.96.128.86', body: `imei=${IMEI}&imsi=242016712345678` });

  it('infers the home country from the IMSI, flags the transfer cross-border, and says so', () => {
    const r = analyseFlow(nokia, { geo, trackers });
    expect(r.destination).toMatchObject({ country: 'CN', asn: 4134, homeCountry: 'NO', crossBorder: true, tracker: { company: 'China Telecom' }, domain: 'vnet.cn' });
    expect(r.findings.map((f) => [f.type, f.severity])).toEqual([['imei', 'critical'], ['imsi', 'critical']]);
    expect(r.sentence).toBe('IMEI and IMSI sent in cleartext to zzhc.vnet.cn (China Telecom, AS4134, CN) — outside your home region (NO); a known activation service');
  });

  it('inside the home region over TLS: table value, no bump, a plain sentence', () => {
    const r = analyseFlow(flow({ host: 'api.telenor.no', serverIp: '193.213.112.4', scheme: 'https', tls: true, body: `imei=${IMEI}` }), { geo, trackers, homeCountry: 'NO' });
    expect(r.destination.crossBorder).toBe(false);
    expect(r.findings[0]).toMatchObject({ type: 'imei', severity: 'high' });
    expect(r.sentence).toBe('IMEI sent over TLS to api.telenor.no (Telenor Norge AS, AS2119, NO)');
  });

  it('a local server is labelled local and is never cross-border', () => {
    const r = analyseFlow(flow({ host: 'printer.lan', serverIp: '192.168.1.5', body: `imei=${IMEI}` }), { geo, trackers, homeCountry: 'NO' });
    expect(r.destination).toMatchObject({ local: true, crossBorder: false });
    expect(r.destination.country).toBeUndefined();
    expect(r.sentence).toBe('IMEI sent in cleartext to printer.lan (local network)');
  });

  it('without any home country there is no cross-border verdict', () => {
    const r = analyseFlow(flow({ serverIp: '202.96.128.86', body: `imei=${IMEI}` }), { geo });
    expect(r.destination.crossBorder).toBeUndefined();
    expect(r.findings[0]!.severity).toBe('critical');
    expect(r.sentence).toBe('IMEI sent in cleartext to zzhc.vnet.cn (Chinanet, AS4134, CN)');
  });

  it('a profile country beats the IMSI', () => {
    const r = analyseFlow(nokia, { geo, trackers, profile: compileProfile({ country: 'CN' }) });
    expect(r.destination).toMatchObject({ homeCountry: 'CN', crossBorder: false });
  });

  it('applies rules last: ignore drops the finding (with a note), a severity replaces the computed one', () => {
    const adFlow = flow({ host: 'test.example.com', serverIp: '192.168.1.9', scheme: 'https', tls: true, body: `imei=${IMEI}&adid=${AD_ID}` });
    const rules = parseRules({ rules: [{ type: 'ad_id', host: 'test.example.com', action: 'ignore' }, { type: 'imei', action: 'low' }] }, 'r');
    const plain = analyseFlow(adFlow, { geo, trackers });
    expect(plain.findings.map((f) => f.type).sort()).toEqual(['ad_id', 'imei']);
    const r = analyseFlow(adFlow, { geo, trackers, rules });
    expect(r.findings).toEqual([expect.objectContaining({ type: 'imei', severity: 'low', rule: 2 })]);
    expect(r.severity).toBe('low');
    expect(r.notes).toContain('1 finding ignored by rule 1');
    expect(r.sentence).toBe('IMEI sent over TLS to test.example.com (local network)');
  });

  it('no findings, no sentence', () => {
    expect(analyseFlow(flow({ body: 'hello=world' }), { geo, trackers }).sentence).toBeUndefined();
  });
});

describe('alertSentence', () => {
  it('lists types in the public order and names what is known', () => {
    expect(alertSentence(['cell_id', 'iccid', 'imei'], { host: 'zzhc.vnet.cn', cleartext: true, country: 'CN', asn: 4134, org: 'Chinanet', crossBorder: true,
      tracker: { company: 'China Telecom', category: 'activation', domain: 'vnet.cn' } }))
      .toBe('IMEI, ICCID and cell ID sent in cleartext to zzhc.vnet.cn (China Telecom, AS4134, CN) — outside your home region; a known activation service');
    expect(alertSentence(['phone'], { host: 'x.example', cleartext: false })).toBe('Phone number sent over TLS to x.example (country unknown)');
    expect(alertSentence(['imei'], { host: 'abc.example', cleartext: true }, { dns: true })).toBe('IMEI sent in cleartext in a DNS lookup of abc.example');
    // A DNS flow's server is the resolver, not the owner of the name: the sentence says which is which.
    expect(alertSentence(['imei'], { host: '354031090123453.t.example', serverIp: '8.8.8.8', cleartext: true, country: 'US', asn: 15169, org: 'Google LLC' }, { dns: true }))
      .toBe('IMEI sent in cleartext in a DNS lookup of 354031090123453.t.example via resolver 8.8.8.8 (Google LLC, AS15169, US)');
    expect(alertSentence([], { host: 'x', cleartext: true })).toBe('');
  });
});
