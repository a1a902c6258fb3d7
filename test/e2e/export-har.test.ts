/**
 * `phonehome export` as a user runs it, while phonehome is still running: requests recorded
 * through the real proxy (curl), analysed, then exported by the built CLI. What a user checks: the
 * HAR is HAR 1.2 that other tools read (required fields), it carries the requests as sent (binary
 * bodies byte for byte), each entry says what phonehome found and why, the filters select what
 * they say, and phonehome's own HAR import finds the same identifiers in the exported file.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLI, eventually, readFlows, startTestPhonehome, TestPhonehome } from './helpers/phonehome';
import { curlThroughProxy as curl, startOrigin, stopServer } from './helpers/browser';
import { makeTempDir, removeDir } from './helpers/tmp';
import type * as http from 'node:http';

const IMEI = '490154203237518';
const BINARY = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

function phonehome(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface HarEntry {
  startedDateTime: string;
  time: number;
  request: { method: string; url: string; httpVersion: string; headers: { name: string; value: string }[]; cookies: { name: string; value: string }[];
    queryString: { name: string; value: string }[]; postData?: { mimeType: string; text: string; _encoding?: string }; headersSize: number; bodySize: number };
  response: { status: number; headers: unknown[]; content: { size: number; mimeType: string; text: string }; redirectURL: string; bodySize: number };
  cache: object;
  timings: Record<string, number>;
  serverIPAddress?: string;
  _clientAddress: string;
  _phonehome: { flowId: number; severity: string; sentence: string | null; findings: { type: string; value: string; path: string; chain: string[]; explanation: string }[] };
}

describe('phonehome export (HAR)', () => {
  let dataDir: string;
  let app: TestPhonehome;
  let origin: { server: http.Server; url: string };
  let har: { log: { version: string; creator: { name: string; version: string }; entries: HarEntry[] } };

  beforeAll(async () => {
    dataDir = makeTempDir('phonehome-export-');
    origin = await startOrigin();
    app = await startTestPhonehome({ dataDir, dashboardPort: 0 });
    const proxy = `http://127.0.0.1:${app.proxyPort}`;
    expect(await curl(proxy, `${origin.url}/collect/register`, ['--data', `imei=${IMEI}&model=TA-1046`])).toBe('200');
    const binaryFile = path.join(dataDir, 'body.bin');
    fs.writeFileSync(binaryFile, BINARY);
    expect(await curl(proxy, `${origin.url}/upload`, ['-H', 'Content-Type: application/octet-stream', '--data-binary', `@${binaryFile}`])).toBe('200');
    expect(await curl(proxy, `${origin.url}/config?app=com.example&v=7`, ['-H', 'Cookie: session=abc; theme=dark'])).toBe('200');
    const db = path.join(dataDir, 'phonehome.db');
    await eventually(() => readFlows(db, "kind = 'http' AND analysis_state != 0").length === 3, 10_000, 'three analysed flows');
  }, 60_000);

  afterAll(async () => {
    await app?.stop();
    if (origin) await stopServer(origin.server);
    removeDir(dataDir);
  });

  test('writes HAR 1.2 with every recorded HTTP flow, while phonehome runs', () => {
    const out = path.join(dataDir, 'all.har');
    const r = phonehome(['export', '--data-dir', dataDir, '--out', out]);
    expect(r.stderr).toContain('3 flows written');
    expect(r.status).toBe(0);
    expect(fs.statSync(out).mode & 0o777).toBe(0o600); // captured content: owner only
    har = JSON.parse(fs.readFileSync(out, 'utf8'));
    expect(har.log.version).toBe('1.2');
    expect(har.log.creator.name).toBe('phonehome');
    expect(har.log.entries.map((e) => new URL(e.request.url).pathname)).toEqual(['/collect/register', '/upload', '/config']);
    for (const e of har.log.entries) {
      // The fields HAR 1.2 requires of an entry, a request and a response.
      expect(Number.isNaN(Date.parse(e.startedDateTime))).toBe(false);
      expect(e.time).toBeGreaterThanOrEqual(0);
      for (const k of ['method', 'url', 'httpVersion', 'cookies', 'headers', 'queryString', 'headersSize', 'bodySize']) expect(e.request).toHaveProperty(k);
      for (const k of ['status', 'httpVersion', 'cookies', 'headers', 'content', 'redirectURL', 'headersSize', 'bodySize']) expect(e.response).toHaveProperty(k);
      for (const k of ['send', 'wait', 'receive']) expect(e.timings[k]).toBeGreaterThanOrEqual(0);
      expect(e.cache).toEqual({});
      expect(e.response.status).toBe(200);
      expect(e.response.content.text).toBe('ok');
      expect(e.serverIPAddress).toBe('127.0.0.1');
      expect(e._clientAddress).toBe('127.0.0.1');
    }
  });

  test('each entry carries the request as sent and what phonehome found in it', () => {
    const [leak, upload, config] = har.log.entries;
    expect(leak.request.postData!.text).toBe(`imei=${IMEI}&model=TA-1046`);
    expect(leak._phonehome.findings).toEqual([expect.objectContaining({ type: 'imei', value: IMEI, path: 'body>form:imei', chain: ['form'] })]);
    expect(leak._phonehome.findings[0].explanation.length).toBeGreaterThan(10);
    expect(leak._phonehome.severity).not.toBe('info');
    // Binary body: base64, byte for byte.
    expect(upload.request.postData!._encoding).toBe('base64');
    expect(Buffer.from(upload.request.postData!.text, 'base64').equals(BINARY)).toBe(true);
    expect(upload.request.bodySize).toBe(256);
    expect(config.request.queryString).toEqual([{ name: 'app', value: 'com.example' }, { name: 'v', value: '7' }]);
    expect(config.request.cookies).toEqual([{ name: 'session', value: 'abc' }, { name: 'theme', value: 'dark' }]);
    expect(config.request.postData).toBeUndefined();
  });

  test("phonehome's HAR import finds the same identifiers in the exported file", () => {
    const out = path.join(dataDir, 'roundtrip.har');
    expect(phonehome(['export', '--data-dir', dataDir, '--out', out]).status).toBe(0);
    const r = phonehome(['analyze', out, '--format', 'jsonl']);
    const found = r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { entry: number; type: string; value: string });
    const exported = har.log.entries.flatMap((e, i) => e._phonehome.findings.map((f) => ({ entry: i, type: f.type, value: f.value })));
    expect(found.map((f) => ({ entry: f.entry, type: f.type, value: f.value }))).toEqual(exported);
    expect(exported.length).toBeGreaterThan(0);
  });

  test('the dashboard serves the same export as a download, with the list filters', async () => {
    const base = app.dashboardUrl!.replace(/\/$/, '');
    const fetch = (url: string) => globalThis.fetch(url, { headers: { Authorization: `Bearer ${app.dashboardToken}` } });
    const all = await fetch(`${base}/api/export.har`);
    expect(all.status).toBe(200);
    expect(all.headers.get('content-disposition')).toMatch(/^attachment; filename="phonehome-[0-9T-]+Z?\.har"$/);
    const body = (await all.json()) as typeof har;
    expect(body.log.entries).toEqual(har.log.entries);
    const imei = (await (await fetch(`${base}/api/export.har?type=imei&host=127.0.0`)).json()) as typeof har;
    expect(imei.log.entries.map((e) => new URL(e.request.url).pathname)).toEqual(['/collect/register']);
    const bad = await fetch(`${base}/api/export.har?since=someday`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/since/);
  });

  test('filters: only flows with findings, by host, by time; bad options are usage errors', () => {
    const only = JSON.parse(phonehome(['export', '--data-dir', dataDir, '--only-findings']).stdout) as typeof har;
    expect(only.log.entries.map((e) => e._phonehome.flowId)).toEqual(har.log.entries.filter((e) => e._phonehome.findings.length).map((e) => e._phonehome.flowId));
    const none = JSON.parse(phonehome(['export', '--data-dir', dataDir, '--host', 'zzhc.vnet.cn']).stdout) as typeof har;
    expect(none.log.entries).toEqual([]);
    const future = JSON.parse(phonehome(['export', '--data-dir', dataDir, '--since', '2999-01-01']).stdout) as typeof har;
    expect(future.log.entries).toEqual([]);
    const first = JSON.parse(phonehome(['export', '--data-dir', dataDir, '--limit', '1']).stdout) as typeof har;
    expect(first.log.entries).toHaveLength(1);
    const bad = phonehome(['export', '--data-dir', dataDir, '--since', 'yesterday-ish']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--since takes an ISO date/);
    const missing = phonehome(['export', '--data-dir', path.join(dataDir, 'nope')]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/cannot read/);
  });
});
