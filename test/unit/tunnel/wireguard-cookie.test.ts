/**
 * WireGuard's load protection on a real loopback UDP socket: a flood of replayed initiations puts
 * the endpoint under load; from then on an initiation without mac2 gets a cookie reply (type 3,
 * 64 bytes, addressed to its sender index) instead of a handshake; one with the mac2 the cookie
 * gives is answered, from the same address only; and handshakes per address are rate-limited.
 * HChaCha20 is checked against OpenSSL's ChaCha20 (an independent implementation); the e2e test
 * with wireguard-go under a flood is the interoperability check of the whole reply.
 */
import * as crypto from 'crypto';
import * as dgram from 'dgram';
import { once } from 'events';
import { cookieKey, hchacha20, mac2, openCookieReply, xchachaOpen, xchachaSeal } from '../../../proxy/capture/tunnel/wireguard/cookie';
import { generatePrivateKey, privateKeyFromRaw, tai64n } from '../../../proxy/capture/tunnel/wireguard/crypto';
import { createInitiation } from '../../../proxy/capture/tunnel/wireguard/handshake';
import { INIT, MSG_COOKIE_REPLY, MSG_RESPONSE } from '../../../proxy/capture/tunnel/wireguard/messages';
import { WireGuardServer } from '../../../proxy/capture/tunnel/wireguard/server';

describe('XChaCha20-Poly1305 for cookie replies', () => {
  test('HChaCha20 equals ChaCha20\'s rounds on the same state (OpenSSL\'s keystream minus the input state)', () => {
    for (let i = 0; i < 20; i++) {
      const key = crypto.randomBytes(32);
      const nonce = crypto.randomBytes(16);
      // OpenSSL's ChaCha20 takes counter || nonce as one 16-byte IV: the state's last four words.
      const block = crypto.createCipheriv('chacha20', key, nonce).update(Buffer.alloc(64));
      const state = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574, ...[0, 1, 2, 3, 4, 5, 6, 7].map((w) => key.readUInt32LE(w * 4)), ...[0, 1, 2, 3].map((w) => nonce.readUInt32LE(w * 4))];
      const expected = Buffer.alloc(32);
      [0, 1, 2, 3, 12, 13, 14, 15].forEach((w, j) => expected.writeUInt32LE((block.readUInt32LE(w * 4) - state[w]) >>> 0, j * 4));
      expect(hchacha20(key, nonce).toString('hex')).toBe(expected.toString('hex'));
    }
  });

  test('sealed cookies open only with the same key, nonce and additional data', () => {
    const key = crypto.randomBytes(32);
    const nonce = crypto.randomBytes(24);
    const aad = crypto.randomBytes(16);
    const sealed = xchachaSeal(key, nonce, Buffer.from('sixteen-byte-ck!'), aad);
    expect(sealed).toHaveLength(32);
    expect(xchachaOpen(key, nonce, sealed, aad)?.toString()).toBe('sixteen-byte-ck!');
    expect(xchachaOpen(key, nonce, sealed, crypto.randomBytes(16))).toBeNull();
    const flipped = Buffer.from(nonce);
    flipped[20] ^= 1;
    expect(xchachaOpen(key, flipped, sealed, aad)).toBeNull();
  });
});

describe('the endpoint under a flood of initiations', () => {
  let server: WireGuardServer;
  let port: number;
  const serverKey = generatePrivateKey();
  const serverPub = privateKeyFromRaw(serverKey).publicKey;
  const phone = privateKeyFromRaw(generatePrivateKey());
  const sockets: dgram.Socket[] = [];

  async function socket(): Promise<{ s: dgram.Socket; inbox: Buffer[] }> {
    const s = dgram.createSocket('udp4');
    const inbox: Buffer[] = [];
    s.on('message', (m) => inbox.push(m));
    s.bind(0, '127.0.0.1');
    await once(s, 'listening');
    sockets.push(s);
    return { s, inbox };
  }

  async function until<T>(f: () => T | undefined, ms = 3000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = f();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  beforeAll(async () => {
    server = new WireGuardServer({
      privateKey: serverKey, port: 0, listenHost: '127.0.0.1', onPacket: () => undefined,
      peers: [{ name: 'p', publicKey: phone.publicKey.toString('base64'), ipv4: '10.77.0.2', ipv6: 'fd77::2' }],
    });
    port = (await server.listen()).port;
  });
  afterAll(async () => {
    for (const s of sockets) s.close();
    await server.close();
  });

  test('replays draw cookie replies, not handshakes; the cookie\'s mac2 gets a handshake from that address only', async () => {
    const attacker = await socket();
    const replayed = createInitiation(phone, serverPub, 0xabcdef, tai64n(Date.now() - 60_000)).message;
    const floodStart = Date.now();
    for (let i = 0; i < 300; i++) attacker.s.send(replayed, port, '127.0.0.1');
    const c = server.counters;
    // (Loopback may drop some of a burst: most, not all, arrive.)
    await until(() => (c.cookieRepliesSent + c.handshakeRateLimited + c.staleInitiation + c.initiationFlood + c.handshakes >= 200 ? true : undefined));
    await new Promise((r) => setTimeout(r, 200));
    // At most the first second's threshold got as far as a handshake (and all but one were stale).
    expect(server.counters.handshakes).toBeLessThanOrEqual(1);
    expect(server.counters.staleInitiation + server.counters.initiationFlood).toBeLessThanOrEqual(26);
    expect(server.counters.cookieRepliesSent).toBeGreaterThanOrEqual(1);
    // Cookie replies to one address are limited too (a burst of 5, then 20 a second): a flood costs
    // a MAC check, not a reply each.
    expect(server.counters.cookieRepliesSent).toBeLessThanOrEqual(5 + Math.ceil((20 * (Date.now() - floodStart)) / 1000));
    expect(server.counters.cookieRepliesSent).toBeLessThan(c.handshakeRateLimited / 5);
    const reply = await until(() => attacker.inbox.find((m) => m[0] === MSG_COOKIE_REPLY));
    expect(reply).toHaveLength(64);
    expect(reply.readUInt32LE(4)).toBe(0xabcdef);

    // The real phone, from its own address, is under load too: first a cookie, then the handshake.
    const real = await socket();
    const first = createInitiation(phone, serverPub, 77);
    real.s.send(first.message, port, '127.0.0.1');
    const cookieReply = await until(() => real.inbox.find((m) => m[0] === MSG_COOKIE_REPLY));
    const cookie = openCookieReply(cookieReply, serverPub, first.message.subarray(INIT.mac1, INIT.mac1 + 16));
    expect(cookie).toHaveLength(16);
    const handshakesBefore = server.counters.handshakes;
    const second = createInitiation(phone, serverPub, 78, undefined, cookie!);
    expect(second.message.subarray(INIT.mac2, INIT.mac2 + 16)).toEqual(mac2(cookie!, second.message, INIT.mac2));
    real.s.send(second.message, port, '127.0.0.1');
    const response = await until(() => real.inbox.find((m) => m[0] === MSG_RESPONSE));
    expect(response.readUInt32LE(8)).toBe(78);
    expect(server.counters.handshakes).toBe(handshakesBefore + 1);

    // The same cookie from another port is no good: the cookie is bound to the address and port.
    const other = await socket();
    const third = createInitiation(phone, serverPub, 79, undefined, cookie!);
    other.s.send(third.message, port, '127.0.0.1');
    await until(() => (other.inbox.length || server.counters.handshakeRateLimited > 0 ? true : undefined));
    expect(other.inbox.some((m) => m[0] === MSG_RESPONSE)).toBe(false);
  });

  test('a cookie reply sealed for another message, or with another key, does not open', () => {
    const msg = createInitiation(phone, serverPub, 5).message;
    const sealed = xchachaSeal(cookieKey(serverPub), crypto.randomBytes(24), crypto.randomBytes(16), msg.subarray(INIT.mac1, INIT.mac1 + 16));
    const reply = Buffer.concat([Buffer.from([MSG_COOKIE_REPLY, 0, 0, 0, 5, 0, 0, 0]), crypto.randomBytes(24), sealed]);
    expect(openCookieReply(reply, serverPub, msg.subarray(INIT.mac1, INIT.mac1 + 16))).toBeNull(); // nonce in the reply differs from the one sealed with
    expect(openCookieReply(reply.subarray(0, 63), serverPub, msg.subarray(INIT.mac1, INIT.mac1 + 16))).toBeNull();
  });
});
