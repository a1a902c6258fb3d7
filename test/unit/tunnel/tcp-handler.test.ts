/**
 * The TcpTunnel's per-phone limits on a simulated clock: the connection cap resets further SYNs,
 * an unanswered SYN is refused after the accept timeout, and the shared receive budget closes the
 * windows of a phone whose connections are not being read, so its held bytes stay bounded.
 */
import * as crypto from 'crypto';
import { TcpConnection } from '../../../proxy/capture/tunnel/tcp/connection';
import { IncomingTcpConnection, TcpTunnel } from '../../../proxy/capture/tunnel/tcp/handler';
import { TCP_RST, TCP_SYN, TcpSegment, TunnelPeer } from '../../../proxy/capture/tunnel/types';
import { SimClock } from './tcp-sim';

const peer: TunnelPeer = { publicKey: 'a2V5', name: 'pixel', ipv4: '10.77.0.2', ipv6: 'fd77::2' };

function syn(srcPort: number): TcpSegment {
  return { ipVersion: 4, srcIp: peer.ipv4, dstIp: '192.0.2.9', srcPort, dstPort: 443, seq: 1000, ack: 0, flags: TCP_SYN, window: 65535, options: { mss: 1380 }, payload: Buffer.alloc(0) };
}

test('beyond the per-phone connection limit a SYN gets RST and counts as a drop', () => {
  const clock = new SimClock();
  const offered: IncomingTcpConnection[] = [];
  const tunnel = new TcpTunnel({ clock, maxConnectionsPerPeer: 2, onConnection: (c) => offered.push(c) });
  const out: TcpSegment[] = [];
  for (const port of [1001, 1002, 1003]) tunnel.onSegment(peer, syn(port), (s) => out.push(s));
  expect(offered.map((c) => c.source.port)).toEqual([1001, 1002]);
  expect(out).toHaveLength(1);
  expect(out[0]).toMatchObject({ flags: TCP_RST | 0x10, dstPort: 1003, ack: 1001 });
  expect(tunnel.stats()[peer.ipv4]).toMatchObject({ open: 2, drops: 1, connections: 0 });
  // A retransmitted SYN of a pending connection is not a new connection.
  tunnel.onSegment(peer, syn(1001), (s) => out.push(s));
  expect(offered).toHaveLength(2);
  expect(out).toHaveLength(1);
});

test('a SYN nobody answers is refused after the accept timeout, freeing its slot', () => {
  const clock = new SimClock();
  const tunnel = new TcpTunnel({ clock, acceptTimeoutMs: 5000, onConnection: () => undefined });
  const out: TcpSegment[] = [];
  tunnel.onSegment(peer, syn(2000), (s) => out.push(s));
  clock.run(() => out.length > 0);
  expect(clock.now()).toBe(5000);
  expect(out[0].flags & TCP_RST).toBeTruthy();
  expect(tunnel.stats()[peer.ipv4]).toMatchObject({ open: 0, refused: 1 });
});

test('the receive budget is shared by a phone\'s connections: unread data closes the windows', () => {
  const clock = new SimClock();
  const budget = 256 * 1024;
  const tunnel = new TcpTunnel({ clock, receiveBudgetPerPeer: budget, onConnection: (c) => void c.accept().on('error', () => undefined) }); // accepted, never read
  const phones: TcpConnection[] = [];
  for (let i = 0; i < 4; i++) {
    const toPhone = (s: TcpSegment) => clock.setTimeout(() => c.onSegment(s), 5);
    const c: TcpConnection = TcpConnection.connect({ ip: peer.ipv4, port: 3000 + i }, { ip: '192.0.2.9', port: 443 }, 4, { clock, mss: 1380 }, {
      output: (s) => clock.setTimeout(() => tunnel.onSegment(peer, s, toPhone), 5),
      established: () => c.write(crypto.randomBytes(1024 * 1024)),
    });
    phones.push(c);
  }
  clock.run(() => false, 60_000);
  const received = tunnel.stats()[peer.ipv4].bytesFromPhone;
  // Each connection alone could take 256 KiB; together they stop near the shared budget.
  expect(received).toBeGreaterThan(budget / 2);
  expect(received).toBeLessThanOrEqual(budget + 4 * 64 * 1024);
  expect(phones.every((p) => p.stats.windowProbes > 0)).toBe(true);
  tunnel.close();
});

test('a new SYN on the 4-tuple of a connection in TIME_WAIT starts a new connection', () => {
  const clock = new SimClock();
  const offered: IncomingTcpConnection[] = [];
  const tunnel = new TcpTunnel({ clock, onConnection: (c) => {
    offered.push(c);
    const s = c.accept();
    s.on('error', () => undefined);
    s.conn.end(); // the server side closes first, so the tunnel's end goes through TIME_WAIT
  } });
  const open = (iss: number) => {
    const toPhone = (s: TcpSegment) => clock.setTimeout(() => c.onSegment(s), 5);
    const c: TcpConnection = TcpConnection.connect({ ip: peer.ipv4, port: 4000 }, { ip: '192.0.2.9', port: 443 }, 4, { clock, mss: 1380, iss }, {
      output: (s) => clock.setTimeout(() => tunnel.onSegment(peer, s, toPhone), 5),
    });
    return c;
  };
  const first = open(1000);
  clock.run(() => first.state === 'CLOSE_WAIT');
  first.end();
  clock.run(() => first.state === 'CLOSED');
  expect(offered).toHaveLength(1);
  expect(offered[0].accept().conn.state).toBe('TIME_WAIT');
  const second = open(500_000);
  clock.run(() => second.state !== 'SYN_SENT');
  expect(offered).toHaveLength(2);
  expect(second.closeReason === undefined || second.closeReason === 'normal').toBe(true);
  expect(['ESTABLISHED', 'CLOSE_WAIT']).toContain(second.state);
});

test('data a closed connection left unread goes back to the phone\'s budget', () => {
  const clock = new SimClock();
  const tunnel = new TcpTunnel({ clock, onConnection: (c) => {
    const s = c.accept();
    s.on('error', () => undefined);
    s.conn.end(); // answers with FIN at once and never reads
  } });
  const toPhone = (s: TcpSegment) => clock.setTimeout(() => c.onSegment(s), 5);
  const c: TcpConnection = TcpConnection.connect({ ip: peer.ipv4, port: 5000 }, { ip: '192.0.2.9', port: 443 }, 4, { clock, mss: 1380 }, {
    output: (s) => clock.setTimeout(() => tunnel.onSegment(peer, s, toPhone), 5),
    established: () => {
      c.write(Buffer.alloc(50_000, 1));
      c.end();
    },
  });
  clock.run(() => c.state === 'CLOSED' || c.state === 'TIME_WAIT');
  clock.run(() => tunnel.stats()[peer.ipv4].open === 0);
  expect(tunnel.stats()[peer.ipv4]).toMatchObject({ bytesFromPhone: 50_000, heldBytes: 0, open: 0 });
});

test('connections in TIME_WAIT do not count against the limit; at 4x the limit the oldest gives way', () => {
  const clock = new SimClock();
  const tunnel = new TcpTunnel({ clock, maxConnectionsPerPeer: 1, onConnection: (c) => {
    const s = c.accept();
    s.on('error', () => undefined);
    s.conn.end();
  } });
  const phones: TcpConnection[] = [];
  for (let i = 0; i < 6; i++) {
    const toPhone = (s: TcpSegment) => clock.setTimeout(() => c.onSegment(s), 5);
    const c: TcpConnection = TcpConnection.connect({ ip: peer.ipv4, port: 6000 + i }, { ip: '192.0.2.9', port: 443 }, 4, { clock, mss: 1380 }, {
      output: (s) => clock.setTimeout(() => tunnel.onSegment(peer, s, toPhone), 5),
    });
    clock.run(() => c.state === 'CLOSE_WAIT' || c.state === 'CLOSED');
    expect(c.state).toBe('CLOSE_WAIT'); // accepted despite the limit of 1: the others are in TIME_WAIT
    c.end();
    clock.run(() => c.state === 'CLOSED');
    phones.push(c);
  }
  const s = tunnel.stats()[peer.ipv4];
  expect(s.connections).toBe(6);
  expect(s.drops).toBe(0);
  expect(s.open).toBe(4); // the table stays at 4x the limit
});
