/**
 * The dashboard's setup view in VPN mode, in Chromium: each phone's WireGuard QR code renders (an
 * image from the phone's own endpoint: the listing holds no key) and its config text is there to
 * copy when opened; a phone added with `wireguard add` while phonehome runs shows up on the next
 * visit; no page errors or CSP violations.
 */
import * as path from 'path';
import type { Browser, Page } from 'playwright-core';
import { Phonehome, startPhonehome } from '../../proxy/app';
import { addPeer } from '../../proxy/capture/tunnel/wireguard/keystore';
import { describeIfChromium, launchChromium, PageProblems, watchPage } from './helpers/browser';
import { makeTempDir, removeDir } from './helpers/tmp';

describeIfChromium(path.basename(__filename))('dashboard setup view with VPN mode', () => {
  let dir: string;
  let app: Phonehome;
  let browser: Browser;
  let page: Page;
  let problems: PageProblems;

  beforeAll(async () => {
    dir = makeTempDir('phonehome-vpn-setup-');
    app = await startPhonehome({
      dataDir: dir, listenHost: '127.0.0.1', port: 0, dashboardPort: 0, log: () => undefined, analysis: false,
      wireguard: { port: 0, dnsUpstreams: ['127.0.0.1'] },
    });
    browser = await launchChromium();
    page = await browser.newPage();
    problems = await watchPage(page);
  }, 60000);

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    removeDir(dir);
  });

  test('each phone has a QR code that loads and its config text; phones added while running appear', async () => {
    await page.goto(`${app.dashboardUrl}/?token=${app.dashboardToken}#/setup`);
    const qrs = page.locator('section.wireguard figure.qr img');
    await qrs.first().waitFor({ timeout: 10_000 });
    expect(await page.locator('section.wireguard h2').textContent()).toMatch(/WireGuard/);
    expect(await page.locator('section.wireguard').textContent()).toContain(`UDP port ${app.vpn!.port}`);
    expect(await page.locator('section.wireguard figcaption').allTextContents()).toEqual([expect.stringContaining('phone (10.77.0.2)')]);
    await page.locator('section.wireguard details summary').first().click();
    await page.locator('section.wireguard pre', { hasText: 'AllowedIPs' }).waitFor({ timeout: 5_000 });
    expect(await page.locator('section.wireguard pre').first().textContent()).toContain('AllowedIPs = 0.0.0.0/0, ::/0');
    expect(await page.locator('section.wireguard .wg-status').allTextContents()).toEqual(['not connected yet']);

    addPeer(dir, 'tablet');
    await page.goto('about:blank');
    await page.goto(`${app.dashboardUrl}/#/setup`);
    await qrs.nth(1).waitFor({ timeout: 10_000 });
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const widths = await qrs.evaluateAll((imgs: any[]) => imgs.map((i) => (i.complete ? i.naturalWidth : 0)));
    expect(widths).toHaveLength(2);
    expect(widths.every((w: number) => w > 0)).toBe(true);
    expect(await page.locator('section.wireguard figcaption').nth(1).textContent()).toContain('tablet (10.77.0.3)');
    expect(problems).toEqual({ pageErrors: [], cspViolations: [], consoleErrors: [] });
    if (process.env.VPN_SETUP_SHOT) await page.screenshot({ path: process.env.VPN_SETUP_SHOT, fullPage: true });
  }, 60000);
});
