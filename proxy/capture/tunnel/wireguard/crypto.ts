/**
 * WireGuard's cryptographic primitives (Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s) on node's crypto,
 * plus keyed BLAKE2s-128 from @noble/hashes (node has no keyed BLAKE2s) for mac1/mac2. Keys are raw
 * 32-byte Buffers at this level; base64 is only for configs and files.
 */
import * as crypto from 'crypto';
import { blake2s } from '@noble/hashes/blake2s';

export const KEY_LEN = 32;
export const AEAD_TAG_LEN = 16;
export const CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
export const IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
export const LABEL_MAC1 = 'mac1----';
export const LABEL_COOKIE = 'cookie--';

// DER wrappers that turn raw X25519 keys into what node's KeyObject API accepts.
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');

export function hash(...parts: Buffer[]): Buffer {
  const h = crypto.createHash('blake2s256');
  for (const p of parts) h.update(p);
  return h.digest();
}

export function hmac(key: Buffer, ...parts: Buffer[]): Buffer {
  const h = crypto.createHmac('blake2s256', key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** KDF_n(key, input): HKDF with HMAC-BLAKE2s and empty info, returning n 32-byte outputs. */
export function kdf(n: 1 | 2 | 3, key: Buffer, input: Buffer): Buffer[] {
  const okm = Buffer.from(crypto.hkdfSync('blake2s256', input, key, Buffer.alloc(0), KEY_LEN * n));
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) out.push(okm.subarray(i * KEY_LEN, (i + 1) * KEY_LEN));
  return out;
}

/** Keyed BLAKE2s with a 16-byte output (MAC in the paper): mac1, mac2 and cookies. */
export function mac(key: Buffer, input: Buffer): Buffer {
  return Buffer.from(blake2s(input, { key, dkLen: 16 }));
}

function nonceFor(counter: bigint): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeBigUInt64LE(counter, 4);
  return nonce;
}

/** ChaCha20-Poly1305 with WireGuard's nonce (4 zero bytes, then the little-endian 64-bit counter). */
export function aeadSeal(key: Buffer, counter: bigint, plaintext: Buffer, aad: Buffer): Buffer {
  const c = crypto.createCipheriv('chacha20-poly1305', key, nonceFor(counter), { authTagLength: AEAD_TAG_LEN });
  c.setAAD(aad, { plaintextLength: plaintext.length });
  const body = c.update(plaintext);
  c.final();
  return Buffer.concat([body, c.getAuthTag()]);
}

/** Returns the plaintext, or null when the tag does not verify (never throws on hostile input). */
export function aeadOpen(key: Buffer, counter: bigint, sealed: Buffer, aad: Buffer): Buffer | null {
  if (sealed.length < AEAD_TAG_LEN) return null;
  try {
    const d = crypto.createDecipheriv('chacha20-poly1305', key, nonceFor(counter), { authTagLength: AEAD_TAG_LEN });
    d.setAAD(aad, { plaintextLength: sealed.length - AEAD_TAG_LEN });
    d.setAuthTag(sealed.subarray(sealed.length - AEAD_TAG_LEN));
    const body = d.update(sealed.subarray(0, sealed.length - AEAD_TAG_LEN));
    d.final();
    return body;
  } catch {
    return null;
  }
}

/** A Curve25519 private key kept as a KeyObject (for DH) with its raw public half. */
export interface StaticKey {
  privateKey: crypto.KeyObject;
  publicKey: Buffer;
}

export function privateKeyFromRaw(raw: Buffer): StaticKey {
  if (raw.length !== KEY_LEN) throw new Error('a WireGuard private key is 32 bytes');
  const privateKey = crypto.createPrivateKey({ key: Buffer.concat([PKCS8_X25519, raw]), format: 'der', type: 'pkcs8' });
  const spki = crypto.createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return { privateKey, publicKey: Buffer.from(spki.subarray(spki.length - KEY_LEN)) };
}

/** A fresh private key, clamped like `wg genkey` so the stored bytes are canonical. */
export function generatePrivateKey(): Buffer {
  const raw = crypto.randomBytes(KEY_LEN);
  raw[0] &= 248;
  raw[31] = (raw[31] & 127) | 64;
  return raw;
}

export function generateEphemeral(): StaticKey {
  return privateKeyFromRaw(generatePrivateKey());
}

/** X25519; null when the peer's public key is invalid or yields the all-zero shared secret. */
export function dh(priv: crypto.KeyObject, publicRaw: Buffer): Buffer | null {
  if (publicRaw.length !== KEY_LEN) return null;
  try {
    const publicKey = crypto.createPublicKey({ key: Buffer.concat([SPKI_X25519, publicRaw]), format: 'der', type: 'spki' });
    const shared = crypto.diffieHellman({ privateKey: priv, publicKey });
    return shared.every((b) => b === 0) ? null : shared;
  } catch {
    return null;
  }
}

export function decodeKey(base64: string): Buffer {
  const raw = Buffer.from(base64.trim(), 'base64');
  if (raw.length !== KEY_LEN || raw.toString('base64') !== base64.trim()) throw new Error('not a base64 WireGuard key');
  return raw;
}

/** TAI64N of now: 8-byte big-endian TAI64 seconds label, then 4-byte big-endian nanoseconds. */
export function tai64n(nowMs = Date.now()): Buffer {
  const out = Buffer.alloc(12);
  const secs = BigInt(Math.floor(nowMs / 1000));
  out.writeBigUInt64BE(0x400000000000000an + secs, 0);
  out.writeUInt32BE((nowMs % 1000) * 1e6, 8);
  return out;
}

/** Initial chaining key and hash of every handshake (constants of the protocol). */
export const INITIAL_CHAIN_KEY = hash(Buffer.from(CONSTRUCTION));
export const INITIAL_HASH = hash(INITIAL_CHAIN_KEY, Buffer.from(IDENTIFIER));
