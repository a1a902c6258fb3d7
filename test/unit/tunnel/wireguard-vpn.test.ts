/**
 * startVpn's wiring: packets from a phone reach the IP layer and its replies reach the phone; a
 * phone added with `wireguard add` while running is accepted without a restart; the dashboard's
 * setup API shows every phone's config and QR code. The IP layer here is a recording stand-in (the
 * real one is exercised by test/e2e/vpn-udp.test.ts); the phone is an initiator on loopback.
 */
import * as dgram from 'dgram';
import { once } from 'events';
import { startVpn, VpnEndpoint } from '../../../proxy/capture/tunnel';
import type { TunnelPeer } from '../../../proxy/capture/tunnel/types';
import { aeadSeal, decodeKey, privateKeyFromRaw } from '../../../proxy/capture/tunnel/wireguard/crypto';
import { consumeResponse, createInitiation } from '../../../proxy/capture/tunnel/wireguard/handshake';
import { addPeer, peerPrivateKey, serverPublicKey } from '../../../proxy/capture/tunnel/wireguard/keystore';
import { startPhonehome } from '../../../proxy/app';
import { makeTempDir, removeDir } from '../../e2e/helpers/tmp';

function udpPacket(src: string): Buffer {
  const p = Buffer.alloc(32);
  p[0] = 0x45;
  p.writeUInt16BE(32, 2);
  p[9] = 17;
  Buffer.from(src.split('.').map(Number)).copy(p, 12);
  Buffer.from([198, 18, 0, 1]).copy(p, 16);
  return p;
}

/** Handshake as phone `name` and send one packet; resolves with the socket (for replies). */
async function phoneSends(dir: string, name: string, port: number, src: string): Promise<dgram.Socket> {
  const key = privateKeyFromRaw(decodeKey(peerPrivateKey(dir, name)!));
  const sock = dgram.createSocket('udp4');
  sock.bind(0, '127.0.0.1');
  await once(sock, 'listening');
  const { message, state } = createInitiation(key, decodeKey(serverPublicKey(dir)), 77);
  sock.send(message, port, '127.0.0.1');
  const [resp] = (await Promise.race([once(sock, 'message'), new Promise((_, rej) => setTimeout(() => rej(new Error('no response')), 2000))])) as [Buffer];
  const done = consumeResponse(resp, state, key)!;
  const sealed = aeadSeal(done.keys.send, 0n, udpPacket(src), Buffer.alloc(0));
  const data = Buffer.alloc(16 + sealed.length);
  data.writeUInt32LE(4, 0);
  data.writeUInt32LE(done.remoteIndex, 4);
  sealed.copy(data, 16);
  sock.send(data, port, '127.0.0.1');
  return sock;
}

describe('startVpn', () => {
  let dir: string;
  let vpn: VpnEndpoint | undefined;
  const got: Array<{ peer: TunnelPeer; packet: Buffer }> = [];
  beforeEach(() => {
    dir = makeTempDir('phonehome-vpn-');
    got.length = 0;
  });
  afterEach(async () => {
    await vpn?.close();
    vpn = undefined;
    removeDir(dir);
  });

  test('makes a first phone, delivers its packets, and accepts a phone added while running', async () => {
    let send: ((peer: TunnelPeer, p: Buffer) => void) | undefined;
    vpn = await startVpn({
      dataDir: dir, port: 0, listenHost: '127.0.0.1', endpointHost: '192.0.2.1', dnsUpstreams: [], recorder: { record: () => undefined },
      peersPollMs: 50,
      createIpLayer: (o) => {
        send = o.send;
        expect(o).toMatchObject({ mtu: 1420, gatewayIpv4: '10.77.0.1', gatewayIpv6: 'fd77::1' });
        return { receive: (peer, packet) => got.push({ peer, packet }), stats: () => ({}), close: async () => undefined };
      },
    });
    expect(vpn.configs().map((c) => c.peer.name)).toEqual(['phone']);
    expect(vpn.configs()[0].config).toContain(`Endpoint = 192.0.2.1:${vpn.port}`);
    const s1 = await phoneSends(dir, 'phone', vpn.port, '10.77.0.2');
    await waitUntil(() => got.length === 1);
    expect(got[0].peer).toMatchObject({ name: 'phone', ipv4: '10.77.0.2' });
    // The IP layer's reply goes back through WireGuard to the phone.
    const reply = once(s1, 'message');
    send!(got[0].peer, udpPacket('198.18.0.1'));
    const [msg] = (await reply) as [Buffer];
    expect(msg.readUInt32LE(0)).toBe(4);
    s1.close();

    addPeer(dir, 'tablet'); // what `phonehome wireguard add tablet` does from another process
    await waitUntil(() => vpn!.stats().wireguard.peers.length === 2);
    const s2 = await phoneSends(dir, 'tablet', vpn.port, '10.77.0.3');
    await waitUntil(() => got.length === 2);
    expect(got[1].peer.name).toBe('tablet');
    s2.close();
  });

  test('the dashboard setup API lists each phone without any key; each phone\'s config and QR code come from its own endpoint, to the token holder', async () => {
    const app = await startPhonehome({
      dataDir: dir, listenHost: '127.0.0.1', port: 0, dashboardPort: 0, log: () => undefined, analysis: false,
      wireguard: { port: 0, listenHost: '127.0.0.1', createIpLayer: () => ({ receive: () => undefined, stats: () => ({}), close: async () => undefined }), peersPollMs: 50 },
    });
    const auth = { headers: { Authorization: `Bearer ${app.dashboardToken}` } };
    const setup = async () => {
      const text = await (await fetch(`${app.dashboardUrl}/api/setup`, auth)).text();
      // No private key in the listing, in any form: not the config's line, not a key, not a QR code of the config.
      expect(text).not.toMatch(/PrivateKey/i);
      for (const name of ['phone', 'second']) {
        const key = peerPrivateKey(dir, name);
        if (key) expect(text).not.toContain(key);
      }
      return JSON.parse(text) as { wireguard: { port: number; dropped: Record<string, number>; phones: Array<{ peer: { name: string }; status: { lastHandshakeAt?: number; endpoint?: string } }> } };
    };
    try {
      const first = await setup();
      expect(first.wireguard.port).toBe(app.vpn!.port);
      expect(first.wireguard.phones.map((p) => p.peer.name)).toEqual(['phone']);
      expect(Object.keys(first.wireguard.phones[0]).sort()).toEqual(['peer', 'status']);
      expect(first.wireguard.phones[0].status.lastHandshakeAt).toBeUndefined();

      const conf = await fetch(`${app.dashboardUrl}/api/wireguard/phone/config`, auth);
      expect(conf.status).toBe(200);
      expect(conf.headers.get('cache-control')).toBe('no-store');
      const text = await conf.text();
      expect(text).toContain(`PrivateKey = ${peerPrivateKey(dir, 'phone')}`);
      expect(text).toContain('AllowedIPs = 0.0.0.0/0, ::/0');
      const qr = await fetch(`${app.dashboardUrl}/api/wireguard/phone/qr.svg`, auth);
      expect(qr.headers.get('content-type')).toMatch(/^image\/svg\+xml/);
      expect(await qr.text()).toMatch(/^<svg/);
      expect((await fetch(`${app.dashboardUrl}/api/wireguard/phone/config`)).status).toBe(401);
      expect((await fetch(`${app.dashboardUrl}/api/wireguard/phone/qr.svg`)).status).toBe(401);
      expect((await fetch(`${app.dashboardUrl}/api/wireguard/nobody/config`, auth)).status).toBe(404);
      expect((await fetch(`${app.dashboardUrl}/api/wireguard/..%2Fwg/config`, auth)).status).toBe(400);

      addPeer(dir, 'second');
      // The first phone connects; a stranger sends garbage.
      const sock = await phoneSends(dir, 'phone', app.vpn!.port, '10.77.0.2');
      sock.send(Buffer.from('garbage'), app.vpn!.port, '127.0.0.1');
      await waitUntil(() => app.vpn!.stats().wireguard.counters.malformed === 1);
      const again = await setup();
      sock.close();
      expect(again.wireguard.phones.map((p) => p.peer.name)).toEqual(['phone', 'second']);
      expect(again.wireguard.phones[0].status).toMatchObject({ lastHandshakeAt: expect.any(Number), endpoint: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
      expect(again.wireguard.phones[1].status.lastHandshakeAt).toBeUndefined();
      expect(again.wireguard.dropped).toEqual({ malformed: 1 });
      expect(await (await fetch(`${app.dashboardUrl}/api/wireguard/second/config`, auth)).text()).toContain(`PrivateKey = ${peerPrivateKey(dir, 'second')}`);
    } finally {
      await app.close();
    }
  });
});

async function waitUntil(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
