/**
 * The sender's scoreboard (RFC 6675): every segment sent and not yet cumulatively acknowledged,
 * in sequence order, with what the phone's SACK blocks said about it (SACKed), what loss detection
 * concluded (lost), and whether its latest transmission is a retransmission still in flight. From
 * these it keeps the byte counts that make `pipe` (RFC 6675: data believed to be in the network)
 * without a walk per ACK. A second list orders the segments in flight by transmission time,
 * oldest first, which is the order RACK (RFC 8985) examines them in.
 *
 * Segment boundaries are fixed when a segment is first sent; a retransmission resends the same
 * range. Only the sequence range is kept here; the bytes stay in the connection's send queue.
 */
import type { SackBlock } from '../types';
import { seqDiff, seqGe, seqGt, seqLe, seqLt } from './seq';

export interface SentSegment {
  start: number;
  /** Sequence number after the segment (a FIN counts one). */
  end: number;
  /** Time of the latest transmission (clock ms) and the TSval it carried. */
  sentAt: number;
  tsval: number;
  /** Order of the latest transmission among all of the connection's (breaks ties of sentAt). */
  order: number;
  xmits: number;
  sacked: boolean;
  /** Declared lost by loss detection (stays so until delivered, even once retransmitted). */
  lost: boolean;
  /** The latest transmission is a retransmission not yet delivered or declared lost again. */
  retrans: boolean;
  /** Delivery-rate stamps of the latest transmission (delivery-rate.ts). */
  deliveredAtSend: number;
  deliveredTimeAtSend: number;
  firstSentTimeAtSend: number;
  appLimitedAtSend: boolean;
  /** Transmission-time list (only segments neither SACKed nor acknowledged are in it). */
  older: SentSegment | undefined;
  newer: SentSegment | undefined;
}

function length(s: SentSegment): number {
  return seqDiff(s.end, s.start);
}

export class Scoreboard {
  private segs: SentSegment[] = [];
  private head = 0;
  private oldest: SentSegment | undefined;
  private newest: SentSegment | undefined;
  /** Lowest start of a segment marked lost and not retransmitted since (a search hint). */
  private lostHint: number | undefined;
  private transmissions = 0;
  outBytes = 0;
  sackedBytes = 0;
  lostBytes = 0;
  retransBytes = 0;
  sackedSegments = 0;
  /** Segments marked lost and not retransmitted since (waiting to be sent again). */
  pendingLost = 0;

  /** RFC 6675 pipe: bytes sent and believed still in the network. */
  get pipe(): number {
    return this.outBytes - this.sackedBytes - this.lostBytes + this.retransBytes;
  }

  get count(): number {
    return this.segs.length - this.head;
  }

  first(): SentSegment | undefined {
    return this.segs[this.head];
  }

  last(): SentSegment | undefined {
    return this.segs.length > this.head ? this.segs[this.segs.length - 1] : undefined;
  }

  /** The highest segment not SACKed (what a tail loss probe resends). */
  lastUnsacked(): SentSegment | undefined {
    for (let i = this.segs.length - 1; i >= this.head; i--) if (!this.segs[i].sacked) return this.segs[i];
    return undefined;
  }

  /**
   * Among the segments a cumulative ACK up to `una` covers (not SACKed before), the last sent one
   * whose delivered transmission is known (`unambiguous`): its send time gives an exact RTT sample.
   */
  latestUnambiguousUpTo(una: number, unambiguous: (seg: SentSegment) => boolean): SentSegment | undefined {
    let latest: SentSegment | undefined;
    for (let i = this.head; i < this.segs.length && seqLe(this.segs[i].end, una); i++) {
      const seg = this.segs[i];
      if (!seg.sacked && (!latest || seg.sentAt > latest.sentAt) && unambiguous(seg)) latest = seg;
    }
    return latest;
  }

  /** The oldest transmission still in flight or lost (RACK walks from here through `newer`). */
  oldestSent(): SentSegment | undefined {
    return this.oldest;
  }

  /** A new segment was sent. */
  sent(start: number, end: number, now: number, tsval: number): SentSegment {
    const seg: SentSegment = {
      start, end, sentAt: now, tsval, order: ++this.transmissions, xmits: 1, sacked: false, lost: false, retrans: false,
      deliveredAtSend: 0, deliveredTimeAtSend: 0, firstSentTimeAtSend: 0, appLimitedAtSend: false, older: undefined, newer: undefined,
    };
    this.segs.push(seg);
    this.outBytes += length(seg);
    this.append(seg);
    return seg;
  }

  /** A segment was sent again (lost or not: a tail probe resends one that is merely late). */
  retransmitted(seg: SentSegment, now: number, tsval: number): void {
    seg.xmits++;
    seg.order = ++this.transmissions;
    seg.sentAt = now;
    seg.tsval = tsval;
    if (!seg.retrans) {
      if (seg.lost) this.pendingLost--;
      seg.retrans = true;
      this.retransBytes += length(seg);
    }
    this.unlink(seg);
    this.append(seg);
  }

  /**
   * Loss detection concluded the segment's latest transmission is gone. A lost segment stays
   * lost (out of pipe) until delivered; its retransmission counts in pipe while in flight, as in
   * RFC 6675 (and Linux's LOST and RETRANS marks).
   */
  markLost(seg: SentSegment): boolean {
    if (seg.sacked || (seg.lost && !seg.retrans)) return false;
    if (!seg.lost) {
      seg.lost = true;
      this.lostBytes += length(seg);
    }
    if (seg.retrans) {
      seg.retrans = false;
      this.retransBytes -= length(seg);
    }
    this.pendingLost++;
    if (this.lostHint === undefined || seqLt(seg.start, this.lostHint)) this.lostHint = seg.start;
    return true;
  }

  /** The lowest segment marked lost and not yet retransmitted. */
  nextLost(): SentSegment | undefined {
    if (this.pendingLost === 0) return undefined;
    let i = this.lostHint === undefined ? this.head : Math.max(this.head, this.indexAt(this.lostHint));
    for (; i < this.segs.length; i++) {
      const seg = this.segs[i];
      if (seg.lost && !seg.retrans) {
        this.lostHint = seg.start;
        return seg;
      }
    }
    this.lostHint = undefined;
    return undefined;
  }

  /** Cumulative ACK up to `una`: drops covered segments; returns those not SACKed before (newly delivered). */
  ackTo(una: number): SentSegment[] {
    const delivered: SentSegment[] = [];
    while (this.head < this.segs.length) {
      const seg = this.segs[this.head];
      if (seqLe(seg.end, una)) {
        if (!seg.sacked) delivered.push(seg);
        this.forget(seg);
        this.head++;
        continue;
      }
      if (seqLt(seg.start, una)) this.trimFront(seg, una); // an ACK inside a segment (a resized retransmission by the phone's view)
      break;
    }
    if (this.head > 1024 && this.head * 2 > this.segs.length) {
      this.segs = this.segs.slice(this.head);
      this.head = 0;
    }
    return delivered;
  }

  /** Marks the segments fully inside the blocks as SACKed; returns those newly SACKed. */
  sack(blocks: SackBlock[]): SentSegment[] {
    const newly: SentSegment[] = [];
    for (const [start, end] of blocks) {
      for (let i = this.indexAt(start); i < this.segs.length; i++) {
        const seg = this.segs[i];
        if (seqGe(seg.start, end)) break;
        if (seg.sacked || seqLt(seg.start, start) || seqGt(seg.end, end)) continue;
        this.markSacked(seg);
        newly.push(seg);
      }
    }
    return newly;
  }

  /** After a timeout: every segment not SACKed is lost (and must be sent again). */
  markAllLost(): void {
    for (let i = this.head; i < this.segs.length; i++) this.markLost(this.segs[i]);
  }

  /** SACK reneging (the phone dropped data it had SACKed): forget every SACK mark. */
  clearSacks(): void {
    for (let i = this.head; i < this.segs.length; i++) {
      const seg = this.segs[i];
      if (!seg.sacked) continue;
      seg.sacked = false;
      this.sackedBytes -= length(seg);
      this.sackedSegments--;
      this.append(seg);
    }
  }

  /** Clears loss marks not yet acted on (an undo found the losses were reordering). */
  unmarkLost(): void {
    for (let i = this.head; i < this.segs.length && this.pendingLost > 0; i++) {
      const seg = this.segs[i];
      if (!seg.lost) continue;
      seg.lost = false;
      this.lostBytes -= length(seg);
      if (!seg.retrans) this.pendingLost--;
    }
    this.lostHint = undefined;
  }

  /** The segment holding `seq`, if it is still on the board. */
  segmentAt(seq: number): SentSegment | undefined {
    const i = this.indexAt(seq);
    const seg = this.segs[i];
    return seg && seqLe(seg.start, seq) && seqLt(seq, seg.end) ? seg : undefined;
  }

  private markSacked(seg: SentSegment): void {
    if (seg.lost) {
      seg.lost = false;
      this.lostBytes -= length(seg);
      if (!seg.retrans) this.pendingLost--;
    }
    if (seg.retrans) {
      seg.retrans = false;
      this.retransBytes -= length(seg);
    }
    seg.sacked = true;
    this.sackedBytes += length(seg);
    this.sackedSegments++;
    this.unlink(seg);
  }

  /** Removes an acknowledged segment from every count and list. */
  private forget(seg: SentSegment): void {
    const len = length(seg);
    this.outBytes -= len;
    if (seg.sacked) {
      this.sackedBytes -= len;
      this.sackedSegments--;
    }
    if (seg.lost) {
      this.lostBytes -= len;
      if (!seg.retrans) this.pendingLost--;
    }
    if (seg.retrans) this.retransBytes -= len;
    this.unlink(seg);
  }

  private trimFront(seg: SentSegment, una: number): void {
    const cut = seqDiff(una, seg.start);
    this.outBytes -= cut;
    if (seg.sacked) this.sackedBytes -= cut;
    if (seg.lost) this.lostBytes -= cut;
    if (seg.retrans) this.retransBytes -= cut;
    seg.start = una;
  }

  /** Index of the first segment ending after `seq` (binary search; segments are in sequence order). */
  private indexAt(seq: number): number {
    let lo = this.head;
    let hi = this.segs.length;
    const base = this.segs[this.head]?.start ?? seq;
    const target = seqDiff(seq, base);
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seqDiff(this.segs[mid].end, base) <= target) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private append(seg: SentSegment): void {
    seg.older = this.newest;
    seg.newer = undefined;
    if (this.newest) this.newest.newer = seg;
    else this.oldest = seg;
    this.newest = seg;
  }

  private unlink(seg: SentSegment): void {
    if (seg.older) seg.older.newer = seg.newer;
    else if (this.oldest === seg) this.oldest = seg.newer;
    else return; // not in the list
    if (seg.newer) seg.newer.older = seg.older;
    else this.newest = seg.older;
    seg.older = seg.newer = undefined;
  }
}
