/**
 * Puts one direction of a captured TCP connection back in order: out-of-order segments wait,
 * retransmissions and overlaps are trimmed, and bytes the capture never saw are reported as a gap
 * (with their length) instead of being guessed. What waits is bounded, so a capture full of holes
 * cannot grow memory.
 */

export interface StreamSink {
  /** Next in-order bytes (a view: copy what you keep). */
  data(bytes: Buffer, ts: number): void;
  /** `missing` bytes the capture does not have come here. */
  gap(missing: number, ts: number): void;
}

/** Out-of-order bytes held per direction before the hole in front of them is declared a gap. */
export const MAX_OUT_OF_ORDER_BYTES = 1024 * 1024;
export const MAX_OUT_OF_ORDER_SEGMENTS = 512;

/** Signed distance a - b in sequence space (mod 2^32). */
function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

export class TcpDirection {
  /** Sequence number of the next byte expected, or -1 before the first segment. */
  private next = -1;
  private readonly waiting: Array<{ seq: number; data: Buffer; ts: number }> = [];
  private waitingBytes = 0;
  bytes = 0;
  gapBytes = 0;

  constructor(private readonly sink: StreamSink) {}

  /** True when no out-of-order bytes wait for a hole to fill. */
  get settled(): boolean {
    return this.waiting.length === 0;
  }

  get started(): boolean {
    return this.next >= 0;
  }

  /** A SYN: the stream's data starts at isn + 1. */
  syn(isn: number): void {
    if (this.next < 0) this.next = (isn + 1) >>> 0;
  }

  segment(seq: number, payload: Buffer, ts: number): void {
    if (payload.length === 0) return;
    if (this.next < 0) this.next = seq;
    const d = seqDiff(seq, this.next);
    if (d <= 0) {
      if (d + payload.length <= 0) return; // retransmission of bytes already delivered
      this.deliver(payload.subarray(-d), ts);
      this.drain();
      return;
    }
    /* A hole in front: keep a copy, ordered by sequence number. */
    let i = this.waiting.length;
    while (i > 0 && seqDiff(this.waiting[i - 1].seq, seq) > 0) i--;
    this.waiting.splice(i, 0, { seq, data: Buffer.from(payload), ts });
    this.waitingBytes += payload.length;
    if (this.waitingBytes > MAX_OUT_OF_ORDER_BYTES || this.waiting.length > MAX_OUT_OF_ORDER_SEGMENTS) this.skipHole();
  }

  /**
   * The peer acknowledged up to `ack`: if bytes before it are missing while later ones wait, the
   * peer did receive them and the capture did not, so the hole is a gap now (not after the buffer fills).
   */
  acked(ack: number): void {
    if (!this.waiting.length || this.next < 0) return;
    while (this.waiting.length && seqDiff(ack, this.next) > 0 && seqDiff(this.waiting[0].seq, this.next) > 0) this.skipHole();
  }

  /** End of the connection or of the capture: whatever waits is delivered, holes as gaps. */
  flush(): void {
    while (this.waiting.length) this.skipHole();
  }

  private skipHole(): void {
    const first = this.waiting[0];
    const missing = seqDiff(first.seq, this.next);
    if (missing > 0) {
      this.gapBytes += missing;
      this.sink.gap(missing, first.ts);
      this.next = first.seq;
    }
    this.drain();
  }

  private drain(): void {
    while (this.waiting.length) {
      const w = this.waiting[0];
      const d = seqDiff(w.seq, this.next);
      if (d > 0) return;
      this.waiting.shift();
      this.waitingBytes -= w.data.length;
      if (d + w.data.length > 0) this.deliver(w.data.subarray(-d), w.ts);
    }
  }

  private deliver(data: Buffer, ts: number): void {
    this.next = (this.next + data.length) >>> 0;
    this.bytes += data.length;
    this.sink.data(data, ts);
  }
}
