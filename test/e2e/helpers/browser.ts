/**
 * Launches Debian's chromium through playwright-core for the dashboard's browser tests. No browser
 * is ever downloaded: when /usr/bin/chromium is missing the tests skip with a message saying how to
 * get it (CI's .ci/run installs it). Also collects what a page must never do — throw, or trip the
 * CSP — so each test can assert the list is empty.
 */
import * as fs from 'fs';
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
