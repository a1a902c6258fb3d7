/**
 * The dashboard's token as a user meets it: `phonehome start` creates `<data-dir>/dashboard.token`
 * owner-only (0600, whatever the umask), prints the link with it in the banner, and reuses it on the
 * next start; a file others could read is made owner-only, an unusable one replaced. The phone's
 * setup page never shows the token.
 */
import * as fs from 'fs';
import * as path from 'path';
import { dashboardLinks } from '../../dashboard/server';
import { loadOrCreateDashboardToken, TOKEN_FILE_NAME } from '../../dashboard/server/token-file';
import { bearer } from '../unit/pipeline/fixtures/dashboard-harness';
import { CliProcess, eventually, startCli, startTestPhonehome } from './helpers/phonehome';
import { makeTempDir, removeDir } from './helpers/tmp';

const modeOf = (file: string) => fs.statSync(file).mode & 0o777;

describe('dashboard token file', () => {
  let dir: string;
  beforeEach(() => {
    dir = makeTempDir('phonehome-token-');
  });
  afterEach(() => removeDir(dir));

  it('is created owner-only at the first start, even with a permissive umask, and reused on the next', async () => {
    const previous = process.umask(0o000);
    let first;
    try {
      first = await startTestPhonehome({ dataDir: dir, dashboardPort: 0 });
    } finally {
      process.umask(previous);
    }
    const file = path.join(dir, TOKEN_FILE_NAME);
    try {
      expect(modeOf(file)).toBe(0o600);
      expect(first.dashboardToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(fs.readFileSync(file, 'utf8')).toBe(`${first.dashboardToken}\n`);
      expect(fs.readdirSync(dir).filter((f) => f.includes('.tmp'))).toEqual([]);
      const res = await fetch(`${first.dashboardUrl}/api/stats`, { headers: bearer(first.dashboardToken!) });
      expect(res.status).toBe(200);
    } finally {
      await first.close();
    }
    const second = await startTestPhonehome({ dataDir: dir, dashboardPort: 0 });
    try {
      expect(second.dashboardToken).toBe(first.dashboardToken);
      expect((await fetch(`${second.dashboardUrl}/api/stats`, { headers: bearer(first.dashboardToken!) })).status).toBe(200);
      expect((await fetch(`${second.dashboardUrl}/api/stats`)).status).toBe(401);
    } finally {
      await second.close();
    }
  });

  it('makes a token file others can read owner-only, and replaces one that holds no usable token', () => {
    const file = path.join(dir, TOKEN_FILE_NAME);
    const warnings: string[] = [];
    fs.writeFileSync(file, 'A'.repeat(43) + '\n', { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    expect(loadOrCreateDashboardToken(dir, (m) => warnings.push(m))).toEqual({ token: 'A'.repeat(43), file, created: false });
    expect(modeOf(file)).toBe(0o600);
    expect(warnings).toEqual([expect.stringMatching(/was readable by others \(mode 644\); made it owner-only/)]);

    fs.writeFileSync(file, 'short\n');
    const replaced = loadOrCreateDashboardToken(dir, (m) => warnings.push(m));
    expect(replaced.created).toBe(true);
    expect(replaced.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(fs.readFileSync(file, 'utf8')).toBe(`${replaced.token}\n`);
    expect(modeOf(file)).toBe(0o600);
    expect(warnings[1]).toMatch(/does not hold a usable token; writing a new one/);
  });

  it('refuses a token file that is a symbolic link (it could point anywhere)', () => {
    fs.writeFileSync(path.join(dir, 'elsewhere'), 'B'.repeat(43));
    fs.symlinkSync(path.join(dir, 'elsewhere'), path.join(dir, TOKEN_FILE_NAME));
    expect(() => loadOrCreateDashboardToken(dir)).toThrow(/cannot read the dashboard token/);
  });

  it('bound to every interface, the banner lists this machine\'s link first, then one per LAN address', () => {
    const links = dashboardLinks('0.0.0.0', 8081, 'T0K');
    expect(links[0]).toBe('http://127.0.0.1:8081/?token=T0K');
    expect(links.slice(1).every((l) => /^http:\/\/\d+\.\d+\.\d+\.\d+:8081\/\?token=T0K$/.test(l) && !l.startsWith('http://0.0.0.0'))).toBe(true);
    expect(dashboardLinks('127.0.0.1', 8081, 'T0K')).toEqual(['http://127.0.0.1:8081/?token=T0K']);
    expect(dashboardLinks('::1', 8081, 'T0K')).toEqual(['http://[::1]:8081/?token=T0K']);
  });
});

describe('phonehome start banner', () => {
  let dir: string;
  let cli: CliProcess | undefined;
  beforeAll(() => {
    dir = makeTempDir('phonehome-banner-');
  });
  afterAll(async () => {
    await cli?.stop();
    removeDir(dir);
  });

  it('prints the dashboard link with the token of the data dir; the phone\'s setup page never shows it', async () => {
    const dataDir = path.join(dir, 'data');
    cli = await startCli(['--listen-host', '127.0.0.1', '--port', '0', '--dashboard-port', '0', '--data-dir', dataDir]);
    const line = await eventually(() => /^ {2}dashboard: +(http:\/\/127\.0\.0\.1:(\d+)\/\?token=([A-Za-z0-9_-]+))$/m.exec(cli!.stdout()), 10_000, 'the dashboard line');
    const [, link, port, token] = line;
    expect(fs.readFileSync(path.join(dataDir, TOKEN_FILE_NAME), 'utf8')).toBe(`${token}\n`);
    expect(cli.stdout()).not.toMatch(/reachable from other machines/);
    // Opening the printed link: a redirect to the clean address with the cookie.
    const open = await fetch(link, { headers: { Accept: 'text/html' }, redirect: 'manual' });
    expect(open.status).toBe(303);
    expect(open.headers.get('location')).toBe('/');
    const cookie = open.headers.get('set-cookie')!.split(';')[0];
    expect((await fetch(`http://127.0.0.1:${port}/`, { headers: { Cookie: cookie } })).status).toBe(200);
    // The setup page is served to anyone the proxy serves: it names the dashboard, never its token.
    const setup = await (await fetch(`http://127.0.0.1:${cli.port}/`)).text();
    expect(setup).toContain(`http://127.0.0.1:${port}`);
    expect(setup).not.toContain(token);
    expect(await cli.stop()).toBe(0);
    cli = undefined;
    // The next start prints the same link (a bookmarked tab and scripts keep working).
    cli = await startCli(['--listen-host', '127.0.0.1', '--port', '0', '--dashboard-port', '0', '--data-dir', dataDir]);
    const again = await eventually(() => /dashboard: +http:\/\/127\.0\.0\.1:\d+\/\?token=(\S+)/.exec(cli!.stdout()), 10_000, 'the dashboard line');
    expect(again[1]).toBe(token);
  }, 60_000);
});
