/**
 * WireGuard's protection of the handshake under load (whitepaper 5.4.7, as wireguard-go): a
 * handshake costs four X25519 operations, so a flood of initiations (replayed ones keep their
 * valid mac1) would keep a core busy. When under load, an initiation or response must carry a
 * valid mac2, made with a cookie only the holder of the sender's address can have received; one
 * without gets a cookie reply (message type 3) instead of a handshake, and handshakes from one
 * address are then limited to 20 a second (burst 5). Cookie replies are limited per address too,
 * so a flood costs a MAC check and a table look-up per datagram.
 *  - cookie = MAC(secret, source address and port), the secret renewed every two minutes;
 *  - mac2 = MAC(cookie, message up to mac2);
 *  - reply: XChaCha20-Poly1305(HASH("cookie--" || our public key), random 24-byte nonce, cookie,
 *    additional data = the message's mac1). HChaCha20 is here; ChaCha20-Poly1305 is node's.
 * The initiator side (phonehome initiating to a phone that is under load) keeps the cookie a
 * reply brought for two minutes and adds mac2 with it.
 */
import * as crypto from 'crypto';
import { hash, LABEL_COOKIE, mac } from './crypto';
import { COOKIE_REPLY_LEN, MSG_COOKIE_REPLY } from './messages';

/** wireguard-go's CookieRefreshTime: the secret's and a received cookie's lifetime. */
export const COOKIE_LIFETIME_MS = 120_000;
/** Initiations (valid mac1) within one second above which the endpoint counts as under load. */
export const UNDER_LOAD_INITIATIONS_PER_SECOND = 25;
/** Once under load, for at least this long (wireguard-go's UnderLoadAfterTime). */
const UNDER_LOAD_AFTER_MS = 1000;
/** Handshakes per second and burst from one address when under load (wireguard-go's rate limiter). */
const PACKETS_PER_SECOND = 20;
const PACKETS_BURSTABLE = 5;
const NONCE_LEN = 24;

/** The address a datagram came from, as the bytes a cookie is bound to: IP then port. */
export function sourceBytes(address: string, port: number): Buffer {
  const ip = address.includes(':') ? ipv6(address) : Buffer.from(address.split('.').map(Number));
  const out = Buffer.alloc(ip.length + 2);
  ip.copy(out);
  out.writeUInt16BE(port, ip.length);
  return out;
}

function ipv6(text: string): Buffer {
  const [head, tail = ''] = text.split('::');
  const parse = (s: string) => (s ? s.split(':').map((h) => parseInt(h, 16)) : []);
  const a = parse(head);
  const b = text.includes('::') ? parse(tail) : [];
  const words = [...a, ...new Array(8 - a.length - b.length).fill(0), ...b];
  const out = Buffer.alloc(16);
  words.forEach((w, i) => out.writeUInt16BE(w & 0xffff, i * 2));
  return out;
}

/** HChaCha20 (draft-irtf-cfrg-xchacha 2.2): a 32-byte subkey from a key and the first 16 nonce bytes. */
export function hchacha20(key: Buffer, nonce16: Buffer): Buffer {
  const s = new Uint32Array(16);
  s[0] = 0x61707865;
  s[1] = 0x3320646e;
  s[2] = 0x79622d32;
  s[3] = 0x6b206574;
  for (let i = 0; i < 8; i++) s[4 + i] = key.readUInt32LE(i * 4);
  for (let i = 0; i < 4; i++) s[12 + i] = nonce16.readUInt32LE(i * 4);
  const rotl = (v: number, n: number) => (v << n) | (v >>> (32 - n));
  const qr = (a: number, b: number, c: number, d: number) => {
    s[a] += s[b]; s[d] = rotl(s[d] ^ s[a], 16);
    s[c] += s[d]; s[b] = rotl(s[b] ^ s[c], 12);
    s[a] += s[b]; s[d] = rotl(s[d] ^ s[a], 8);
    s[c] += s[d]; s[b] = rotl(s[b] ^ s[c], 7);
  };
  for (let i = 0; i < 10; i++) {
    qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15);
    qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14);
  }
  const out = Buffer.alloc(32);
  for (let i = 0; i < 4; i++) out.writeUInt32LE(s[i], i * 4);
  for (let i = 0; i < 4; i++) out.writeUInt32LE(s[12 + i], 16 + i * 4);
  return out;
}

/** XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha 2.3): HChaCha20 subkey, then ChaCha20-Poly1305 with nonce 0^4 || nonce[16..24]. */
export function xchachaSeal(key: Buffer, nonce: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const c = crypto.createCipheriv('chacha20-poly1305', hchacha20(key, nonce.subarray(0, 16)), Buffer.concat([Buffer.alloc(4), nonce.subarray(16, 24)]), { authTagLength: 16 });
  c.setAAD(aad, { plaintextLength: plaintext.length });
  const body = c.update(plaintext);
  c.final();
  return Buffer.concat([body, c.getAuthTag()]);
}

export function xchachaOpen(key: Buffer, nonce: Buffer, sealed: Buffer, aad: Buffer): Buffer | null {
  if (sealed.length < 16 || nonce.length !== NONCE_LEN) return null;
  try {
    const d = crypto.createDecipheriv('chacha20-poly1305', hchacha20(key, nonce.subarray(0, 16)), Buffer.concat([Buffer.alloc(4), nonce.subarray(16, 24)]), { authTagLength: 16 });
    d.setAAD(aad, { plaintextLength: sealed.length - 16 });
    d.setAuthTag(sealed.subarray(sealed.length - 16));
    const body = d.update(sealed.subarray(0, sealed.length - 16));
    d.final();
    return body;
  } catch {
    return null;
  }
}

/** The key cookie replies to/from the holder of `publicKey` are sealed with. */
export function cookieKey(publicKey: Buffer): Buffer {
  return hash(Buffer.from(LABEL_COOKIE), publicKey);
}

/** mac2 of a message (everything before mac2) with a cookie. */
export function mac2(cookie: Buffer, msg: Buffer, mac2Offset: number): Buffer {
  return mac(cookie, msg.subarray(0, mac2Offset));
}

/** The responder's cookie state: the rotating secret, mac2 checks and cookie replies. */
export class CookieChecker {
  private secret = crypto.randomBytes(32);
  private secretAt: number;
  private readonly replyKey: Buffer;

  constructor(ourPublicKey: Buffer, private readonly now: () => number) {
    this.replyKey = cookieKey(ourPublicKey);
    this.secretAt = now();
  }

  /** Whether the message carries the mac2 the cookie for `src` gives. */
  checkMac2(msg: Buffer, mac2Offset: number, src: Buffer): boolean {
    if (this.now() - this.secretAt > COOKIE_LIFETIME_MS) return false;
    const expected = mac2(mac(this.secret, src), msg, mac2Offset);
    return crypto.timingSafeEqual(expected, msg.subarray(mac2Offset, mac2Offset + 16));
  }

  /** The cookie reply to a message from `src`: its sender index, a fresh nonce, the sealed cookie. */
  reply(msg: Buffer, senderIndex: number, mac1Offset: number, src: Buffer): Buffer {
    if (this.now() - this.secretAt > COOKIE_LIFETIME_MS) {
      this.secret = crypto.randomBytes(32);
      this.secretAt = this.now();
    }
    const out = Buffer.alloc(COOKIE_REPLY_LEN);
    out[0] = MSG_COOKIE_REPLY;
    out.writeUInt32LE(senderIndex >>> 0, 4);
    const nonce = crypto.randomBytes(NONCE_LEN);
    nonce.copy(out, 8);
    xchachaSeal(this.replyKey, nonce, mac(this.secret, src), msg.subarray(mac1Offset, mac1Offset + 16)).copy(out, 8 + NONCE_LEN);
    return out;
  }
}

/** Opens a cookie reply to a message we sent with `ourMac1`; the cookie, or null. */
export function openCookieReply(reply: Buffer, theirPublicKey: Buffer, ourMac1: Buffer): Buffer | null {
  if (reply.length !== COOKIE_REPLY_LEN) return null;
  return xchachaOpen(cookieKey(theirPublicKey), reply.subarray(8, 8 + NONCE_LEN), reply.subarray(8 + NONCE_LEN), ourMac1);
}

/** "Under load": more than UNDER_LOAD_INITIATIONS_PER_SECOND handshake messages in the current second, and a second after. */
export class LoadMonitor {
  private windowStart = -Infinity;
  private count = 0;
  private until = -Infinity;

  constructor(private readonly threshold = UNDER_LOAD_INITIATIONS_PER_SECOND) {}

  /** Counts one handshake message at `now`; returns whether the endpoint is under load. */
  hit(now: number): boolean {
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.count = 0;
    }
    if (++this.count > this.threshold) this.until = now + UNDER_LOAD_AFTER_MS;
    return now < this.until;
  }
}

/** A token bucket per source address (wireguard-go's rate limiter: 20 a second, burst 5), pruned as it grows. */
export class RateLimiter {
  private readonly entries = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly perSecond = PACKETS_PER_SECOND, private readonly burst = PACKETS_BURSTABLE, private readonly maxEntries = 65536) {}

  allow(address: string, now: number): boolean {
    const costMs = 1000 / this.perSecond;
    let e = this.entries.get(address);
    if (!e) {
      if (this.entries.size >= this.maxEntries) this.prune(now);
      e = { tokens: costMs * this.burst, at: now };
      this.entries.set(address, e);
    }
    e.tokens = Math.min(costMs * this.burst, e.tokens + (now - e.at));
    e.at = now;
    if (e.tokens < costMs) return false;
    e.tokens -= costMs;
    return true;
  }

  /** Forgets addresses idle for a second (their bucket is full again anyway). */
  prune(now: number): void {
    for (const [k, e] of this.entries) if (now - e.at > 1000) this.entries.delete(k);
  }
}
