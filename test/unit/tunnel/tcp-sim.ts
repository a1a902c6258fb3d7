/**
 * A simulated network for the TCP machine's tests: a discrete-event clock (timers and packet
 * arrivals ordered by simulated time, so minutes of TCP run in milliseconds) and a link that
 * loses, duplicates, reorders and delays segments with a seeded PRNG, so every failure reproduces,
 * optionally behind a bottleneck of a given rate with a drop-tail queue.
 */
import * as crypto from 'crypto';
import type { TcpClock, TimerHandle } from '../../../proxy/capture/tunnel/tcp/clock';
import { TcpConnection, TcpConnectionOptions, TcpCloseReason } from '../../../proxy/capture/tunnel/tcp/connection';
import { TCP_ACK, TCP_SYN, TcpSegment } from '../../../proxy/capture/tunnel/types';
import { prng } from '../../../scripts/fixtures/random';

interface SimEvent {
  at: number;
  order: number;
  fn: () => void;
  cancelled: boolean;
}

export class SimClock implements TcpClock {
  private time = 0;
  private order = 0;
  private heap: SimEvent[] = [];
  events = 0;

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const ev: SimEvent = { at: this.time + Math.max(0, ms), order: this.order++, fn, cancelled: false };
    this.push(ev);
    return ev;
  }

  clearTimeout(handle: TimerHandle): void {
    (handle as SimEvent).cancelled = true;
  }

  /** Runs events until `done()` holds, nothing is left, or simulated time passes `limitMs`. */
  run(done: () => boolean, limitMs = 3_600_000): void {
    while (!done() && this.heap.length) {
      if (this.heap[0].at > limitMs) {
        this.time = limitMs;
        return;
      }
      const ev = this.pop();
      if (ev.cancelled) continue;
      this.time = ev.at;
      this.events++;
      ev.fn();
    }
  }

  private push(ev: SimEvent): void {
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  private pop(): SimEvent {
    const h = this.heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l], h[m])) m = l;
        if (r < h.length && before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.order < b.order);
}

export interface LinkProfile {
  /** Probability that a segment is lost. */
  loss?: number;
  /** Probability that a segment is delivered twice. */
  duplicate?: number;
  /** Probability that a segment is held back by up to `reorderMs` (so later ones overtake it). */
  reorder?: number;
  reorderMs?: number;
  /** One-way delay and uniform jitter (ms): a jitter larger than the gap between packets reorders them. */
  delayMs?: number;
  jitterMs?: number;
  /** A bottleneck before the delay: its rate (Mbit/s, IP packets of 40 bytes + payload) and queue (packets, drop-tail). */
  rateMbit?: number;
  queuePackets?: number;
  seed?: number;
}

export interface LinkCounters {
  sent: number;
  lost: number;
  /** Lost segments that carried data or a FIN (what the sender has to retransmit). */
  lostData: number;
  /** Dropped by the bottleneck's full queue (congestion, not random loss). */
  queueDrops: number;
  duplicated: number;
  reordered: number;
}

/** One direction of a link: segments in, delivered (or not) to `deliver` after a delay. */
export class SimLink {
  readonly counters: LinkCounters = { sent: 0, lost: 0, lostData: 0, queueDrops: 0, duplicated: 0, reordered: 0 };
  /** When the bottleneck finishes sending what it holds. */
  private busyUntil = 0;
  private readonly rand: () => number;
  deliver: (seg: TcpSegment) => void = () => undefined;
  /** Set to drop everything (a cut cable). */
  down = false;
  /** Drops the segments it returns true for (targeted losses). */
  drop: ((seg: TcpSegment) => boolean) | undefined;

  constructor(
    private readonly clock: SimClock,
    private readonly profile: LinkProfile,
  ) {
    this.rand = prng(profile.seed ?? 1);
  }

  send = (seg: TcpSegment): void => {
    this.counters.sent++;
    const carriesData = seg.payload.length > 0 || (seg.flags & 1) !== 0;
    if (this.down || this.drop?.(seg) || this.rand() < (this.profile.loss ?? 0)) {
      this.counters.lost++;
      if (carriesData) this.counters.lostData++;
      return;
    }
    let queued = 0;
    if (this.profile.rateMbit) {
      const now = this.clock.now();
      const txMs = ((seg.payload.length + 40) * 8) / (this.profile.rateMbit * 1000);
      const start = Math.max(now, this.busyUntil);
      if ((start - now) / txMs >= (this.profile.queuePackets ?? 100)) {
        this.counters.queueDrops++;
        if (carriesData) this.counters.lostData++;
        return;
      }
      this.busyUntil = start + txMs;
      queued = this.busyUntil - now;
    }
    // A wire carries bytes, not objects: the receiver must not share buffers with the sender.
    const copy = (): TcpSegment => ({ ...seg, options: { ...seg.options }, payload: Buffer.from(seg.payload) });
    const copies = this.rand() < (this.profile.duplicate ?? 0) ? 2 : 1;
    if (copies === 2) this.counters.duplicated++;
    for (let i = 0; i < copies; i++) {
      let delay = queued + (this.profile.delayMs ?? 10) + this.rand() * (this.profile.jitterMs ?? 0);
      if (this.rand() < (this.profile.reorder ?? 0)) {
        this.counters.reordered++;
        delay += this.rand() * (this.profile.reorderMs ?? 30);
      }
      const s = copy();
      this.clock.setTimeout(() => this.deliver(s), delay);
    }
  };
}

// ---- two TCP endpoints over a simulated link ------------------------------------------------

/** An application on one end: writes `toSend` (respecting backpressure), then ends; reads and hashes. */
export class SimApp {
  conn!: TcpConnection;
  received = 0;
  private readonly hash = crypto.createHash('sha256');
  digest: string | undefined;
  eof = false;
  closed: TcpCloseReason | undefined;
  established = false;
  /** When false, the app does not read (its receive buffer fills up). */
  reading = true;
  maxBufferedToRead = 0;
  private sent = 0;
  endAfterSend = true;

  constructor(private readonly toSend: Buffer, private readonly chunk = 16 * 1024) {}

  pump(): void {
    while (this.sent < this.toSend.length) {
      const piece = this.toSend.subarray(this.sent, this.sent + this.chunk);
      this.sent += piece.length;
      if (!this.conn.write(piece)) return;
    }
    if (this.endAfterSend && this.sent === this.toSend.length) this.conn.end();
  }

  drainReads(): void {
    this.maxBufferedToRead = Math.max(this.maxBufferedToRead, this.conn.bufferedToRead);
    if (!this.reading) return;
    for (let c = this.conn.read(); c; c = this.conn.read()) {
      this.received += c.length;
      this.hash.update(c);
    }
    if (this.conn.readEnded && !this.eof) {
      this.eof = true;
      this.digest = this.hash.digest('hex');
    }
  }

  events() {
    return {
      established: () => {
        this.established = true;
        this.pump();
      },
      readable: () => this.drainReads(),
      drain: () => this.pump(),
      closed: (r: TcpCloseReason) => (this.closed = r),
    };
  }
}

export function sha256(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

export interface PairOptions {
  link?: LinkProfile;
  /** Profile of the server→client direction (default: `link` with another seed). */
  back?: LinkProfile;
  client?: Partial<TcpConnectionOptions>;
  server?: Partial<TcpConnectionOptions>;
  /** Do not accept the SYN automatically. */
  manualAccept?: boolean;
  ipVersion?: 4 | 6;
}

/** A client (active open) and a server (passive, from the first SYN) joined by two SimLinks. */
export function simPair(clientApp: SimApp, serverApp: SimApp, o: PairOptions = {}) {
  const clock = new SimClock();
  const up = new SimLink(clock, o.link ?? {});
  const down = new SimLink(clock, o.back ?? { ...(o.link ?? {}), seed: (o.link?.seed ?? 1) + 1000 });
  const v6 = o.ipVersion === 6;
  const base = { clock, mss: v6 ? 1360 : 1380 };
  // Seeded like the link, so a run (ISS, timestamp origins, BBR's probing phase) reproduces.
  const seed = o.link?.seed ?? 1;
  const upLog: TcpSegment[] = [];
  const downLog: TcpSegment[] = [];
  /** Simulated time each logged segment was sent. */
  const sentAt = new WeakMap<object, number>();
  const result = { clock, up, down, upLog, downLog, sentAt, server: undefined as TcpConnection | undefined, client: undefined as unknown as TcpConnection };
  up.deliver = (seg) => {
    if (!result.server) {
      if (seg.flags & TCP_SYN && !(seg.flags & TCP_ACK)) {
        const server = TcpConnection.fromSyn(seg, { ...base, random: prng(seed * 31 + 2), ...o.server }, {
          ...serverApp.events(),
          output: (s) => {
            downLog.push(s);
            sentAt.set(s, clock.now());
            down.send(s);
          },
        });
        serverApp.conn = server;
        result.server = server;
        if (!o.manualAccept) server.accept();
      }
      return;
    }
    result.server.onSegment(seg);
  };
  down.deliver = (seg) => result.client.onSegment(seg);
  result.client = TcpConnection.connect(
    { ip: v6 ? 'fd77::2' : '10.77.0.2', port: 40000 },
    { ip: v6 ? '2001:db8::80' : '192.0.2.80', port: 443 },
    v6 ? 6 : 4,
    { ...base, random: prng(seed * 31 + 1), ...o.client },
    {
      ...clientApp.events(),
      output: (s) => {
        upLog.push(s);
        sentAt.set(s, clock.now());
        up.send(s);
      },
    },
  );
  clientApp.conn = result.client;
  return result;
}
