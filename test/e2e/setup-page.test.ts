/** The phone's setup page on a real http.Server on loopback, fetched by a real HTTP client (and curl as a proxy client would). */
import { execFile, execFileSync, spawnSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { CertificateAuthority } from '../../certs/ca';
import { serveSetupPage } from '../../proxy/capture/setup-page';

describe('setup page', () => {
  let dir: string;
  let ca: CertificateAuthority;
  let server: http.Server;
  let base: string;
  let port: number;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-setup-'));
    ca = CertificateAuthority.loadOrCreate(dir);
    server = http.createServer((req, res) =>
      serveSetupPage(req, res, { ca, proxyHost: '192.168.1.10', proxyPort: 8080, dashboardUrl: 'http://127.0.0.1:8081/' }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
    base = `http://127.0.0.1:${port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const fingerprint = () => new crypto.X509Certificate(ca.certDer).fingerprint256;

  it('serves an HTML page without scripts, with a strict CSP, linking every download', async () => {
    const res = await fetch(`${base}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toMatch(/default-src 'none'/);
    expect(csp).not.toMatch(/script-src|unsafe-inline/);
    const html = await res.text();
    expect(html).not.toMatch(/<script/i);
    for (const href of ['/ca.pem', '/ca.crt', '/ca.cer', '/ca.mobileconfig', `/${ca.subjectHashOld}.0`]) expect(html).toContain(`href="${href}"`);
    expect(html).toContain('192.168.1.10:8080');
    expect(html).toMatch(/Encryption &amp; credentials/);
    expect(html).toMatch(/Certificate Trust Settings/);
    expect(html).toContain('/apex/com.android.conscrypt/cacerts');
    // The inline style is allowed by its hash only.
    const style = /<style>([\s\S]*?)<\/style>/.exec(html)?.[1] ?? '';
    expect(csp).toContain(`'sha256-${crypto.createHash('sha256').update(style).digest('base64')}'`);
  });

  it('serves ca.pem as PEM', async () => {
    const res = await fetch(`${base}/ca.pem`);
    expect(res.headers.get('content-type')).toBe('application/x-pem-file');
    const text = await res.text();
    expect(text).toBe(ca.certPem);
    expect(new crypto.X509Certificate(text).fingerprint256).toBe(fingerprint());
  });

  it.each(['/ca.crt', '/ca.cer'])('serves %s as DER for the Android installer', async (p) => {
    const res = await fetch(`${base}${p}`);
    expect(res.headers.get('content-type')).toBe('application/x-x509-ca-cert');
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="phonehome-ca\.(crt|cer)"$/);
    const body = Buffer.from(await res.arrayBuffer());
    expect(new crypto.X509Certificate(body).fingerprint256).toBe(fingerprint());
    expect(execFileSync('openssl', ['x509', '-inform', 'der', '-noout', '-subject_hash_old'], { input: body, encoding: 'utf8' }).trim()).toBe(ca.subjectHashOld);
  });

  it('serves <subject_hash_old>.0 as the PEM file for the Android system store', async () => {
    const res = await fetch(`${base}/${ca.subjectHashOld}.0`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toBe(`attachment; filename="${ca.subjectHashOld}.0"`);
    const text = await res.text();
    expect(execFileSync('openssl', ['x509', '-noout', '-subject_hash_old'], { input: text, encoding: 'utf8' }).trim()).toBe(ca.subjectHashOld);
  });

  it('serves an iOS profile carrying the CA as a root payload', async () => {
    const res = await fetch(`${base}/ca.mobileconfig`);
    expect(res.headers.get('content-type')).toBe('application/x-apple-aspen-config');
    const xml = await res.text();
    expect(xml).toContain('<string>com.apple.security.root</string>');
    const data = /<data>([\s\S]*?)<\/data>/.exec(xml)?.[1].replace(/\s+/g, '') ?? '';
    expect(new crypto.X509Certificate(Buffer.from(data, 'base64')).fingerprint256).toBe(fingerprint());
    expect(await (await fetch(`${base}/ca.mobileconfig`)).text()).toBe(xml); // stable UUIDs
    // A real plist parser, where one is installed (Python's plistlib ships with python3).
    const py = spawnSync('python3', ['-c', 'import plistlib,sys; p=plistlib.loads(sys.stdin.buffer.read()); c=p["PayloadContent"][0]; print(p["PayloadType"], c["PayloadType"], len(c["PayloadContent"]))'], { input: xml });
    if (py.error === undefined && py.status !== null) {
      expect(py.stderr.toString()).toBe('');
      expect(py.stdout.toString().trim()).toBe(`Configuration com.apple.security.root ${ca.certDer.length}`);
    }
  });

  it('answers a proxy-style absolute URL the way a phone sends it (curl -x)', async () => {
    // Asynchronous: the server runs in this process and must keep serving while curl waits.
    const pem = await new Promise<string>((resolve, reject) =>
      execFile('curl', ['-sS', '--fail', '--max-time', '10', '-x', `http://127.0.0.1:${port}`, 'http://phonehome.setup/ca.pem'], (err, out) => (err ? reject(err) : resolve(out))),
    );
    expect(pem).toBe(ca.certPem);
  });

  it.each(['/nope', '/ca.pem/', '/../ca-key.pem', '/ca-key.pem', '/%2e%2e/ca-key.pem', '/00000000.0'])('404s for %s and never serves the key', async (p) => {
    const res = await fetch(`${base}${p}`);
    expect(res.status).toBe(404);
    expect(await res.text()).not.toMatch(/PRIVATE KEY/);
  });

  it('HEAD gives the headers without a body; other methods get 405', async () => {
    const head = await fetch(`${base}/ca.crt`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(ca.certDer.length));
    expect((await head.arrayBuffer()).byteLength).toBe(0);
    const post = await fetch(`${base}/ca.pem`, { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });

  it('ignores query strings', async () => {
    const res = await fetch(`${base}/ca.pem?download=1`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(ca.certPem);
  });
});
