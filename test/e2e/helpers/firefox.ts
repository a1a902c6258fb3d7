/**
 * Debian's Firefox ESR for the dashboard's browser tests, driven over WebDriver BiDi (the W3C
 * protocol Firefox speaks natively) with a small client on `ws`. playwright-core's Firefox needs
 * Playwright's patched build, and its experimental BiDi mode calls commands this ESR does not have
 * yet (emulation.setMediaFeaturesOverride), so the tests talk BiDi themselves: navigate, evaluate,
 * screenshot, and the log of page errors. When /usr/bin/firefox-esr is missing the tests skip with
 * a message (CI's .ci/run installs it).
 *
 * The profile keeps the browser on loopback: Mozilla's background services are switched off, and
 * anything that is not loopback would go to a proxy on a closed loopback port.
 */
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { WebSocket } from 'ws';

export const FIREFOX_PATH = process.env.PHONEHOME_FIREFOX || '/usr/bin/firefox-esr';

export function firefoxAvailable(): boolean {
  try {
    fs.accessSync(FIREFOX_PATH, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** `describe` when Firefox is there; otherwise `describe.skip`, with a warning that names the test file. */
export function describeIfFirefox(testFile: string): jest.Describe {
  if (firefoxAvailable()) return describe;
  console.warn(`${testFile} skipped: ${FIREFOX_PATH} not found — install Debian's firefox-esr (apt-get install firefox-esr) or set PHONEHOME_FIREFOX`);
  return describe.skip;
}

const PREFS: Record<string, string | number | boolean> = {
  // Never leave loopback: a dead proxy for everything else (loopback itself is never proxied).
  'network.proxy.type': 1,
  'network.proxy.http': '127.0.0.1',
  'network.proxy.http_port': 9,
  'network.proxy.ssl': '127.0.0.1',
  'network.proxy.ssl_port': 9,
  'network.proxy.share_proxy_settings': true,
  'network.trr.mode': 5,
  'network.dns.disablePrefetch': true,
  'network.prefetch-next': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'app.update.disabledForTesting': true,
  'app.normandy.enabled': false,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'browser.safebrowsing.downloads.enabled': false,
  'browser.safebrowsing.blockedURIs.enabled': false,
  'services.settings.server': 'http://127.0.0.1:9/',
  'extensions.update.enabled': false,
  'extensions.getAddons.cache.enabled': false,
  'extensions.blocklist.enabled': false,
  'dom.push.connection.enabled': false,
  'media.gmp-manager.updateEnabled': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'datareporting.healthreport.uploadEnabled': false,
  'toolkit.telemetry.enabled': false,
  'browser.shell.checkDefaultBrowser': false,
  'browser.startup.homepage_override.mstone': 'ignore',
  'browser.startup.page': 0,
  'browser.newtabpage.enabled': false,
  'browser.aboutwelcome.enabled': false,
  'geo.provider.network.url': '',
  'browser.region.network.url': '',
};

interface BidiEvent {
  method: string;
  params: Record<string, unknown>;
}

/** One Firefox with one tab, and the BiDi calls the tests need. */
export class Firefox {
  /** Uncaught page errors and console errors, from the BiDi log. */
  readonly errors: string[] = [];
  private nextId = 1;
  private readonly calls = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();

  private constructor(
    private readonly child: ChildProcess,
    private readonly ws: WebSocket,
    private readonly profile: string,
    public context = '',
  ) {
    ws.on('message', (raw) => {
      const m = JSON.parse(raw.toString()) as { id?: number; type: string; result?: unknown; error?: string; message?: string } & BidiEvent;
      if (m.id !== undefined) {
        const call = this.calls.get(m.id);
        this.calls.delete(m.id);
        if (m.type === 'error') call?.reject(new Error(`${m.error}: ${m.message}`));
        else call?.resolve(m.result);
      } else if (m.method === 'log.entryAdded') {
        const e = m.params as { level: string; text: string; type: string };
        if (e.level === 'error') this.errors.push(`${e.type}: ${e.text}`);
      }
    });
  }

  static async launch(): Promise<Firefox> {
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-firefox-'));
    fs.writeFileSync(path.join(profile, 'user.js'), Object.entries(PREFS).map(([k, v]) => `user_pref(${JSON.stringify(k)}, ${JSON.stringify(v)});\n`).join(''));
    const child = spawn(FIREFOX_PATH, ['--headless', '--no-remote', '--profile', profile, '--remote-debugging-port=0', 'about:blank'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, MOZ_CRASHREPORTER_DISABLE: '1', HOME: profile },
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let log = '';
        const timer = setTimeout(() => reject(new Error(`firefox did not start its BiDi server in 30 s:\n${log.slice(-2000)}`)), 30_000);
        child.stderr!.on('data', (c: Buffer) => {
          log += c.toString();
          const m = /WebDriver BiDi listening on (ws:\/\/\S+)/.exec(log);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]);
          }
        });
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`firefox exited (${code}):\n${log.slice(-2000)}`));
        });
      });
      const ws = new WebSocket(`${url.replace(/\/$/, '')}/session`);
      await new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      const ff = new Firefox(child, ws, profile);
      await ff.send('session.new', { capabilities: {} });
      await ff.send('session.subscribe', { events: ['log.entryAdded'] });
      const tree = (await ff.send('browsingContext.getTree', {})) as { contexts: { context: string }[] };
      ff.context = tree.contexts[0].context;
      return ff;
    } catch (err) {
      child.kill('SIGKILL');
      fs.rmSync(profile, { recursive: true, force: true });
      throw err;
    }
  }

  send(method: string, params: Record<string, unknown>): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  async setViewport(width: number, height: number): Promise<void> {
    await this.send('browsingContext.setViewport', { context: this.context, viewport: { width, height } });
  }

  /** A script run in every page before its own scripts (e.g. listeners that record CSP violations). */
  async addPreloadScript(functionDeclaration: string): Promise<void> {
    await this.send('script.addPreloadScript', { functionDeclaration });
  }

  async goto(url: string): Promise<void> {
    await this.send('browsingContext.navigate', { context: this.context, url, wait: 'complete' });
  }

  /** Evaluates an expression in the page; its value is returned as JSON (JSON.stringify in the page). */
  async evaluate<T>(expression: string): Promise<T> {
    const r = (await this.send('script.evaluate', {
      expression: `Promise.resolve(${expression}).then((v) => JSON.stringify(v === undefined ? null : v))`,
      target: { context: this.context },
      awaitPromise: true,
    })) as { type: string; result?: { value: string }; exceptionDetails?: { text: string } };
    if (r.type !== 'success') throw new Error(`page script failed: ${r.exceptionDetails?.text}`);
    return JSON.parse(r.result!.value) as T;
  }

  /** Polls an expression until it is truthy; returns its value, or throws after timeoutMs. */
  async waitFor<T>(expression: string, timeoutMs: number, what = expression): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await this.evaluate<T>(expression);
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async screenshot(file: string): Promise<void> {
    const r = (await this.send('browsingContext.captureScreenshot', { context: this.context })) as { data: string };
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, Buffer.from(r.data, 'base64'));
  }

  async close(): Promise<void> {
    await this.send('browser.close', {}).catch(() => undefined);
    this.ws.terminate();
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(this.profile, { recursive: true, force: true });
  }
}
