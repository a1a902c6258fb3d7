/**
 * The phone's first step, done by a real browser: Chromium with phonehome as its HTTP proxy opens
 * http://phonehome.setup/, renders the page under its CSP, and downloads the CA certificate.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { chromium, Browser } from 'playwright-core';
import { Phonehome, startPhonehome } from '../../proxy/app';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

describe('setup page in a real browser through the proxy', () => {
  let dir: string;
  let app: Phonehome;
  let browser: Browser;
  const log: string[] = [];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-setup-browser-'));
    app = await startPhonehome({ dataDir: path.join(dir, 'data'), listenHost: '127.0.0.1', port: 0, dashboardPort: null, log: (l) => log.push(l) });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', `--proxy-server=http://127.0.0.1:${app.proxyPort}`,
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await app?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('renders without CSP violations and downloads a certificate matching the CA', async () => {
    const context = await browser.newContext({ acceptDownloads: true });
    try {
      const page = await context.newPage();
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(m.text());
      });
      page.on('pageerror', (e) => problems.push(e.message));
      const response = await page.goto('http://phonehome.setup/');
      expect(response?.status()).toBe(200);
      expect(await page.title()).toBe('phonehome setup');
      expect(await page.locator('h1').textContent()).toContain("trust this laptop's certificate");
      // The inline stylesheet is allowed by its hash: links look like buttons.
      expect(await page.locator('a.dl').first().evaluate((a) => (globalThis as unknown as { getComputedStyle(e: unknown): { borderTopStyle: string } }).getComputedStyle(a).borderTopStyle)).toBe('solid');
      expect(problems).toEqual([]);

      const [download] = await Promise.all([page.waitForEvent('download'), page.locator('a.dl[href="/ca.crt"]').click()]);
      expect(download.suggestedFilename()).toBe('phonehome-ca.crt');
      const saved = path.join(dir, 'downloaded.crt');
      await download.saveAs(saved);
      const cert = new crypto.X509Certificate(fs.readFileSync(saved));
      expect(cert.fingerprint256).toBe(new crypto.X509Certificate(app.ca.certPem).fingerprint256);
    } finally {
      await context.close();
    }
  });
});
