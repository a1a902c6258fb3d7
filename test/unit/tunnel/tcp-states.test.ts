/**
 * The TCP machine's states and timers, one behaviour at a time over the simulated link: when the
 * SYN is answered, refusal and resets, half-close, RFC 6298 timeouts (floor, back-off, giving up),
 * fast retransmit, the persist timer against a lost window update, and hostile segments.
 */
import * as crypto from 'crypto';
import { TcpConnection } from '../../../proxy/capture/tunnel/tcp/connection';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, TcpSegment } from '../../../proxy/capture/tunnel/types';
import { prng } from '../../../scripts/fixtures/random';
import { SimApp, sha256, simPair } from './tcp-sim';

const KB = 1024;

describe('TCP handshake', () => {
  test('the SYN is not answered until accept(); retransmitted SYNs meanwhile are absorbed', () => {
    const client = new SimApp(Buffer.from('hello'));
    const server = new SimApp(Buffer.alloc(0));
    const sim = simPair(client, server, { manualAccept: true, link: { delayMs: 10 } });
    sim.clock.run(() => false, 2500);
    expect(sim.server!.state).toBe('SYN_PENDING');
    expect(sim.downLog).toHaveLength(0);
    // The client retransmitted its SYN at 1 s and then backed off (next one at 3 s).
    const syns = sim.upLog.filter((s) => s.flags & TCP_SYN);
    expect(syns).toHaveLength(2);
    sim.server!.accept();
    sim.clock.run(() => server.eof);
    expect(client.established).toBe(true);
    expect(server.digest).toBe(sha256(Buffer.from('hello')));
  });

  test('refuse() answers the SYN with RST+ACK and the client sees the connection refused', () => {
    const client = new SimApp(Buffer.from('x'));
    const server = new SimApp(Buffer.alloc(0));
    const sim = simPair(client, server, { manualAccept: true, link: { delayMs: 10 } });
    sim.clock.run(() => sim.server !== undefined);
    sim.server!.refuse();
    sim.clock.run(() => client.closed !== undefined);
    expect(sim.downLog).toHaveLength(1);
    expect(sim.downLog[0].flags).toBe(TCP_RST | TCP_ACK);
    expect(client.closed).toBe('refused');
    expect(server.closed).toBe('refused');
  });

  test('a lost SYN-ACK is retransmitted; an unanswered one is given up after the SYN retries', () => {
    const client = new SimApp(Buffer.from('x'));
    const server = new SimApp(Buffer.alloc(0));
    const sim = simPair(client, server, { link: { delayMs: 10 } });
    sim.down.down = true;
    sim.up.drop = (s) => !(s.flags & TCP_SYN) || sim.server !== undefined; // only the first SYN
    sim.clock.run(() => server.closed !== undefined);
    expect(server.closed).toBe('timeout');
    const synAcks = sim.downLog.filter((s) => s.flags & TCP_SYN);
    expect(synAcks).toHaveLength(6); // first + 5 retries
  });
});

describe('TCP close and reset', () => {
  test('half-close: the client ends, the server keeps sending, then both close (TIME_WAIT on the first closer)', () => {
    const reply = crypto.randomBytes(300 * KB);
    const client = new SimApp(Buffer.from('GET / HTTP/1.0\r\n\r\n'));
    const server = new SimApp(reply);
    server.endAfterSend = false;
    const sim = simPair(client, server, { link: { delayMs: 10, loss: 0.02, seed: 11 }, client: { timeWaitMs: 60_000 } });
    // The server only starts its reply after the client's end of stream.
    sim.clock.run(() => server.eof);
    expect(sim.server!.state).toBe('CLOSE_WAIT');
    sim.clock.run(() => sim.client.state === 'FIN_WAIT_2');
    server.endAfterSend = true;
    server.pump();
    sim.clock.run(() => sim.server!.state === 'CLOSED');
    expect(server.closed).toBe('normal');
    expect(sim.client.state).toBe('TIME_WAIT');
    expect(client.digest).toBe(sha256(reply));
    const before = sim.clock.now();
    sim.clock.run(() => sim.client.state === 'CLOSED');
    expect(sim.clock.now() - before).toBeGreaterThan(55_000);
    expect(client.closed).toBe('normal');
  });

  test('a keep-alive probe (one below the next expected sequence number) is answered with an ACK', () => {
    const client = new SimApp(Buffer.from('x'));
    client.endAfterSend = false;
    const server = new SimApp(Buffer.alloc(0));
    server.endAfterSend = false;
    const sim = simPair(client, server, { link: { delayMs: 10 } });
    sim.clock.run(() => server.received === 1);
    sim.clock.run(() => false, sim.clock.now() + 500);
    const last = sim.upLog[sim.upLog.length - 1];
    const before = sim.downLog.length;
    const next = (last.seq + last.payload.length) >>> 0;
    sim.server!.onSegment(forged(last, { seq: (next - 1) >>> 0, ack: last.ack, flags: TCP_ACK, window: last.window }));
    expect(sim.downLog.length).toBe(before + 1);
    expect(sim.downLog[before]).toMatchObject({ flags: TCP_ACK, ack: next });
  });

  test('abort() sends RST; the peer closes with reason reset', () => {
    const client = new SimApp(crypto.randomBytes(64 * KB));
    client.endAfterSend = false;
    const server = new SimApp(Buffer.alloc(0));
    const sim = simPair(client, server, { link: { delayMs: 10 } });
    sim.clock.run(() => server.received === 64 * KB);
    sim.client.abort();
    sim.clock.run(() => server.closed !== undefined);
    expect(server.closed).toBe('reset');
    expect(sim.upLog[sim.upLog.length - 1].flags & TCP_RST).toBeTruthy();
  });

  test('a RST with an in-window but inexact sequence number gets a challenge ACK, not a close (RFC 5961)', () => {
    const client = new SimApp(Buffer.from('x'));
    client.endAfterSend = false;
    const server = new SimApp(Buffer.alloc(0));
    server.endAfterSend = false;
    const sim = simPair(client, server, { link: { delayMs: 10 } });
    sim.clock.run(() => server.received === 1);
    const next = sim.upLog[sim.upLog.length - 1].seq + 1;
    const outBefore = sim.downLog.length;
    sim.server!.onSegment(forged(sim.upLog[0], { seq: (next + 1000) >>> 0, flags: TCP_RST }));
    expect(sim.server!.state).toBe('ESTABLISHED');
    expect(sim.downLog.length).toBe(outBefore + 1);
    expect(sim.downLog[sim.downLog.length - 1].flags).toBe(TCP_ACK);
    // A RST far outside the window is ignored silently.
    sim.server!.onSegment(forged(sim.upLog[0], { seq: (next + 0x40000000) >>> 0, flags: TCP_RST }));
    expect(sim.downLog.length).toBe(outBefore + 1);
    sim.server!.onSegment(forged(sim.upLog[0], { seq: next >>> 0, flags: TCP_RST }));
    expect(server.closed).toBe('reset');
  });
});

describe('TCP close() by an application that is gone', () => {
  test('written data is still delivered, then FIN; data the phone sends afterwards gets RST', () => {
    const reply = crypto.randomBytes(200 * KB);
    const client = new SimApp(Buffer.alloc(0));
    client.endAfterSend = false;
    const server = new SimApp(reply);
    server.endAfterSend = false;
    const sim = simPair(client, server, { link: { delayMs: 10, loss: 0.03, seed: 5 } });
    sim.clock.run(() => server.established);
    sim.server!.close(); // at once: nearly all of the reply is still queued
    expect(sim.server!.bufferedToSend).toBeGreaterThan(100 * KB);
    sim.clock.run(() => client.eof);
    expect(client.digest).toBe(sha256(reply));
    sim.clock.run(() => sim.server!.state !== 'FIN_WAIT_1');
    expect(sim.server!.state).toBe('FIN_WAIT_2');
    sim.client.write(Buffer.from('late'));
    sim.clock.run(() => client.closed !== undefined);
    expect(client.closed).toBe('reset');
    expect(server.closed).toBe('aborted');
  });

  test('close() with unread data from the phone resets at once', () => {
    const client = new SimApp(Buffer.from('unread'));
    client.endAfterSend = false;
    const server = new SimApp(Buffer.alloc(0));
    server.endAfterSend = false;
    server.reading = false;
    const sim = simPair(client, server, { link: { delayMs: 10 } });
    sim.clock.run(() => sim.server?.bufferedToRead === 6);
    sim.server!.close();
    sim.clock.run(() => client.closed !== undefined);
    expect(client.closed).toBe('reset');
  });

  test('an orphaned connection whose peer never sends FIN leaves FIN_WAIT_2 after its timeout', () => {
    const client = new SimApp(Buffer.alloc(0));
    client.endAfterSend = false;
    const server = new SimApp(Buffer.alloc(0));
    server.endAfterSend = false;
    const sim = simPair(client, server, { link: { delayMs: 10 }, server: { finWait2Ms: 5000 } });
    sim.clock.run(() => server.established);
    sim.server!.close();
    sim.clock.run(() => server.closed !== undefined);
    expect(sim.clock.now()).toBeGreaterThan(5000);
    expect(sim.clock.now()).toBeLessThan(5200);
    expect(sim.client.state).toBe('CLOSE_WAIT');
  });
});

describe('TCP retransmission timers', () => {
  test('a lost last segment: a tail loss probe, then timeouts above the 200 ms floor doubling each time; the connection gives up with RST', () => {
    const client = new SimApp(Buffer.alloc(0));
    client.endAfterSend = false;
    const server = new SimApp(Buffer.alloc(0));
    server.endAfterSend = false;
    const sim = simPair(client, server, { link: { delayMs: 5 }, client: { maxRetries: 5 } });
    sim.clock.run(() => client.established);
    sim.clock.run(() => false, 100); // the handshake's last ACK arrives and RTT is sampled
    sim.up.down = true; // from now on everything the client sends is lost
    sim.client.write(Buffer.from('ping'));
    sim.clock.run(() => client.closed !== undefined);
    expect(client.closed).toBe('timeout');
    const data = sim.upLog.filter((s) => s.payload.length > 0);
    expect(data).toHaveLength(7); // first send + the tail loss probe + 5 timeout retransmissions
    expect(sim.client.stats.tailLossProbes).toBe(1);
    const sentAt = sendTimes(sim, data);
    const gaps = sentAt.slice(1).map((t, i) => t - sentAt[i]);
    // RTT ~10 ms: the probe waits no longer than the RTO would, and the RTO never less than 200 ms.
    expect(gaps[0]).toBeGreaterThanOrEqual(200);
    expect(gaps[0]).toBeLessThan(260);
    expect(gaps[1]).toBeGreaterThanOrEqual(200);
    expect(gaps[1]).toBeLessThan(260);
    for (let i = 2; i < gaps.length; i++) expect(gaps[i] / gaps[i - 1]).toBeCloseTo(2, 1);
    expect(sim.client.stats.timeouts).toBe(5);
    expect(sim.upLog[sim.upLog.length - 1].flags & TCP_RST).toBeTruthy();
  });

  test('one lost segment in a bulk transfer is repaired by one fast retransmit (RACK over SACK), without a timeout', () => {
    const a = crypto.randomBytes(400 * KB);
    const client = new SimApp(a);
    const server = new SimApp(Buffer.alloc(0));
    const sim = simPair(client, server, { link: { delayMs: 20 } });
    let dataSeen = 0;
    sim.up.drop = (s) => s.payload.length > 0 && ++dataSeen === 40;
    sim.clock.run(() => server.eof);
    expect(server.digest).toBe(sha256(a));
    expect(sim.client.stats.fastRetransmits).toBe(1);
    expect(sim.client.stats.timeouts).toBe(0);
    expect(sim.client.stats.retransmissions).toBe(1);
    expect(sim.server!.stats.outOfOrder).toBeGreaterThanOrEqual(3);
  });

  test('zero window: the sender stops, the lost window update is recovered by the persist timer', () => {
    const a = crypto.randomBytes(200 * KB);
    const client = new SimApp(a);
    const server = new SimApp(Buffer.alloc(0));
    server.reading = false;
    const sim = simPair(client, server, { link: { delayMs: 10 }, server: { receiveBuffer: 64 * KB } });
    sim.clock.run(() => sim.client.stats.windowProbes >= 2);
    // The reader's buffer is full (to within a segment: the window is advertised in 2-byte units).
    expect(sim.server!.bufferedToRead).toBeGreaterThan(64 * KB - 1380);
    expect(sim.server!.bufferedToRead).toBeLessThanOrEqual(64 * KB);
    expect(sim.client.closeReason).toBeUndefined();
    sim.clock.run(() => false, sim.clock.now() + 100); // the last probe's answer is back
    // The reader wakes up but the window update it causes is lost.
    sim.down.down = true;
    server.reading = true;
    server.drainReads();
    const sentBefore = sim.downLog.length;
    sim.clock.run(() => sim.downLog.slice(sentBefore).some((s) => s.window > 0));
    expect(sim.down.counters.lost).toBeGreaterThan(0); // the window update was lost
    sim.down.down = false;
    const probes = sim.client.stats.windowProbes;
    sim.clock.run(() => server.eof);
    expect(server.digest).toBe(sha256(a));
    expect(sim.client.stats.windowProbes).toBeGreaterThan(probes);
    expect(server.maxBufferedToRead).toBeLessThanOrEqual(64 * KB);
  });
});

describe('TCP against hostile segments', () => {
  test('thousands of random segments never throw, and a transfer on the same connection still completes', () => {
    const a = crypto.randomBytes(100 * KB);
    const client = new SimApp(a);
    const server = new SimApp(Buffer.alloc(0));
    const sim = simPair(client, server, { link: { delayMs: 10 } });
    sim.clock.run(() => client.established);
    const rand = prng(99);
    const flagsPool = [0, TCP_ACK, TCP_SYN, TCP_FIN | TCP_ACK, TCP_SYN | TCP_ACK, 0xff];
    const template = sim.upLog[0];
    // Far-off sequence numbers only (an on-path attacker with the right numbers can break any TCP).
    const base = sim.upLog[sim.upLog.length - 1].seq;
    for (let i = 0; i < 5000; i++) {
      const seg = forged(template, {
        seq: (base + 0x20000000 + Math.floor(rand() * 0x40000000)) >>> 0,
        ack: Math.floor(rand() * 0x100000000) >>> 0,
        flags: flagsPool[Math.floor(rand() * flagsPool.length)] & ~TCP_RST,
        window: Math.floor(rand() * 65536),
        payload: crypto.randomBytes(Math.floor(rand() * 1400)),
      });
      expect(() => sim.server!.onSegment(seg)).not.toThrow();
    }
    sim.clock.run(() => client.closed !== undefined && server.closed !== undefined);
    expect(server.digest).toBe(sha256(a));
  });

  test('a segment for a connection that never sent SYN-ACK leaves a pending connection silent', () => {
    const syn: TcpSegment = { ipVersion: 4, srcIp: '10.77.0.2', dstIp: '192.0.2.1', srcPort: 1, dstPort: 2, seq: 5, ack: 0, flags: TCP_SYN, window: 1000, options: {}, payload: Buffer.alloc(0) };
    const out: TcpSegment[] = [];
    const c = TcpConnection.fromSyn(syn, { clock: { now: () => 0, setTimeout: () => ({}), clearTimeout: () => undefined }, mss: 1380 }, { output: (s) => out.push(s) });
    c.onSegment({ ...syn, flags: TCP_ACK, seq: 6, ack: 12345, payload: Buffer.from('data') });
    expect(out).toHaveLength(0);
    expect(c.state).toBe('SYN_PENDING');
  });
});

function forged(template: TcpSegment, fields: Partial<TcpSegment>): TcpSegment {
  return { ...template, ack: 0, window: 1000, payload: Buffer.alloc(0), options: {}, ...fields };
}

function sendTimes(sim: ReturnType<typeof simPair>, segs: TcpSegment[]): number[] {
  return segs.map((s) => {
    const t = sim.sentAt.get(s);
    if (t === undefined) throw new Error('segment not logged');
    return t;
  });
}
