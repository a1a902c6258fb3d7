/** Several phonehome processes starting at once on a fresh data dir must agree on one CA. */
import { spawn } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const CA_MODULE = path.join(__dirname, '..', '..', 'dist', 'certs', 'ca.js');

function loadInChild(dataDir: string): Promise<string> {
  const script = `const { CertificateAuthority } = require(${JSON.stringify(CA_MODULE)});
process.stdout.write(CertificateAuthority.loadOrCreate(process.argv[1]).certPem);`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script, dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.stderr.on('data', (c: Buffer) => (err += c));
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}: ${err}`))));
  });
}

describe('CA creation racing across processes', () => {
  let dir: string;
  beforeAll(() => {
    if (!fs.existsSync(CA_MODULE)) throw new Error('run `npm run build` first (npm test does)');
  });
  beforeEach(() => {
    dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-race-')), 'data');
  });
  afterEach(() => fs.rmSync(path.dirname(dir), { recursive: true, force: true }));

  it('6 processes creating the CA at once all end up with the same certificate, matching the key on disk', async () => {
    const pems = await Promise.all(Array.from({ length: 6 }, () => loadInChild(dir)));
    expect(new Set(pems).size).toBe(1);
    const cert = new crypto.X509Certificate(pems[0]);
    expect(cert.checkPrivateKey(crypto.createPrivateKey(fs.readFileSync(path.join(dir, 'ca-key.pem'))))).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'ca.pem'), 'utf8')).toBe(pems[0]);
    expect(fs.readdirSync(dir).sort()).toEqual(['ca-key.pem', 'ca.pem']);
  });
});
