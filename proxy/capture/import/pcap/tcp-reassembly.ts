/**
 * Puts one direction of a captured TCP connection back in order: out-of-order segments wait,
 * retransmissions and overlaps are trimmed, and bytes the capture never saw are reported as a gap
 * (with their length) instead of being guessed. What waits is bounded per direction and, across
 * every connection of the capture, by one shared budget, so a capture full of holes (a one-sided
 * capture never shows the ACKs that would declare them) cannot grow memory with its size.
 */

export interface StreamSink {
  /** Next in-order bytes of direction `side`: buf[start, end), valid only during the call (copy what you keep). */
  data(side: 0 | 1, buf: Buffer, start: number, end: number, ts: number): void;
  /** `missing` bytes the capture does not have come here. */
  gap(side: 0 | 1, missing: number, ts: number): void;
}

/** Out-of-order bytes held per direction before the hole in front of them is declared a gap. */
export const MAX_OUT_OF_ORDER_BYTES = 1024 * 1024;
export const MAX_OUT_OF_ORDER_SEGMENTS = 512;
/** Out-of-order bytes held across all connections of a capture; beyond it the oldest holes become gaps. */
export const MAX_HELD_OUT_OF_ORDER_BYTES = 32 * 1024 * 1024;

/**
 * The out-of-order bytes all directions of a capture hold together. Past the limit, the direction
 * that has been holding longest gives up its holes (they are recorded as gaps, what waited behind
 * them is delivered), then the next oldest, until the total is within the limit again: a hole open
 * for long is the least likely to be filled by a late segment.
 */
export class OutOfOrderBudget {
  held = 0;
  /** Times the limit was passed and holes were given up. */
  overflows = 0;
  /** Directions holding bytes, in the order they started holding (a Set iterates in insertion order). */
  private readonly holders = new Set<TcpDirection>();
  private evicting = false;

  constructor(readonly limit = MAX_HELD_OUT_OF_ORDER_BYTES) {}

  /** `dir` now holds `n` more bytes (n < 0: fewer); `holding` says whether it still holds any. */
  change(dir: TcpDirection, n: number, holding: boolean): void {
    this.held += n;
    if (!holding) this.holders.delete(dir);
    else if (n > 0 && !this.holders.has(dir)) this.holders.add(dir);
    if (this.held > this.limit && !this.evicting) this.evict();
  }

  private evict(): void {
    this.evicting = true;
    this.overflows++;
    try {
      for (const dir of this.holders) {
        if (this.held <= this.limit) break;
        dir.flush();
      }
    } finally {
      this.evicting = false;
    }
  }
}

/** Signed distance a - b in sequence space (mod 2^32). */
function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

interface Waiting {
  seq: number;
  data: Buffer;
  ts: number;
}

export class TcpDirection {
  /** Sequence number of the next byte expected, or -1 before the first segment. */
  private next = -1;
  /** Out-of-order segments (copies), by sequence number; null while none ever waited (the usual case). */
  private waiting: Waiting[] | null = null;
  private waitingBytes = 0;
  bytes = 0;
  gapBytes = 0;

  constructor(private readonly sink: StreamSink, private readonly side: 0 | 1, private readonly budget: OutOfOrderBudget | null = null) {}

  /** True when no out-of-order bytes wait for a hole to fill. */
  get settled(): boolean {
    return this.waiting === null || this.waiting.length === 0;
  }

  get started(): boolean {
    return this.next >= 0;
  }

  /** A SYN: the stream's data starts at isn + 1. */
  syn(isn: number): void {
    if (this.next < 0) this.next = (isn + 1) >>> 0;
  }

  /** A segment whose payload is buf[start, end) (a view into the capture: copied only if it must wait). */
  segment(seq: number, buf: Buffer, start: number, end: number, ts: number): void {
    const len = end - start;
    if (len <= 0) return;
    if (this.next < 0) this.next = seq;
    const d = seqDiff(seq, this.next);
    if (d <= 0) {
      if (d + len <= 0) return; // retransmission of bytes already delivered
      this.deliver(buf, start - d, end, ts);
      if (this.waiting !== null && this.waiting.length) this.drain();
      return;
    }
    /* A hole in front: keep a copy, ordered by sequence number. */
    const waiting = (this.waiting ??= []);
    let i = waiting.length;
    while (i > 0 && seqDiff(waiting[i - 1].seq, seq) > 0) i--;
    const copy = Buffer.allocUnsafe(len);
    buf.copy(copy, 0, start, end);
    waiting.splice(i, 0, { seq, data: copy, ts });
    this.waitingBytes += len;
    /* The shared budget first: passing it may flush this direction (then nothing waits here any more). */
    this.budget?.change(this, len, true);
    if (this.waitingBytes > MAX_OUT_OF_ORDER_BYTES || waiting.length > MAX_OUT_OF_ORDER_SEGMENTS) this.skipHole();
  }

  /**
   * The peer acknowledged up to `ack`: if bytes before it are missing while later ones wait, the
   * peer did receive them and the capture did not, so the hole is a gap now (not after the buffer fills).
   */
  acked(ack: number): void {
    const waiting = this.waiting;
    if (waiting === null || !waiting.length || this.next < 0) return;
    while (waiting.length && seqDiff(ack, this.next) > 0 && seqDiff(waiting[0].seq, this.next) > 0) this.skipHole();
  }

  /** End of the connection or of the capture: whatever waits is delivered, holes as gaps. */
  flush(): void {
    while (this.waiting !== null && this.waiting.length) this.skipHole();
  }

  private skipHole(): void {
    const first = this.waiting![0];
    const missing = seqDiff(first.seq, this.next);
    if (missing > 0) {
      this.gapBytes += missing;
      this.sink.gap(this.side, missing, first.ts);
      this.next = first.seq;
    }
    this.drain();
  }

  /** Delivers what waits in order from `next`; what leaves is taken off the shared budget. */
  private drain(): void {
    const waiting = this.waiting!;
    const before = this.waitingBytes;
    while (waiting.length) {
      const w = waiting[0];
      const d = seqDiff(w.seq, this.next);
      if (d > 0) break;
      waiting.shift();
      this.waitingBytes -= w.data.length;
      if (d + w.data.length > 0) this.deliver(w.data, -d, w.data.length, w.ts);
    }
    if (this.budget !== null && this.waitingBytes !== before) this.budget.change(this, this.waitingBytes - before, waiting.length > 0);
  }

  private deliver(buf: Buffer, start: number, end: number, ts: number): void {
    const len = end - start;
    this.next = (this.next + len) >>> 0;
    this.bytes += len;
    this.sink.data(this.side, buf, start, end, ts);
  }
}
