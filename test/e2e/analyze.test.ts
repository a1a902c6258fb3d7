/**
 * `phonehome analyze` through the compiled CLI (npm test builds first), on HAR files like users
 * export them: JSONL records, the table, several files with broken ones among them, exit codes,
 * a device profile, and hostile text kept away from the terminal.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SEVERITIES } from '../../proxy/analyse/types';

const root = path.join(__dirname, '../..');
const fixtures = path.join(root, 'test/fixtures/har');
const IMEI = '354031090123453';

function analyze(...args: string[]) {
  const cli = path.join(root, 'bin/phonehome.js');
  if (!fs.existsSync(path.join(root, 'dist/proxy/cli.js'))) throw new Error('dist/ is missing: run npm run build (npm test does)');
  const r = spawnSync(process.execPath, [cli, 'analyze', ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function records(stdout: string): Array<Record<string, unknown>> {
  return stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line));
}

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-analyze-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function writeHar(name: string, entries: unknown[]): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, JSON.stringify({ log: { version: '1.2', creator: { name: 'test', version: '1' }, entries } }));
  return file;
}

describe('JSONL', () => {
  const run = analyze(path.join(fixtures, 'mitmproxy-nokia.har'), '--format', 'jsonl');
  const recs = records(run.stdout);

  test('exit 0 and one JSON object per line', () => {
    expect(run.status).toBe(0);
    expect(recs.length).toBeGreaterThan(0);
  });

  test('the Nokia leak: every identifier, from entry 0, with its path and chain', () => {
    const nokia = recs.filter((r) => r.entry === 0);
    expect(new Set(nokia.map((r) => r.type))).toEqual(new Set(['imei', 'meid', 'iccid', 'imsi', 'cell_id', 'mac']));
    expect(nokia.find((r) => r.path === 'body>base64>json:$.IMEI1')).toMatchObject({
      file: 'mitmproxy-nokia.har',
      entry: 0,
      type: 'imei',
      value: IMEI,
      chain: ['base64', 'json'],
      host: 'zzhc.vnet.cn',
      cleartext: true,
      serverIp: '202.96.128.86',
    });
  });

  test('destination facts come from the offline tables: China Telecom, in China', () => {
    expect(recs.find((r) => r.entry === 0)).toMatchObject({ country: 'CN', asn: 4134 });
  });

  test('every record has the public fields', () => {
    for (const r of recs) {
      expect(typeof r.file).toBe('string');
      expect(Number.isInteger(r.entry)).toBe(true);
      expect(typeof r.value).toBe('string');
      expect(typeof r.path).toBe('string');
      expect(Array.isArray(r.chain)).toBe(true);
      expect(['profile', 'pattern', 'key']).toContain(r.detector);
      expect(r.confidence).toBeGreaterThan(0);
      expect(r.confidence).toBeLessThanOrEqual(1);
      expect(SEVERITIES).toContain(r.severity);
      expect(typeof r.explanation).toBe('string');
      expect(typeof r.host).toBe('string');
    }
  });

  test('the benign update check next to it (request ID, hash, timestamp, price, order number) yields nothing', () => {
    expect(recs.filter((r) => r.entry === 1)).toEqual([]);
  });

  test('the gzip protobuf check-in, imported from base64, is found too', () => {
    expect(recs.find((r) => r.entry === 2 && r.type === 'mac')).toMatchObject({ path: 'body>gzip>protobuf:2', value: 'd4:6a:6a:12:34:56' });
  });
});

describe('table', () => {
  test('grouped by host, worst first, with the transport', () => {
    const run = analyze(path.join(fixtures, 'mitmproxy-nokia.har'), path.join(fixtures, 'chrome-devtools.har'));
    expect(run.status).toBe(0);
    const lines = run.stdout.split('\n');
    const hostLines = lines.filter((l) => /^\S/.test(l) && l.includes('['));
    expect(hostLines[0]).toMatch(/^zzhc\.vnet\.cn {2}\[(HIGH|CRITICAL)\] {2}\(cleartext HTTP, CN, AS4134 /);
    expect(hostLines.some((l) => l.startsWith('www.googleadservices.com'))).toBe(true);
    expect(run.stdout).toContain(`imei       ${IMEI}`);
    expect(run.stdout).not.toContain('update.example.com');
    expect(lines.filter(Boolean).pop()).toMatch(/^\d+ findings in 6 requests from 2 files\.$/);
  });
});

describe('several files, some broken', () => {
  test('a missing and a corrupt file are reported; the good file is still analysed (exit 0)', () => {
    const run = analyze(path.join(tmp, 'missing.har'), path.join(fixtures, 'corrupt-truncated.har'), path.join(fixtures, 'charles-broken-entries.har'), '--format', 'jsonl');
    expect(run.status).toBe(0);
    expect(run.stderr).toMatch(/missing\.har: cannot read \(ENOENT\)/);
    /* Cut inside its second entry: the first (the Nokia leak) is analysed, and where it breaks off is named. */
    expect(run.stderr).toMatch(/corrupt-truncated\.har: the file ends at byte 3104, inside a string in entry 1 \(truncated\?\); the 1 entry before it was read/);
    expect(run.stderr).toMatch(/charles-broken-entries\.har: entry 1 request\.url is missing/);
    const recs = records(run.stdout);
    expect(recs.find((r) => r.type === 'imei' && r.file === 'charles-broken-entries.har')).toMatchObject({ entry: 4, path: 'body>form:imei', value: IMEI });
    expect(recs.filter((r) => r.file === 'corrupt-truncated.har').map((r) => r.entry)).toContain(0);
  });

  test('exit 1 when no file could be read as HAR', () => {
    const cut = path.join(tmp, 'cut-before-entries.har');
    fs.writeFileSync(cut, fs.readFileSync(path.join(fixtures, 'corrupt-truncated.har')).subarray(0, 150));
    const run = analyze(path.join(tmp, 'missing.har'), cut);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/missing\.har/);
    expect(run.stderr).toMatch(/cut-before-entries\.har: not a HAR file \(invalid JSON: the file ends at byte 150/);
  });
});

describe('usage errors exit 2', () => {
  test.each([
    [[], /at least one HAR file/],
    [['x.har', '--format', 'xml'], /--format must be jsonl or table/],
    [['x.har', '--frobnicate'], /unknown option --frobnicate/],
    [['x.har', '--profile', '/nonexistent/profile.json'], /cannot read the profile/],
  ])('%j', (args, message) => {
    const run = analyze(...(args as string[]));
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(message);
  });

  test('--help documents the exit status', () => {
    const run = analyze('--help');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/Exit status: 0 when the analysis ran/);
  });
});

describe('device profile', () => {
  test("the phone's IMEI sent as an MD5 hash is found only with the profile", () => {
    const md5 = createHash('md5').update(IMEI).digest('hex');
    const har = writeHar('hashed.har', [
      { startedDateTime: '2024-01-01T00:00:00Z', time: 1, request: { method: 'GET', url: `https://ads.example/v1/ping?h=${md5}&app=com.example`, headers: [] }, response: { status: 204 } },
    ]);
    const profile = path.join(tmp, 'profile.json');
    fs.writeFileSync(profile, JSON.stringify({ name: 'test phone', imei: IMEI }));
    const without = records(analyze(har, '--format', 'jsonl').stdout);
    expect(without.filter((r) => r.type === 'imei')).toEqual([]);
    const run = analyze(har, '--format', 'jsonl', '--profile', profile);
    const withProfile = records(run.stdout);
    if (!withProfile.length) throw new Error(run.stderr);
    expect(withProfile.find((r) => r.type === 'imei')).toMatchObject({ detector: 'profile', value: IMEI, path: 'query:h', host: 'ads.example' });
  });

  test('an invalid profile is a usage error naming the file', () => {
    const bad = path.join(tmp, 'bad-profile.json');
    fs.writeFileSync(bad, '{"imei": "12345"}');
    const run = analyze(path.join(fixtures, 'mitmproxy-nokia.har'), '--profile', bad);
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/bad-profile\.json/);
  });
});

describe('hostile text', () => {
  test('terminal escape sequences in captured content are shown escaped in the table', () => {
    const har = writeHar('escape.har', [
      { request: { method: 'POST', url: 'http://evil.example/', headers: [], postData: { mimeType: 'application/json', text: JSON.stringify({ 'imei\u001b]0;pwned\u0007\u001b[2J': IMEI }) } } },
    ]);
    const jsonl = records(analyze(har, '--format', 'jsonl').stdout);
    expect(jsonl[0].explanation).toContain('\u001b[2J');
    const run = analyze(har);
    expect(run.status).toBe(0);
    expect(run.stdout).toContain(IMEI);
    expect(run.stdout).toContain('\\x1b[2J');
    expect(run.stdout).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/);
  });
});
