/**
 * The page's own safety and formatting rules, run in Debian's chromium on modules served by the real
 * dashboard server (empty temp store): text with markup stays text when identifiers are marked in it,
 * the element builder refuses script URLs and unknown attributes, the hex view and the live filters
 * follow their rules. The other browser tests check the same through whole views.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { Browser, Page } from 'playwright-core';
import { startDashboard, type DashboardHandle } from '../../dashboard/server';
import { Broadcaster } from '../../proxy/pipeline/broadcaster';
import { Store } from '../../proxy/store';
import { describeIfChromium, launchChromium, PageProblems, watchPage } from './helpers/browser';

const describeWithChromium = describeIfChromium('dashboard-browser-dom.test.ts');

describeWithChromium('page modules in a real browser', () => {
  let dir: string;
  let store: Store;
  let dashboard: DashboardHandle;
  let browser: Browser;
  let page: Page;
  let problems: PageProblems;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-dom-'));
    store = Store.open({ dataDir: dir });
    dashboard = await startDashboard({ port: 0, store, broadcaster: new Broadcaster() });
    browser = await launchChromium();
    page = await browser.newPage();
    problems = await watchPage(page);
    await page.goto(`http://127.0.0.1:${dashboard.port}/?token=${dashboard.token}#/devices`);
    await page.locator('main .toolbar h1').waitFor();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await dashboard?.close();
    store?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('marking identifiers in hostile text splits text nodes and creates no other element', async () => {
    const result = await page.evaluate(`(async () => {
      const { highlighted } = await import('/js/dom.js');
      const text = 'imei=490154203237518&x=<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>&IMEI2=490154203237518';
      const box = document.createElement('pre');
      box.append(highlighted(text, [{ text: '490154203237518', className: 'hit t-imei' }, { text: 'onerror', className: 'hit' }]));
      document.body.append(box);
      await new Promise((r) => setTimeout(r, 50));
      const out = {
        text: box.textContent,
        marks: [...box.querySelectorAll('mark')].map((m) => m.textContent),
        elements: [...box.querySelectorAll('*')].map((e) => e.tagName),
        pwned: window.__pwned,
      };
      box.remove();
      return out;
    })()`);
    expect(result).toEqual({
      text: 'imei=490154203237518&x=<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>&IMEI2=490154203237518',
      marks: ['490154203237518', 'onerror', '490154203237518'],
      elements: ['MARK', 'MARK', 'MARK'],
      pwned: undefined,
    });
  });

  test('overlapping needles: the longer one wins, matching ignores case', async () => {
    const marks = await page.evaluate(`(async () => {
      const { highlighted } = await import('/js/dom.js');
      const box = document.createElement('div');
      box.append(highlighted('MAC=D4:6A:6A:12:34:56;short=6a:12', [{ text: '6a:12' }, { text: 'd4:6a:6a:12:34:56' }]));
      return [...box.querySelectorAll('mark')].map((m) => m.textContent);
    })()`);
    expect(marks).toEqual(['D4:6A:6A:12:34:56', '6a:12']);
  });

  test('the element builder refuses script URLs and attributes outside its list', async () => {
    const outcome = await page.evaluate(`(async () => {
      const { el } = await import('/js/dom.js');
      const attempt = (fn) => { try { fn(); return 'built'; } catch (e) { return 'refused'; } };
      return {
        jsHref: attempt(() => el('a', { href: 'javascript:window.__pwned=1' }, 'x')),
        dataHref: attempt(() => el('a', { href: 'data:text/html,<script>1</script>' }, 'x')),
        onerrorString: attempt(() => el('img', { onerror: 'window.__pwned=1' })),
        styleAttr: attempt(() => el('div', { style: 'color:red' })),
        svgSrc: attempt(() => el('img', { src: 'data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=' })),
        hashHref: attempt(() => el('a', { href: '#/flows/1' }, 'x')),
        childText: el('p', null, '<b>bold</b>').innerHTML,
      };
    })()`);
    expect(outcome).toEqual({
      jsHref: 'refused', dataHref: 'refused', onerrorString: 'refused', styleAttr: 'refused',
      svgSrc: 'built', hashHref: 'built', childText: '&lt;b&gt;bold&lt;/b&gt;',
    });
  });

  test('hex view: laid out as hexdump -C, cut at the view limit', async () => {
    const dump = await page.evaluate(`(async () => {
      const { hexDump } = await import('/js/format.js');
      const bytes = new Uint8Array([...new TextEncoder().encode('IMEI=49015420\\x00\\x01'), 0xff, 0x41, 0x42]);
      return { full: hexDump(bytes, 1024), cut: hexDump(bytes, 4) };
    })()`);
    // The layout of `hexdump -C` (its output for the same bytes, minus the final offset line).
    expect(dump).toEqual({
      full: '00000000  49 4d 45 49 3d 34 39 30  31 35 34 32 30 00 01 ff  |IMEI=49015420...|\n' +
        '00000010  41 42                                             |AB|',
      cut: '00000000  49 4d 45 49                                       |IMEI|',
    });
  });

  test('live filters follow API.md: device is the client address, host a substring, severity at least', async () => {
    const verdicts = await page.evaluate(`(async () => {
      const { matches } = await import('/js/views/filters.js');
      const alert = { clientIp: '192.168.1.23', host: 'zzhc.vnet.cn', types: ['imei', 'iccid'], severity: 'high', url: 'http://zzhc.vnet.cn/reg' };
      const f = (o) => matches({ device: '', type: '', host: '', severity: '', q: '', ...o }, alert);
      return [f({}), f({ device: '192.168.1.23' }), f({ device: '192.168.1.40' }), f({ host: 'VNET.cn' }), f({ host: 'example' }),
        f({ type: 'iccid' }), f({ type: 'mac' }), f({ severity: 'medium' }), f({ severity: 'critical' }), f({ q: '/reg' })];
    })()`);
    expect(verdicts).toEqual([true, true, false, true, false, true, false, true, false, true]);
  });

  test('the page source has no HTML sinks, inline scripts, inline handlers or inline styles', () => {
    const publicDir = path.join(__dirname, '..', '..', 'dashboard', 'public');
    const sources: [string, string][] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.(js|html)$/.test(e.name)) sources.push([path.relative(publicDir, p), fs.readFileSync(p, 'utf8')]);
      }
    };
    walk(publicDir);
    expect(sources.map(([f]) => f)).toEqual(expect.arrayContaining(['index.html', path.join('js', 'app.js'), path.join('js', 'dom.js')]));
    const offences: string[] = [];
    for (const [file, text] of sources) {
      const code = text.replace(/^\s*(\/\/|\*|\/\*\*).*$/gm, '');
      for (const sink of [/\.innerHTML\b/, /\.outerHTML\b/, /insertAdjacentHTML/, /document\.write/, /\beval\s*\(/, /new Function\s*\(/, /setAttribute\(\s*['"]on/i]) {
        if (sink.test(code)) offences.push(`${file}: ${sink}`);
      }
      if (file.endsWith('.html')) {
        if (/<script(?![^>]*\bsrc=)[^>]*>/i.test(text)) offences.push(`${file}: inline <script>`);
        if (/\son[a-z]+\s*=/i.test(text)) offences.push(`${file}: inline event handler`);
        if (/\sstyle\s*=/i.test(text) || /<style/i.test(text)) offences.push(`${file}: inline style`);
      }
    }
    expect(offences).toEqual([]);
  });

  afterEach(() => {
    expect(problems.pageErrors).toEqual([]);
    expect(problems.cspViolations).toEqual([]);
  });
});
