/**
 * The dashboard in Firefox (issue: "works in current Chromium and Firefox"): Debian's firefox-esr,
 * headless, driven over WebDriver BiDi (helpers/firefox.ts); phonehome, the origin and curl as in
 * the Chromium tests. What a user checks: a leak appears in Live within 2 s, its detail marks the
 * IMEI, and captured markup is shown as text, runs nothing and trips no CSP.
 */
import * as fs from 'fs';
import type * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import { curlThroughProxy, RunningPhonehome, startOrigin, startPhonehome, stopServer } from './helpers/browser';
import { describeIfFirefox, Firefox } from './helpers/firefox';

const ARTIFACTS = path.join(__dirname, '..', '..', 'test-artifacts');
const IMEI = '490154203237518';
const XSS_BODY = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">';

/** Finds the Live row whose text contains `text` (as a page expression). */
const rowWith = (text: string) => `[...document.querySelectorAll('tr.alert')].find((r) => r.textContent.includes(${JSON.stringify(text)}))`;

describeIfFirefox('dashboard-firefox.test.ts')('dashboard in Firefox', () => {
  let phonehome: RunningPhonehome;
  let origin: { server: http.Server; url: string };
  let firefox: Firefox;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-firefox-data-'));
    origin = await startOrigin();
    phonehome = await startPhonehome(dataDir);
    firefox = await Firefox.launch();
    await firefox.setViewport(1440, 900);
    await firefox.addPreloadScript(`() => {
      window.__csp = [];
      document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline')));
    }`);
  }, 60_000);

  afterAll(async () => {
    await firefox?.close();
    await phonehome?.stop();
    if (origin) await stopServer(origin.server);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('a leaking request shows up in Live within 2 s, and its detail marks the IMEI', async () => {
    await firefox.goto(phonehome.openUrl('#/live'));
    await firefox.waitFor("document.querySelector('#conn.conn-live') !== null", 10_000, 'the live connection');

    expect(await curlThroughProxy(phonehome.proxyUrl, `${origin.url}/collect/register`, ['--data', `imei=${IMEI}&model=TA-1046&lang=nb`])).toBe('200');
    const row = await firefox.waitFor<{ chips: string[]; transport: string }>(
      `(() => { const r = ${rowWith('/collect/register')}; return r && { chips: [...r.querySelectorAll('.chip')].map((c) => c.textContent), transport: r.querySelectorAll('td')[5].textContent }; })()`,
      2_000, 'the alert row',
    );
    expect(row.chips).toContain('IMEI');
    expect(row.transport).toBe('cleartext');
    await firefox.screenshot(path.join(ARTIFACTS, 'live-firefox.png'));

    await firefox.evaluate(`${rowWith('/collect/register')}.click()`);
    await firefox.waitFor(String.raw`/#\/flows\/\d+$/.test(location.hash)`, 5_000, 'the flow detail route');
    const marks = await firefox.waitFor<string[]>(
      `(() => { const m = [...document.querySelectorAll('.flow-detail pre.body mark.hit')].map((x) => x.textContent); return m.length ? m : null; })()`,
      5_000, 'marked identifiers',
    );
    expect(marks).toContain(IMEI);
    const finding = await firefox.evaluate<{ mark: string; explanation: string }>(
      `(() => { const tr = document.querySelector('table.findings tr[data-finding-type="imei"]'); return { mark: tr.querySelector('mark').textContent, explanation: tr.querySelector('td.explanation').textContent.trim() }; })()`,
    );
    expect(finding.mark).toBe(IMEI);
    expect(finding.explanation.length).toBeGreaterThan(10);
    await firefox.screenshot(path.join(ARTIFACTS, 'flow-detail-firefox.png'));
  });

  test('captured markup in the body, a header and the URL is shown as text and runs nothing', async () => {
    await firefox.goto(phonehome.openUrl('#/live'));
    await firefox.waitFor("document.querySelector('#conn.conn-live') !== null", 10_000, 'the live connection');
    const xssQuery = encodeURIComponent('<img src=x onerror="window.__pwned=1">');
    await curlThroughProxy(phonehome.proxyUrl, `${origin.url}/xss?imei=${IMEI}&q=${xssQuery}`, [
      '-H', `X-Evil: ${XSS_BODY}`, '-H', 'Content-Type: text/html', '--data-binary', `imei=${IMEI}&note=${XSS_BODY}`,
    ]);
    await firefox.waitFor(`!!${rowWith('/xss')}`, 2_000, 'the alert row');
    await firefox.evaluate(`${rowWith('/xss')}.click()`);
    const shown = await firefox.waitFor<{ body: string; headers: string; elements: number }>(
      `(() => { const b = document.querySelector('.flow-detail .request pre.body'); return b && { body: b.textContent,
        headers: document.querySelector('.flow-detail .request table.headers').textContent,
        elements: document.querySelectorAll('.flow-detail script, .flow-detail img').length }; })()`,
      5_000, 'the request body',
    );
    expect(shown.body).toContain(XSS_BODY);
    expect(shown.headers).toContain(XSS_BODY);
    expect(shown.elements).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    expect(await firefox.evaluate('window.__pwned')).toBeNull();
    expect(await firefox.evaluate('window.__csp')).toEqual([]);
    expect(firefox.errors).toEqual([]);
  });
});
