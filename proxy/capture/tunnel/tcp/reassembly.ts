/**
 * Out-of-order segments held until the hole before them is filled: kept sorted and without
 * overlap (a retransmission that overlaps what we hold is trimmed), bounded by the caller's receive
 * window and by a segment count, and drained in order as soon as they become contiguous. The
 * contiguous ranges held are what the receiver reports in SACK blocks.
 */
import type { SackBlock } from '../types';
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from './seq';

interface Piece {
  seq: number;
  data: Buffer;
}

export class Reassembly {
  private pieces: Piece[] = [];
  bytes = 0;
  /** Sequence number of the peer's FIN when it arrived ahead of data still missing. */
  finSeq: number | undefined;

  constructor(private readonly maxPieces = 2048) {}

  get size(): number {
    return this.pieces.length;
  }

  /**
   * Keeps `data` at `seq` (known to be after rcvNxt); returns the bytes that were new (0 when all
   * of it was already held: a duplicate), or -1 when it was dropped (the piece limit).
   */
  insert(seq: number, data: Buffer, fin: boolean): number {
    if (fin) this.finSeq = seqAdd(seq, data.length);
    if (data.length === 0) return 0;
    let start = seq;
    let end = seqAdd(seq, data.length);
    let i = 0;
    while (i < this.pieces.length && seqLe(seqAdd(this.pieces[i].seq, this.pieces[i].data.length), start)) i++;
    const parts: Piece[] = [];
    // Fill only the gaps between held pieces that the new data covers.
    while (seqLt(start, end)) {
      const next = this.pieces[i];
      if (!next || seqGe(next.seq, end)) {
        parts.push({ seq: start, data: data.subarray(seqDiff(start, seq), seqDiff(end, seq)) });
        break;
      }
      if (seqLt(start, next.seq)) parts.push({ seq: start, data: data.subarray(seqDiff(start, seq), seqDiff(next.seq, seq)) });
      start = seqAdd(next.seq, next.data.length);
      i++;
    }
    if (parts.length === 0) return 0;
    if (this.pieces.length + parts.length > this.maxPieces) return -1;
    let added = 0;
    for (const p of parts) {
      // Copy: the payload may be a view of a larger packet buffer we must not keep alive.
      const piece = { seq: p.seq, data: Buffer.from(p.data) };
      let at = this.pieces.findIndex((q) => seqGt(q.seq, piece.seq));
      if (at < 0) at = this.pieces.length;
      this.pieces.splice(at, 0, piece);
      this.bytes += piece.data.length;
      added += piece.data.length;
    }
    return added;
  }

  /** The contiguous range held around `seq`, merging adjacent pieces; undefined when `seq` is not held. */
  rangeAround(seq: number): SackBlock | undefined {
    const i = this.pieces.findIndex((p) => seqLe(p.seq, seq) && seqLt(seq, seqAdd(p.seq, p.data.length)));
    if (i < 0) return undefined;
    let first = i;
    while (first > 0 && seqAdd(this.pieces[first - 1].seq, this.pieces[first - 1].data.length) === this.pieces[first].seq) first--;
    let last = i;
    while (last + 1 < this.pieces.length && seqAdd(this.pieces[last].seq, this.pieces[last].data.length) === this.pieces[last + 1].seq) last++;
    return [this.pieces[first].seq, seqAdd(this.pieces[last].seq, this.pieces[last].data.length)];
  }

  /** The contiguous ranges held, highest first, at most `max`. */
  ranges(max: number): SackBlock[] {
    const out: SackBlock[] = [];
    let end: number | undefined;
    let start = 0;
    for (let i = this.pieces.length - 1; i >= 0 && out.length < max; i--) {
      const p = this.pieces[i];
      const pEnd = seqAdd(p.seq, p.data.length);
      if (end !== undefined && pEnd === start) {
        start = p.seq;
        continue;
      }
      if (end !== undefined) out.push([start, end]);
      end = pEnd;
      start = p.seq;
    }
    if (end !== undefined && out.length < max) out.push([start, end]);
    return out;
  }

  /** Removes and returns the data contiguous from `rcvNxt` (trimming what is already received). */
  take(rcvNxt: number): Buffer[] {
    const out: Buffer[] = [];
    let next = rcvNxt;
    while (this.pieces.length) {
      const p = this.pieces[0];
      if (seqGt(p.seq, next)) break;
      this.pieces.shift();
      this.bytes -= p.data.length;
      const skip = seqDiff(next, p.seq);
      if (skip >= p.data.length) continue;
      const data = skip > 0 ? p.data.subarray(skip) : p.data;
      out.push(data);
      next = seqAdd(next, data.length);
    }
    return out;
  }

  clear(): void {
    this.pieces = [];
    this.bytes = 0;
    this.finSeq = undefined;
  }
}
