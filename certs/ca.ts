/**
 * Why: phonehome intercepts HTTPS with a certificate authority that is unique to each install,
 * so that trusting it on one phone never opens that phone to anyone else's phonehome. The CA is
 * created on first use in the data directory (`ca.pem` and `ca-key.pem`, both readable by the
 * owner only) and loaded afterwards. Files are published with an exclusive hard link from a temp file,
 * so a crash never leaves half a file and two processes starting at once agree on one CA.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import forge from 'node-forge';
import { ownerOnly } from '../proxy/data-dir';
import { derToPem, randomSerialHex, signCertificateNatively, subjectNameDer } from './native-sign';

export const CA_CERT_FILE = 'ca.pem';
export const CA_KEY_FILE = 'ca-key.pem';

const CA_VALIDITY_YEARS = 10;
/** Phones with a slightly wrong clock must not see a certificate "from the future". */
const CA_BACKDATE_MS = 2 * 24 * 3600 * 1000;

/** A CA file that exists but cannot be used; the message names the file and what to do. */
export class CaFileError extends Error {
  constructor(readonly file: string, problem: string) {
    super(`${file}: ${problem}. Move it away (phonehome will create a new CA, which the phone must then trust again) or restore a good copy.`);
    this.name = 'CaFileError';
  }
}

export interface LoadOptions {
  /** Receives non-fatal problems that were fixed (default: printed to stderr). */
  warn?: (message: string) => void;
}

export class CertificateAuthority {
  readonly certPem: string;
  readonly certDer: Buffer;
  /** OpenSSL's `-subject_hash_old`: the Android system store names the CA file `<hash>.0`. */
  readonly subjectHashOld: string;
  /** The DER of the CA subject Name, used verbatim as the issuer of every leaf. */
  readonly subjectDer: Buffer;
  /** Key identifier of the CA public key, for leaves' authorityKeyIdentifier. */
  readonly subjectKeyId: Buffer;
  readonly notAfter: Date;

  private constructor(
    readonly certPath: string,
    readonly keyPath: string,
    certDer: Buffer,
    readonly privateKey: crypto.KeyObject,
  ) {
    this.certDer = certDer;
    this.certPem = derToPem(certDer);
    this.subjectDer = subjectNameDer(certDer);
    this.subjectHashOld = subjectHashOld(this.subjectDer);
    const x509 = new crypto.X509Certificate(certDer);
    this.notAfter = new Date(x509.validTo);
    this.subjectKeyId = readSubjectKeyId(certDer);
  }

  /** Loads the CA from `dataDir`, creating the directory, key and certificate if missing. */
  static loadOrCreate(dataDir: string, options: LoadOptions = {}): CertificateAuthority {
    const warn = options.warn ?? ((m: string) => process.stderr.write(`phonehome: ${m}\n`));
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const keyPath = path.join(dataDir, CA_KEY_FILE);
    const certPath = path.join(dataDir, CA_CERT_FILE);

    if (!fs.existsSync(keyPath)) {
      if (fs.existsSync(certPath)) {
        throw new CaFileError(keyPath, `is missing but ${certPath} exists, so the CA cannot sign`);
      }
      const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
      publishExclusive(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
    }
    tightenKeyPermissions(keyPath, warn);
    const privateKey = readPrivateKey(keyPath);

    if (!fs.existsSync(certPath)) {
      publishExclusive(certPath, derToPem(createCaCertificate(privateKey)), 0o600);
    }
    /* Public, but like every file of the data directory owner-only (phonehome serves it to the phones itself). */
    ownerOnly(certPath, false);
    const certDer = readCertificate(certPath);
    const certPublic = new crypto.X509Certificate(certDer).publicKey;
    const keyPublic = crypto.createPublicKey(privateKey);
    if (!certPublic.equals(keyPublic)) {
      throw new CaFileError(certPath, `does not belong to the key in ${keyPath}`);
    }
    return new CertificateAuthority(certPath, keyPath, certDer, privateKey);
  }

  /** base64 SHA-256 of the CA's SubjectPublicKeyInfo (Chromium's --ignore-certificate-errors-spki-list, HPKP style pins). */
  spkiSha256Base64(): string {
    const spki = crypto.createPublicKey(this.privateKey).export({ type: 'spki', format: 'der' });
    return crypto.createHash('sha256').update(spki).digest('base64');
  }

  /** The Android system-store file name for this CA, e.g. `c8750f0d.0`. */
  androidSystemFileName(): string {
    return `${this.subjectHashOld}.0`;
  }
}

/** First 4 bytes of MD5(subject Name DER) as a little-endian uint32, 8 lowercase hex digits. */
export function subjectHashOld(subjectDer: Buffer): string {
  const digest = crypto.createHash('md5').update(subjectDer).digest();
  return digest.readUInt32LE(0).toString(16).padStart(8, '0');
}

function createCaCertificate(privateKey: crypto.KeyObject): Buffer {
  const publicPem = crypto.createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }) as string;
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicPem);
  cert.serialNumber = randomSerialHex();
  const notBefore = new Date(Date.now() - CA_BACKDATE_MS);
  const notAfter = new Date(notBefore);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + CA_VALIDITY_YEARS);
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  const subject = [
    { name: 'commonName', value: uniqueCommonName(notBefore) },
    { name: 'organizationName', value: 'phonehome' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  return signCertificateNatively(cert, privateKey);
}

/** "phonehome CA <host> <date> <random>": unique per install, and tells the user which laptop it is. */
function uniqueCommonName(created: Date): string {
  const host = os.hostname().replace(/[^A-Za-z0-9.-]/g, '').slice(0, 24) || 'laptop';
  const date = created.toISOString().slice(0, 10);
  return `phonehome CA ${host} ${date} ${crypto.randomBytes(4).toString('hex')}`;
}

function readSubjectKeyId(certDer: Buffer): Buffer {
  const cert = forge.pki.certificateFromAsn1(forge.asn1.fromDer(forge.util.createBuffer(certDer.toString('binary'))));
  const ext = cert.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined;
  if (ext?.subjectKeyIdentifier) return Buffer.from(ext.subjectKeyIdentifier, 'hex');
  return Buffer.from(cert.generateSubjectKeyIdentifier().getBytes(), 'binary');
}

/**
 * Writes `content` to a temp file in the same directory, then hard-links it to `target` only if
 * `target` does not exist yet. If another process won the race, its file is kept.
 */
function publishExclusive(target: string, content: string, mode: number): void {
  const tmp = `${target}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  const fd = fs.openSync(tmp, 'wx', mode);
  try {
    fs.writeSync(fd, content);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.linkSync(tmp, target);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'ENOSYS') {
      // File systems without hard links: rename is still atomic, just not exclusive.
      if (!fs.existsSync(target)) fs.renameSync(tmp, target);
    } else if (code !== 'EEXIST') {
      throw err;
    }
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

function tightenKeyPermissions(keyPath: string, warn: (m: string) => void): void {
  if (process.platform === 'win32') return;
  const mode = fs.statSync(keyPath).mode & 0o777;
  if (mode & 0o077) {
    const shown = mode.toString(8).padStart(4, '0');
    try {
      fs.chmodSync(keyPath, 0o600);
      warn(`${keyPath} was readable by others (mode ${shown}); changed it to 0600`);
    } catch (err) {
      warn(`${keyPath} is readable by others (mode ${shown}) and could not be changed (${(err as NodeJS.ErrnoException).code}); run: chmod 600 ${keyPath}`);
    }
  }
}

function readPrivateKey(keyPath: string): crypto.KeyObject {
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey(fs.readFileSync(keyPath));
  } catch (err) {
    throw new CaFileError(keyPath, `is not a readable private key (${(err as Error).message})`);
  }
  if (key.asymmetricKeyType !== 'rsa') throw new CaFileError(keyPath, `holds a ${key.asymmetricKeyType} key; phonehome expects RSA`);
  return key;
}

function readCertificate(certPath: string): Buffer {
  try {
    const der = new crypto.X509Certificate(fs.readFileSync(certPath)).raw;
    if (!new crypto.X509Certificate(der).ca) throw new Error('it is not a CA certificate');
    return der;
  } catch (err) {
    throw new CaFileError(certPath, `is not a usable CA certificate (${(err as Error).message})`);
  }
}
