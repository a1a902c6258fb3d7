/**
 * The WireGuard endpoint on a real loopback UDP socket, driven by an initiator built from the same
 * primitives (the e2e test with wireguard-go is the interoperability check): handshake, data both
 * ways, and every way a datagram is refused landing in its counter.
 */
import * as dgram from 'dgram';
import { once } from 'events';
import type { TunnelPeer } from '../../../proxy/capture/tunnel/types';
import { aeadOpen, aeadSeal, generatePrivateKey, privateKeyFromRaw, StaticKey, tai64n } from '../../../proxy/capture/tunnel/wireguard/crypto';
import { consumeInitiation, consumeResponse, createInitiation, createResponse, SessionKeys } from '../../../proxy/capture/tunnel/wireguard/handshake';
import { WireGuardServer, WireGuardServerOptions } from '../../../proxy/capture/tunnel/wireguard/server';

/** A minimal IPv4/UDP packet from `src` (the endpoint only reads version, length and source). */
function ipv4Udp(src: string, dst: string, payload: Buffer): Buffer {
  const p = Buffer.alloc(28 + payload.length);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p[8] = 64;
  p[9] = 17;
  Buffer.from(src.split('.').map(Number)).copy(p, 12);
  Buffer.from(dst.split('.').map(Number)).copy(p, 16);
  p.writeUInt16BE(40000, 20);
  p.writeUInt16BE(5353, 22);
  p.writeUInt16BE(8 + payload.length, 24);
  payload.copy(p, 28);
  return p;
}

class Phone {
  readonly key: StaticKey;
  readonly socket = dgram.createSocket('udp4');
  keys?: SessionKeys;
  remoteIndex = 0;
  counter = 0n;
  readonly inbox: Buffer[] = [];
  constructor(readonly serverPublic: Buffer, readonly port: number, raw = generatePrivateKey()) {
    this.key = privateKeyFromRaw(raw);
    this.socket.on('message', (m) => this.inbox.push(m));
  }
  get peer(): TunnelPeer {
    return { name: 'p', publicKey: this.key.publicKey.toString('base64'), ipv4: '10.77.0.2', ipv6: 'fd77::2' };
  }
  async bind(): Promise<void> {
    this.socket.bind(0, '127.0.0.1');
    await once(this.socket, 'listening');
  }
  send(b: Buffer): void {
    this.socket.send(b, this.port, '127.0.0.1');
  }
  async next(timeoutMs = 2000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (!this.inbox.length) {
      if (Date.now() > deadline) throw new Error('no datagram');
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.inbox.shift()!;
  }
  async handshake(timestamp = tai64n()): Promise<Buffer> {
    const { message, state } = createInitiation(this.key, this.serverPublic, 1234, timestamp);
    this.send(message);
    const resp = await this.next();
    const done = consumeResponse(resp, state, this.key);
    if (!done) throw new Error('bad response');
    this.keys = done.keys;
    this.remoteIndex = done.remoteIndex;
    this.counter = 0n;
    return message;
  }
  transport(packet: Buffer, counter = this.counter++): Buffer {
    const padded = Buffer.concat([packet, Buffer.alloc((16 - (packet.length % 16)) % 16)]);
    const sealed = aeadSeal(this.keys!.send, counter, padded, Buffer.alloc(0));
    const out = Buffer.alloc(16 + sealed.length);
    out.writeUInt32LE(4, 0);
    out.writeUInt32LE(this.remoteIndex, 4);
    out.writeBigUInt64LE(counter, 8);
    sealed.copy(out, 16);
    return out;
  }
  open(msg: Buffer): Buffer | null {
    expect(msg.readUInt32LE(0)).toBe(4);
    expect(msg.readUInt32LE(4)).toBe(1234);
    return aeadOpen(this.keys!.recv, msg.readBigUInt64LE(8), msg.subarray(16), Buffer.alloc(0));
  }
  close(): void {
    this.socket.close();
  }
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('WireGuardServer', () => {
  let server: WireGuardServer;
  let phone: Phone;
  let received: Array<{ peer: TunnelPeer; packet: Buffer }>;
  let clock: number;
  const serverRaw = generatePrivateKey();
  const serverPublic = privateKeyFromRaw(serverRaw).publicKey;

  async function start(extra: Partial<WireGuardServerOptions> = {}) {
    received = [];
    clock = 1_000_000;
    server = new WireGuardServer({
      privateKey: serverRaw, port: 0, listenHost: '127.0.0.1', peers: [], now: () => clock,
      onPacket: (peer, packet) => received.push({ peer, packet: Buffer.from(packet) }), ...extra,
    });
    const { port } = await server.listen();
    phone = new Phone(serverPublic, port);
    await phone.bind();
    server.setPeers([phone.peer]);
  }

  afterEach(async () => {
    phone?.close();
    await server?.close();
  });

  test('handshake, then data from the phone is delivered trimmed of padding, and sent data reaches the phone', async () => {
    await start();
    await phone.handshake();
    expect(server.counters.handshakes).toBe(1);
    // The responder must not send before the phone confirms the session: queued until then.
    const reply = ipv4Udp('198.18.0.1', '10.77.0.2', Buffer.from('pong'));
    server.send(phone.peer, reply);
    expect(server.counters.sendQueued).toBe(1);
    const packet = ipv4Udp('10.77.0.2', '198.18.0.1', Buffer.from('ping!'));
    phone.send(phone.transport(packet));
    await until(() => received.length === 1, 'packet delivered');
    expect(received[0].packet).toEqual(packet); // 33 bytes, padding to 48 removed
    expect(received[0].peer.publicKey).toBe(phone.peer.publicKey);
    const out = phone.open(await phone.next())!;
    expect(out.subarray(0, reply.length)).toEqual(reply);
    expect(out.length % 16).toBe(0);
    expect(server.stats().peers[0]).toMatchObject({ name: 'p', endpoint: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
  });

  test('a replayed transport packet is refused once, then counted', async () => {
    await start();
    await phone.handshake();
    const msg = phone.transport(ipv4Udp('10.77.0.2', '198.18.0.1', Buffer.from('a')));
    phone.send(msg);
    phone.send(msg);
    phone.send(phone.transport(ipv4Udp('10.77.0.2', '198.18.0.1', Buffer.from('b'))));
    await until(() => received.length === 2 && server.counters.replayed === 1, 'replay counted');
  });

  test('a forged packet with a huge counter does not move the window', async () => {
    await start();
    await phone.handshake();
    const forged = phone.transport(ipv4Udp('10.77.0.2', '198.18.0.1', Buffer.from('x')), 1_000_000n);
    forged[forged.length - 1] ^= 0xff;
    phone.send(forged);
    phone.send(phone.transport(ipv4Udp('10.77.0.2', '198.18.0.1', Buffer.from('y')), 0n));
    await until(() => received.length === 1, 'genuine packet delivered');
    expect(server.counters.badAead).toBe(1);
  });

  test('initiations: bad mac1, unknown phone, replayed or older timestamp, flood', async () => {
    await start();
    const first = await phone.handshake(tai64n(clock));
    const badMac = Buffer.from(first);
    badMac[120] ^= 1;
    phone.send(badMac);
    phone.send(first); // the very same initiation again: replay
    const stranger = new Phone(serverPublic, phone.port);
    await stranger.bind();
    stranger.send(createInitiation(stranger.key, serverPublic, 9).message);
    await until(() => server.counters.badMac1 === 1 && server.counters.staleInitiation === 1 && server.counters.unknownPeer === 1, 'counted');
    stranger.close();
    // A newer initiation within 20 ms of the last accepted one is refused; after that it is taken.
    phone.send(createInitiation(phone.key, serverPublic, 1234, tai64n(clock + 5)).message);
    await until(() => server.counters.initiationFlood === 1, 'flood counted');
    clock += 1000;
    await phone.handshake(tai64n(clock));
    expect(server.counters.handshakes).toBe(2);
  });

  test('packets from another source than the phone\'s tunnel address, and non-IP payloads, are dropped', async () => {
    await start();
    await phone.handshake();
    phone.send(phone.transport(ipv4Udp('10.77.0.9', '198.18.0.1', Buffer.from('spoof'))));
    phone.send(phone.transport(Buffer.from('not an ip packet, just text')));
    phone.send(phone.transport(Buffer.alloc(0))); // keepalive
    await until(() => server.counters.wrongSource === 1 && server.counters.badInnerPacket === 1 && server.counters.keepalivesReceived === 1, 'counted');
    expect(received).toHaveLength(0);
  });

  test('garbage, unknown indices and expired sessions are counted, never crash', async () => {
    await start();
    await phone.handshake();
    phone.send(Buffer.from('hello'));
    phone.send(Buffer.alloc(148, 1));
    const unknown = phone.transport(ipv4Udp('10.77.0.2', '198.18.0.1', Buffer.from('u')));
    unknown.writeUInt32LE((phone.remoteIndex + 1) >>> 0, 4);
    phone.send(unknown);
    await until(() => server.counters.malformed === 2 && server.counters.unknownIndex === 1, 'counted');
    clock += 180_001; // Reject-After-Time
    phone.send(phone.transport(ipv4Udp('10.77.0.2', '198.18.0.1', Buffer.from('late'))));
    await until(() => server.counters.expiredKey === 1, 'expired');
    expect(received).toHaveLength(0);
  });

  test('roaming: replies go to the address of the last authenticated packet', async () => {
    await start();
    await phone.handshake();
    phone.send(phone.transport(ipv4Udp('10.77.0.2', '198.18.0.1', Buffer.from('1'))));
    await until(() => received.length === 1, 'first');
    const moved = dgram.createSocket('udp4');
    moved.bind(0, '127.0.0.1');
    await once(moved, 'listening');
    const got: Buffer[] = [];
    moved.on('message', (m) => got.push(m));
    moved.send(phone.transport(ipv4Udp('10.77.0.2', '198.18.0.1', Buffer.from('2'))), phone.port, '127.0.0.1');
    await until(() => received.length === 2, 'second');
    server.send(phone.peer, ipv4Udp('198.18.0.1', '10.77.0.2', Buffer.from('to new place')));
    await until(() => got.length === 1, 'reply at the new address');
    expect(phone.open(got[0])!.subarray(28, 40).toString()).toBe('to new place');
    moved.close();
  });

  test('several phones at once; a phone removed from the peer set is refused', async () => {
    await start();
    const second = new Phone(serverPublic, phone.port);
    await second.bind();
    const secondPeer = { ...second.peer, name: 'q', ipv4: '10.77.0.3', ipv6: 'fd77::3' };
    server.setPeers([phone.peer, secondPeer]);
    await phone.handshake();
    await second.handshake();
    phone.send(phone.transport(ipv4Udp('10.77.0.2', '198.18.0.1', Buffer.from('a'))));
    second.send(second.transport(ipv4Udp('10.77.0.3', '198.18.0.1', Buffer.from('b'))));
    await until(() => received.length === 2, 'both');
    expect(received.map((r) => r.peer.name).sort()).toEqual(['p', 'q']);
    server.setPeers([secondPeer]);
    phone.send(phone.transport(ipv4Udp('10.77.0.2', '198.18.0.1', Buffer.from('c'))));
    await until(() => server.counters.unknownIndex === 1, 'removed phone refused');
    second.close();
  });

  test('phonehome initiates when it has a packet and the session is past Reject-After-Time, and rekeys its own session after 120 s', async () => {
    await start();
    await phone.handshake();
    phone.send(phone.transport(ipv4Udp('10.77.0.2', '198.18.0.1', Buffer.from('hi'))));
    await until(() => received.length === 1, 'first packet');
    clock += 181_000;
    const late = ipv4Udp('198.18.0.1', '10.77.0.2', Buffer.from('late reply'));
    server.send(phone.peer, late);
    // The phone (a responder now) gets an initiation from phonehome's static key.
    const init = consumeInitiation(await phone.next(), phone.key);
    expect(init).not.toBeNull();
    expect(init!.peerPublicKey).toEqual(serverPublic);
    expect(server.counters.handshakesInitiated).toBe(1);
    const resp = createResponse(init!, 4321)!;
    phone.send(resp.message);
    // The queued packet arrives under the new session, addressed to the phone's new index.
    const data = await phone.next();
    expect(data.readUInt32LE(4)).toBe(4321);
    const plain = aeadOpen(resp.keys.recv, data.readBigUInt64LE(8), data.subarray(16), Buffer.alloc(0))!;
    expect(plain.subarray(0, late.length)).toEqual(late);
    // A session phonehome initiated is rekeyed by phonehome once it is 120 s old (and still used meanwhile).
    clock += 121_000;
    server.send(phone.peer, late);
    const [a, b] = [await phone.next(), await phone.next()].sort((x, y) => x[0] - y[0]);
    expect(a[0]).toBe(1); // a new initiation
    expect(b[0]).toBe(4); // the packet, still under the current session
    expect(server.counters.handshakesInitiated).toBe(2);
  });

  test('no initiation to a phone never seen (no endpoint); packets wait in a bounded queue', async () => {
    await start();
    for (let i = 0; i < 200; i++) server.send(phone.peer, ipv4Udp('198.18.0.1', '10.77.0.2', Buffer.from('x')));
    expect(server.counters.handshakesInitiated).toBe(0);
    expect(server.counters.sendQueued).toBe(200);
    expect(server.counters.sendDropped).toBe(200 - 128);
  });

  test('passive keepalive: a received packet with no reply gets an empty packet after 10 s', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    try {
      await start();
      // The handshake runs over real sockets while timers are fake: wait on I/O with setImmediate.
      const { message, state } = createInitiation(phone.key, serverPublic, 1234);
      phone.send(message);
      while (!phone.inbox.length) await new Promise((r) => setImmediate(r));
      const done = consumeResponse(phone.inbox.shift()!, state, phone.key)!;
      phone.keys = done.keys;
      phone.remoteIndex = done.remoteIndex;
      phone.send(phone.transport(ipv4Udp('10.77.0.2', '198.18.0.1', Buffer.from('k'))));
      while (received.length < 1) await new Promise((r) => setImmediate(r));
      jest.advanceTimersByTime(9_000);
      expect(server.counters.keepalivesSent).toBe(0);
      jest.advanceTimersByTime(1_100);
      expect(server.counters.keepalivesSent).toBe(1);
      while (!phone.inbox.length) await new Promise((r) => setImmediate(r));
      expect(phone.open(phone.inbox.shift()!)!.length).toBe(0);
    } finally {
      jest.useRealTimers();
    }
  });
});
