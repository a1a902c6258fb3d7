/**
 * Why: node-forge builds X.509 structures conveniently, but its pure-JS RSA takes tens of
 * milliseconds per signature and blocks the event loop. We let forge lay out the
 * TBSCertificate, sign those bytes with Node's native `crypto.sign`, and assemble the final
 * Certificate DER ourselves.
 */
import * as crypto from 'crypto';
import forge from 'node-forge';

const asn1 = forge.asn1;
const SHA256_WITH_RSA = forge.pki.oids.sha256WithRSAEncryption;
/** Present in node-forge's runtime but missing from its type definitions. */
const getTBSCertificate = (forge.pki as unknown as { getTBSCertificate(cert: forge.pki.Certificate): forge.asn1.Asn1 }).getTBSCertificate;

/** Index of the issuer Name inside a v3 TBSCertificate (after version, serial, signature). */
const TBS_ISSUER_INDEX = 3;

/**
 * Signs `cert` (publicKey, subject, issuer, validity, extensions already set) with `issuerKey`
 * and returns the certificate as DER. When `issuerNameDer` is given, those exact bytes are used
 * as the issuer Name, so chain building matches the CA's subject byte for byte.
 */
export function signCertificateNatively(cert: forge.pki.Certificate, issuerKey: crypto.KeyObject, issuerNameDer?: Buffer): Buffer {
  cert.siginfo.algorithmOid = SHA256_WITH_RSA;
  const tbs = getTBSCertificate(cert);
  if (issuerNameDer) {
    (tbs.value as forge.asn1.Asn1[])[TBS_ISSUER_INDEX] = asn1.fromDer(forge.util.createBuffer(issuerNameDer.toString('binary')));
  }
  const tbsDer = Buffer.from(asn1.toDer(tbs).getBytes(), 'binary');
  const signature = crypto.sign('sha256', tbsDer, issuerKey);
  const algorithm = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(SHA256_WITH_RSA).getBytes()),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''),
  ]);
  const signatureBits = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, '\x00' + signature.toString('binary'));
  const certificate = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [tbs, algorithm, signatureBits]);
  return Buffer.from(asn1.toDer(certificate).getBytes(), 'binary');
}

/** The DER bytes of a certificate's subject Name, exactly as encoded in the certificate. */
export function subjectNameDer(certDer: Buffer): Buffer {
  const certificate = asn1.fromDer(forge.util.createBuffer(certDer.toString('binary')));
  const tbs = (certificate.value as forge.asn1.Asn1[])[0];
  const fields = tbs.value as forge.asn1.Asn1[];
  // A v3 certificate starts with the explicit [0] version tag; v1 omits it.
  const hasVersion = fields[0].tagClass === asn1.Class.CONTEXT_SPECIFIC && fields[0].type === 0;
  const subject = fields[hasVersion ? 5 : 4];
  return Buffer.from(asn1.toDer(subject).getBytes(), 'binary');
}

/** A random positive serial number (16 bytes, high bit clear, first byte non-zero) as hex. */
export function randomSerialHex(): string {
  const bytes = crypto.randomBytes(16);
  bytes[0] = (bytes[0] & 0x7f) | 0x01;
  return bytes.toString('hex');
}

export function derToPem(der: Buffer, label = 'CERTIFICATE'): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
