/** The REST API over a real socket and a real SQLite file: shapes, filters, keyset pages, and the security headers. */
import * as http from 'http';
import { CONTENT_SECURITY_POLICY } from '../../dashboard/server/security';
import { bearer, startHarness, Harness } from '../unit/pipeline/fixtures/dashboard-harness';

const IMEI = '490154203237518';
const XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">';

function rawGet(port: number, path: string, headers: Record<string, string>): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('dashboard REST API', () => {
  let h: Harness;
  const ids: Record<string, number> = {};

  beforeAll(async () => {
    h = await startHarness({
      setupInfo: { proxyHost: '192.168.1.10', proxyPort: 8080, addresses: ['192.168.1.10'], setupUrl: 'http://192.168.1.10:8080/setup', caUrl: 'http://192.168.1.10:8080/ca.pem' },
    });
    ids.clean = h.record('q=weather', { host: 'weather.example', url: 'http://weather.example/?q=oslo' }).id!;
    ids.leak1 = h.record(`imei=${IMEI}&SIM1CELLID=1234`).id!;
    ids.tls = h.record(`imei=${IMEI}`, { host: 'ads.example', url: 'https://ads.example/collect', tls: true, scheme: 'https', port: 443, clientIp: '192.168.1.24' }).id!;
    ids.xss = h.record(`note=${encodeURIComponent(XSS)}&imei=${IMEI}`, { requestHeaders: [['Content-Type', 'application/x-www-form-urlencoded']] }).id!;
    ids.binary = h.record('', { host: 'bin.example', url: 'http://bin.example/b', requestBody: { bytes: Buffer.from([0, 1, 2, 255, 254]), size: 9000, truncated: true } }).id!;
    await h.pipeline.idle();
  });
  afterAll(() => h.close());

  async function get(path: string) {
    const res = await h.fetch(path);
    return { status: res.status, headers: res.headers, body: (await res.json()) as any };
  }

  it('lists flows newest first as summaries, never with bodies', async () => {
    const { status, headers, body } = await get('/api/flows');
    expect(status).toBe(200);
    expect(headers.get('content-type')).toMatch(/^application\/json/);
    expect(headers.get('x-content-type-options')).toBe('nosniff');
    expect(body.items.map((f: any) => f.id)).toEqual([ids.binary, ids.xss, ids.tls, ids.leak1, ids.clean]);
    expect(body.nextBefore).toBeNull();
    const leak = body.items.find((f: any) => f.id === ids.leak1);
    expect(leak).toMatchObject({ host: 'zzhc.vnet.cn', method: 'POST', tls: false, severity: 'high', findingTypes: ['imei'], findingCount: 1, clientIp: '192.168.1.23', analysis: 'analysed' });
    expect(leak).not.toHaveProperty('requestBody');
  });

  it('pages with limit and before, without gaps or repeats', async () => {
    const seen: number[] = [];
    let before: number | null = null;
    do {
      const r: any = await get(`/api/flows?limit=2${before ? `&before=${before}` : ''}`);
      seen.push(...r.body.items.map((f: any) => f.id));
      before = r.body.nextBefore;
    } while (before !== null);
    expect(seen).toEqual([ids.binary, ids.xss, ids.tls, ids.leak1, ids.clean]);
  });

  it('filters flows by host, type, severity, device and URL substring', async () => {
    const idsOf = async (q: string) => (await get(`/api/flows?${q}`)).body.items.map((f: any) => f.id);
    expect(await idsOf('host=ads.example')).toEqual([ids.tls]);
    // a substring, case-insensitive, as the live view filters messages (API.md)
    expect(await idsOf('host=ADS.exam')).toEqual([ids.tls]);
    expect(await idsOf('type=imei')).toEqual([ids.xss, ids.tls, ids.leak1]);
    expect(await idsOf('severity=high')).toEqual([ids.xss, ids.leak1]);
    expect(await idsOf('device=192.168.1.24')).toEqual([ids.tls]);
    expect(await idsOf('q=oslo')).toEqual([ids.clean]);
    expect(await idsOf('type=imei&host=zzhc.vnet.cn&limit=1')).toEqual([ids.xss]);
  });

  it('rejects bad parameters with 400 and a message, unknown flows with 404', async () => {
    expect((await get('/api/flows?limit=0')).status).toBe(400);
    expect((await get('/api/flows?limit=501')).status).toBe(400);
    expect((await get('/api/flows?severity=urgent')).body.error).toMatch(/severity must be one of/);
    expect((await get('/api/flows?before=abc')).status).toBe(400);
    expect((await get('/api/flows/abc')).status).toBe(400);
    expect((await get('/api/flows/999999')).status).toBe(404);
    expect((await get('/api/nothing')).status).toBe(404);
  });

  it('returns a flow as sent: headers, bodies as base64 and text, findings, decoded fields', async () => {
    const { body } = await get(`/api/flows/${ids.xss}`);
    const sent = `note=${encodeURIComponent(XSS)}&imei=${IMEI}`;
    expect(body.flow.requestBody).toEqual({ size: sent.length, truncated: false, base64: Buffer.from(sent).toString('base64'), text: sent, contentType: 'application/x-www-form-urlencoded' });
    expect(body.flow.requestHeaders).toEqual([['Content-Type', 'application/x-www-form-urlencoded']]);
    expect(body.findings).toHaveLength(1);
    expect(body.findings[0]).toMatchObject({ flowId: ids.xss, type: 'imei', value: IMEI, path: 'body>form:imei', chain: ['form'], detector: 'key', severity: 'high', explanation: expect.any(String) });
    expect(body.fields).toContainEqual({ path: 'body>form:note', key: 'note', value: XSS, chain: ['form'], truncated: false });
    expect(body.destination).toMatchObject({ host: 'zzhc.vnet.cn', country: 'CN', org: 'China Telecom', cleartext: true });
    const bin = (await get(`/api/flows/${ids.binary}`)).body;
    expect(bin.flow.requestBody).toMatchObject({ size: 9000, truncated: true, base64: 'AAEC//4=', text: null });
  });

  it('lists findings with filters, destinations per host, and devices with totals', async () => {
    const f = await get('/api/findings?type=imei&limit=2');
    expect(f.body.items.map((x: any) => x.flowId)).toEqual([ids.xss, ids.tls]);
    const next = await get(`/api/findings?type=imei&limit=2&before=${f.body.nextBefore}`);
    expect(next.body.items.map((x: any) => x.flowId)).toEqual([ids.leak1]);
    expect((await get('/api/findings?host=ads.example')).body.items).toHaveLength(1);

    const d = await get('/api/destinations');
    expect(d.body.items).toEqual([
      expect.objectContaining({ host: 'zzhc.vnet.cn', total: 2, cleartext: 2, types: { imei: 2 }, country: 'CN' }),
      expect.objectContaining({ host: 'ads.example', total: 1, cleartext: 0, types: { imei: 1 } }),
    ]);
    expect((await get('/api/destinations?device=192.168.1.24')).body.items.map((x: any) => x.host)).toEqual(['ads.example']);

    const devs = await get('/api/devices');
    expect(devs.body.items.find((x: any) => x.clientIp === '192.168.1.23')).toMatchObject({ flows: 4, findings: 2, name: null });
  });

  it('sets a device profile from the dashboard; bad profiles get 400', async () => {
    const put = (ip: string, body: string) => h.fetch(`/api/devices/${ip}`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body });
    const bad = await put('192.168.1.23', JSON.stringify({ profile: { imei: 42 } }));
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).error).toMatch(/profile.imei/);
    expect((await put('192.168.1.23', JSON.stringify({ profile: { pin: '1234' } }))).status).toBe(400);
    expect((await put('192.168.1.23', '{not json')).status).toBe(400);
    expect((await put('not-an-ip', JSON.stringify({ profile: {} }))).status).toBe(400);
    const ok = await put('192.168.1.23', JSON.stringify({ profile: { name: 'Nokia 7 plus', imei: [IMEI] } }));
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ clientIp: '192.168.1.23', name: 'Nokia 7 plus', profile: { name: 'Nokia 7 plus', imei: [IMEI] } });
    expect((await get('/api/flows?device=Nokia%207%20plus')).body.items.map((f: any) => f.id)).toEqual([ids.binary, ids.xss, ids.leak1, ids.clean]);
    expect((await get(`/api/flows/${ids.leak1}`)).body.flow.device).toBe('Nokia 7 plus');
  });

  it('re-analyses a device\'s flows on request, without duplicating findings', async () => {
    const before = (await get('/api/findings?device=192.168.1.23')).body.items.length;
    const r = await h.fetch('/api/devices/192.168.1.23/reanalyse', { method: 'POST' });
    expect(await r.json()).toEqual({ queued: 4 });
    await h.pipeline.idle();
    expect((await get('/api/findings?device=192.168.1.23')).body.items.length).toBe(before);
    expect((await get('/api/stats')).body.queue.pending).toBe(0);
    // The run ends with its summary message (on the pipeline's next tick).
    for (let i = 0; i < 100 && !h.store.db.prepare("SELECT 1 FROM events WHERE type = 'reanalysis'").get(); i++) await new Promise((res) => setTimeout(res, 20));
    expect(JSON.parse((h.store.db.prepare("SELECT data FROM events WHERE type = 'reanalysis'").get() as { data: string }).data)).toMatchObject({ clientIp: '192.168.1.23', flows: 4, withFindings: 2 });
  });

  it('serves setup info with QR codes, and stats', async () => {
    const s = (await get('/api/setup')).body;
    expect(s).toMatchObject({ proxyHost: '192.168.1.10', proxyPort: 8080, setupUrl: 'http://192.168.1.10:8080/setup', caUrl: 'http://192.168.1.10:8080/ca.pem' });
    expect(Buffer.from(s.qr.setup.replace('data:image/svg+xml;base64,', ''), 'base64').toString()).toMatch(/^<svg/);
    expect(s.steps.android.length).toBeGreaterThan(2);
    const st = (await get('/api/stats')).body;
    expect(st).toEqual({ flows: 5, findings: 3, alerts: 3, devices: 2, queue: { pending: 0, analysed: 5 }, seq: h.store.events.latestSeq() });
  });

  it('puts the CSP on every response, and refuses a foreign Host header (DNS rebinding)', async () => {
    for (const p of ['/api/flows', '/api/nothing', '/', '/missing.js']) {
      const r = await rawGet(h.dashboard.port, p, { Host: `127.0.0.1:${h.dashboard.port}`, ...bearer(h.token) });
      expect(r.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
      expect(r.headers['x-content-type-options']).toBe('nosniff');
    }
    const evil = await rawGet(h.dashboard.port, '/api/flows', { Host: 'evil.example', ...bearer(h.token) });
    expect(evil.status).toBe(403);
    expect(evil.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
    expect((await rawGet(h.dashboard.port, '/api/stats', { Host: `localhost:${h.dashboard.port}`, ...bearer(h.token) })).status).toBe(200);
  });
});
