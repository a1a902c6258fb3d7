/**
 * Why: every intercepted HTTPS host needs a certificate signed by our CA, minted the moment a
 * phone first connects. Generating a key per host (the proxy library's default) blocks the event
 * loop for hundreds of milliseconds; instead one leaf key pair serves every host (as mitmproxy
 * does), each certificate is signed natively, and the resulting TLS contexts are kept in a
 * bounded in-memory LRU. Concurrent first requests for a host share one mint, and mints for
 * different hosts run one per event-loop turn, so a burst of new hosts never holds up traffic to
 * known ones for longer than one mint (~2 ms). Nothing is written
 * to disk and no path is ever derived from a hostname.
 */
import * as crypto from 'crypto';
import * as tls from 'tls';
import { promisify } from 'util';
import forge from 'node-forge';
import type { CertificateAuthority } from './ca';
import { CertHostname, normalizeCertHostname } from './hostname';
import { derToPem, randomSerialHex, signCertificateNatively } from './native-sign';

export { InvalidHostnameError, normalizeCertHostname } from './hostname';

const LEAF_VALIDITY_DAYS = 397;
const LEAF_BACKDATE_MS = 24 * 3600 * 1000;
const DAY_MS = 24 * 3600 * 1000;
/** Common names longer than this violate X.509's upper bound; such hosts rely on SAN only. */
const MAX_COMMON_NAME = 64;

export interface LeafMinterOptions {
  /** How many per-host TLS contexts to keep (least recently used are dropped). */
  cacheSize?: number;
}

interface LeafKey {
  privatePem: string;
  forgePublic: forge.pki.PublicKey;
}

const generateKeyPair = promisify(crypto.generateKeyPair);

export class LeafMinter {
  /** Certificates actually minted (cache misses that did the work); for tests and stats. */
  mintCount = 0;
  private readonly cacheSize: number;
  private readonly cache = new Map<string, tls.SecureContext>();
  private readonly inFlight = new Map<string, Promise<tls.SecureContext>>();
  private leafKey?: Promise<LeafKey>;
  private readonly mintQueue: Array<() => void> = [];
  private draining = false;

  constructor(private readonly ca: CertificateAuthority, options: LeafMinterOptions = {}) {
    this.cacheSize = Math.max(1, options.cacheSize ?? 5000);
  }

  /** Generates the shared leaf key now (off the event loop) instead of on the first HTTPS host. */
  warmUp(): Promise<void> {
    return this.key().then(() => undefined);
  }

  /** A TLS context presenting a certificate for `hostname` (DNS name or IP literal); rejects invalid names. */
  async secureContextFor(hostname: string): Promise<tls.SecureContext> {
    const host = normalizeCertHostname(hostname);
    const cached = this.cache.get(host.name);
    if (cached) {
      this.cache.delete(host.name);
      this.cache.set(host.name, cached);
      return cached;
    }
    const pending = this.inFlight.get(host.name);
    if (pending) return pending;
    const minting = this.mint(host).finally(() => this.inFlight.delete(host.name));
    this.inFlight.set(host.name, minting);
    return minting;
  }

  /** The PEM certificate and key for `hostname`, for code that needs them rather than a context. */
  async pemFor(hostname: string): Promise<{ cert: string; key: string }> {
    const host = normalizeCertHostname(hostname);
    const key = await this.key();
    return { cert: derToPem(this.buildCertificate(host, key)), key: key.privatePem };
  }

  private async mint(host: CertHostname): Promise<tls.SecureContext> {
    const key = await this.key();
    return this.oneTurnAtATime(() => this.createContext(host, key));
  }

  private createContext(host: CertHostname, key: LeafKey): tls.SecureContext {
    const certDer = this.buildCertificate(host, key);
    const context = tls.createSecureContext({ key: key.privatePem, cert: derToPem(certDer) + this.ca.certPem });
    this.mintCount++;
    this.cache.set(host.name, context);
    if (this.cache.size > this.cacheSize) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    return context;
  }

  /** Runs `work` in its own event-loop turn, after every job queued before it. */
  private oneTurnAtATime<T>(work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.mintQueue.push(() => {
        try {
          resolve(work());
        } catch (err) {
          reject(err);
        }
      });
      if (!this.draining) {
        this.draining = true;
        setImmediate(this.drainOne);
      }
    });
  }

  private readonly drainOne = (): void => {
    this.mintQueue.shift()?.();
    if (this.mintQueue.length) setImmediate(this.drainOne);
    else this.draining = false;
  };

  private key(): Promise<LeafKey> {
    if (!this.leafKey) {
      this.leafKey = generateKeyPair('rsa', { modulusLength: 2048 }).then(({ privateKey, publicKey }) => ({
        privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
        forgePublic: forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }) as string),
      }));
      this.leafKey.catch(() => (this.leafKey = undefined));
    }
    return this.leafKey;
  }

  private buildCertificate(host: CertHostname, key: LeafKey): Buffer {
    const cert = forge.pki.createCertificate();
    cert.publicKey = key.forgePublic;
    cert.serialNumber = randomSerialHex();
    const notBefore = new Date(Date.now() - LEAF_BACKDATE_MS);
    const notAfter = new Date(Math.min(notBefore.getTime() + LEAF_VALIDITY_DAYS * DAY_MS, this.ca.notAfter.getTime()));
    cert.validity.notBefore = notBefore;
    cert.validity.notAfter = notAfter;
    const subject: forge.pki.CertificateField[] = [{ name: 'organizationName', value: 'phonehome' }];
    if (host.name.length <= MAX_COMMON_NAME) subject.unshift({ name: 'commonName', value: host.name });
    cert.setSubject(subject);
    const altName = host.ip ? { type: 7, ip: host.name } : { type: 2, value: host.name };
    cert.setExtensions([
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [altName] },
      { name: 'authorityKeyIdentifier', keyIdentifier: this.ca.subjectKeyId.toString('binary') },
    ]);
    return signCertificateNatively(cert, this.ca.privateKey, this.ca.subjectDer);
  }
}
