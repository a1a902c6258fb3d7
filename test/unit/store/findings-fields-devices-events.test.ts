import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Store } from '../../../proxy/store';
import type { Flow } from '../../../proxy/flow';
import type { Finding } from '../../../proxy/analyse/types';

function flow(host: string, clientIp = '10.0.0.2', tls = false, startedAt = 1_700_000_000_000): Flow {
  return {
    kind: 'http', source: 'proxy', startedAt, clientIp, scheme: tls ? 'https' : 'http', host, port: tls ? 443 : 80, tls,
    method: 'POST', url: `${tls ? 'https' : 'http'}://${host}/`, requestHeaders: [], requestBody: { bytes: Buffer.alloc(0), size: 0, truncated: false },
    responseHeaders: [], responseBody: { bytes: Buffer.alloc(0), size: 0, truncated: false }, timings: {}, tags: [],
  };
}

function finding(type: Finding['type'], value: string, severity: Finding['severity'] = 'high'): Finding {
  return { type, value, path: `body>form:${type}`, chain: ['form'], detector: 'key', confidence: 0.9, explanation: `${type} sent`, severity };
}

describe('store: findings, fields, devices, events', () => {
  let dir: string;
  let store: Store;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-store2-'));
    store = Store.open({ dataDir: dir });
  });
  afterEach(() => {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function addFlowWithFindings(f: Flow, findings: Finding[]): number {
    const id = store.flows.insert(f);
    store.findings.insertForFlow({ flowId: id, host: f.host, clientIp: f.clientIp, tls: f.tls, startedAt: f.startedAt, destination: { host: f.host, cleartext: !f.tls, country: 'CN', org: 'China Telecom', asn: 4134 } }, findings);
    return id;
  }

  it('lists findings newest first with filters and keyset pages', () => {
    addFlowWithFindings(flow('zzhc.vnet.cn'), [finding('imei', '490154203237518'), finding('iccid', '8947080012345678901')]);
    addFlowWithFindings(flow('ads.example', '10.0.0.3', true), [finding('ad_id', '38400000-8cf0-11bd-b23e-10b96e40000d', 'low')]);
    addFlowWithFindings(flow('zzhc.vnet.cn'), [finding('imei', '490154203237518')]);
    const all = store.findings.list({ limit: 10 });
    expect(all.map((f) => f.type)).toEqual(['imei', 'ad_id', 'iccid', 'imei']);
    expect(all[0]).toMatchObject({ host: 'zzhc.vnet.cn', clientIp: '10.0.0.2', tls: false, chain: ['form'], country: 'CN', org: 'China Telecom', device: null });
    const page1 = store.findings.list({ limit: 2 });
    const page2 = store.findings.list({ limit: 2, before: page1[1].id });
    expect([...page1, ...page2].map((f) => f.id)).toEqual(all.map((f) => f.id));
    expect(store.findings.list({ limit: 10, type: 'imei' })).toHaveLength(2);
    expect(store.findings.list({ limit: 10, severity: 'medium' }).map((f) => f.type)).toEqual(['imei', 'iccid', 'imei']);
    expect(store.findings.list({ limit: 10, clientIp: '10.0.0.3' }).map((f) => f.type)).toEqual(['ad_id']);
  });

  it('answers "who gets my IMEI?" per host with counts, cleartext share and first/last seen', () => {
    addFlowWithFindings(flow('zzhc.vnet.cn', '10.0.0.2', false, 1000), [finding('imei', '1'), finding('iccid', '2')]);
    addFlowWithFindings(flow('zzhc.vnet.cn', '10.0.0.2', false, 3000), [finding('imei', '1')]);
    addFlowWithFindings(flow('ads.example', '10.0.0.2', true, 2000), [finding('imei', '1')]);
    const d = store.findings.destinations({});
    expect(d).toEqual([
      { host: 'zzhc.vnet.cn', country: 'CN', org: 'China Telecom', asn: 4134, total: 3, cleartext: 3, types: { imei: 2, iccid: 1 }, firstSeen: 1000, lastSeen: 3000 },
      { host: 'ads.example', country: 'CN', org: 'China Telecom', asn: 4134, total: 1, cleartext: 0, types: { imei: 1 }, firstSeen: 2000, lastSeen: 2000 },
    ]);
    expect(store.findings.destinations({ type: 'iccid' }).map((x) => x.host)).toEqual(['zzhc.vnet.cn']);
  });

  it('finds every flow that carried a key, whatever its case or encoding chain', () => {
    const a = store.flows.insert(flow('a.example'));
    const b = store.flows.insert(flow('b.example'));
    store.fields.insertForFlow(a, [{ path: 'body>form:SIM1CELLID', key: 'SIM1CELLID', keyPath: [], value: '12345', chain: ['form'], group: '' }]);
    store.fields.insertForFlow(b, [{ path: 'body>base64>json:$.sim1cellid', key: 'sim1cellid', keyPath: [], value: '999', chain: ['base64', 'json'], group: '' }]);
    const rows = store.db.prepare("SELECT flow_id, value, chain FROM fields WHERE key = 'SIM1CELLID' ORDER BY flow_id").all();
    expect(rows).toEqual([{ flow_id: a, value: '12345', chain: '["form"]' }, { flow_id: b, value: '999', chain: '["base64","json"]' }]);
    expect(store.fields.forFlow(b)[0]).toEqual({ path: 'body>base64>json:$.sim1cellid', key: 'sim1cellid', value: '999', chain: ['base64', 'json'], truncated: false });
  });

  it('keeps devices with their profile, first/last seen and totals', () => {
    store.devices.seen('10.0.0.2', 2000);
    store.devices.seen('10.0.0.2', 1000);
    store.devices.seen('10.0.0.2', 3000);
    addFlowWithFindings(flow('x.example'), [finding('imei', '1')]);
    const d = store.devices.setProfile('10.0.0.2', { name: 'Nokia 7 plus', imei: ['490154203237518'] });
    expect(d).toEqual({ clientIp: '10.0.0.2', name: 'Nokia 7 plus', profile: { name: 'Nokia 7 plus', imei: ['490154203237518'] }, flows: 1, findings: 1, firstSeen: 1000, lastSeen: 3000 });
    expect(store.devices.profileOf('10.0.0.2')).toEqual({ name: 'Nokia 7 plus', imei: ['490154203237518'] });
    expect(store.findings.list({ limit: 1 })[0].device).toBe('Nokia 7 plus');
    store.devices.setProfile('10.0.0.9', null);
    expect(store.devices.list().map((x) => x.clientIp)).toEqual(['10.0.0.2', '10.0.0.9']);
  });

  it('numbers events monotonically, also across a reopen, and replays after a given seq', () => {
    const s1 = store.events.append('flow', { n: 1 }, null).seq;
    const s2 = store.events.append('alert', { n: 2 }, null).seq;
    expect(s2).toBeGreaterThan(s1);
    store.close();
    store = Store.open({ dataDir: dir });
    const s3 = store.events.append('flow', { n: 3 }, null).seq;
    expect(s3).toBeGreaterThan(s2);
    expect(store.events.after(s1, 10).map((e) => e.data)).toEqual([{ n: 2 }, { n: 3 }]);
    expect(store.events.latestSeq()).toBe(s3);
  });

  it('serves the dashboard list queries from indexes, not table scans', () => {
    const plan = (sql: string, ...args: unknown[]) =>
      (store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[]).map((r) => r.detail).join(' | ');
    expect(plan('SELECT id FROM flows WHERE host = ? AND id < ? ORDER BY id DESC LIMIT 50', 'x', 10)).toMatch(/USING (COVERING )?INDEX flows_host_id/);
    expect(plan('SELECT id FROM flows WHERE client_ip = ? ORDER BY id DESC LIMIT 50', 'x')).toMatch(/USING (COVERING )?INDEX flows_client_id/);
    expect(plan('SELECT id FROM flows WHERE analysis_state = 0 ORDER BY id LIMIT 50')).toMatch(/INDEX flows_pending/);
    expect(plan('SELECT id FROM findings WHERE type = ? AND id < ? ORDER BY id DESC LIMIT 50', 'imei', 10)).toMatch(/INDEX findings_type/);
    expect(plan('SELECT * FROM findings WHERE flow_id = ?', 1)).toMatch(/INDEX findings_flow/);
    expect(plan("SELECT flow_id FROM fields WHERE key = 'SIM1CELLID'")).toMatch(/INDEX fields_key/);
    expect(plan('SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT 500', 0)).toMatch(/INTEGER PRIMARY KEY/);
    expect(plan('SELECT host, type, COUNT(*) FROM findings GROUP BY host, type')).toMatch(/COVERING INDEX findings_host/);
    // Either index led by type serves it; which one SQLite picks depends on the findings row width (migration 4 widened it).
    expect(plan('SELECT id FROM flows WHERE id IN (SELECT flow_id FROM findings WHERE type = ?) ORDER BY id DESC LIMIT 50', 'imei')).toMatch(/INDEX findings_(type|value) \(type=\?\)/);
  });
});
