/**
 * Captures made for real: in a network namespace of its own, Debian's tcpdump records `lo` while
 * curl and node clients talk to a node origin — HTTP on port 9999 carrying an IMEI form, a chunked
 * upload, a gzip body, three pipelined requests on one socket, an HTTPS request (its SNI read) and
 * a DNS lookup. `phonehome analyze` on the capture (pcap µs, pcap ns, pcapng via editcap) must give
 * exactly the findings it gives for the same requests as a HAR built from what the origin received
 * and sent; `phonehome import` must store them with the real ports, the TLS server name and the
 * DNS answer.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import Database from 'better-sqlite3';

const root = path.join(__dirname, '../..');
const cli = path.join(root, 'bin/phonehome.js');
const NS = `phpcap${process.pid}${Math.floor(Math.random() * 1e4)}`;
const HTTP_PORT = 9999;
const HTTPS_PORT = 9443;
const IMEI = '354031090123453';

const haveTools = ['tcpdump', 'ip', 'curl', 'openssl', 'editcap'].every((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0);
const isRoot = process.getuid?.() === 0;
const describeIfCapture = haveTools && isRoot ? describe : describe.skip;

interface OriginRecord {
  scheme: 'http' | 'https';
  method: string;
  url: string;
  rawHeaders: string[];
  httpVersion: string;
  body: string;
  remotePort: number;
  at: number;
  status: number;
  responseHeaders: [string, string][];
  responseBody: string;
}

let tmp: string;
const children: ChildProcess[] = [];
let nsCreated = false;
const origin: OriginRecord[] = [];

function inNs(cmd: string, args: string[], input?: Buffer | string) {
  const r = spawnSync('ip', ['netns', 'exec', NS, cmd, ...args], { input, timeout: 20_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

function startInNs(cmd: string, args: string[], readyText: RegExp, stream: 'stdout' | 'stderr'): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', NS, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`${cmd} did not start: ${seen}`)), 15_000);
    child[stream]!.on('data', (d: Buffer) => {
      seen += d.toString();
      if (readyText.test(seen)) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.on('exit', (code) => reject(new Error(`${cmd} exited ${code}: ${seen}`)));
  });
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** Waits (up to 15 s) until `file` contains `needle` at least `count` times. */
async function waitForBytes(file: string, needle: Buffer, count: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const data = fs.existsSync(file) ? fs.readFileSync(file) : Buffer.alloc(0);
    let seen = 0;
    for (let i = data.indexOf(needle); i >= 0; i = data.indexOf(needle, i + 1)) seen++;
    if (seen >= count) return;
    if (Date.now() > deadline) throw new Error(`${file}: tcpdump wrote ${seen} of ${count} expected packets`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function phonehome(...args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function jsonl(stdout: string): Array<Record<string, unknown>> {
  return stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

/** A HAR entry for what the origin received and sent (bodies as the bytes on the wire, base64). */
function harEntry(r: OriginRecord) {
  const headers: { name: string; value: string }[] = [];
  for (let i = 0; i < r.rawHeaders.length; i += 2) headers.push({ name: r.rawHeaders[i], value: r.rawHeaders[i + 1] });
  const host = headers.find((h) => h.name.toLowerCase() === 'host')!.value;
  const body = Buffer.from(r.body, 'base64');
  return {
    startedDateTime: new Date(r.at).toISOString(),
    time: 1,
    serverIPAddress: '127.0.0.1',
    request: {
      method: r.method, url: `${r.scheme}://${host}${r.url}`, httpVersion: `HTTP/${r.httpVersion}`, headers, queryString: [], cookies: [], headersSize: -1, bodySize: body.length,
      ...(body.length ? { postData: { mimeType: headers.find((h) => h.name.toLowerCase() === 'content-type')?.value ?? '', text: r.body, encoding: 'base64' } } : {}),
    },
    response: {
      status: r.status, statusText: '', httpVersion: 'HTTP/1.1', headers: r.responseHeaders.map(([name, value]) => ({ name, value })), cookies: [],
      content: { size: Buffer.from(r.responseBody, 'base64').length, mimeType: '', text: r.responseBody, encoding: 'base64' }, redirectURL: '', headersSize: -1, bodySize: -1,
    },
    cache: {}, timings: { send: 0, wait: 1, receive: 0 },
  };
}

describeIfCapture('captures made with tcpdump in a network namespace', () => {
  let pcapMicro: string;
  let pcapNano: string;
  let pcapng: string;
  let har: string;

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-pcap-e2e-'));
    const cert = path.join(tmp, 'cert.pem');
    const key = path.join(tmp, 'key.pem');
    const ssl = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=phone.example', '-keyout', key, '-out', cert, '-days', '1']);
    if (ssl.status !== 0) throw new Error(`openssl: ${ssl.stderr}`);
    spawnSync('ip', ['netns', 'add', NS]);
    nsCreated = true;
    inNs('ip', ['link', 'set', 'lo', 'up']);
    pcapMicro = path.join(tmp, 'lo.pcap');
    pcapNano = path.join(tmp, 'lo-ns.pcap');
    pcapng = path.join(tmp, 'lo.pcapng');
    const tcpdumpMicro = await startInNs('tcpdump', ['-i', 'lo', '-U', '-n', '-s', '0', '-w', pcapMicro], /listening on/, 'stderr');
    const tcpdumpNano = await startInNs('tcpdump', ['-i', 'lo', '-U', '-n', '-s', '0', '--time-stamp-precision=nano', '-w', pcapNano], /listening on/, 'stderr');
    const server = await startInNs(process.execPath, [path.join(__dirname, 'pcap-origin-server.js'), String(HTTP_PORT), String(HTTPS_PORT), cert, key], /READY/, 'stdout');
    let lines = '';
    server.stdout!.on('data', (d: Buffer) => {
      lines += d.toString();
      let nl;
      while ((nl = lines.indexOf('\n')) >= 0) {
        const line = lines.slice(0, nl);
        lines = lines.slice(nl + 1);
        if (line.startsWith('{')) origin.push(JSON.parse(line));
      }
    });

    const base = `http://127.0.0.1:${HTTP_PORT}`;
    /* 1. The Nokia-style activation report: a form with the IMEI and a base64 JSON blob. */
    const blob = Buffer.from(JSON.stringify({ IMEI1: IMEI, ICCID: '89470000000000000017' })).toString('base64');
    inNs('curl', ['-sS', '-o', '/dev/null', '--data-urlencode', `imei=${IMEI}`, '--data-urlencode', `data=${blob}`, `${base}/zzhc/register`]);
    /* 2. A chunked upload of JSON (the response is chunked too). */
    fs.writeFileSync(path.join(tmp, 'chunked.json'), JSON.stringify({ msisdn: '+4791234567', imsi: '242011234567890' }));
    inNs('curl', ['-sS', '-o', '/dev/null', '-H', 'Transfer-Encoding: chunked', '-H', 'Content-Type: application/json', '--data-binary', `@${path.join(tmp, 'chunked.json')}`, `${base}/chunked/upload`]);
    /* 3. A gzip request body, and a gzip response. */
    fs.writeFileSync(path.join(tmp, 'body.gz'), zlib.gzipSync(JSON.stringify({ wifiMac: 'd4:6a:6a:12:34:56', serial: 'PX7H0042', imei: IMEI })));
    inNs('curl', ['-sS', '-o', '/dev/null', '-H', 'Content-Encoding: gzip', '-H', 'Content-Type: application/json', '--data-binary', `@${path.join(tmp, 'body.gz')}`, `${base}/gzip/collect`]);
    /* 4. Three pipelined requests written at once on one socket (curl cannot pipeline). */
    const pipelined = [
      `GET /p/1?android_id=9774d56d682e549c HTTP/1.1\r\nHost: 127.0.0.1:${HTTP_PORT}\r\n\r\n`,
      `POST /p/2 HTTP/1.1\r\nHost: 127.0.0.1:${HTTP_PORT}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 45\r\n\r\nadid=38400000-8cf0-11bd-b23e-10b96e40000d&x=1`,
      `GET /p/3?lat=59.9139&lon=10.7522 HTTP/1.1\r\nHost: 127.0.0.1:${HTTP_PORT}\r\nConnection: close\r\n\r\n`,
    ].join('');
    const client = `const s=require('net').connect(${HTTP_PORT},'127.0.0.1',()=>s.write(${JSON.stringify(pipelined)}));let n=0;s.on('data',d=>{n+=d.length});s.on('end',()=>{process.stdout.write(String(n));s.destroy()});`;
    const got = inNs(process.execPath, ['-e', client]);
    expect(Number(got.toString())).toBeGreaterThan(0);
    /* 5. HTTPS: only the server name can be read from the capture. */
    inNs('curl', ['-sS', '-k', '-o', '/dev/null', '--resolve', `phone.example:${HTTPS_PORT}:127.0.0.1`, `https://phone.example:${HTTPS_PORT}/secret?imei=${IMEI}`]);
    /* 6. A DNS lookup through node's resolver (c-ares). */
    inNs(process.execPath, ['-e', "const r=new (require('dns').promises.Resolver)();r.setServers(['127.0.0.1']);r.resolve4('zzhc.vnet.cn').then(a=>console.log(a.join()))"]);

    /* tcpdump drops what it has not written yet when stopped: wait until both files hold the DNS answer (the last exchange). */
    for (const file of [pcapMicro, pcapNano]) await waitForBytes(file, Buffer.from('\x04zzhc\x04vnet\x02cn', 'latin1'), 2);
    await stop(tcpdumpMicro);
    await stop(tcpdumpNano);
    await stop(server);
    const conv = spawnSync('editcap', ['-F', 'pcapng', pcapMicro, pcapng]);
    if (conv.status !== 0) throw new Error(`editcap: ${conv.stderr}`);

    har = path.join(tmp, 'same-requests.har');
    const entries = origin.filter((r) => r.scheme === 'http').map(harEntry);
    fs.writeFileSync(har, JSON.stringify({ log: { version: '1.2', creator: { name: 'pcap e2e', version: '1' }, entries } }));
  }, 90_000);

  afterAll(async () => {
    for (const c of children) await stop(c);
    if (nsCreated) {
      /* Anything still running in our namespace was started by this test. */
      const pids = spawnSync('ip', ['netns', 'pids', NS], { encoding: 'utf8' }).stdout.split(/\s+/).filter(Boolean);
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      spawnSync('ip', ['netns', 'del', NS]);
    }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('the origin saw every request: 6 over HTTP, 1 over HTTPS', () => {
    expect(origin.filter((r) => r.scheme === 'http').map((r) => r.url)).toEqual([
      '/zzhc/register', '/chunked/upload', '/gzip/collect', '/p/1?android_id=9774d56d682e549c', '/p/2', '/p/3?lat=59.9139&lon=10.7522',
    ]);
    expect(origin.filter((r) => r.scheme === 'https')).toHaveLength(1);
  });

  test.each([['pcap (µs)', () => pcapMicro], ['pcap (ns)', () => pcapNano], ['pcapng (editcap)', () => pcapng]])(
    'analyze %s gives the same findings as the HAR of the same requests',
    (_name, file) => {
      const fromHar = phonehome('analyze', har, '--format', 'jsonl');
      const fromCapture = phonehome('analyze', file(), '--format', 'jsonl');
      expect(fromHar.status).toBe(0);
      expect(fromCapture.status).toBe(0);
      const strip = (recs: Array<Record<string, unknown>>) => recs.map(({ file: _f, ...rest }) => rest);
      const harRecs = strip(jsonl(fromHar.stdout));
      const capRecs = strip(jsonl(fromCapture.stdout));
      /* The requests carried these identifiers: the comparison is not between two empty lists. */
      for (const t of ['imei', 'iccid', 'phone', 'imsi', 'mac', 'serial', 'ad_id', 'location']) expect(harRecs.map((r) => r.type)).toContain(t);
      expect(capRecs).toEqual(harRecs);
      expect(fromCapture.stderr).not.toMatch(/byte offset/);
    },
    60_000,
  );

  test('the table lists the HTTPS server name and the DNS lookup the capture could not decrypt', () => {
    const r = phonehome('analyze', pcapMicro);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/CRITICAL/);
    expect(r.stdout).toMatch(/lo\.pcap: 6 HTTP requests; 1 TLS connection \(not decrypted\): phone\.example; 1 DNS lookup: zzhc\.vnet\.cn/);
  }, 60_000);

  test('a truncated capture: the error names the byte offset, the requests before it are still analysed', () => {
    const cut = path.join(tmp, 'cut.pcap');
    const whole = fs.readFileSync(pcapMicro);
    /* Cut inside the last record: everything but the final packets is intact. */
    fs.writeFileSync(cut, whole.subarray(0, whole.length - 10));
    const r = phonehome('analyze', cut, '--format', 'jsonl');
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/cut\.pcap: capture truncated: .* at byte offset \d+; the \d+ packets before it were analysed/);
    const recs = jsonl(r.stdout);
    expect(recs.find((x) => x.entry === 0 && x.type === 'imei')).toMatchObject({ value: IMEI, url: `http://127.0.0.1:${HTTP_PORT}/zzhc/register` });
  }, 60_000);

  test('import also takes the HAR, and a file that is neither is an error naming it', () => {
    const dataDir = path.join(tmp, 'data-har');
    const junk = path.join(tmp, 'junk.bin');
    fs.writeFileSync(junk, 'neither a capture nor JSON');
    const r = phonehome('import', har, junk, '--data-dir', dataDir);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/junk\.bin: not a HAR file .*\(nor a pcap\/pcapng capture\)/);
    const db = new Database(path.join(dataDir, 'phonehome.db'), { readonly: true });
    try {
      expect(db.prepare("SELECT COUNT(*) AS n FROM flows WHERE source = 'har' AND analysis_state = 1").get()).toEqual({ n: 6 });
    } finally {
      db.close();
    }
    expect(phonehome('import', junk, '--data-dir', dataDir).status).toBe(1);
  }, 60_000);

  test('a HAR cut in its second entry: the first is imported, analysed, and stderr names the byte where it breaks off', () => {
    const dataDir = path.join(tmp, 'data-cut-har');
    const r = phonehome('import', path.join(__dirname, '../fixtures/har/corrupt-truncated.har'), '--data-dir', dataDir);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/corrupt-truncated\.har: the file ends at byte 3104, inside a string in entry 1 \(truncated\?\); the 1 entry before it was read/);
    const db = new Database(path.join(dataDir, 'phonehome.db'), { readonly: true });
    try {
      expect(db.prepare("SELECT host, finding_types FROM flows WHERE source = 'har'").all()).toEqual([{ host: 'zzhc.vnet.cn', finding_types: expect.stringContaining('imei') }]);
    } finally {
      db.close();
    }
  }, 60_000);

  test('import stores the flows with real ports, the TLS server name and the DNS answer', () => {
    const dataDir = path.join(tmp, 'data');
    const r = phonehome('import', pcapng, '--device', 'Test phone', '--data-dir', dataDir);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const db = new Database(path.join(dataDir, 'phonehome.db'), { readonly: true });
    try {
      const http = db.prepare("SELECT * FROM flows WHERE kind = 'http' ORDER BY started_at").all() as Array<Record<string, unknown>>;
      const sent = origin.filter((o) => o.scheme === 'http');
      expect(http.map((f) => [f.method, new URL(String(f.url)).pathname, f.client_port, f.server_ip, f.port, f.source])).toEqual(
        sent.map((o) => [o.method, o.url.split('?')[0], o.remotePort, '127.0.0.1', HTTP_PORT, 'pcap']),
      );
      /* Capture timestamps: within a second of when the origin saw each request. */
      http.forEach((f, i) => expect(Math.abs(Number(f.started_at) - sent[i].at)).toBeLessThan(1000));
      expect(http.every((f) => f.analysis_state === 1)).toBe(true);
      expect(http[0].severity).toBe('critical');
      const tlsFlow = db.prepare("SELECT * FROM flows WHERE scheme = 'tls'").get() as Record<string, unknown>;
      expect(tlsFlow).toMatchObject({ kind: 'raw', sni: 'phone.example', host: 'phone.example', port: HTTPS_PORT, tls: 1 });
      expect(String(tlsFlow.alpn)).toMatch(/http\/1\.1/);
      expect(JSON.parse(String(tlsFlow.tags))).toContain('tls-not-decrypted');
      const dns = db.prepare('SELECT * FROM dns').all() as Array<Record<string, unknown>>;
      expect(dns).toHaveLength(1);
      expect(dns[0]).toMatchObject({ name: 'zzhc.vnet.cn', type: 'A', source: 'pcap', rcode: 'NOERROR', resolver: '127.0.0.1' });
      expect(JSON.parse(String(dns[0].answers))).toEqual([{ type: 'A', data: '192.0.2.77', ttl: 3600 }]);
      const dnsFlow = db.prepare('SELECT * FROM flows WHERE id = ?').get(dns[0].flow_id) as Record<string, unknown>;
      expect(dnsFlow).toMatchObject({ kind: 'dns', host: 'zzhc.vnet.cn' });
      const device = db.prepare("SELECT name FROM devices WHERE client_ip = '127.0.0.1'").get() as { name: string };
      expect(device.name).toBe('Test phone');
      const imeiFindings = db.prepare("SELECT COUNT(*) AS n FROM findings WHERE type = 'imei' AND value = ?").get(IMEI) as { n: number };
      expect(imeiFindings.n).toBeGreaterThan(0);
    } finally {
      db.close();
    }
  }, 60_000);
});
