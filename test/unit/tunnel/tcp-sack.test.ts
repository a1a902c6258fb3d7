/**
 * SACK both ways, one behaviour at a time. As a receiver, the ACKs a phone gets: SACK blocks (RFC
 * 2018: the block of the segment that triggered the ACK first, then the most recent ones, three at
 * most beside timestamps) and D-SACK for duplicates (RFC 2883), sent once. As a sender: the
 * scoreboard's accounting (RFC 6675 pipe), RACK's time-based loss detection (RFC 8985), SACK blocks
 * from a hostile phone, and the undo of a retransmission a D-SACK proves needless.
 * The phone is played by hand-built segments here (what Linux would send), the clock is simulated.
 */
import * as crypto from 'crypto';
import { TcpConnection } from '../../../proxy/capture/tunnel/tcp/connection';
import { Rack } from '../../../proxy/capture/tunnel/tcp/rack';
import { isDsack, validBlocks } from '../../../proxy/capture/tunnel/tcp/recovery';
import { Scoreboard } from '../../../proxy/capture/tunnel/tcp/scoreboard';
import { TCP_ACK, TCP_PSH, TCP_SYN, type SackBlock, type TcpSegment } from '../../../proxy/capture/tunnel/types';
import { SimApp, SimClock, sha256, simPair } from './tcp-sim';

const PHONE_ISS = 1_000_000;
const SEG = 1000;

/** A phonehome-side connection accepted from a hand-made SYN; returns it with what it sent. */
function accepted(synOptions: TcpSegment['options'] = { mss: 1380, sackPermitted: true, timestamps: [5000, 0], windowScale: 7 }) {
  const clock = new SimClock();
  const out: TcpSegment[] = [];
  const syn: TcpSegment = {
    ipVersion: 4, srcIp: '10.77.0.2', dstIp: '192.0.2.1', srcPort: 40000, dstPort: 443, seq: PHONE_ISS, ack: 0, flags: TCP_SYN,
    window: 65535, options: synOptions, payload: Buffer.alloc(0),
  };
  const received: Buffer[] = [];
  const conn = TcpConnection.fromSyn(syn, { clock, mss: 1380, iss: 5_000_000 }, {
    output: (s) => out.push(s),
    readable: () => {
      for (let c = conn.read(); c; c = conn.read()) received.push(c);
    },
  });
  conn.accept();
  const synAck = out[0];
  let tsval = 5001;
  /** A segment from the phone: data at byte offset `at` (from the first data byte), with its own timestamp. */
  const phone = (at: number, len: number, extra: Partial<TcpSegment> = {}): TcpSegment => ({
    ...syn, seq: (PHONE_ISS + 1 + at) >>> 0, ack: (synAck.seq + 1) >>> 0, flags: TCP_ACK | (len ? TCP_PSH : 0), window: 2048,
    options: synOptions.timestamps ? { timestamps: [tsval++, synAck.options.timestamps?.[0] ?? 0] } : {}, payload: Buffer.alloc(len, at & 0xff), ...extra,
  });
  conn.onSegment(phone(0, 0));
  out.length = 0;
  return { conn, out, clock, phone, received, synAck };
}

/** SACK blocks of an ACK as byte offsets of the phone's data. */
function blocks(seg: TcpSegment): number[][] {
  return (seg.options.sack ?? []).map(([s, e]) => [(s - PHONE_ISS - 1) >>> 0, (e - PHONE_ISS - 1) >>> 0]);
}

describe('SACK as a receiver (what the phone learns)', () => {
  test('the block holding the segment that triggered the ACK comes first, then the most recent ones; merged as holes fill', () => {
    const { conn, out, phone } = accepted();
    conn.onSegment(phone(0, SEG)); // in order
    conn.onSegment(phone(2 * SEG, SEG)); // hole at 1
    expect(blocks(out[out.length - 1])).toEqual([[2 * SEG, 3 * SEG]]);
    conn.onSegment(phone(4 * SEG, SEG)); // hole at 3
    expect(blocks(out[out.length - 1])).toEqual([[4 * SEG, 5 * SEG], [2 * SEG, 3 * SEG]]);
    conn.onSegment(phone(6 * SEG, SEG));
    expect(blocks(out[out.length - 1])).toEqual([[6 * SEG, 7 * SEG], [4 * SEG, 5 * SEG], [2 * SEG, 3 * SEG]]);
    // Segment 3 joins the blocks on either side: one block, first, covering both.
    conn.onSegment(phone(3 * SEG, SEG));
    expect(blocks(out[out.length - 1])).toEqual([[2 * SEG, 5 * SEG], [6 * SEG, 7 * SEG]]);
    // The hole at 1 fills: the ACK moves past the merged block, one block remains.
    conn.onSegment(phone(SEG, SEG));
    const last = out[out.length - 1];
    expect((last.ack - PHONE_ISS - 1) >>> 0).toBe(5 * SEG);
    expect(blocks(last)).toEqual([[6 * SEG, 7 * SEG]]);
    // And no SACK option once nothing is held out of order.
    conn.onSegment(phone(5 * SEG, SEG));
    conn.onSegment(phone(7 * SEG, SEG));
    expect(out[out.length - 1].options.sack).toBeUndefined();
  });

  test('three blocks at most beside timestamps, four without (40 option bytes); the most recent survive', () => {
    for (const withTs of [true, false]) {
      const { conn, out, phone } = accepted(withTs ? undefined : { mss: 1380, sackPermitted: true });
      for (let hole = 1; hole <= 6; hole++) conn.onSegment(phone(2 * hole * SEG, SEG));
      const ack = out[out.length - 1];
      expect(blocks(ack)).toEqual([12, 10, 8, 6].slice(0, withTs ? 3 : 4).map((n) => [n * SEG, (n + 1) * SEG]));
      expect(ack.options.timestamps !== undefined).toBe(withTs);
    }
  });

  test('a duplicate is reported once as a D-SACK block: below the ACK alone, inside a held block followed by that block', () => {
    const { conn, out, phone } = accepted();
    conn.onSegment(phone(0, SEG));
    conn.onSegment(phone(2 * SEG, SEG));
    const before = out.length;
    conn.onSegment(phone(0, SEG)); // the phone retransmitted data we had
    expect(out.length).toBe(before + 1);
    expect(blocks(out[out.length - 1])).toEqual([[0, SEG], [2 * SEG, 3 * SEG]]);
    conn.onSegment(phone(2 * SEG, SEG)); // a duplicate of held out-of-order data
    expect(blocks(out[out.length - 1])).toEqual([[2 * SEG, 3 * SEG], [2 * SEG, 3 * SEG]]);
    conn.onSegment(phone(4 * SEG, SEG));
    expect(blocks(out[out.length - 1])).toEqual([[4 * SEG, 5 * SEG], [2 * SEG, 3 * SEG]]);
    expect(conn.stats.dsacksSent).toBe(2);
    expect(conn.stats.duplicates).toBe(2);
  });

  test('no SACK option when the phone\'s SYN did not offer SACK', () => {
    const { conn, out, phone, synAck } = accepted({ mss: 1380, timestamps: [5000, 0] });
    expect(synAck.options.sackPermitted).toBeUndefined();
    conn.onSegment(phone(2 * SEG, SEG));
    conn.onSegment(phone(0, SEG));
    expect(out.length).toBeGreaterThan(0);
    for (const s of out) expect(s.options.sack).toBeUndefined();
  });
});

describe('the scoreboard (RFC 6675)', () => {
  function board(n: number) {
    const b = new Scoreboard();
    const segs = Array.from({ length: n }, (_, i) => b.sent(i * SEG, (i + 1) * SEG, i, 100 + i));
    return { b, segs };
  }

  test('pipe counts what is in the network: SACKed and lost segments leave it, retransmissions rejoin it', () => {
    const { b, segs } = board(10);
    expect(b.pipe).toBe(10 * SEG);
    expect(b.sack([[3 * SEG, 6 * SEG]]).map((s) => s.start)).toEqual([3 * SEG, 4 * SEG, 5 * SEG]);
    expect(b.pipe).toBe(7 * SEG);
    // A block that covers only part of a segment marks nothing.
    expect(b.sack([[7 * SEG, 7 * SEG + 500]])).toEqual([]);
    expect(b.markLost(segs[0])).toBe(true);
    expect(b.markLost(segs[0])).toBe(false); // already waiting
    expect(b.markLost(segs[4])).toBe(false); // SACKed: not lost
    expect(b.pipe).toBe(6 * SEG);
    expect(b.nextLost()).toBe(segs[0]);
    b.retransmitted(segs[0], 50, 150);
    expect(b.pipe).toBe(7 * SEG);
    expect(b.nextLost()).toBeUndefined();
    // The retransmission is lost too: it leaves pipe again and waits to be sent once more.
    expect(b.markLost(segs[0])).toBe(true);
    expect(b.pipe).toBe(6 * SEG);
    expect(b.nextLost()).toBe(segs[0]);
    // A cumulative ACK past the SACKed block forgets everything below it.
    const delivered = b.ackTo(6 * SEG);
    expect(delivered.map((s) => s.start)).toEqual([0, SEG, 2 * SEG]);
    expect(b.count).toBe(4);
    expect(b.pipe).toBe(4 * SEG);
    expect(b.sackedBytes).toBe(0);
    expect(b.lostBytes).toBe(0);
  });

  test('lost segments are resent lowest first; after a timeout everything not SACKed is lost', () => {
    const { b, segs } = board(6);
    b.sack([[4 * SEG, 5 * SEG]]);
    b.markLost(segs[3]);
    b.markLost(segs[1]);
    expect(b.nextLost()).toBe(segs[1]);
    b.markAllLost();
    expect([0, 1, 2, 3, 5].map((i) => segs[i].lost)).toEqual([true, true, true, true, true]);
    expect(segs[4].lost).toBe(false);
    expect(b.pipe).toBe(0);
    expect(b.nextLost()).toBe(segs[0]);
  });

  test('RACK walks segments by transmission time: a retransmission moves to the end', () => {
    const { b, segs } = board(3);
    b.retransmitted(segs[0], 10, 110);
    const order: number[] = [];
    for (let s = b.oldestSent(); s; s = s.newer) order.push(s.start);
    expect(order).toEqual([SEG, 2 * SEG, 0]);
  });
});

describe('SACK blocks from a hostile phone', () => {
  test('only blocks inside what was sent are believed; a D-SACK is the first block below the ACK or inside the second', () => {
    const una = 10_000;
    const sndMax = 20_000;
    const hostile: SackBlock[] = [[12_000, 11_000], [15_000, 25_000], [0xfff00000, 0xfff10000], [13_000, 14_000], [16_000, 17_000], [18_000, 19_000]];
    expect(validBlocks(hostile, una, sndMax, 65535)).toEqual([[13_000, 14_000], [16_000, 17_000], [18_000, 19_000]]);
    expect(isDsack([[9_000, 10_000], [12_000, 13_000]], una)).toBe(true);
    expect(isDsack([[12_500, 13_000], [12_000, 14_000]], una)).toBe(true);
    expect(isDsack([[12_000, 13_000], [15_000, 16_000]], una)).toBe(false);
  });

  test('thousands of random SACK blocks on ACKs never throw, and a transfer on the connection still completes intact', () => {
    const a = crypto.randomBytes(300 * 1024);
    const client = new SimApp(Buffer.alloc(0));
    client.endAfterSend = false;
    const server = new SimApp(a);
    const sim = simPair(client, server, { link: { delayMs: 10 } });
    sim.clock.run(() => (sim.server?.stats.bytesOut ?? 0) > 50 * 1024);
    const template = sim.upLog[sim.upLog.length - 1];
    const base = sim.downLog[sim.downLog.length - 1].seq;
    let x = 1;
    const rand = () => (x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 3000; i++) {
      const n = 1 + Math.floor(rand() * 4);
      const sack = Array.from({ length: n }, (): SackBlock => {
        const s = (base + Math.floor((rand() - 0.5) * 400_000)) >>> 0;
        return [s, (s + Math.floor((rand() - 0.3) * 50_000)) >>> 0];
      });
      expect(() => sim.server!.onSegment({ ...template, ack: template.ack, options: { ...template.options, sack }, payload: Buffer.alloc(0) })).not.toThrow();
    }
    client.endAfterSend = true;
    sim.clock.run(() => client.closed !== undefined && server.closed !== undefined);
    expect(client.digest).toBe(sha256(a));
  });
});

describe('RACK (RFC 8985)', () => {
  test('a segment is lost once a later-sent one was delivered and its RTT plus the reordering window has passed', () => {
    const b = new Scoreboard();
    const s0 = b.sent(0, SEG, 0, 0);
    const s1 = b.sent(SEG, 2 * SEG, 2, 0);
    const s2 = b.sent(2 * SEG, 3 * SEG, 4, 0);
    const rack = new Rack();
    b.sack([[2 * SEG, 3 * SEG]]);
    rack.onDelivered(s2, 44); // RTT 40
    rack.checkReordering(s2);
    // Reordering not seen, fewer than three SACKed: a quarter of the minimum RTT to settle.
    const reo = rack.reoWnd(false, b.sackedSegments, 40);
    expect(reo).toBe(10);
    let r = rack.detectLoss(b, 44, reo);
    expect(r.lost).toEqual([]);
    expect(r.waitMs).toBe(8); // s1 at 2 + 40 + 10 = 52; the timer waits for the last one
    r = rack.detectLoss(b, 50, reo);
    expect(r.lost).toEqual([s0]);
    r = rack.detectLoss(b, 52, reo);
    expect(r.lost).toEqual([s1]);
  });

  test('reordering seen widens the window with each round trip that brings a D-SACK, up to SRTT, and it returns after 16 recoveries', () => {
    const rack = new Rack();
    const b = new Scoreboard();
    const s0 = b.sent(0, SEG, 0, 0);
    const s1 = b.sent(SEG, 2 * SEG, 1, 0);
    rack.onDelivered(s1, 41);
    rack.checkReordering(s1);
    rack.onDelivered(s0, 45); // arrived after a later-sent segment: reordering
    rack.checkReordering(s0);
    expect(rack.reorderingSeen).toBe(true);
    expect(rack.reoWnd(true, 5, 60)).toBe(10); // no longer zero in recovery
    rack.onDsack(0, 10_000);
    rack.onDsack(0, 10_000); // same round trip: counted once
    expect(rack.reoWnd(false, 0, 60)).toBe(20);
    rack.onDsack(10_000, 20_000);
    rack.onDsack(20_000, 30_000);
    rack.onDsack(30_000, 40_000);
    rack.onDsack(40_000, 50_000);
    expect(rack.reoWnd(false, 0, 45)).toBe(45); // capped by SRTT
    for (let i = 0; i < 15; i++) rack.onRecoveryEnd();
    expect(rack.reoWndMult).toBe(6);
    rack.onRecoveryEnd();
    expect(rack.reoWndMult).toBe(1);
  });
});

describe('D-SACK undo', () => {
  test('a segment held back (reordered, not lost) is retransmitted, D-SACKed, and the window reduction undone (CUBIC)', () => {
    const a = crypto.randomBytes(2 * 1024 * 1024);
    const client = new SimApp(a);
    const server = new SimApp(Buffer.alloc(0));
    const sim = simPair(client, server, { link: { delayMs: 20 }, client: { congestionControl: 'cubic' } });
    let dataSeen = 0;
    let heldBack: TcpSegment | undefined;
    // The 400th data segment arrives 60 ms late (three RTTs' worth of reordering), not lost.
    sim.up.drop = (s) => {
      if (s.payload.length > 0 && ++dataSeen === 400) {
        heldBack = { ...s, payload: Buffer.from(s.payload), options: { ...s.options } };
        sim.clock.setTimeout(() => sim.server!.onSegment(heldBack!), 80);
        return true;
      }
      return false;
    };
    let cwndBefore = 0;
    let cwndReduced = Infinity;
    sim.clock.run(() => {
      const path = sim.client.path;
      if (path.recovery === 'open' && cwndReduced === Infinity) cwndBefore = path.cwnd;
      else if (path.recovery === 'recovery') cwndReduced = Math.min(cwndReduced, path.ssthresh);
      return sim.client.stats.undos > 0 || server.eof;
    });
    expect(heldBack).toBeDefined();
    expect(sim.client.stats.fastRetransmits).toBe(1);
    expect(sim.server!.stats.dsacksSent).toBe(1);
    expect(sim.client.stats.spuriousRetransmissions).toBe(1);
    expect(sim.client.stats.undos).toBe(1);
    expect(cwndReduced).toBeLessThan(cwndBefore * 0.8);
    expect(sim.client.path.cwnd).toBeGreaterThanOrEqual(cwndBefore);
    expect(sim.client.path.recovery).toBe('open');
    sim.clock.run(() => server.eof);
    expect(server.digest).toBe(sha256(a));
  });
});
