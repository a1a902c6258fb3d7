/**
 * The TCP machine over links like a busy Wi-Fi, in the simulator (seeded, simulated time): random
 * loss up to 10%, delays jittered enough to reorder datagrams (as the e2e relay does), heavy
 * reordering without loss, and a bottleneck with a drop-tail queue. Both directions at once,
 * both congestion controls. What a user would check: every byte arrives (SHA-256) and both ends
 * close normally; and what shows the loss recovery works: each lost data segment is sent again,
 * with few retransmissions beyond the losses (D-SACK counts the needless ones), few timeouts.
 */
import * as crypto from 'crypto';
import type { CongestionAlgorithm } from '../../../proxy/capture/tunnel/tcp/congestion';
import { LinkProfile, SimApp, sha256, simPair } from './tcp-sim';

const MB = 1024 * 1024;

interface Outcome {
  sim: ReturnType<typeof simPair>;
  intact: boolean;
}

function transferBothWays(link: LinkProfile, bytes: number, cc: CongestionAlgorithm = 'bbr', extra: { sack?: boolean; timestamps?: boolean } = {}): Outcome {
  const a = crypto.randomBytes(bytes);
  const b = crypto.randomBytes(bytes);
  const client = new SimApp(a);
  const server = new SimApp(b);
  const opts = { congestionControl: cc, ...extra };
  const sim = simPair(client, server, { link, client: opts, server: opts });
  sim.clock.run(() => client.closed !== undefined && server.closed !== undefined, 1_800_000);
  const intact = server.digest === sha256(a) && client.digest === sha256(b) && client.closed === 'normal' && server.closed === 'normal';
  return { sim, intact };
}

/** Per direction: retransmissions against the data segments the link lost. */
function directions(sim: Outcome['sim']) {
  return [
    { sender: sim.client.stats, receiver: sim.server!.stats, lost: sim.up.counters.lostData, name: 'client to server' },
    { sender: sim.server!.stats, receiver: sim.client.stats, lost: sim.down.counters.lostData, name: 'server to client' },
  ];
}

describe('TCP over a lossy, reordering link (simulated)', () => {
  test.each<[CongestionAlgorithm]>([['bbr'], ['cubic']])('3%% loss each way and 20-40 ms delays (%s): intact both ways, retransmissions close to the losses', (cc) => {
    const { sim, intact } = transferBothWays({ loss: 0.03, delayMs: 20, jitterMs: 20, seed: 11 }, 4 * MB, cc);
    expect(intact).toBe(true);
    for (const d of directions(sim)) {
      expect(d.lost).toBeGreaterThan(60);
      // Every lost data segment was sent again, and not many more than those.
      expect(d.sender.retransmissions).toBeGreaterThanOrEqual(d.lost);
      expect(d.sender.retransmissions).toBeLessThanOrEqual(d.lost * 1.5 + 10);
      // The needless ones are known: the receiver reported each duplicate (D-SACK) and the sender counted it.
      expect(d.sender.spuriousRetransmissions).toBeLessThanOrEqual(d.receiver.duplicates);
      expect(d.sender.spuriousRetransmissions).toBeLessThanOrEqual(d.lost * 0.4);
      expect(d.sender.timeouts).toBeLessThanOrEqual(2);
      // Losses were repaired from SACK information (RACK), not by waiting for timeouts.
      expect(d.sender.fastRetransmits).toBeGreaterThanOrEqual(d.lost * 0.9);
      expect(d.receiver.dsacksSent).toBe(d.receiver.duplicates);
    }
    expect(sim.client.path).toMatchObject({ algorithm: cc, sack: true, timestamps: true });
  });

  test('10% loss each way: intact both ways; every loss repaired, few spurious retransmissions', () => {
    const { sim, intact } = transferBothWays({ loss: 0.1, delayMs: 10, jitterMs: 10, seed: 12 }, 2 * MB);
    expect(intact).toBe(true);
    for (const d of directions(sim)) {
      expect(d.lost).toBeGreaterThan(120);
      expect(d.sender.retransmissions).toBeGreaterThanOrEqual(d.lost);
      expect(d.sender.retransmissions).toBeLessThanOrEqual(d.lost * 1.2 + 10);
      expect(d.sender.timeouts).toBeLessThanOrEqual(5);
    }
  });

  test('heavy reordering without loss (30% of segments held back up to 30 ms): few needless retransmissions, each reported by D-SACK', () => {
    const { sim, intact } = transferBothWays({ reorder: 0.3, reorderMs: 30, delayMs: 15, jitterMs: 5, seed: 13 }, 4 * MB);
    expect(intact).toBe(true);
    expect(sim.up.counters.reordered + sim.down.counters.reordered).toBeGreaterThan(2000);
    for (const d of directions(sim)) {
      const segments = (4 * MB) / 1368;
      expect(d.receiver.outOfOrder).toBeGreaterThan(segments * 0.2);
      // Nothing was lost: every retransmission was needless, and there are few.
      expect(d.sender.retransmissions).toBeLessThanOrEqual(segments * 0.02);
      expect(d.sender.spuriousRetransmissions).toBeGreaterThanOrEqual(d.sender.retransmissions * 0.9);
      expect(d.sender.timeouts).toBe(0);
    }
    // RACK learned the link reorders, and widened its window past the initial quarter RTT.
    expect(sim.server!.path.reorderingSeen).toBe(true);
    expect(sim.server!.path.reorderWindowMs).toBeGreaterThan(30 / 4);
  });

  test.each<[CongestionAlgorithm]>([['bbr'], ['cubic']])('a 20 Mbit/s bottleneck with a 60-packet queue and 1%% loss (%s): intact, queue overflows repaired', (cc) => {
    const { sim, intact } = transferBothWays({ loss: 0.01, delayMs: 15, rateMbit: 20, queuePackets: 60, seed: 14 }, 4 * MB, cc);
    expect(intact).toBe(true);
    for (const d of directions(sim)) {
      expect(d.sender.retransmissions).toBeGreaterThanOrEqual(d.lost);
      expect(d.sender.timeouts).toBeLessThanOrEqual(5);
    }
  });

  test('a peer without SACK or timestamps (RFC 793 options only): duplicate ACKs and partial ACKs still repair 3% loss', () => {
    const { sim, intact } = transferBothWays({ loss: 0.03, delayMs: 20, seed: 15 }, 1 * MB, 'cubic', { sack: false, timestamps: false });
    expect(intact).toBe(true);
    expect(sim.client.path).toMatchObject({ sack: false, timestamps: false });
    for (const d of directions(sim)) {
      expect(d.sender.retransmissions).toBeGreaterThanOrEqual(d.lost);
      expect(d.sender.fastRetransmits).toBeGreaterThan(0);
    }
    // Nothing carries options the handshake did not agree on.
    for (const s of [...sim.upLog, ...sim.downLog].filter((x) => !(x.flags & 0x02))) {
      expect(s.options.sack).toBeUndefined();
      expect(s.options.timestamps).toBeUndefined();
    }
  });
});
