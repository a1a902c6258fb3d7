/**
 * A hostile page in the user's own browser, in Debian's chromium: the user has opened the dashboard
 * (so the browser holds its cookie), then visits a page served from another port of 127.0.0.1 — the
 * same site, so the SameSite=Strict cookie IS sent. That page posts a text/plain form to
 * /api/devices/:ip/reanalyse, sends a no-cors POST and a preflighted PUT, and opens a WebSocket to
 * /ws?since=0. Every one is refused (the form gets 403, not 401: the cookie was sent, the Origin
 * stopped it), the WebSocket never opens, and nothing changes in the database; the dashboard's own
 * page, with the same cookie, still re-checks the device.
 */
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import Database from 'better-sqlite3';
import type { Browser } from 'playwright-core';
import {
  curlThroughProxy, describeIfChromium, launchChromium, RunningPhonehome, startOrigin, startPhonehome, stopServer, watchPage,
} from './helpers/browser';
import { eventually } from './helpers/phonehome';

const IMEI = '490154203237518';

/** The attacker's page: everything it tries, reported back to its own server. */
function attackerPage(dashboard: string): string {
  const target = `${dashboard}/api/devices/127.0.0.1`;
  return `<!doctype html><html><body>
<form id="f" method="POST" enctype="text/plain" action="${target}/reanalyse"><input name="a" value="b"></form>
<script>
const report = (what) => fetch('/report?' + what);
const ws = new WebSocket('${dashboard.replace('http:', 'ws:')}/ws?since=0');
ws.onopen = () => report('ws=open');
ws.onmessage = () => report('ws=message');
ws.onerror = () => report('ws=error');
ws.onclose = (e) => report('ws=close&code=' + e.code);
fetch('${target}/reanalyse', { method: 'POST', mode: 'no-cors', credentials: 'include', body: 'x' })
  .then(() => report('post=sent'), () => report('post=failed'));
fetch('${target}', { method: 'PUT', credentials: 'include', headers: { 'Content-Type': 'application/json' }, body: '{"profile":{"name":"pwned"}}' })
  .then(() => report('put=sent'), () => report('put=failed'));
setTimeout(() => document.getElementById('f').submit(), 500);
</script></body></html>`;
}

describeIfChromium(path.basename(__filename))('the dashboard against a page on another origin, in a real browser', () => {
  let dataDir: string;
  let phonehome: RunningPhonehome;
  let origin: { server: http.Server; url: string };
  let attacker: http.Server;
  let attackerUrl: string;
  const reports: string[] = [];
  let browser: Browser;

  function dbState() {
    const db = new Database(path.join(dataDir, 'phonehome.db'), { readonly: true, fileMustExist: true });
    try {
      return {
        flows: db.prepare('SELECT id, analysis_state, analysed_at, finding_count FROM flows ORDER BY id').all(),
        events: db.prepare('SELECT seq, type FROM events ORDER BY seq').all(),
        devices: db.prepare('SELECT client_ip, name, profile FROM devices ORDER BY client_ip').all(),
      };
    } finally {
      db.close();
    }
  }
  async function api(p: string) {
    return (await fetch(`${phonehome.dashboardUrl}${p}`, { headers: { Authorization: `Bearer ${phonehome.token}` } })).json() as Promise<any>;
  }

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-origin-'));
    origin = await startOrigin();
    phonehome = await startPhonehome(dataDir);
    const dashboard = phonehome.dashboardUrl.replace(/\/$/, '');
    attacker = http.createServer((req, res) => {
      if (req.url?.startsWith('/report?')) {
        reports.push(req.url.slice('/report?'.length));
        res.end();
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end(attackerPage(dashboard));
    });
    await new Promise<void>((r) => attacker.listen(0, '127.0.0.1', () => r()));
    attackerUrl = `http://127.0.0.1:${(attacker.address() as AddressInfo).port}/`;
    expect(await curlThroughProxy(phonehome.proxyUrl, `${origin.url}/collect`, ['--data', `imei=${IMEI}`])).toBe('200');
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await phonehome?.stop();
    if (origin) await stopServer(origin.server);
    if (attacker) await stopServer(attacker);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('form POST, fetch and WebSocket from 127.0.0.1:other-port are refused and change nothing; the dashboard page still works', async () => {
    // The flow is analysed (its alert is in the log) before anything is compared.
    for (let i = 0; i < 200 && (await api('api/stats')).alerts < 1; i++) await new Promise((r) => setTimeout(r, 50));
    const context = await browser.newContext();
    const own = await context.newPage();
    const problems = await watchPage(own);
    await own.goto(phonehome.openUrl('#/live'));
    await own.locator('#conn.conn-live').waitFor({ timeout: 10_000 });
    const cookies = await context.cookies(phonehome.dashboardUrl);
    expect(cookies).toEqual([expect.objectContaining({ name: 'phonehome_token', value: phonehome.token, httpOnly: true, sameSite: 'Strict' })]);
    const before = dbState();

    const evil = await context.newPage();
    const formAnswer = evil.waitForResponse((r) => r.url().endsWith('/api/devices/127.0.0.1/reanalyse') && r.request().resourceType() === 'document');
    await evil.goto(attackerUrl);
    const answer = await formAnswer;
    // 403, not 401: the browser sent the cookie (same site); the Origin check refused the request.
    expect(answer.status()).toBe(403);
    expect(await answer.text()).toMatch(/cross-origin request refused \(Origin http:\/\/127\.0\.0\.1:\d+\)/);
    await eventually(() => reports.some((r) => r.startsWith('ws=close')) && reports.some((r) => r.startsWith('post=')) && reports.some((r) => r.startsWith('put=')), 10_000, 'the attacker page\'s reports');
    expect(reports).not.toContain('ws=open');
    expect(reports).not.toContain('ws=message');
    expect(reports).toContain('put=failed'); // its preflight was refused: the PUT was never sent
    expect((await api('api/stats')).queue.pending).toBe(0);
    expect(dbState()).toEqual(before);
    expect((await api('api/devices')).items[0].name).not.toBe('pwned');

    // The dashboard's own page, same browser, same cookie: the re-check goes through.
    await own.goto(`${phonehome.dashboardUrl}#/devices`);
    await own.locator('.device-card button.reanalyse').click();
    await own.locator('.device-card .form-message.ok', { hasText: 'queued' }).waitFor({ timeout: 5_000 });
    await own.locator('p.notice', { hasText: 'Re-check of' }).waitFor({ timeout: 10_000 });
    const after = dbState();
    expect(after.events.map((e: any) => e.type)).toContain('reanalysis');
    expect(after.flows).not.toEqual(before.flows);
    expect(problems.pageErrors).toEqual([]);
    expect(problems.cspViolations).toEqual([]);
    await context.close();
  }, 60_000);
});
