/**
 * The dashboard as a user sees it, with real parts only: phonehome started for real (temp data dir,
 * ephemeral ports), a real origin server on loopback, curl sending through the proxy, and Debian's
 * chromium showing the page. What a user checks: a leak appears in Live within 2 s, its detail
 * marks the IMEI, and captured markup is shown as text and never runs.
 */
import * as fs from 'fs';
import type * as http from 'http';
import * as os from 'os';
import * as path from 'path';
import type { Browser, Page } from 'playwright-core';
import {
  describeIfChromium, curlThroughProxy, launchChromium, PageProblems, RunningPhonehome,
  startOrigin, startPhonehome, stopServer, watchPage,
} from './helpers/browser';

const ARTIFACTS = path.join(__dirname, '..', '..', 'test-artifacts');
/** A valid IMEI (Luhn check digit correct), as a phone would send it. */
const IMEI = '490154203237518';
const XSS_BODY = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">';

const describeWithChromium = describeIfChromium('dashboard-browser.test.ts');

describeWithChromium('dashboard in a real browser', () => {
  let phonehome: RunningPhonehome;
  let origin: { server: http.Server; url: string };
  let originUrl: string;
  let browser: Browser;
  let page: Page;
  let problems: PageProblems;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-browser-'));
    origin = await startOrigin();
    originUrl = origin.url;
    phonehome = await startPhonehome(dataDir);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    problems = await watchPage(page);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await phonehome?.stop();
    if (origin) await stopServer(origin.server);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('a leaking request shows up in Live within 2 s, and its detail marks the IMEI', async () => {
    await page.goto(phonehome.openUrl('#/live'));
    await page.locator('#conn.conn-live').waitFor({ timeout: 10_000 });

    const status = await curlThroughProxy(phonehome.proxyUrl, `${originUrl}/collect/register`,
      ['--data', `imei=${IMEI}&model=TA-1046&lang=nb`]);
    expect(status).toBe('200');

    const row = page.locator('tr.alert', { hasText: '/collect/register' });
    await row.waitFor({ timeout: 2_000 });
    await expect(row.locator('.chip').allTextContents()).resolves.toContain('IMEI');
    expect(await row.locator('td').nth(5).textContent()).toBe('cleartext');
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'live.png') });

    await row.click();
    await page.waitForURL(/#\/flows\/\d+$/);
    const marks = page.locator('.flow-detail pre.body mark.hit');
    await marks.first().waitFor({ timeout: 5_000 });
    expect(await marks.allTextContents()).toContain(IMEI);
    const finding = page.locator('table.findings tr[data-finding-type="imei"]');
    expect(await finding.locator('mark').textContent()).toBe(IMEI);
    expect((await finding.locator('td.explanation').textContent())?.trim().length).toBeGreaterThan(10);
    await page.screenshot({ path: path.join(ARTIFACTS, 'flow-detail.png'), fullPage: true });
  });

  test('captured markup in the body, a header and the URL is shown as text and runs nothing', async () => {
    await page.goto(phonehome.openUrl('#/live'));
    await page.locator('#conn.conn-live').waitFor({ timeout: 10_000 });
    const xssQuery = encodeURIComponent('<img src=x onerror="window.__pwned=1">');
    await curlThroughProxy(phonehome.proxyUrl, `${originUrl}/xss?imei=${IMEI}&q=${xssQuery}`, [
      '-H', `X-Evil: ${XSS_BODY}`,
      '-H', 'Content-Type: text/html',
      '--data-binary', `imei=${IMEI}&note=${XSS_BODY}`,
    ]);
    const row = page.locator('tr.alert', { hasText: '/xss' });
    await row.waitFor({ timeout: 2_000 });
    await row.click();
    const body = page.locator('.flow-detail .request pre.body');
    await body.waitFor();
    expect(await body.textContent()).toContain(XSS_BODY);
    expect(await page.locator('.flow-detail .request table.headers').textContent()).toContain(XSS_BODY);
    // Nothing from the capture became an element: no <script> or <img> exists outside our own QR codes.
    expect(await page.locator('.flow-detail script, .flow-detail img').count()).toBe(0);
    await page.waitForTimeout(300);
    expect(await page.evaluate('window.__pwned')).toBeUndefined();
    expect(problems.cspViolations).toEqual([]);
    expect(problems.pageErrors).toEqual([]);
  });
});
