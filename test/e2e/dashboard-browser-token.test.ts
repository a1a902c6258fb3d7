/**
 * The dashboard's token in Debian's chromium: the URL printed at start (…/?token=T) opens the page,
 * whose REST calls and live stream then work on the cookie alone; the token leaves the address bar
 * (a redirect, so not in the history either); without it the user gets a readable 401 page saying
 * where the link and the token file are.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Browser } from 'playwright-core';
import { startDashboard, type DashboardHandle } from '../../dashboard/server';
import { Broadcaster } from '../../proxy/pipeline/broadcaster';
import { Store } from '../../proxy/store';
import { describeIfChromium, launchChromium, watchPage } from './helpers/browser';

const describeWithChromium = describeIfChromium('dashboard-browser-token.test.ts');

const TOKEN = 'test-token-5b2f1c0e9a7d4e38';

describeWithChromium('dashboard token in a real browser', () => {
  let dir: string;
  let store: Store;
  let dashboard: DashboardHandle;
  let browser: Browser;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-token-'));
    store = Store.open({ dataDir: dir });
    dashboard = await startDashboard({ port: 0, store, broadcaster: new Broadcaster(), token: TOKEN, tokenFile: path.join(dir, 'dashboard.token'), log: () => undefined });
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await dashboard?.close();
    store?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the printed URL opens the page; API and live stream then work on the cookie; the token leaves the address bar', async () => {
    const page = await browser.newPage();
    const problems = await watchPage(page);
    const wsUrls: string[] = [];
    page.on('websocket', (ws) => wsUrls.push(ws.url()));
    await page.goto(`http://127.0.0.1:${dashboard.port}/?token=${TOKEN}#/live`);
    await page.locator('#conn.conn-live').waitFor({ timeout: 10_000 });
    await page.locator('p.empty', { hasText: 'No alerts yet' }).waitFor({ timeout: 5_000 });
    expect(page.url()).toBe(`http://127.0.0.1:${dashboard.port}/#/live`);
    expect(wsUrls.length).toBeGreaterThan(0);
    expect(wsUrls.every((u) => !u.includes(TOKEN))).toBe(true);
    expect(await page.locator('#stats').textContent()).toContain('0 flows');
    expect(problems.pageErrors).toEqual([]);
    await page.close();
  });

  test('without the token: 401 with a message that says what to open', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const res = await page.goto(`http://127.0.0.1:${dashboard.port}/#/live`);
    expect(res?.status()).toBe(401);
    const text = await page.textContent('body');
    expect(text).toContain('token required');
    expect(text).toContain('phonehome start');
    expect(text).toContain(path.join(dir, 'dashboard.token'));
    expect(text).not.toContain(TOKEN);
    await context.close();
  });
});
