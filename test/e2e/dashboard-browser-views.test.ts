/**
 * The rest of what a user does on the dashboard, in Debian's chromium against phonehome started for
 * real: pause and resume the live list, filter it, lose the live connection and get every missed
 * alert back (resume with ?since=), survive a dashboard restart, edit a device profile (the server's
 * own 400 message shown), read the destinations chart and the setup page.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Browser, Page, WebSocketRoute } from 'playwright-core';
import {
  describeIfChromium, curlThroughProxy, launchChromium, PageProblems, RunningPhonehome,
  startOrigin, startPhonehome, stopServer, watchPage,
} from './helpers/browser';
import type * as http from 'http';

const ARTIFACTS = path.join(__dirname, '..', '..', 'test-artifacts');
const IMEI = '490154203237518';
const ICCID = '89470000000000000072';
/** Small, so that one test can send a body the proxy cuts. */
const BODY_LIMIT = 64 * 1024;

const describeWithChromium = describeIfChromium('dashboard-browser-views.test.ts');

describeWithChromium('dashboard views in a real browser', () => {
  let phonehome: RunningPhonehome;
  let origin: { server: http.Server; url: string };
  let browser: Browser;
  let page: Page;
  let problems: PageProblems;
  let dataDir: string;
  /** Lets a test cut the page's live connection and refuse reconnects, as a flaky network would. */
  let wsGateOpen = true;
  let openSockets: WebSocketRoute[] = [];
  const wsUrls: string[] = [];

  const leak = (urlPath: string, body = `imei=${IMEI}`) =>
    curlThroughProxy(phonehome.proxyUrl, `${origin.url}${urlPath}`, ['--data', body]);
  const alertRow = (urlPath: string) => page.locator('tr.alert', { hasText: urlPath });
  const waitLive = () => page.locator('#conn.conn-live').waitFor({ timeout: 15_000 });

  /** Polls the REST API (as a script would) until the flow with this path is stored with its findings. */
  async function waitForStoredAlert(urlPath: string): Promise<number> {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const res = await fetch(`${phonehome.dashboardUrl}api/flows?q=${encodeURIComponent(urlPath)}`, { headers: { Authorization: `Bearer ${phonehome.token}` } });
      const json = (await res.json()) as { items: { id: number; findingCount: number }[] };
      const stored = json.items.find((f) => f.findingCount > 0);
      if (stored) return stored.id;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no finding stored for ${urlPath}`);
  }

  beforeAll(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-views-'));
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    origin = await startOrigin();
    phonehome = await startPhonehome(dataDir, { bodyLimit: BODY_LIMIT });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    problems = await watchPage(page);
    await page.routeWebSocket(/\/ws(\?|$)/, (ws) => {
      wsUrls.push(ws.url());
      if (!wsGateOpen) {
        ws.close({ code: 1013, reason: 'test: network down' });
        return;
      }
      openSockets.push(ws);
      ws.connectToServer();
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await phonehome?.stop();
    if (origin) await stopServer(origin.server);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    // Filters persist per tab by design; each test starts from none.
    await page.goto(phonehome.openUrl());
    await page.evaluate('sessionStorage.removeItem("phonehome.filters")');
  });

  afterEach(() => {
    wsGateOpen = true;
    expect(problems.pageErrors).toEqual([]);
    expect(problems.cspViolations).toEqual([]);
  });

  test('pause holds new alerts and counts them; resume shows them', async () => {
    await page.goto(phonehome.openUrl('#/live'));
    await waitLive();
    await page.getByRole('button', { name: 'Pause' }).click();
    await leak('/paused/one');
    await page.locator('.held', { hasText: '1 new alert held' }).waitFor({ timeout: 5_000 });
    expect(await alertRow('/paused/one').count()).toBe(0);
    await page.getByRole('button', { name: 'Resume' }).click();
    await alertRow('/paused/one').waitFor({ timeout: 1_000 });
    expect(await page.locator('.held').textContent()).toBe('');
  });

  test('filtering by identifier type hides other alerts, live and reloaded', async () => {
    await page.goto(phonehome.openUrl('#/live'));
    await waitLive();
    await page.locator('select[name="type"]').selectOption('iccid');
    await leak('/filter/imei-only', `imei=${IMEI}`);
    await leak('/filter/iccid', `iccid=${ICCID}`);
    await alertRow('/filter/iccid').waitFor({ timeout: 5_000 });
    const hiddenId = await waitForStoredAlert('/filter/imei-only');
    const hiddenRow = page.locator(`tr.alert[data-flow-id="${hiddenId}"]`);
    expect(await hiddenRow.count()).toBe(0);
    // The filtered-out alert exists: clearing the filter refills the list from the server.
    await page.locator('select[name="type"]').selectOption('');
    await hiddenRow.waitFor({ timeout: 5_000 });
    expect(await hiddenRow.locator('.chip').allTextContents()).toEqual(['IMEI']);
  });

  test('alerts sent while the live connection is down arrive on reconnect (resume with ?since=)', async () => {
    await page.goto(phonehome.openUrl('#/live'));
    await waitLive();
    wsGateOpen = false;
    for (const ws of openSockets) ws.close({ code: 1006, reason: 'test: network down' });
    openSockets = [];
    await page.locator('#conn.conn-reconnecting').waitFor({ timeout: 5_000 });
    const urlsBefore = wsUrls.length;

    await leak('/while-offline/a');
    await leak('/while-offline/b');
    await waitForStoredAlert('/while-offline/b');
    expect(await alertRow('/while-offline/').count()).toBe(0);

    wsGateOpen = true;
    await alertRow('/while-offline/a').waitFor({ timeout: 15_000 });
    await alertRow('/while-offline/b').waitFor({ timeout: 2_000 });
    const reconnectUrl = wsUrls.slice(urlsBefore).pop() ?? '';
    expect(reconnectUrl).toMatch(/[?&]since=\d+/);
    expect(await page.evaluate('Number(sessionStorage.getItem("phonehome.lastSeq"))')).toBeGreaterThan(0);
  });

  test('a dashboard restart loses no alert: the page reconnects by itself and resumes', async () => {
    await page.goto(phonehome.openUrl('#/live'));
    await waitLive();
    await leak('/before-restart');
    await alertRow('/before-restart').waitFor({ timeout: 2_000 });
    // Keep the page from reconnecting until the new alert has been broadcast: only resuming from
    // the seq it saw last (persisted by the server across the restart) can bring it back.
    wsGateOpen = false;
    phonehome = await phonehome.restart();
    await page.locator('#conn.conn-reconnecting').waitFor({ timeout: 5_000 });
    await leak('/after-restart');
    await waitForStoredAlert('/after-restart');
    wsGateOpen = true;
    await alertRow('/after-restart').waitFor({ timeout: 15_000 });
    expect(await alertRow('/before-restart').count()).toBe(1);
    await waitLive();
  });

  test('flow detail: a cut body says so with its true size, and the hex view shows the bytes as sent', async () => {
    await page.goto(phonehome.openUrl('#/live'));
    await waitLive();
    const big = `imei=${IMEI}&pad=${'x'.repeat(100_000)}`;
    await leak('/big-body', big);
    const row = alertRow('/big-body');
    await row.waitFor({ timeout: 5_000 });
    await row.click();
    const request = page.locator('.flow-detail .request');
    const note = request.locator('.bodyhead p');
    await note.waitFor();
    expect(await note.textContent()).toContain(`truncated: 64.0 KiB of ${(big.length / 1024).toFixed(1)} KiB kept`);
    expect(await request.locator('pre.body mark.hit').first().textContent()).toBe(IMEI);
    await request.getByRole('button', { name: 'Show hex' }).click();
    const hex = request.locator('pre.body[data-mode="hex"]');
    await hex.waitFor();
    const firstLine = ((await hex.textContent()) ?? '').split('\n')[0];
    expect(firstLine).toBe('00000000  69 6d 65 69 3d 34 39 30  31 35 34 32 30 33 32 33  |imei=49015420323|');
    await request.getByRole('button', { name: 'Show text' }).click();
    await request.locator('pre.body[data-mode="text"] mark.hit').first().waitFor();
  });

  test('flows: every flow is listed live, leaks or not, and the URL filter narrows the list', async () => {
    await page.goto(phonehome.openUrl('#/flows'));
    await waitLive();
    await curlThroughProxy(phonehome.proxyUrl, `${origin.url}/plain/nothing-to-see`, []);
    const plain = page.locator('tr.flow', { hasText: '/plain/nothing-to-see' });
    await plain.waitFor({ timeout: 2_000 });
    expect(await plain.locator('.chip').count()).toBe(0);
    await leak('/flows-view/leak');
    const leaking = page.locator('tr.flow', { hasText: '/flows-view/leak' });
    await leaking.locator('.chip', { hasText: 'IMEI' }).waitFor({ timeout: 5_000 });

    await page.locator('input[name="q"]').fill('/flows-view/');
    await page.locator('tr.flow', { hasText: '/plain/nothing-to-see' }).waitFor({ state: 'detached', timeout: 5_000 });
    expect(await page.locator('tr.flow').count()).toBe(1);
    // "Export HAR" downloads what the list shows: the same filter, the same flow.
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('a.export').click()]);
    expect(download.suggestedFilename()).toMatch(/^phonehome-.*\.har$/);
    const har = JSON.parse(fs.readFileSync((await download.path())!, 'utf8')) as { log: { entries: { request: { url: string }; _phonehome: { findings: { type: string }[] } }[] } };
    expect(har.log.entries.map((e) => new URL(e.request.url).pathname)).toEqual(['/flows-view/leak']);
    expect(har.log.entries[0]._phonehome.findings.map((f) => f.type)).toContain('imei');
    await leaking.click();
    await page.waitForURL(/#\/flows\/\d+$/);
    await page.locator('table.findings tr[data-finding-type="imei"]').waitFor({ timeout: 5_000 });
  });

  test('devices: the profile editor shows the server\'s message for a bad profile and saves a good one', async () => {
    await page.goto(phonehome.openUrl('#/devices'));
    const card = page.locator('section.device-card').first();
    await card.waitFor({ timeout: 5_000 });
    const textarea = card.locator('textarea[name="profile"]');
    await textarea.fill('{"name": "Nokia 7 plus", "imei": 354}');
    await card.getByRole('button', { name: 'Save profile' }).click();
    const message = card.locator('.form-message');
    await message.filter({ hasText: 'Not saved' }).waitFor({ timeout: 5_000 });
    expect(await message.textContent()).toMatch(/400: .*imei/);

    await textarea.fill('{"name": "Nokia 7 plus", "imei": "' + IMEI + '"}');
    await card.getByRole('button', { name: 'Save profile' }).click();
    await message.filter({ hasText: 'Saved' }).waitFor({ timeout: 5_000 });
    await page.reload();
    await page.locator('section.device-card h2', { hasText: 'Nokia 7 plus' }).waitFor({ timeout: 5_000 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'devices.png') });

    // Past traffic can be checked again against the new profile.
    const flowsOfPhone = Number(await page.locator('section.device-card dd').first().textContent());
    await page.getByRole('button', { name: 'Re-check past traffic' }).click();
    await page.locator('section.device-card .form-message.ok').waitFor({ timeout: 5_000 });
    expect(await page.locator('section.device-card .form-message').textContent()).toMatch(new RegExp(`^${flowsOfPhone} flows queued`));
  });

  test('destinations: the host that received the IMEI is in the chart and the table', async () => {
    await page.goto(phonehome.openUrl('#/destinations'));
    const row = page.locator('table.destinations tbody tr', { hasText: '127.0.0.1' });
    await row.waitFor({ timeout: 5_000 });
    const headers = await page.locator('table.destinations thead th').allTextContents();
    const imeiColumn = headers.indexOf('IMEI');
    expect(imeiColumn).toBeGreaterThan(0);
    expect(Number(await row.locator('td').nth(imeiColumn).textContent())).toBeGreaterThanOrEqual(3);
    expect(await page.locator('svg.chart rect.seg.t-imei').count()).toBeGreaterThanOrEqual(1);
    await page.screenshot({ path: path.join(ARTIFACTS, 'destinations.png') });
  });

  test('setup: proxy port and two QR codes that load', async () => {
    await page.goto(phonehome.openUrl('#/setup'));
    await page.locator('figure.qr img').nth(1).waitFor({ timeout: 5_000 });
    // The proxy listens on loopback only here, so that is the one address to type into the phone.
    expect(await page.locator('.proxy-address dd').allTextContents()).toEqual(['127.0.0.1', String(phonehome.proxyPort)]);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const widths = await page.locator('figure.qr img').evaluateAll((imgs: any[]) => imgs.map((i) => (i.complete ? i.naturalWidth : 0)));
    expect(widths).toHaveLength(2);
    expect(widths.every((w: number) => w > 0)).toBe(true);
    await page.screenshot({ path: path.join(ARTIFACTS, 'setup.png'), fullPage: true });
  });
});
