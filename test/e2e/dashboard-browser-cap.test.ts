/**
 * A busy phone must not make the page slow: the live list keeps the newest LIVE_ROW_CAP rows in the
 * DOM, newest first, and older alerts stay reachable with "Load older alerts". Real store, real
 * analyser (worker thread) and real dashboard server; flows are recorded the way capture records
 * them (store, then pipeline) because 500+ curl runs would only make the test slow.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Browser, Page } from 'playwright-core';
import { startDashboard, type DashboardHandle } from '../../dashboard/server';
import type { Flow } from '../../proxy/flow';
import { AnalysisPipeline } from '../../proxy/pipeline';
import { Store } from '../../proxy/store';
import { describeIfChromium, launchChromium, PageProblems, watchPage } from './helpers/browser';

const describeWithChromium = describeIfChromium('dashboard-browser-cap.test.ts');

/** dashboard/public/js/views/live.js LIVE_ROW_CAP */
const LIVE_ROW_CAP = 500;
const FLOWS = 530;

/** An app's cleartext form post carrying an IMEI, as the proxy records it. */
function leakingFlow(n: number): Flow {
  const body = Buffer.from(`imei=490154203237518&seq=${n}`);
  const now = Date.now();
  return {
    kind: 'http', source: 'proxy', startedAt: now, endedAt: now + 3, clientIp: '192.168.1.23', clientPort: 40000 + (n % 1000),
    method: 'POST', url: `http://collector.example.net/c?seq=${n}`, scheme: 'http', host: 'collector.example.net', port: 80,
    tls: false, requestHeaders: [['Host', 'collector.example.net'], ['Content-Type', 'application/x-www-form-urlencoded'],
      ['Content-Length', String(body.length)]],
    requestBody: { bytes: body, size: body.length, truncated: false }, responseStatus: 204, responseHeaders: [],
    responseBody: { bytes: Buffer.alloc(0), size: 0, truncated: false }, timings: { totalMs: 3 }, tags: [],
  };
}

describeWithChromium('live list under a burst of alerts', () => {
  let dir: string;
  let store: Store;
  let pipeline: AnalysisPipeline;
  let dashboard: DashboardHandle;
  let browser: Browser;
  let page: Page;
  let problems: PageProblems;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-cap-'));
    store = Store.open({ dataDir: dir });
    pipeline = new AnalysisPipeline({ store, log: () => undefined });
    dashboard = await startDashboard({ port: 0, store, broadcaster: pipeline.broadcaster });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    problems = await watchPage(page);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await dashboard?.close();
    await pipeline?.close();
    store?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test(`${FLOWS} alerts streamed in: the newest ${LIVE_ROW_CAP} rows stay, newest first; older ones load on demand`, async () => {
    await page.goto(`http://127.0.0.1:${dashboard.port}/?token=${dashboard.token}#/live`);
    await page.locator('#conn.conn-live').waitFor({ timeout: 10_000 });
    const ids: number[] = [];
    for (let n = 0; n < FLOWS; n++) {
      const flow = leakingFlow(n);
      ids.push(store.flows.insert(flow));
      pipeline.submit(flow);
    }
    await pipeline.idle();
    const newest = Math.max(...ids);
    await page.locator(`tr.alert[data-flow-id="${newest}"]`).waitFor({ timeout: 15_000 });
    // Every alert has been delivered once the newest has: messages arrive in seq order.
    const shown = await page.locator('tr.alert').evaluateAll((rows: any[]) => rows.map((r) => Number(r.dataset.flowId)));
    const expected = [...ids].sort((a, b) => b - a).slice(0, LIVE_ROW_CAP);
    expect(shown).toEqual(expected);

    await page.getByRole('button', { name: 'Load older alerts' }).click();
    const oldest = Math.min(...ids);
    await page.locator(`tr.alert[data-flow-id="${oldest}"]`).waitFor({ timeout: 5_000 });
    expect(await page.locator('tr.alert').count()).toBe(FLOWS);
    expect(problems.pageErrors).toEqual([]);
  });
});
