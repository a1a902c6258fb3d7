import { execFileSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import * as tls from 'tls';
import { CertificateAuthority } from '../../../certs/ca';
import { InvalidHostnameError, LeafMinter, normalizeCertHostname } from '../../../certs/leaf';

/**
 * Serves `context` on loopback to every client, SNI or not, the way a TLS front layer does:
 * a TCP server wrapping each socket in a server-side TLSSocket. Returns the port.
 */
async function serve(context: tls.SecureContext, servers: net.Server[]): Promise<number> {
  const server = net.createServer((raw) => {
    const socket = new tls.TLSSocket(raw, { isServer: true, secureContext: context });
    socket.on('secure', () => socket.end('hello'));
    socket.on('error', () => raw.destroy());
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as net.AddressInfo).port;
}

/** Connects with a client that trusts only our CA and checks the name; resolves with the peer certificate. */
function connectTrustingOnly(caPem: string, port: number, servername: string): Promise<tls.DetailedPeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1', port, ca: [caPem],
      servername: net.isIP(servername) ? undefined : servername,
      checkServerIdentity: (_host, cert) => tls.checkServerIdentity(servername, cert),
    });
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate(true);
      socket.end();
      resolve(cert);
    });
    socket.once('error', reject);
  });
}

describe('certs: LeafMinter', () => {
  let dir: string;
  let ca: CertificateAuthority;
  const servers: net.Server[] = [];
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-leaf-'));
    ca = CertificateAuthority.loadOrCreate(dir);
  });
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it.each(['example.test', '127.0.0.1', '::1'])('serves %s with a certificate a client trusting only the CA accepts', async (host) => {
    const minter = new LeafMinter(ca);
    const port = await serve(await minter.secureContextFor(host), servers);
    const cert = await connectTrustingOnly(ca.certPem, port, host);
    expect(cert.subjectaltname).toBe(net.isIP(host) ? `IP Address:${host === '::1' ? '0:0:0:0:0:0:0:1' : host}` : `DNS:${host}`);
    expect(cert.issuerCertificate.fingerprint256).toBe(new crypto.X509Certificate(ca.certPem).fingerprint256);
  });

  it('works as the SNICallback of a real tls.createServer, minting per requested name', async () => {
    const minter = new LeafMinter(ca);
    const server = tls.createServer(
      { SNICallback: (name, cb) => minter.secureContextFor(name).then((ctx) => cb(null, ctx), (err: Error) => cb(err)) },
      (socket) => socket.end('hello'),
    );
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const a = await connectTrustingOnly(ca.certPem, port, 'a.sni.test');
    const b = await connectTrustingOnly(ca.certPem, port, 'b.sni.test');
    expect(a.subjectaltname).toBe('DNS:a.sni.test');
    expect(b.subjectaltname).toBe('DNS:b.sni.test');
    expect(minter.mintCount).toBe(2);
  });

  it('is rejected for another name by the same client', async () => {
    const minter = new LeafMinter(ca);
    const port = await serve(await minter.secureContextFor('example.test'), servers);
    await expect(connectTrustingOnly(ca.certPem, port, 'other.test')).rejects.toThrow(/other\.test/);
  });

  it('mints certificates that openssl verifies against the CA, with server-auth usage and a bounded lifetime', async () => {
    const minter = new LeafMinter(ca);
    const { cert } = await minter.pemFor('Api.Example.Test.');
    const leafPath = path.join(dir, 'leaf-check.pem');
    fs.writeFileSync(leafPath, cert);
    try {
      expect(execFileSync('openssl', ['verify', '-purpose', 'sslserver', '-CAfile', ca.certPath, leafPath], { encoding: 'utf8' })).toMatch(/OK/);
      const text = execFileSync('openssl', ['x509', '-text', '-noout', '-in', leafPath], { encoding: 'utf8' });
      expect(text).toMatch(/DNS:api\.example\.test\b/);
      expect(text).toMatch(/TLS Web Server Authentication/);
      expect(text).toMatch(/Key Usage: critical\s+Digital Signature, Key Encipherment/);
      expect(text).toMatch(/Authority Key Identifier/);
      const x509 = new crypto.X509Certificate(cert);
      const lifetimeDays = (Date.parse(x509.validTo) - Date.parse(x509.validFrom)) / 86400000;
      expect(lifetimeDays).toBeLessThanOrEqual(398);
      expect(Date.parse(x509.validFrom)).toBeLessThan(Date.now());
    } finally {
      fs.rmSync(leafPath, { force: true });
    }
  });

  it('uses one key pair for every host', async () => {
    const minter = new LeafMinter(ca);
    const a = new crypto.X509Certificate((await minter.pemFor('a.test')).cert);
    const b = new crypto.X509Certificate((await minter.pemFor('b.test')).cert);
    expect(a.publicKey.equals(b.publicKey)).toBe(true);
    expect(a.serialNumber).not.toBe(b.serialNumber);
  });

  it('mints once for 200 concurrent first requests to one host, and caches by normalised name', async () => {
    const minter = new LeafMinter(ca);
    const contexts = await Promise.all(Array.from({ length: 200 }, (_, i) => minter.secureContextFor(i % 2 ? 'Same.Test' : 'same.test.')));
    expect(minter.mintCount).toBe(1);
    expect(new Set(contexts).size).toBe(1);
    await minter.secureContextFor('same.test');
    expect(minter.mintCount).toBe(1);
  });

  it('answers a known host and lets timers run while a burst of new hosts is being minted', async () => {
    const minter = new LeafMinter(ca);
    await minter.secureContextFor('known.test');
    const burst = Promise.all(Array.from({ length: 50 }, (_, i) => minter.secureContextFor(`burst-${i}.test`)));
    await minter.secureContextFor('known.test');
    const mintedWhenKnownAnswered = minter.mintCount;
    await new Promise((r) => setTimeout(r, 0));
    const mintedWhenTimerRan = minter.mintCount;
    await burst;
    expect(mintedWhenKnownAnswered).toBe(1);
    expect(mintedWhenTimerRan).toBeLessThan(51);
    expect(minter.mintCount).toBe(51);
  });

  it('keeps at most cacheSize contexts, dropping the least recently used', async () => {
    const minter = new LeafMinter(ca, { cacheSize: 2 });
    await minter.secureContextFor('one.test');
    await minter.secureContextFor('two.test');
    await minter.secureContextFor('one.test'); // now most recent
    await minter.secureContextFor('three.test'); // evicts two.test
    expect(minter.mintCount).toBe(3);
    await minter.secureContextFor('one.test');
    expect(minter.mintCount).toBe(3);
    await minter.secureContextFor('two.test');
    expect(minter.mintCount).toBe(4);
  });

  it.each(['../../x', 'a/b', '', 'x'.repeat(300), 'x:443', 'a..b', '-lead.test', 'sp ace.test', 'a\\b', 'nul\0.test', `${'a'.repeat(64)}.test`, 'fe80::1%eth0', '*.example.test'])(
    'rejects the invalid hostname %j without minting',
    async (bad) => {
      const minter = new LeafMinter(ca);
      await expect(minter.secureContextFor(bad)).rejects.toThrow(InvalidHostnameError);
      expect(minter.mintCount).toBe(0);
    },
  );

  it('normalises names: case, one trailing dot, brackets and IPv6 spelling', () => {
    expect(normalizeCertHostname('WWW.Example.COM.').name).toBe('www.example.com');
    expect(normalizeCertHostname('[::1]')).toEqual({ name: '::1', ip: 6 });
    expect(normalizeCertHostname('2001:DB8:0:0:0:0:0:1')).toEqual({ name: '2001:db8::1', ip: 6 });
    expect(normalizeCertHostname('10.0.0.1')).toEqual({ name: '10.0.0.1', ip: 4 });
    expect(normalizeCertHostname('_dmarc.example.test').name).toBe('_dmarc.example.test');
    expect(normalizeCertHostname(`${'a'.repeat(63)}.test`).name).toHaveLength(68);
    expect(() => normalizeCertHostname('example.test..')).toThrow(InvalidHostnameError);
  });

  it('writes nothing to disk when minting', async () => {
    const before = fs.readdirSync(dir).sort();
    const minter = new LeafMinter(ca);
    await minter.secureContextFor('disk.test');
    await minter.secureContextFor('10.1.2.3');
    expect(fs.readdirSync(dir).sort()).toEqual(before);
  });
});
