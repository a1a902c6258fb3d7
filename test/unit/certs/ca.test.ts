import { execFileSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CA_CERT_FILE, CA_KEY_FILE, CaFileError, CertificateAuthority } from '../../../certs/ca';

const YEAR_MS = 365.25 * 24 * 3600 * 1000;

describe('certs: CertificateAuthority', () => {
  let dir: string;
  const warnings: string[] = [];
  const load = (d = dir) => CertificateAuthority.loadOrCreate(d, { warn: (m) => warnings.push(m) });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-ca-'));
    warnings.length = 0;
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('creates an RSA-2048 CA with critical CA:TRUE, certificate-signing key usage and a long validity', () => {
    const ca = load();
    const x509 = new crypto.X509Certificate(ca.certPem);
    expect(x509.ca).toBe(true);
    expect(x509.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(x509.subject).toBe(x509.issuer);
    expect(x509.verify(x509.publicKey)).toBe(true);
    const from = Date.parse(x509.validFrom);
    const to = Date.parse(x509.validTo);
    expect(to - from).toBeGreaterThan(5 * YEAR_MS);
    expect(from).toBeLessThan(Date.now() - 24 * 3600 * 1000); // backdated for phones with a skewed clock
    expect(x509.subject).toMatch(/O=phonehome/);
    expect(x509.subject).toMatch(/CN=phonehome CA /);

    const text = execFileSync('openssl', ['x509', '-text', '-noout', '-in', path.join(dir, CA_CERT_FILE)], { encoding: 'utf8' });
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(text).toMatch(/X509v3 Subject Key Identifier/);
    expect(text).toMatch(/Signature Algorithm: sha256WithRSAEncryption/);
    expect(ca.certDer.equals(x509.raw)).toBe(true);
  });

  it('writes the key owner-only (0600) and no temp files', () => {
    load();
    expect(fs.statSync(path.join(dir, CA_KEY_FILE)).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(dir).sort()).toEqual([CA_KEY_FILE, CA_CERT_FILE].sort());
  });

  it('computes subject_hash_old exactly as openssl does', () => {
    const ca = load();
    const expected = execFileSync('openssl', ['x509', '-subject_hash_old', '-noout', '-in', path.join(dir, CA_CERT_FILE)], { encoding: 'utf8' }).trim();
    expect(ca.subjectHashOld).toMatch(/^[0-9a-f]{8}$/);
    expect(ca.subjectHashOld).toBe(expected);
    expect(ca.androidSystemFileName()).toBe(`${expected}.0`);
  });

  it('gives the SPKI pin openssl computes for the certificate', () => {
    const ca = load();
    const spki = execFileSync('openssl', ['x509', '-pubkey', '-noout', '-in', path.join(dir, CA_CERT_FILE)]);
    const der = crypto.createPublicKey(spki).export({ type: 'spki', format: 'der' });
    expect(ca.spkiSha256Base64()).toBe(crypto.createHash('sha256').update(der).digest('base64'));
  });

  it('reloads the same certificate and key', () => {
    const first = load();
    const second = load();
    expect(second.certPem).toBe(first.certPem);
    expect(second.subjectHashOld).toBe(first.subjectHashOld);
    expect(second.privateKey.export({ type: 'pkcs8', format: 'pem' })).toBe(first.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  });

  it('makes a different key and subject in each data directory', () => {
    const other = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-ca-'));
    try {
      const a = load();
      const b = load(other);
      expect(b.spkiSha256Base64()).not.toBe(a.spkiSha256Base64());
      expect(new crypto.X509Certificate(b.certPem).subject).not.toBe(new crypto.X509Certificate(a.certPem).subject);
      expect(b.subjectHashOld).not.toBe(a.subjectHashOld);
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  });

  it('tightens a key file that others can read, and warns', () => {
    const first = load();
    fs.chmodSync(path.join(dir, CA_KEY_FILE), 0o644);
    const again = load();
    expect(fs.statSync(path.join(dir, CA_KEY_FILE)).mode & 0o777).toBe(0o600);
    expect(warnings.join('\n')).toMatch(/ca-key\.pem.*0644.*0600/);
    expect(again.certPem).toBe(first.certPem);
  });

  it('completes a CA whose certificate was never written (crash after the key)', () => {
    load();
    const keyPem = fs.readFileSync(path.join(dir, CA_KEY_FILE), 'utf8');
    fs.rmSync(path.join(dir, CA_CERT_FILE));
    const ca = load();
    expect(ca.privateKey.export({ type: 'pkcs8', format: 'pem' })).toBe(keyPem);
    expect(new crypto.X509Certificate(ca.certPem).checkPrivateKey(ca.privateKey)).toBe(true);
  });

  it('reports a corrupt certificate or key file by name, without touching it', () => {
    load();
    const certPath = path.join(dir, CA_CERT_FILE);
    fs.writeFileSync(certPath, '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n');
    expect(() => load()).toThrow(CaFileError);
    expect(() => load()).toThrow(certPath);
    expect(fs.readFileSync(certPath, 'utf8')).toContain('not base64');

    const keyPath = path.join(dir, CA_KEY_FILE);
    fs.writeFileSync(keyPath, 'garbage', { mode: 0o600 });
    expect(() => load()).toThrow(keyPath);
  });

  it('refuses a certificate that does not match the key', () => {
    const other = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-ca-'));
    try {
      load();
      load(other);
      fs.copyFileSync(path.join(other, CA_CERT_FILE), path.join(dir, CA_CERT_FILE));
      expect(() => load()).toThrow(/does not belong to the key/);
    } finally {
      fs.rmSync(other, { recursive: true, force: true });
    }
  });

  it('refuses a certificate without its key rather than silently replacing the trusted CA', () => {
    load();
    fs.rmSync(path.join(dir, CA_KEY_FILE));
    expect(() => load()).toThrow(/ca-key\.pem: is missing/);
  });
});
