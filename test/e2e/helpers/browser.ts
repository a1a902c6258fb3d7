/**
 * Launches Debian's chromium through playwright-core for the dashboard's browser tests. No browser
 * is ever downloaded: when /usr/bin/chromium is missing the tests skip with a message saying how to
 * get it (CI's .ci/run installs it). Also collects what a page must never do — throw, or trip the
 * CSP — so each test can assert the list is empty.
 */
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.PHONEHOME_CHROMIUM || '/usr/bin/chromium';

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

export function chromiumAvailable(): boolean {
  try {
    fs.accessSync(CHROMIUM_PATH, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export const CHROMIUM_MISSING_MESSAGE =
  `skipped: ${CHROMIUM_PATH} not found — install Debian's chromium (apt-get install chromium) or set PHONEHOME_CHROMIUM`;

/** `describe` when chromium is there; otherwise `describe.skip`, with a warning that names the test file. */
export function describeIfChromium(testFile: string): jest.Describe {
  if (chromiumAvailable()) return describe;
  console.warn(`${testFile} ${CHROMIUM_MISSING_MESSAGE}`);
  return describe.skip;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, timeout: 30_000 });
}

export interface PageProblems {
  pageErrors: string[];
  cspViolations: string[];
  consoleErrors: string[];
}

/** Records uncaught page errors, CSP violations (console and securitypolicyviolation events) and console errors. */
export async function watchPage(page: Page): Promise<PageProblems> {
  const problems: PageProblems = { pageErrors: [], cspViolations: [], consoleErrors: [] };
  page.on('pageerror', (err) => problems.pageErrors.push(err.message));
  page.on('console', (msg) => {
    if (msg.type() !== 'error' && msg.type() !== 'warning') return;
    const text = msg.text();
    if (/Content[- ]Security[- ]Policy/i.test(text)) problems.cspViolations.push(text);
    else if (msg.type() === 'error') problems.consoleErrors.push(text);
  });
  await page.exposeFunction('__reportCspViolation', (what: string) => problems.cspViolations.push(what));
  // A string, not a function: this file compiles without the DOM library.
  await page.addInitScript(`document.addEventListener('securitypolicyviolation', (e) =>
    window.__reportCspViolation(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline')));`);
  return problems;
}

/** The "internet" a phone talks to: a loopback HTTP server that answers every request with 200 "ok". */
export function startOrigin(): Promise<{ server: http.Server; url: string }> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('ok');
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })));
}

export function stopServer(server: http.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** curl through the proxy, as an app on the phone would send it; resolves with the HTTP status curl saw. */
export function curlThroughProxy(proxyUrl: string, url: string, args: string[]): Promise<string> {
  const env = { ...process.env };
  for (const k of ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'no_proxy', 'NO_PROXY', 'all_proxy', 'ALL_PROXY']) delete env[k];
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '--max-time', '10', '-o', '/dev/null', '-w', '%{http_code}', '--proxy', proxyUrl, ...args, url],
      { env }, (err, stdout, stderr) => (err ? reject(new Error(`curl failed: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

export interface RunningPhonehome {
  /** Ends with '/': append 'api/...' (with the token: see `token`). */
  dashboardUrl: string;
  /** The dashboard's token (the data dir's dashboard.token: the same after a restart). */
  token: string;
  /** The link phonehome start prints, with a view: a browser opening it gets the cookie and lands on `dashboardUrl + hash`. */
  openUrl(hash?: string): string;
  proxyUrl: string;
  proxyPort: number;
  dashboardPort: number;
  /** Stops and starts again on the same data dir and ports (a dashboard restart as a user does it). */
  restart(): Promise<RunningPhonehome>;
  stop(): Promise<void>;
}

/**
 * phonehome as `phonehome start` composes it (proxy/app.ts): proxy on loopback, dashboard on
 * 127.0.0.1, both on ephemeral ports unless given (a restart reuses the same ones), data in dataDir.
 */
export interface PhonehomeTestOptions {
  /** Proxy and dashboard ports; 0 (default) picks free ones. */
  ports?: { proxy: number; dashboard: number };
  /** Bytes of each body stored (the proxy's --body-limit). */
  bodyLimit?: number;
}

export async function startPhonehome(dataDir: string, options: PhonehomeTestOptions = {}): Promise<RunningPhonehome> {
  const ports = options.ports ?? { proxy: 0, dashboard: 0 };
  // Loaded here so that tests which only need the browser do not load the whole app.
  const { startPhonehome: startApp } = await import('../../../proxy/app');
  // The test origins are on loopback: --allow-loopback-targets.
  const app = await startApp({ dataDir, listenHost: '127.0.0.1', port: ports.proxy, dashboardPort: ports.dashboard,
    bodyLimit: options.bodyLimit, log: () => undefined, allowLoopbackTargets: true });
  if (!app.dashboardUrl) {
    await app.close();
    throw new Error('phonehome started without a dashboard');
  }
  const dashboardUrl = new URL(app.dashboardUrl);
  const token = app.dashboardToken!;
  const running: RunningPhonehome = {
    dashboardUrl: `${dashboardUrl.origin}/`,
    token,
    openUrl: (hash = '') => `${dashboardUrl.origin}/?token=${token}${hash}`,
    dashboardPort: Number(dashboardUrl.port),
    proxyPort: app.proxyPort,
    proxyUrl: `http://127.0.0.1:${app.proxyPort}`,
    stop: () => app.close(),
    async restart() {
      await app.close();
      return startPhonehome(dataDir, { ...options, ports: { proxy: running.proxyPort, dashboard: running.dashboardPort } });
    },
  };
  return running;
}
