/**
 * `phonehome analyze` (the compiled CLI) on a HAR export whose serverIPAddress values are real
 * public addresses of China Telecom, Yandex, Telenor Norge, Google and Cloudflare, and a LAN
 * address: the alert sentences and destination facts a user reads, the home country from the
 * IMSI, the phone number or --home-country, user rules and tracker entries, and bad settings.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.join(__dirname, '../..');
const HAR = path.join(root, 'test/fixtures/har/destinations.har');

let tmp: string;
let dataDir: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-dest-'));
  dataDir = path.join(tmp, 'data');
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function analyze(...args: string[]) {
  if (!fs.existsSync(path.join(root, 'dist/proxy/cli.js'))) throw new Error('dist/ is missing: run npm run build (npm test does)');
  const r = spawnSync(process.execPath, [path.join(root, 'bin/phonehome.js'), 'analyze', '--data-dir', dataDir, ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const records = (stdout: string) => stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
const sentenceOf = (recs: Array<Record<string, unknown>>, entry: number) => [...new Set(recs.filter((r) => r.entry === entry).map((r) => r.sentence))];

describe('with --home-country NO', () => {
  let recs: Array<Record<string, unknown>>;
  beforeAll(() => {
    const run = analyze(HAR, '--format', 'jsonl', '--home-country', 'NO');
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    recs = records(run.stdout);
  });

  test('the Nokia activation: China Telecom, China, cleartext, outside the region (home from the IMSI)', () => {
    expect(sentenceOf(recs, 0)).toEqual([
      'IMEI, IMSI, ICCID and cell ID sent in cleartext to zzhc.vnet.cn (China Telecom, AS4134, CN) — outside your home region (NO); a known activation service',
    ]);
    expect(recs.find((r) => r.entry === 0 && r.type === 'imei')).toMatchObject({
      server_ip: '202.96.128.86', country: 'CN', asn: 4134, org: 'Chinanet', cleartext: true, cross_border: true, tracker: true,
      tracker_company: 'China Telecom', domain: 'vnet.cn', home_country: 'NO', severity: 'critical', local: false,
    });
  });

  test('Yandex AppMetrica in Russia: a known analytics service, the ad ID one step up', () => {
    expect(sentenceOf(recs, 1)).toEqual([
      'Advertising ID sent over TLS to report.appmetrica.yandex.net (Yandex AppMetrica, AS13238, RU) — outside your home region (NO); a known analytics service',
    ]);
    expect(recs.find((r) => r.entry === 1)).toMatchObject({ type: 'ad_id', country: 'RU', org: 'YANDEX LLC', cleartext: false, cross_border: true, severity: 'medium' });
  });

  test('Telenor in Norway: at home, no bump', () => {
    expect(sentenceOf(recs, 2)).toEqual(['Phone number sent over TLS to www.telenor.no (Telenor Norge AS, AS2119, NO)']);
    expect(recs.find((r) => r.entry === 2)).toMatchObject({ type: 'phone', country: 'NO', asn: 2119, cross_border: false, tracker: false, severity: 'high' });
  });

  test('Google Analytics in the US and an app behind Cloudflare in the US: outside the EU/EEA region', () => {
    expect(sentenceOf(recs, 3)).toEqual([
      'Advertising ID sent over TLS to www.google-analytics.com (Google, AS15169, US) — outside your home region (NO); a known analytics service',
    ]);
    expect(sentenceOf(recs, 4)).toEqual(['Android ID sent over TLS to api.example-weather.app (Cloudflare, Inc., AS13335, US) — outside your home region (NO)']);
    expect(recs.find((r) => r.entry === 4)).toMatchObject({ type: 'android_id', severity: 'high', tracker: false, org: 'Cloudflare, Inc.' });
  });

  test('a LAN server is local: no country, never cross-border', () => {
    expect(sentenceOf(recs, 5)).toEqual(['IMEI sent in cleartext to 192.168.1.10 (local network)']);
    expect(recs.find((r) => r.entry === 5)).toMatchObject({ server_ip: '192.168.1.10', local: true, country: null, asn: null, cross_border: false, severity: 'critical' });
  });

  test('the table shows each sentence under its host', () => {
    const run = analyze(HAR, '--home-country', 'NO');
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('zzhc.vnet.cn  [CRITICAL]  (cleartext HTTP, CN, AS4134 Chinanet, activation: China Telecom)\n'
      + '  ! IMEI, IMSI, ICCID and cell ID sent in cleartext to zzhc.vnet.cn (China Telecom, AS4134, CN) — outside your home region (NO); a known activation service  [destinations.har#0]');
    expect(run.stdout).toContain('  ! IMEI sent in cleartext to 192.168.1.10 (local network)  [destinations.har#5]');
  });
});

test('without --home-country only flows that reveal it (IMSI, phone number) get a cross-border verdict', () => {
  const recs = records(analyze(HAR, '--format', 'jsonl').stdout);
  expect(recs.find((r) => r.entry === 0)).toMatchObject({ cross_border: true, home_country: 'NO' });
  expect(recs.find((r) => r.entry === 2)).toMatchObject({ cross_border: false, home_country: 'NO' });
  expect(recs.find((r) => r.entry === 1)).toMatchObject({ cross_border: null, home_country: null, severity: 'medium' }); // tracker step only
  expect(sentenceOf(recs, 4)).toEqual(['Android ID sent over TLS to api.example-weather.app (Cloudflare, Inc., AS13335, US)']);
});

test('a device profile country overrides the IMSI', () => {
  const profile = path.join(tmp, 'cn-phone.json');
  fs.writeFileSync(profile, JSON.stringify({ name: 'Phone bought in China', country: 'CN' }));
  const recs = records(analyze(HAR, '--format', 'jsonl', '--profile', profile).stdout);
  expect(recs.find((r) => r.entry === 0)).toMatchObject({ home_country: 'CN', cross_border: false });
  expect(recs.find((r) => r.entry === 2)).toMatchObject({ home_country: 'CN', cross_border: true });
});

test('rules: ignore the ad ID to Yandex, always "high" for IMEI', () => {
  const rules = path.join(tmp, 'rules.json');
  fs.writeFileSync(rules, JSON.stringify({ rules: [
    { type: 'ad_id', host: '*.yandex.net', action: 'ignore', note: 'my own test build' },
    { type: 'imei', action: 'high' },
  ] }));
  const run = analyze(HAR, '--format', 'jsonl', '--home-country', 'NO', '--rules', rules);
  expect(run.status).toBe(0);
  expect(run.stderr).toBe('phonehome analyze: destinations.har: entry 1: 1 finding ignored by rule 1\n');
  const recs = records(run.stdout);
  expect(recs.filter((r) => r.entry === 1)).toEqual([]);
  expect(recs.filter((r) => r.type === 'imei').map((r) => [r.entry, r.severity, r.rule])).toEqual([[0, 'high', 2], [5, 'high', 2]]);
  expect(recs.find((r) => r.entry === 3)).toMatchObject({ type: 'ad_id', rule: null });
});

test('user tracker entries in <data-dir>/trackers.json', () => {
  fs.mkdirSync(dataDir, { recursive: true });
  fs.writeFileSync(path.join(dataDir, 'trackers.json'), JSON.stringify({ entries: [{ domain: 'example-weather.app', company: 'Example Weather Telemetry', category: 'telemetry' }] }));
  try {
    const recs = records(analyze(HAR, '--format', 'jsonl', '--home-country', 'NO').stdout);
    expect(sentenceOf(recs, 4)).toEqual([
      'Android ID sent over TLS to api.example-weather.app (Example Weather Telemetry, AS13335, US) — outside your home region (NO); a known telemetry service',
    ]);
  } finally {
    fs.rmSync(path.join(dataDir, 'trackers.json'));
  }
});

test('bad settings are usage errors that name the problem (exit 2)', () => {
  const badRules = path.join(tmp, 'bad-rules.json');
  fs.writeFileSync(badRules, JSON.stringify({ rules: [{ type: 'imie', action: 'high' }] }));
  const notJson = path.join(tmp, 'not-json.json');
  fs.writeFileSync(notJson, '{ rules: ');
  const badTrackersDir = path.join(tmp, 'bad-trackers');
  fs.mkdirSync(badTrackersDir);
  fs.writeFileSync(path.join(badTrackersDir, 'trackers.json'), JSON.stringify({ entries: [{ domain: 'x.example', company: 'X', category: 'spyware' }] }));
  for (const [args, message] of [
    [['--home-country', 'Norway'], /--home-country must be a two-letter ISO 3166 code/],
    [['--rules', badRules], /bad-rules\.json: rule 1: "type" must be one of .*got imie/],
    [['--rules', notJson], /not-json\.json: the rules file is not valid JSON/],
    [['--rules', path.join(tmp, 'missing.json')], /missing\.json: cannot read the rules file: ENOENT/],
    [['--data-dir', badTrackersDir], /bad-trackers\/trackers\.json: entry 0: "category" must be one of/],
  ] as Array<[string[], RegExp]>) {
    const run = analyze(HAR, ...args);
    expect({ args, status: run.status }).toEqual({ args, status: 2 });
    expect(run.stderr).toMatch(message);
  }
});
