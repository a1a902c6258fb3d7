/**
 * Options as negotiated and used: SACK and timestamps only when the phone's SYN offered them (a
 * SYN-ACK never offers what the SYN did not), timestamps on every later segment, TS.Recent echoed
 * per RFC 7323 4.3 (a delayed ACK echoes the earliest segment it acknowledges), RTT from the echo,
 * PAWS against old duplicates; and the option parser against hostile and garbage bytes, with
 * tshark as the independent reader of the SACK option we build.
 */
import { buildTcpOptions, buildTcpPacket, parseTcpOptions, tcpOptionsLength } from '../../../proxy/capture/tunnel/ip/tcp';
import { TcpConnection } from '../../../proxy/capture/tunnel/tcp/connection';
import { PAWS_TOLERANCE } from '../../../proxy/capture/tunnel/tcp/timestamps';
import { TCP_ACK, TCP_PSH, TCP_RST, TCP_SYN, type TcpOptions, type TcpSegment } from '../../../proxy/capture/tunnel/types';
import { prng } from '../../../scripts/fixtures/random';
import { tsharkFields } from './ip-pcap';
import { SimApp, SimClock, simPair } from './tcp-sim';

const PHONE_ISS = 7_000_000;

function accepted(synOptions: TcpOptions) {
  const clock = new SimClock();
  const out: TcpSegment[] = [];
  const got: Buffer[] = [];
  const syn: TcpSegment = {
    ipVersion: 4, srcIp: '10.77.0.2', dstIp: '192.0.2.1', srcPort: 40000, dstPort: 443, seq: PHONE_ISS, ack: 0, flags: TCP_SYN,
    window: 65535, options: synOptions, payload: Buffer.alloc(0),
  };
  const conn = TcpConnection.fromSyn(syn, { clock, mss: 1380, iss: 9_000_000 }, {
    output: (s) => out.push(s),
    readable: () => {
      for (let c = conn.read(); c; c = conn.read()) got.push(c);
    },
  });
  conn.accept();
  const synAck = out[0];
  const seg = (at: number, len: number, fields: Partial<TcpSegment> = {}): TcpSegment => ({
    ...syn, seq: (PHONE_ISS + 1 + at) >>> 0, ack: (synAck.seq + 1) >>> 0, flags: TCP_ACK | (len ? TCP_PSH : 0), window: 4096, options: {},
    payload: Buffer.alloc(len, 0x61 + (at % 26)), ...fields,
  });
  return { conn, out, clock, synAck, seg, got };
}

describe('option negotiation', () => {
  test('a SYN offering SACK and timestamps gets both in the SYN-ACK (TSecr = its TSval); every later segment carries timestamps', () => {
    const { conn, out, synAck, seg, clock } = accepted({ mss: 1380, sackPermitted: true, timestamps: [4242, 0], windowScale: 8 });
    expect(synAck.options).toMatchObject({ mss: 1380, sackPermitted: true, windowScale: 7 });
    expect(synAck.options.timestamps![1]).toBe(4242);
    conn.onSegment(seg(0, 0, { options: { timestamps: [4243, synAck.options.timestamps![0]] } }));
    conn.write(Buffer.alloc(5000, 0x41));
    clock.run(() => false, 10);
    for (const s of out.slice(1)) expect(s.options.timestamps).toBeDefined();
    // Data segments leave room for the timestamps: 1380 - 12 bytes of payload at most.
    expect(Math.max(...out.map((s) => s.payload.length))).toBe(1368);
    expect(conn.path).toMatchObject({ sack: true, timestamps: true });
  });

  test('a SYN offering neither gets neither, and no later segment carries them', () => {
    const { conn, out, synAck, seg, clock } = accepted({ mss: 1380 });
    expect(synAck.options.sackPermitted).toBeUndefined();
    expect(synAck.options.timestamps).toBeUndefined();
    expect(synAck.options.windowScale).toBeUndefined(); // no scaling without the phone's offer either
    conn.onSegment(seg(0, 0));
    conn.onSegment(seg(2000, 100)); // out of order: would carry SACK blocks if SACK were on
    conn.write(Buffer.alloc(3000, 0x41));
    clock.run(() => false, 10);
    for (const s of out.slice(1)) {
      expect(s.options.timestamps).toBeUndefined();
      expect(s.options.sack).toBeUndefined();
    }
    expect(Math.max(...out.map((s) => s.payload.length))).toBe(1380);
  });

  test('timestamps without SACK, and SACK without timestamps, are each honoured alone', () => {
    const onlyTs = accepted({ mss: 1380, timestamps: [1, 0] }).synAck.options;
    expect(onlyTs.timestamps).toBeDefined();
    expect(onlyTs.sackPermitted).toBeUndefined();
    const onlySack = accepted({ mss: 1380, sackPermitted: true }).synAck.options;
    expect(onlySack.sackPermitted).toBe(true);
    expect(onlySack.timestamps).toBeUndefined();
  });
});

describe('timestamps in use (RFC 7323)', () => {
  test('a delayed ACK echoes the TSval of the earliest segment it acknowledges', () => {
    const { conn, out, synAck, seg, clock } = accepted({ mss: 1380, sackPermitted: true, timestamps: [100, 0] });
    const ours = synAck.options.timestamps![0];
    conn.onSegment(seg(0, 0, { options: { timestamps: [101, ours] } }));
    const before = out.length;
    conn.onSegment(seg(0, 500, { options: { timestamps: [110, ours] } }));
    conn.onSegment(seg(500, 500, { options: { timestamps: [120, ours] } }));
    clock.run(() => false, 100);
    const acks = out.slice(before);
    expect(acks).toHaveLength(1); // one ACK for two segments
    expect(acks[0].options.timestamps![1]).toBe(110);
  });

  test('PAWS: a segment whose TSval is far older than TS.Recent is an old duplicate, dropped and answered with an ACK; a reordered one passes', () => {
    const { conn, out, seg, got, synAck } = accepted({ mss: 1380, sackPermitted: true, timestamps: [50_000, 0] });
    const ours = synAck.options.timestamps![0];
    conn.onSegment(seg(0, 100, { options: { timestamps: [50_010, ours] } }));
    expect(Buffer.concat(got).length).toBe(100);
    const before = out.length;
    // Same sequence space, a TSval from a previous turn of it: not delivered.
    conn.onSegment(seg(100, 100, { options: { timestamps: [50_010 - PAWS_TOLERANCE - 5, ours] } }));
    expect(Buffer.concat(got).length).toBe(100);
    expect(conn.stats.pawsDrops).toBe(1);
    expect(out.length).toBe(before + 1);
    expect(out[out.length - 1].flags).toBe(TCP_ACK);
    // Sent before a retransmission that filled a hole, so older than TS.Recent by a little: accepted.
    conn.onSegment(seg(100, 100, { options: { timestamps: [50_000, ours] } }));
    expect(Buffer.concat(got).length).toBe(200);
    // A RST is not subject to PAWS (RFC 7323 5.3 R1).
    conn.onSegment(seg(200, 0, { flags: TCP_RST, options: { timestamps: [1, 0] } }));
    expect(conn.state).toBe('CLOSED');
    expect(conn.closeReason).toBe('reset');
  });

  test('an RTT sample on every ACK (send times, the echo telling which transmission): SRTT close to the path\'s 40 ms', () => {
    const client = new SimApp(Buffer.alloc(1024 * 1024));
    const server = new SimApp(Buffer.alloc(0));
    const sim = simPair(client, server, { link: { delayMs: 20 } });
    sim.clock.run(() => server.eof);
    const { srttMs, rtoMs } = sim.client.path;
    expect(srttMs).toBeGreaterThan(39);
    expect(srttMs).toBeLessThan(45);
    expect(rtoMs).toBeGreaterThanOrEqual(srttMs! + 200); // the 200 ms floor on the variance term
  });
});

describe('the option parser against hostile bytes', () => {
  const opt = (...bytes: number[]) => Buffer.from(bytes);

  test('SACK blocks: 1 to 4 blocks read; a wrong length for SACK or timestamps ignores that option only', () => {
    const sack2 = opt(1, 1, 5, 18, 0, 0, 0, 10, 0, 0, 0, 20, 0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 5);
    expect(parseTcpOptions(sack2)).toEqual({ sack: [[10, 20], [0xfffffff0, 5]] });
    expect(parseTcpOptions(opt(5, 9, 0, 0, 0, 1, 0, 0, 0, 2, 4, 0x05, 0x64))).toEqual({ mss: 1380 }); // SACK of 9 bytes, then MSS
    expect(parseTcpOptions(opt(5, 2, 1, 1))).toEqual({}); // an empty SACK
    expect(parseTcpOptions(Buffer.concat([opt(5, 42), Buffer.alloc(39)]))).toBeUndefined(); // runs past the options
    expect(parseTcpOptions(Buffer.concat([opt(5, 42), Buffer.alloc(40)]))).toEqual({}); // framed, but more than 4 blocks
    expect(parseTcpOptions(opt(8, 9, 0, 0, 0, 1, 0, 0, 0, 1, 0))).toEqual({}); // timestamps of 9 bytes
    expect(parseTcpOptions(opt(3, 3, 200, 0))).toEqual({ windowScale: 14 }); // clamped (RFC 7323 2.3)
    expect(parseTcpOptions(opt(2, 4))).toBeUndefined(); // truncated
    expect(parseTcpOptions(opt(0, 5, 99, 1, 2))).toEqual({}); // end of options: the rest is padding
  });

  test('random option bytes never throw; whatever parses is well-formed', () => {
    const rand = prng(2018);
    for (let i = 0; i < 20_000; i++) {
      const b = Buffer.alloc(Math.floor(rand() * 41));
      for (let j = 0; j < b.length; j++) b[j] = rand() < 0.3 ? [1, 2, 3, 4, 5, 8, 10, 18, 26, 34][Math.floor(rand() * 10)] : Math.floor(rand() * 256);
      const o = parseTcpOptions(b);
      if (!o) continue;
      if (o.sack) {
        expect(o.sack.length).toBeGreaterThanOrEqual(1);
        expect(o.sack.length).toBeLessThanOrEqual(4);
        for (const [s, e] of o.sack) expect(Number.isInteger(s) && Number.isInteger(e)).toBe(true);
      }
      if (o.windowScale !== undefined) expect(o.windowScale).toBeLessThanOrEqual(14);
    }
  });

  test('SACK blocks we build are what tshark reads, and take the bytes we reserve for them', () => {
    const options: TcpOptions = { timestamps: [11, 22], sack: [[0xfffffff0, 0x10], [1000, 2000], [3000, 4000]] };
    expect(buildTcpOptions(options).length).toBe(tcpOptionsLength(true, 3));
    expect(buildTcpOptions(options).length).toBe(40);
    const pkt = buildTcpPacket({
      ipVersion: 4, srcIp: '192.0.2.1', dstIp: '10.77.0.2', srcPort: 443, dstPort: 40000, seq: 1, ack: 5, flags: TCP_ACK, window: 100, options, payload: Buffer.alloc(0),
    });
    const [ws] = tsharkFields([pkt], ['tcp.options.sack_le', 'tcp.options.sack_re', 'tcp.options.timestamp.tsval', 'tcp.checksum.status', '_ws.malformed'],
      undefined, ['tcp.relative_sequence_numbers:FALSE']);
    expect(ws['tcp.options.sack_le']).toEqual([String(0xfffffff0), '1000', '3000']);
    expect(ws['tcp.options.sack_re']).toEqual(['16', '2000', '4000']);
    expect(ws['tcp.options.timestamp.tsval']).toEqual(['11']);
    expect(ws['tcp.checksum.status']).toEqual(['1']);
    expect(ws['_ws.malformed']).toEqual([]);
    expect(parseTcpOptions(buildTcpOptions(options))).toEqual(options);
  });
});
