/**
 * The TCP machine over a bad simulated link: bulk transfers both ways arrive intact (SHA-256),
 * the machine really recovered losses (retransmission counters, link loss counters), and both ends
 * finish their close handshake.
 */
import * as crypto from 'crypto';
import { buildTcpPacket } from '../../../proxy/capture/tunnel/ip/tcp';
import { SimApp, sha256, simPair } from './tcp-sim';

const MB = 1024 * 1024;

describe('TCP bulk transfer over a simulated link', () => {
  test('10 MB each way at 5% loss, with duplication, reordering and jitter, arrives intact and both ends close', () => {
    const a = crypto.randomBytes(10 * MB);
    const b = crypto.randomBytes(10 * MB);
    const client = new SimApp(a);
    const server = new SimApp(b);
    // Initial sequence numbers just below 2^32: both directions wrap during the transfer.
    const sim = simPair(client, server, {
      link: { loss: 0.05, duplicate: 0.01, reorder: 0.03, reorderMs: 25, delayMs: 15, jitterMs: 4, seed: 7 },
      client: { iss: 0xffff0000 },
      server: { iss: 0xfff80000 },
    });
    sim.clock.run(() => client.closed !== undefined && server.closed !== undefined);

    expect(server.received).toBe(a.length);
    expect(server.digest).toBe(sha256(a));
    expect(client.received).toBe(b.length);
    expect(client.digest).toBe(sha256(b));

    // Both sides closed normally: one through TIME_WAIT, the other from LAST_ACK.
    expect(client.closed).toBe('normal');
    expect(server.closed).toBe('normal');
    expect(sim.client.state).toBe('CLOSED');
    expect(sim.server!.state).toBe('CLOSED');

    // The link really lost, duplicated and reordered, and TCP really repaired it.
    expect(sim.up.counters.lost).toBeGreaterThan(300);
    expect(sim.down.counters.lost).toBeGreaterThan(300);
    expect(sim.up.counters.duplicated + sim.down.counters.duplicated).toBeGreaterThan(50);
    for (const c of [sim.client, sim.server!]) {
      expect(c.stats.retransmissions).toBeGreaterThan(200);
      expect(c.stats.fastRetransmits).toBeGreaterThan(10);
      expect(c.stats.outOfOrder).toBeGreaterThan(100);
      expect(c.stats.duplicates).toBeGreaterThan(0);
    }
    expect(sim.client.stats.bytesOut).toBe(a.length);
    expect(sim.server!.stats.bytesIn).toBe(a.length);
    // Bounded memory: never more held for the reader than the receive buffer (4 MiB by default).
    expect(server.maxBufferedToRead).toBeLessThanOrEqual(4 * 1024 * 1024);
  });

  test('IPv6 MSS: 2 MB at 2% loss with small buffers arrives intact; no segment exceeds 1360 bytes', () => {
    const a = crypto.randomBytes(2 * MB);
    const client = new SimApp(a);
    const server = new SimApp(Buffer.alloc(0));
    const sim = simPair(client, server, {
      ipVersion: 6,
      link: { loss: 0.02, reorder: 0.05, delayMs: 30, seed: 3 },
      client: { receiveBuffer: 32 * 1024, sendBuffer: 32 * 1024 },
      server: { receiveBuffer: 32 * 1024, sendBuffer: 32 * 1024 },
    });
    sim.clock.run(() => client.closed !== undefined && server.closed !== undefined);
    expect(server.digest).toBe(sha256(a));
    // MSS 1360 less the 12 bytes of timestamps each segment carries; no packet over the tunnel MTU.
    expect(Math.max(...sim.upLog.map((s) => s.payload.length))).toBe(1348);
    for (const s of [...sim.upLog, ...sim.downLog]) expect(buildTcpPacket(s).length).toBeLessThanOrEqual(1420);
    expect(server.maxBufferedToRead).toBeLessThanOrEqual(32 * 1024);
    // A 32 KiB buffer needs no window scaling: windows on the wire fit 16 bits unscaled.
    expect(sim.downLog.every((s) => s.window <= 32 * 1024)).toBe(true);
  });

  test('a clean link needs no retransmission, and the handshake negotiates MSS and window scaling', () => {
    const a = crypto.randomBytes(MB);
    const client = new SimApp(a);
    const server = new SimApp(Buffer.alloc(0));
    const sim = simPair(client, server, { link: { delayMs: 20 } });
    sim.clock.run(() => client.closed !== undefined && server.closed !== undefined);
    expect(server.digest).toBe(sha256(a));
    expect(sim.client.stats.retransmissions).toBe(0);
    expect(sim.server!.stats.retransmissions).toBe(0);
    const synAck = sim.downLog[0];
    expect(synAck.options.mss).toBe(1380);
    expect(synAck.options.windowScale).toBe(7); // a 4 MiB receive buffer at most: 4M >> 7 fits 16 bits
    // Windows after the handshake are scaled: the first one (times 128) is the initial 256 KiB.
    expect(sim.downLog[1].window * 128).toBe(256 * 1024);
    expect(Math.max(...sim.downLog.slice(1).map((s) => s.window)) * 128).toBeLessThanOrEqual(4 * 1024 * 1024);
    expect(Math.max(...sim.upLog.map((s) => s.payload.length))).toBe(1368); // MSS less the timestamps
    expect(synAck.options.sackPermitted).toBe(true);
    expect(synAck.options.timestamps).toBeDefined();
    // Delayed ACKs: about one ACK per two full segments, not one per segment.
    const dataSegments = sim.upLog.filter((s) => s.payload.length > 0).length;
    expect(sim.downLog.length).toBeLessThan(dataSegments * 0.65);
  });
});
