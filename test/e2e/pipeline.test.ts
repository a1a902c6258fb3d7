/**
 * The whole live path with real parts: curl (and a Node client) through the real proxy into a real
 * origin on loopback, the real analyser in its worker thread, the real SQLite file, the dashboard's
 * REST API and WebSocket. What a user checks: a leaking request becomes a finding, its fields are
 * queryable, an alert arrives on /ws, and a slow dashboard never slows the proxy.
 */
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import Database from 'better-sqlite3';
import { bearer, connectWs, TestClient } from '../unit/pipeline/fixtures/dashboard-harness';
import { curl } from './helpers/clients';
import { Origin, startHttpOrigin, startHttpsOrigin } from './helpers/origin';
import { CliProcess, eventually, startCli, startTestPhonehome, TestPhonehome } from './helpers/phonehome';
import { makeTempDir, removeDir } from './helpers/tmp';

const IMEI = '490154203237518';
const ICCID = '89470000000000000009';

function query<T>(dataDir: string, sql: string, ...params: unknown[]): T[] {
  const db = new Database(path.join(dataDir, 'phonehome.db'), { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all(...params) as T[];
  } finally {
    db.close();
  }
}

describe('live pipeline end to end', () => {
  let ph: TestPhonehome;
  let httpOrigin: Origin;
  let httpsOrigin: Origin;
  let caFile: string;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    httpOrigin = await startHttpOrigin();
    httpsOrigin = await startHttpsOrigin();
    ph = await startTestPhonehome({ dashboardPort: 0, ws: { maxQueueMessages: 50, maxQueueBytes: 64 * 1024, dropGraceMs: 10_000 } });
    caFile = path.join(ph.dataDir, 'ca-for-curl.pem');
    fs.writeFileSync(caFile, ph.ca.certPem);
  });
  afterAll(async () => {
    for (const c of clients) c.ws.terminate();
    await ph?.stop();
    await httpOrigin?.close();
    await httpsOrigin?.close();
  });

  async function ws(query = ''): Promise<TestClient> {
    const c = await connectWs(`ws://127.0.0.1:${ph.live.dashboard!.port}/ws${query}`, { headers: bearer(ph.dashboardToken!) });
    clients.push(c);
    return c;
  }

  it('an IMEI in a form body sent by curl becomes a finding, a fields row and a WebSocket alert', async () => {
    const live = await ws();
    const r = await curl(['-x', `http://127.0.0.1:${ph.proxyPort}`, '-d', `IMEI=${IMEI}&SIM1CELLID=20817`, `http://zzhc.test:${httpOrigin.port}/register?case=form`]);
    expect(r.code).toBe(0);
    await live.waitFor((m) => m.some((x) => x.type === 'alert' && /case=form/.test(x.data.url)), 2000);
    const alert = live.messages.find((x) => x.type === 'alert')!;
    expect(alert.data).toMatchObject({ host: 'zzhc.test', method: 'POST', tls: false, clientIp: '127.0.0.1' });
    expect(alert.data.types).toContain('imei');
    expect(alert.data.findings.find((f: { type: string }) => f.type === 'imei')).toMatchObject({ value: IMEI, chain: expect.arrayContaining(['form']) });

    const flowId = alert.data.flowId;
    const findings = query<{ type: string; value: string; detector: string; explanation: string }>(ph.dataDir, 'SELECT * FROM findings WHERE flow_id = ?', flowId);
    expect(findings.find((f) => f.type === 'imei')).toMatchObject({ value: IMEI, explanation: expect.stringMatching(/\w/) });
    expect(query(ph.dataDir, "SELECT value FROM fields WHERE flow_id = ? AND key = 'imei'", flowId)).toEqual([{ value: IMEI }]);
    expect(query(ph.dataDir, "SELECT value FROM fields WHERE flow_id = ? AND key = 'SIM1CELLID'", flowId)).toEqual([{ value: '20817' }]);

    const detail = (await (await fetch(`http://127.0.0.1:${ph.live.dashboard!.port}/api/flows/${flowId}`, { headers: bearer(ph.dashboardToken!) })).json()) as any;
    expect(detail.flow.requestBody.text).toBe(`IMEI=${IMEI}&SIM1CELLID=20817`);
    expect(detail.findings.map((f: { type: string }) => f.type)).toContain('imei');
  });

  it('finds identifiers inside base64 JSON over intercepted HTTPS, and every carrier of SIM1CELLID in SQL', async () => {
    const inner = Buffer.from(JSON.stringify({ SIM1ICCID: ICCID, SIM1CELLID: '31337', IMEI1: IMEI })).toString('base64');
    const r = await curl(['-x', `http://127.0.0.1:${ph.proxyPort}`, '--cacert', caFile, '--json', JSON.stringify({ data: inner }), `https://origin.test:${httpsOrigin.port}/collect?case=b64`]);
    expect(r.code).toBe(0);
    const flow = await eventually(() => query<{ id: number; analysis_state: number; finding_types: string }>(ph.dataDir, "SELECT id, analysis_state, finding_types FROM flows WHERE url LIKE '%case=b64%' AND analysis_state = 1")[0]);
    expect(JSON.parse(flow.finding_types)).toEqual(expect.arrayContaining(['imei', 'iccid']));
    const carriers = query<{ flow_id: number; value: string; chain: string }>(ph.dataDir, "SELECT flow_id, value, chain FROM fields WHERE key = 'SIM1CELLID' ORDER BY flow_id");
    expect(carriers.map((c) => c.value)).toEqual(['20817', '31337']);
    expect(JSON.parse(carriers[1].chain)).toEqual(expect.arrayContaining(['base64', 'json']));
    const f = query<{ tls: number; severity: string }>(ph.dataDir, "SELECT tls, severity FROM findings WHERE flow_id = ? AND type = 'iccid'", flow.id)[0];
    expect(f.tls).toBe(1);
  });

  it('a dashboard client that stops reading is dropped with 4008 while the proxy serves every request', async () => {
    const slow = await ws();
    const healthy = await ws();
    (slow.ws as unknown as { _socket: import('net').Socket })._socket.pause();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const send = (i: number) =>
      new Promise<number>((resolve, reject) => {
        const body = `imei=${IMEI}&pad=${'z'.repeat(3000)}&n=${i}`;
        const req = http.request(
          { host: '127.0.0.1', port: ph.proxyPort, method: 'POST', path: `http://zzhc.test:${httpOrigin.port}/bulk?n=${i}&${'q'.repeat(6000)}`, agent, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode!));
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    const statuses: number[] = [];
    // Until the paused client's kernel buffers are full and its queue overflows.
    for (let i = 0; i < 3000 && ph.live.dashboard!.hub.dropped === 0; i += 20) {
      statuses.push(...(await Promise.all(Array.from({ length: 20 }, (_, k) => send(i + k)))));
      await ph.pipeline!.idle();
    }
    agent.destroy();
    expect(statuses.every((s) => s === 200)).toBe(true);
    await ph.pipeline!.idle();
    expect(ph.live.dashboard!.hub.dropped).toBe(1);
    (slow.ws as unknown as { _socket: import('net').Socket })._socket.resume();
    expect((await slow.closed).code).toBe(4008);
    const expected = statuses.length;
    await healthy.waitFor((m) => m.filter((x) => x.type === 'alert' && /\/bulk/.test(x.data.url)).length === expected, 10_000);
  });
});

describe('phonehome start (the CLI) with the pipeline', () => {
  let cli: CliProcess | undefined;
  let dir: string;
  let origin: Origin;
  beforeAll(async () => {
    origin = await startHttpOrigin();
  });
  afterAll(async () => {
    await origin.close();
  });
  beforeEach(() => {
    dir = makeTempDir();
  });
  afterEach(async () => {
    await cli?.stop();
    cli = undefined;
    removeDir(dir);
  });

  it('loads --profile IP=FILE into the devices table and serves the dashboard on loopback', async () => {
    const profile = path.join(dir, 'nokia.json');
    fs.writeFileSync(profile, JSON.stringify({ name: 'Nokia 7 plus', imei: IMEI }));
    cli = await startCli(['--listen-host', '127.0.0.1', '--port', '0', '--dashboard-port', '0', '--data-dir', path.join(dir, 'data'), '--profile', `127.0.0.1=${profile}`]);
    const [, url, token] = await eventually(() => /dashboard:\s+(http:\/\/127\.0\.0\.1:\d+)\/\?token=(\S+)/.exec(cli!.stdout()));
    expect(cli.stdout()).toMatch(/profile for 127\.0\.0\.1: Nokia 7 plus/);
    const devices = (await (await fetch(`${url}/api/devices`, { headers: bearer(token) })).json()) as { items: { clientIp: string; name: string; profile: unknown }[] };
    expect(devices.items).toEqual([expect.objectContaining({ clientIp: '127.0.0.1', name: 'Nokia 7 plus', profile: { name: 'Nokia 7 plus', imei: IMEI } })]);
    const r = await fetch(`${url}/api/stats`, { headers: bearer(token) });
    expect(r.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
  });

  it('refuses a profile file with an invalid IMEI, naming the file', async () => {
    const profile = path.join(dir, 'typo.json');
    fs.writeFileSync(profile, JSON.stringify({ imei: '490154203237519' }));
    await expect(startCli(['--listen-host', '127.0.0.1', '--port', '0', '--dashboard-port', '0', '--data-dir', path.join(dir, 'data'), '--profile', profile])).rejects.toThrow(/--profile: .*typo\.json.*imei/);
  });
});

describe('flows recorded without analysis are analysed on the next start', () => {
  it('catches up after a restart, and a client resuming with since=0 gets the alert', async () => {
    const dir = makeTempDir();
    const origin = await startHttpOrigin();
    try {
      const first = await startTestPhonehome({ dataDir: dir, analysis: false });
      const r = await curl(['-x', `http://127.0.0.1:${first.proxyPort}`, '-d', `imei=${IMEI}`, `http://zzhc.test:${origin.port}/while-recording-only`]);
      expect(r.code).toBe(0);
      await eventually(() => first.flows("url LIKE '%while-recording-only'")[0]);
      await first.stop();
      expect(query(dir, 'SELECT analysis_state FROM flows')).toEqual([{ analysis_state: 0 }]);

      const second = await startTestPhonehome({ dataDir: dir, dashboardPort: 0 });
      try {
        await second.pipeline!.idle();
        const c = await connectWs(`ws://127.0.0.1:${second.live.dashboard!.port}/ws?since=0`, { headers: bearer(second.dashboardToken!) });
        await c.waitFor((m) => m.some((x) => x.type === 'alert' && /while-recording-only/.test(x.data.url)));
        c.ws.terminate();
      } finally {
        await second.stop();
      }
    } finally {
      await origin.close();
      removeDir(dir);
    }
  });
});
