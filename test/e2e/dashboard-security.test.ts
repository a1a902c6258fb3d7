/**
 * Who may use the dashboard, over real sockets and a real SQLite file: the token on loopback too (its
 * three carriers, the link's redirect and cookie, the page a browser without it gets), the Origin and
 * Fetch Metadata checks on what changes state (nothing changes in the database when refused), the
 * requests that used to end the process, a failing handler, and one re-analysis per device with a
 * bounded number of messages. Browsers: dashboard-browser-origin.test.ts; the token file and the
 * banner: dashboard-token-file.test.ts.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import { startDashboard, type DashboardHandle } from '../../dashboard/server';
import { AnalysisPipeline, InlineAnalyser } from '../../proxy/pipeline';
import { ALERT_BUDGET } from '../../proxy/pipeline/reanalysis';
import { Store } from '../../proxy/store';
import { bearer, connectWs } from '../unit/pipeline/fixtures/dashboard-harness';
import { formAnalyser, formFlow } from '../unit/pipeline/fixtures/flows';
import { rawRequest, WS_UPGRADE_HEADERS } from './helpers/raw-http';

const IMEI = '490154203237518';
const PHONE = '192.168.1.23';

/** The analyser stand-in, held back while `gate` is closed (to catch a re-analysis while it runs). */
class Gate {
  private waiting: (() => void)[] = [];
  closed = false;
  wait(): Promise<void> {
    return this.closed ? new Promise((r) => this.waiting.push(r)) : Promise.resolve();
  }
  open(): void {
    this.closed = false;
    for (const w of this.waiting.splice(0)) w();
  }
}

describe('dashboard access', () => {
  let dir: string;
  let store: Store;
  let pipeline: AnalysisPipeline;
  let dashboard: DashboardHandle;
  let base: string;
  let own: string;
  const logs: string[] = [];
  const gate = new Gate();

  function record(body: string, clientIp = PHONE) {
    const f = formFlow(body, { clientIp });
    store.flows.insert(f);
    pipeline.submit(f);
    return f;
  }
  /** What a refused request must leave as it was. */
  function dbState() {
    return {
      flows: store.db.prepare('SELECT id, analysis_state, analysed_at, finding_count FROM flows ORDER BY id').all(),
      events: store.db.prepare('SELECT COUNT(*) AS n FROM events').get(),
      devices: store.db.prepare('SELECT client_ip, name, profile FROM devices ORDER BY client_ip').all(),
    };
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-dash-sec-'));
    store = Store.open({ dataDir: dir });
    pipeline = new AnalysisPipeline({
      store, catchUpIntervalMs: 50, log: () => undefined,
      analyser: new InlineAnalyser(async (flow) => {
        await gate.wait();
        return formAnalyser(flow);
      }),
    });
    dashboard = await startDashboard({
      host: '127.0.0.1', port: 0, store, broadcaster: pipeline.broadcaster, tokenFile: path.join(dir, 'dashboard.token'),
      reanalyse: (ip) => pipeline.reanalyse(ip), log: (m) => logs.push(m),
      setupInfo: {
        proxyHost: '192.168.1.10', proxyPort: 8080, addresses: ['192.168.1.10'], setupUrl: 'http://192.168.1.10:8080/', caUrl: 'http://192.168.1.10:8080/ca.pem',
        wireguard: { status: async () => { throw new Error('status exploded'); }, config: () => null },
      },
    });
    base = `http://127.0.0.1:${dashboard.port}`;
    own = base;
    for (let i = 0; i < 3; i++) record(`imei=${IMEI}&n=${i}`);
    record('q=weather');
    await pipeline.idle();
  });
  afterAll(async () => {
    gate.open();
    await dashboard?.close();
    await pipeline?.close();
    store?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('answers the requests that used to end the process with 400 or 401, logs them, and keeps serving', async () => {
    const port = dashboard.port;
    const cases: Array<[string, number]> = [
      [`GET //[/ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${dashboard.token}\r\n${WS_UPGRADE_HEADERS}\r\n`, 400],
      [`GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nCookie: phonehome_token=%E0%A4%A\r\n${WS_UPGRADE_HEADERS}\r\n`, 401],
      [`GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nCookie: phonehome_token=%E0%A4%A\r\n\r\n`, 401],
      [`GET //[/api/stats HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${dashboard.token}\r\n\r\n`, 400],
      [`GET /api/flows/%E0%A4%A HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${dashboard.token}\r\n\r\n`, 400],
      [`GET /api/flows/%E0%A4 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${dashboard.token}\r\n\r\n`, 400],
      [`GET /ws?since=%E0%A4%A HTTP/1.1\r\nHost: [::1:${port}\r\n${WS_UPGRADE_HEADERS}\r\n`, 400],
      [`GET /\\evil.example/?token=${dashboard.token} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/html\r\n\r\n`, 400],
    ];
    for (const [request, status] of cases) {
      const r = await rawRequest(port, request);
      expect([request.split('\r\n')[0], r.status]).toEqual([request.split('\r\n')[0], status]);
      const stats = await fetch(`${base}/api/stats`, { headers: bearer(dashboard.token) });
      expect(stats.status).toBe(200);
    }
    expect(logs).toContainEqual(expect.stringMatching(/^dashboard: upgrade \/\/\[\/ws refused \(400\): malformed request target/));
    expect(logs).toContainEqual(expect.stringMatching(/^dashboard: GET \/\/\[\/api\/stats refused \(400\)/));
    expect(logs.filter((l) => l.includes(dashboard.token))).toEqual([]);
    // A WebSocket with the token still opens.
    const c = await connectWs(`ws://127.0.0.1:${port}/ws`, { headers: bearer(dashboard.token) });
    c.ws.terminate();
  });

  it('answers 401 without the token, 200 with it as Bearer, ?token= or the cookie', async () => {
    for (const p of ['/api/stats', '/api/flows', '/', '/index.html', '/js/app.js']) {
      expect([p, (await fetch(base + p)).status]).toEqual([p, 401]);
      expect([p, (await fetch(base + p, { headers: { Authorization: 'Bearer not-the-token' } })).status]).toEqual([p, 401]);
      expect([p, (await fetch(base + p, { headers: bearer(dashboard.token) })).status]).toEqual([p, 200]);
      expect([p, (await fetch(`${base}${p}?token=${dashboard.token}`)).status]).toEqual([p, 200]);
      expect([p, (await fetch(base + p, { headers: { Cookie: `other=1; phonehome_token=${dashboard.token}` } })).status]).toEqual([p, 200]);
    }
    const json = await fetch(`${base}/api/stats`);
    expect(((await json.json()) as { error: string }).error).toMatch(/token required/);
  });

  it('a browser without the token gets a page saying where the link and the token file are', async () => {
    const r = await fetch(`${base}/`, { headers: { Accept: 'text/html,application/xhtml+xml' } });
    expect(r.status).toBe(401);
    expect(r.headers.get('content-type')).toMatch(/^text\/html/);
    expect(r.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
    const html = await r.text();
    expect(html).toContain('phonehome start');
    expect(html).toContain(`http://127.0.0.1:${dashboard.port}/?token=`);
    expect(html).toContain(path.join(dir, 'dashboard.token'));
    expect(html).not.toContain(dashboard.token);
    expect(html).not.toMatch(/<script/i);
  });

  it('the link sets an HttpOnly SameSite=Strict cookie and sends a browser on to the same URL without the token', async () => {
    const r = await fetch(`${base}/?view=x&token=${dashboard.token}`, { headers: { Accept: 'text/html', 'Sec-Fetch-Mode': 'navigate' }, redirect: 'manual' });
    expect(r.status).toBe(303);
    expect(r.headers.get('location')).toBe('/?view=x');
    expect(r.headers.get('cache-control')).toBe('no-store');
    const cookie = r.headers.get('set-cookie')!;
    expect(cookie.split(';').map((s) => s.trim())).toEqual(expect.arrayContaining([`phonehome_token=${dashboard.token}`, 'HttpOnly', 'SameSite=Strict', 'Path=/']));
    // A script using ?token= gets its answer, not a redirect.
    const api = await fetch(`${base}/api/stats?token=${dashboard.token}`, { redirect: 'manual' });
    expect(api.status).toBe(200);
  });

  it('refuses a state change from another origin, an opaque one, or with the cookie alone, and nothing changes in the database', async () => {
    const before = dbState();
    const cookie = { Cookie: `phonehome_token=${dashboard.token}` };
    const attempts: Array<{ method: string; path: string; headers: Record<string, string>; body?: string }> = [];
    for (const [method, p, body, type] of [
      ['POST', `/api/devices/${PHONE}/reanalyse`, 'x=1', 'text/plain'],
      ['PUT', `/api/devices/${PHONE}`, JSON.stringify({ profile: { name: 'pwned' } }), 'application/json'],
      ['DELETE', `/api/devices/${PHONE}`, undefined, undefined],
      ['PATCH', `/api/devices/${PHONE}`, '{}', 'application/json'],
    ] as const) {
      const headers = { ...cookie, ...(type ? { 'Content-Type': type } : {}) };
      // Another port of 127.0.0.1: the same site, so a browser sends the SameSite=Strict cookie.
      attempts.push({ method, path: p, body, headers: { ...headers, Origin: 'http://127.0.0.1:9' } });
      attempts.push({ method, path: p, body, headers: { ...headers, Origin: `http://localhost:${dashboard.port}` } });
      attempts.push({ method, path: p, body, headers: { ...headers, Origin: 'http://evil.example' } });
      attempts.push({ method, path: p, body, headers: { ...headers, Origin: 'null' } });
      // With the Bearer token too: the page's Origin decides.
      attempts.push({ method, path: p, body, headers: { ...headers, ...bearer(dashboard.token), Origin: 'http://127.0.0.1:9' } });
      // No Origin: the cookie alone is what a browser adds by itself.
      attempts.push({ method, path: p, body, headers });
      attempts.push({ method, path: p, body, headers: { ...headers, 'Sec-Fetch-Site': 'same-site' } });
      attempts.push({ method, path: p, body, headers: { ...bearer(dashboard.token), 'Sec-Fetch-Site': 'cross-site' } });
    }
    for (const a of attempts) {
      const r = await fetch(base + a.path, { method: a.method, headers: a.headers, body: a.body });
      expect([a.method, a.path, a.headers, r.status]).toEqual([a.method, a.path, a.headers, 403]);
      expect(((await r.json()) as { error: string }).error).toMatch(/cross-origin|cross-site|must come from the dashboard page/);
    }
    await pipeline.idle();
    expect(dbState()).toEqual(before);
    expect(logs.some((l) => /POST \/api\/devices\/192\.168\.1\.23\/reanalyse refused \(403\): cross-origin request refused \(Origin http:\/\/127\.0\.0\.1:9\)/.test(l))).toBe(true);

    // The same requests from the dashboard's own page, or from a script with the Bearer token, work.
    const put = await fetch(`${base}/api/devices/${PHONE}`, { method: 'PUT', headers: { ...cookie, Origin: own, 'Content-Type': 'application/json' }, body: JSON.stringify({ profile: { name: 'Nokia 7 plus' } }) });
    expect(put.status).toBe(200);
    const viaScript = await fetch(`${base}/api/devices/${PHONE}`, { method: 'PUT', headers: { ...bearer(dashboard.token), 'Content-Type': 'application/json' }, body: JSON.stringify({ profile: { name: 'Nokia 7 plus' } }) });
    expect(viaScript.status).toBe(200);
    const sameOrigin = await fetch(`${base}/api/devices/${PHONE}`, { method: 'PUT', headers: { ...cookie, 'Sec-Fetch-Site': 'same-origin', 'Content-Type': 'application/json' }, body: JSON.stringify({ profile: null }) });
    expect(sameOrigin.status).toBe(200);
  });

  it('refuses reads that another site\'s page would make the browser send (Fetch Metadata), not a link from it', async () => {
    // node:http, not fetch: fetch sets Sec-Fetch-Mode itself.
    const get = (p: string, headers: Record<string, string>) => new Promise<number>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: dashboard.port, path: p, headers: { Cookie: `phonehome_token=${dashboard.token}`, ...headers } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      }).on('error', reject);
    });
    for (const meta of [
      { 'Sec-Fetch-Site': 'same-site', 'Sec-Fetch-Mode': 'no-cors', 'Sec-Fetch-Dest': 'image' },
      { 'Sec-Fetch-Site': 'same-site', 'Sec-Fetch-Mode': 'cors', 'Sec-Fetch-Dest': 'empty' },
      { 'Sec-Fetch-Site': 'cross-site', 'Sec-Fetch-Mode': 'no-cors', 'Sec-Fetch-Dest': 'script' },
      { 'Sec-Fetch-Site': 'same-site', 'Sec-Fetch-Mode': 'navigate', 'Sec-Fetch-Dest': 'iframe' },
    ]) {
      expect([meta, await get('/api/export.har', meta)]).toEqual([meta, 403]);
    }
    expect(await get('/', { 'Sec-Fetch-Site': 'same-site', 'Sec-Fetch-Mode': 'navigate', 'Sec-Fetch-Dest': 'document' })).toBe(200);
    expect(await get('/api/flows', { 'Sec-Fetch-Site': 'same-origin', 'Sec-Fetch-Mode': 'cors', 'Sec-Fetch-Dest': 'empty' })).toBe(200);
    expect(await get('/api/flows', { 'Sec-Fetch-Site': 'none', 'Sec-Fetch-Mode': 'navigate', 'Sec-Fetch-Dest': 'document' })).toBe(200);
  });

  it('a handler that throws is logged with its method and path (never the token) and answered 500; the server keeps serving', async () => {
    const r = await fetch(`${base}/api/setup?token=${dashboard.token}`);
    expect(r.status).toBe(500);
    expect(await r.json()).toEqual({ error: 'internal error' });
    expect(logs).toContainEqual('dashboard: GET /api/setup?… failed: status exploded');
    expect(logs.filter((l) => l.includes(dashboard.token))).toEqual([]);
    expect((await fetch(`${base}/api/stats`, { headers: bearer(dashboard.token) })).status).toBe(200);
  });

  it('runs one re-analysis per device at a time (409 while one runs) and announces a bounded number of alerts, then a summary', async () => {
    const n = ALERT_BUDGET + 150;
    for (let i = 0; i < n; i++) record(`imei=${IMEI}&batch=${i}`, '192.168.1.40');
    await pipeline.idle();
    const live = await connectWs(`ws://127.0.0.1:${dashboard.port}/ws`, { headers: bearer(dashboard.token) });
    const seqBefore = store.events.latestSeq();
    gate.closed = true;
    const post = () => fetch(`${base}/api/devices/192.168.1.40/reanalyse`, { method: 'POST', headers: bearer(dashboard.token) });
    const first = await post();
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ queued: n });
    const second = await post();
    expect(second.status).toBe(409);
    const refused = (await second.json()) as { error: string; left: number; queued: number };
    expect(refused.error).toMatch(/a re-check of 192\.168\.1\.40 is already running: \d+ of 250 flows left/);
    expect(refused).toMatchObject({ queued: n, left: n });
    // Another device is not held up by it.
    expect((await fetch(`${base}/api/devices/${PHONE}/reanalyse`, { method: 'POST', headers: bearer(dashboard.token) })).status).toBe(200);
    gate.open();
    await live.waitFor((m) => m.filter((x) => x.type === 'reanalysis').length === 2, 20_000);
    const summary = live.messages.find((x) => x.type === 'reanalysis' && x.data.clientIp === '192.168.1.40')!;
    expect(summary.data).toMatchObject({ clientIp: '192.168.1.40', flows: n, withFindings: n, announced: ALERT_BUDGET });
    // 250 flows analysed again: ALERT_BUDGET alerts and one summary, no per-flow messages (a first analysis appends two per flow).
    const appended = store.db.prepare('SELECT type, COUNT(*) AS n FROM events WHERE seq > ? AND (flow_id IS NULL OR flow_id IN (SELECT id FROM flows WHERE client_ip = ?)) GROUP BY type ORDER BY type').all(seqBefore, '192.168.1.40');
    expect(appended).toEqual([{ type: 'alert', n: ALERT_BUDGET }, { type: 'reanalysis', n: 2 }]);
    expect(store.db.prepare('SELECT COUNT(*) AS n FROM flows WHERE analysis_state = 0').get()).toEqual({ n: 0 });
    // Done: a new run may start.
    expect((await post()).status).toBe(200);
    await live.waitFor((m) => m.filter((x) => x.type === 'reanalysis').length === 3, 20_000);
    live.ws.terminate();
  }, 60_000);
});

describe('a re-analysis interrupted by a stop', () => {
  it('is taken over by the next start: still one at a time, still bounded, then its summary', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-reanalysis-restart-'));
    const gate = new Gate();
    const open = () => {
      const store = Store.open({ dataDir: dir });
      const pipeline = new AnalysisPipeline({
        store, catchUpIntervalMs: 50, log: () => undefined,
        analyser: new InlineAnalyser(async (flow) => {
          await gate.wait();
          return formAnalyser(flow);
        }),
      });
      return { store, pipeline };
    };
    try {
      let { store, pipeline } = open();
      const n = ALERT_BUDGET + 50;
      for (let i = 0; i < n; i++) {
        const f = formFlow(`imei=${IMEI}&i=${i}`, { clientIp: '192.168.1.50' });
        store.flows.insert(f);
        pipeline.submit(f);
      }
      await pipeline.idle();
      gate.closed = true;
      expect(await pipeline.reanalyse('192.168.1.50')).toEqual({ started: true, queued: n });
      await pipeline.close();
      store.close();

      ({ store, pipeline } = open());
      const dashboard = await startDashboard({ port: 0, store, broadcaster: pipeline.broadcaster, reanalyse: (ip) => pipeline.reanalyse(ip), log: () => undefined });
      try {
        const live = await connectWs(`ws://127.0.0.1:${dashboard.port}/ws`, { headers: bearer(dashboard.token) });
        const seqBefore = store.events.latestSeq();
        const again = await fetch(`http://127.0.0.1:${dashboard.port}/api/devices/192.168.1.50/reanalyse`, { method: 'POST', headers: bearer(dashboard.token) });
        expect(again.status).toBe(409);
        expect(await again.json()).toMatchObject({ queued: n, left: n });
        gate.open();
        await live.waitFor((m) => m.some((x) => x.type === 'reanalysis'), 20_000);
        expect(live.messages.find((x) => x.type === 'reanalysis')!.data).toMatchObject({ clientIp: '192.168.1.50', flows: n, withFindings: n, announced: ALERT_BUDGET });
        expect(store.db.prepare('SELECT type, COUNT(*) AS n FROM events WHERE seq > ? GROUP BY type ORDER BY type').all(seqBefore)).toEqual([{ type: 'alert', n: ALERT_BUDGET }, { type: 'reanalysis', n: 1 }]);
        live.ws.terminate();
      } finally {
        await dashboard.close();
        await pipeline.close();
        store.close();
      }
    } finally {
      gate.open();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('an exception thrown later by something a request started', () => {
  it('under phonehome start\'s last-resort handler, closes that connection only, logged without the token; the dashboard keeps serving', () => {
    // A child process: the handler is process-wide (the built code, as `phonehome start` runs it).
    const dist = path.resolve(__dirname, '../../dist');
    const script = `
      const { startDashboard } = require(${JSON.stringify(path.join(dist, 'dashboard/server'))});
      const { installLastResortHandler } = require(${JSON.stringify(path.join(dist, 'proxy/capture/containment'))});
      const { Store } = require(${JSON.stringify(path.join(dist, 'proxy/store'))});
      const { Broadcaster } = require(${JSON.stringify(path.join(dist, 'proxy/pipeline/broadcaster'))});
      (async () => {
        installLastResortHandler((line) => console.log('LOG ' + line.split('\\n')[0]));
        const store = Store.open({ dataDir: process.argv[1] });
        const late = async () => { setTimeout(() => { throw new Error('late failure'); }, 0); return new Promise(() => {}); };
        const d = await startDashboard({ port: 0, store, broadcaster: new Broadcaster(), log: () => {},
          setupInfo: { proxyHost: 'x', proxyPort: 1, addresses: [], setupUrl: 'http://x/', caUrl: 'http://x/ca', wireguard: { status: late, config: () => null } } });
        const setup = await fetch('http://127.0.0.1:' + d.port + '/api/setup?token=' + d.token).then((r) => r.status, () => 'closed');
        const stats = await fetch('http://127.0.0.1:' + d.port + '/api/stats', { headers: { Authorization: 'Bearer ' + d.token } });
        console.log('RESULT ' + JSON.stringify({ setup, stats: stats.status, token: d.token }));
        await d.close(); store.close(); process.exit(0);
      })();`;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-late-'));
    try {
      const out = spawnSync(process.execPath, ['-e', script, dir], { encoding: 'utf8', timeout: 30_000 });
      expect(out.status).toBe(0);
      const result = JSON.parse(/^RESULT (.*)$/m.exec(out.stdout)![1]) as { setup: unknown; stats: number; token: string };
      expect(result).toMatchObject({ setup: 'closed', stats: 200 });
      const log = out.stdout.split('\n').filter((l) => l.startsWith('LOG '));
      expect(log).toEqual([expect.stringMatching(/internal error while handling client 127\.0\.0\.1 "GET" "dashboard \/api\/setup\?…" .*phonehome keeps running: Error: late failure/)]);
      expect(out.stdout.split(result.token).length).toBe(2); // only in the RESULT line
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
