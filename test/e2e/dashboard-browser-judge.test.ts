/**
 * The alert sentence in the live view, in Debian's chromium against phonehome started for real: a
 * leaking request through the proxy shows its sentence under the destination, live over the
 * WebSocket and again after a reload (filled from REST), as text.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Browser, Page } from 'playwright-core';
import { describeIfChromium, curlThroughProxy, launchChromium, PageProblems, RunningPhonehome, startOrigin, startPhonehome, stopServer, watchPage } from './helpers/browser';
import type * as http from 'http';

const IMEI = '490154203237518';
const ARTIFACTS = path.join(__dirname, '..', '..', 'test-artifacts');

describeIfChromium('dashboard-browser-judge.test.ts')('alert sentence in the live view', () => {
  let phonehome: RunningPhonehome;
  let origin: { server: http.Server; url: string };
  let browser: Browser;
  let page: Page;
  let problems: PageProblems;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-judge-view-'));
    origin = await startOrigin();
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

  it('shows the sentence live and after a reload', async () => {
    await page.goto(phonehome.openUrl('#/live'));
    await page.locator('#conn.conn-live').waitFor({ timeout: 15_000 });
    expect(await curlThroughProxy(phonehome.proxyUrl, `${origin.url}/activate?case=sentence`, ['--data', `imei=${IMEI}&SIM1CELLID=20817`])).toBe('200');
    const sentence = page.locator('tr.alert', { hasText: 'case=sentence' }).locator('td.host .sentence');
    await sentence.waitFor({ timeout: 20_000 });
    const expected = 'IMEI and cell ID sent in cleartext to 127.0.0.1 (local network)';
    expect(await sentence.textContent()).toBe(expected);
    expect(await sentence.evaluate((n) => n.children.length)).toBe(0);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'live-sentence.png') });

    // After a reload the row comes from /api/findings (REST fill), which carries the sentence too.
    await page.reload();
    const again = page.locator('tr.alert td.host .sentence');
    await again.first().waitFor({ timeout: 15_000 });
    expect(await again.allTextContents()).toEqual([expected]);
    expect(problems).toEqual({ pageErrors: [], cspViolations: [], consoleErrors: [] });
  });
});
