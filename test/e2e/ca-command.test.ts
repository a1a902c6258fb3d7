/** `phonehome ca` run as a user runs it: the built CLI (npm test builds before jest) in a child process. */
import { execFileSync, spawnSync } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const BIN = path.join(__dirname, '..', '..', 'bin', 'phonehome.js');

function phonehome(args: string[], cwd?: string) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, timeout: 20000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

describe('phonehome ca', () => {
  let dataDir: string;
  let work: string;
  beforeAll(() => {
    if (!fs.existsSync(path.join(__dirname, '..', '..', 'dist', 'proxy', 'cli.js'))) throw new Error('run `npm run build` first (npm test does)');
  });
  beforeEach(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-cacmd-'));
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-cacmd-out-'));
  });
  afterEach(() => {
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('creates the CA on first use and prints it as PEM; later runs print the same certificate', () => {
    const first = phonehome(['ca', '--data-dir', dataDir]);
    expect(first.status).toBe(0);
    const pem = first.stdout.toString();
    expect(pem).toMatch(/^-----BEGIN CERTIFICATE-----\n/);
    const cert = new crypto.X509Certificate(pem);
    expect(cert.ca).toBe(true);
    expect(fs.statSync(path.join(dataDir, 'ca-key.pem')).mode & 0o777).toBe(0o600);
    expect(phonehome(['ca', '--data-dir', dataDir]).stdout.toString()).toBe(pem);
    expect(execFileSync('openssl', ['x509', '-noout', '-subject'], { input: pem, encoding: 'utf8' })).toMatch(/O = phonehome/);
  });

  it('--der writes the same certificate as DER bytes', () => {
    const pem = phonehome(['ca', '--data-dir', dataDir]).stdout.toString();
    const der = phonehome(['ca', '--der', '--data-dir', dataDir]);
    expect(der.status).toBe(0);
    expect(der.stdout[0]).toBe(0x30); // ASN.1 SEQUENCE, not text
    expect(new crypto.X509Certificate(der.stdout).fingerprint256).toBe(new crypto.X509Certificate(pem).fingerprint256);
    const viaOpenssl = execFileSync('openssl', ['x509', '-inform', 'der', '-outform', 'pem'], { input: der.stdout, encoding: 'utf8' });
    expect(viaOpenssl).toBe(pem);
  });

  it('--android-system writes <subject_hash_old>.0 in the current directory or a given one', () => {
    const pem = phonehome(['ca', '--data-dir', dataDir]).stdout.toString();
    const hash = execFileSync('openssl', ['x509', '-subject_hash_old', '-noout'], { input: pem, encoding: 'utf8' }).trim();

    const here = phonehome(['ca', '--android-system', '--data-dir', dataDir], work);
    expect(here.status).toBe(0);
    const expected = path.join(fs.realpathSync(work), `${hash}.0`);
    expect(here.stdout.toString().trim()).toBe(expected);
    expect(fs.readFileSync(expected, 'utf8')).toBe(pem);

    const sub = path.join(work, 'sub');
    fs.mkdirSync(sub);
    const there = phonehome(['ca', '--data-dir', dataDir, '--android-system', sub]);
    expect(there.status).toBe(0);
    expect(fs.readFileSync(path.join(sub, `${hash}.0`), 'utf8')).toBe(pem);

    const viaOut = phonehome(['ca', '--data-dir', dataDir, '--android-system', '--out', sub]);
    expect(viaOut.stdout.toString().trim()).toBe(path.join(sub, `${hash}.0`));
  });

  it.each([
    [['ca', '--bogus'], /unknown option --bogus/],
    [['ca', '--der', '--android-system'], /cannot be combined/],
    [['ca', 'stray'], /unexpected argument 'stray'/],
    [['ca', '--out', '/tmp'], /--out only applies to --android-system/],
    [['ca', '--data-dir'], /--data-dir needs a value/],
  ])('refuses %j with a clear message and exit status 2', (args, message) => {
    const r = phonehome([...args]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout.length).toBe(0);
  });

  it('reports a missing target directory and a corrupt CA file by name (exit 1, no stack trace)', () => {
    phonehome(['ca', '--data-dir', dataDir]);
    const missing = phonehome(['ca', '--data-dir', dataDir, '--android-system', path.join(work, 'nope')]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/cannot write .*nope.*ENOENT/);

    fs.writeFileSync(path.join(dataDir, 'ca.pem'), 'this is not a certificate');
    const corrupt = phonehome(['ca', '--data-dir', dataDir]);
    expect(corrupt.status).toBe(1);
    expect(corrupt.stderr).toContain(path.join(dataDir, 'ca.pem'));
    expect(corrupt.stderr).not.toMatch(/\n\s+at /);
  });

  it('--help describes every option', () => {
    const r = phonehome(['ca', '--help']);
    expect(r.status).toBe(0);
    for (const flag of ['--der', '--android-system', '--out', '--data-dir']) expect(r.stdout.toString()).toContain(flag);
  });
});
