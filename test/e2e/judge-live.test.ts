/**
 * The judge in the live path, with real parts: curl through the real proxy into a loopback origin,
 * the real analyser in its worker thread (which gets --home-country, --rules and the data dir's
 * tracker list and geo cache from `start`), the SQLite file (migration 4 columns), the alert on
 * /ws and the REST findings the live view fills from. Origins are on loopback, so every server
 * address here is local: labelled, never looked up.
 */
import * as fs from 'fs';
import * as path from 'path';
import Database from 'better-sqlite3';
import { bearer, connectWs, TestClient } from '../unit/pipeline/fixtures/dashboard-harness';
import { loadJudgeSettings } from '../../proxy/judge-config';
import { curl } from './helpers/clients';
import { Origin, startHttpOrigin } from './helpers/origin';
import { CliProcess, eventually, startCli, startTestPhonehome, TestPhonehome } from './helpers/phonehome';
import { makeTempDir, removeDir } from './helpers/tmp';

const IMEI = '490154203237518';
const GAID = '5b0cbd2e-6e43-4d6e-9c9a-2f6b1f4e8a17';

function query<T>(dataDir: string, sql: string, ...params: unknown[]): T[] {
  const db = new Database(path.join(dataDir, 'phonehome.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

describe('live: sentence, tracker, local address and rules', () => {
  let dir: string;
  let ph: TestPhonehome;
  let origin: Origin;
  let live: TestClient;

  beforeAll(async () => {
    dir = makeTempDir();
    origin = await startHttpOrigin();
    const rules = path.join(dir, 'rules.json');
    fs.writeFileSync(rules, JSON.stringify({ rules: [{ type: 'ad_id', host: '*.vnet.cn', action: 'ignore' }] }));
    const judge = loadJudgeSettings({ dataDir: dir, rulesFile: rules, homeCountry: 'NO' });
    ph = await startTestPhonehome({ dataDir: dir, dashboardPort: 0, pipeline: { judge } });
    live = await connectWs(`ws://127.0.0.1:${ph.live.dashboard!.port}/ws`, { headers: bearer(ph.dashboardToken!) });
  });
  afterAll(async () => {
    live?.ws.terminate();
    await ph?.close();
    await origin?.close();
    removeDir(dir);
  });

  jest.setTimeout(90_000);

  it('an activation request to a China Telecom host: alert with its sentence, flow and findings columns, REST', async () => {
    // The test resolver sends every name to 127.0.0.1: the host is China Telecom's, the server is local.
    const r = await curl(['-x', `http://127.0.0.1:${ph.proxyPort}`, '-d', `IMEI=${IMEI}&SIM1CELLID=20817&adid=${GAID}`, `http://zzhc.vnet.cn:${origin.port}/register`]);
    expect(r.code).toBe(0);
    // Generous: on a machine's first run the worker builds the geo cache before it analyses anything.
    await live.waitFor((m) => m.some((x) => x.type === 'alert'), 60_000);
    const alert = live.messages.find((x) => x.type === 'alert')!.data;
    const sentence = 'IMEI and cell ID sent in cleartext to zzhc.vnet.cn (local network) — a known activation service';
    expect(alert).toMatchObject({ host: 'zzhc.vnet.cn', sentence, tracker: 'China Telecom', domain: 'vnet.cn', crossBorder: false, severity: 'critical' });
    expect(alert.types.sort()).toEqual(['cell_id', 'imei']); // the ad ID was ignored by the rule

    const [flow] = query<Record<string, unknown>>(dir, 'SELECT * FROM flows WHERE id = ?', alert.flowId);
    expect(flow).toMatchObject({
      server_ip: '127.0.0.1', dest_domain: 'vnet.cn', dest_local: 1, dest_country: null, tracker: 'China Telecom', tracker_category: 'activation',
      home_country: 'NO', cross_border: 0, sentence, severity: 'critical',
    });
    expect(JSON.parse(flow!.analysis_notes as string)).toContain('1 finding ignored by rule 1');
    const findings = query<Record<string, unknown>>(dir, 'SELECT type, server_ip, dest_domain, tracker, cross_border, sentence, rule FROM findings WHERE flow_id = ? ORDER BY type', alert.flowId);
    expect(findings).toEqual(['cell_id', 'imei'].map((type) => ({ type, server_ip: '127.0.0.1', dest_domain: 'vnet.cn', tracker: 'China Telecom', cross_border: 0, sentence, rule: null })));

    const rest = (await (await fetch(`http://127.0.0.1:${ph.live.dashboard!.port}/api/findings?limit=10`, { headers: bearer(ph.dashboardToken!) })).json()) as { items: Array<Record<string, unknown>> };
    expect(rest.items.map((f) => f.sentence)).toEqual([sentence, sentence]);
    expect(rest.items[0]).toMatchObject({ domain: 'vnet.cn', tracker: 'China Telecom', crossBorder: false, serverIp: '127.0.0.1' });
  });

  it('the geo tables are cached (by the worker, or an earlier run) in the user cache directory', () => {
    const cacheDir = loadJudgeSettings({ dataDir: dir }).geoCacheDir!;
    expect(fs.readdirSync(cacheDir)).toContainEqual(expect.stringMatching(/^geo-[0-9a-f]{20}\.bin$/));
  });
});

describe('phonehome start --rules --home-country (the CLI)', () => {
  let dir: string;
  let origin: Origin;
  let cli: CliProcess | undefined;
  beforeAll(async () => {
    dir = makeTempDir();
    origin = await startHttpOrigin();
  });
  afterAll(async () => {
    await cli?.stop();
    await origin?.close();
    removeDir(dir);
  });

  it('refuses a bad rules file and a bad country, naming them', async () => {
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ rules: [{ type: 'imei', action: 'urgent' }] }));
    const base = ['--listen-host', '127.0.0.1', '--port', '0', '--dashboard-port', '0', '--data-dir', path.join(dir, 'data')];
    await expect(startCli([...base, '--rules', bad])).rejects.toThrow(/bad\.json: rule 1: "action" must be "ignore" or one of/);
    await expect(startCli([...base, '--home-country', 'NOR'])).rejects.toThrow(/--home-country must be a two-letter ISO 3166 code/);
  });

  it('hands the rules and home country to the analysis worker', async () => {
    const rules = path.join(dir, 'rules.json');
    fs.writeFileSync(rules, JSON.stringify({ rules: [{ type: 'imei', action: 'medium' }] }));
    const data = path.join(dir, 'data');
    cli = await startCli(['--listen-host', '127.0.0.1', '--port', '0', '--dashboard-port', '0', '--data-dir', data, '--rules', rules, '--home-country', 'no']);
    const r = await curl(['-x', `http://127.0.0.1:${cli.port}`, '-d', `imei=${IMEI}`, `http://127.0.0.1:${origin.port}/cli-rules`]);
    expect(r.code).toBe(0);
    const finding = await eventually(() => query<Record<string, unknown>>(data, "SELECT f.severity, f.rule, f.sentence, w.home_country FROM findings f JOIN flows w ON w.id = f.flow_id WHERE f.type = 'imei'")[0], 15_000, 'the analysed flow');
    expect(finding).toEqual({ severity: 'medium', rule: 1, sentence: 'IMEI sent in cleartext to 127.0.0.1 (local network)', home_country: 'NO' });
  });
});
