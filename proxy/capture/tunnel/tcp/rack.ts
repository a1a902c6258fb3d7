/**
 * RACK (RFC 8985 section 6): loss detection by time instead of by counting duplicate ACKs. A
 * segment is lost when a segment sent after it was delivered and more than one RTT plus a
 * reordering window has passed since it was sent. On a Wi-Fi link that reorders, three duplicate
 * ACKs mean nothing; a later-sent segment arriving RTT + reo_wnd later does. The reordering window
 * starts at a quarter of the minimum RTT once reordering was seen (zero before, so a plain loss is
 * repaired at once), grows with each round trip that brings a D-SACK (a retransmission that was
 * not needed) up to SRTT, and shrinks back after 16 recoveries without one.
 */
import type { Scoreboard, SentSegment } from './scoreboard';
import { seqGe, seqGt, seqLt } from './seq';

/** Minimum RTT filter window (Linux: 5 minutes). */
const MIN_RTT_WINDOW_MS = 300_000;
/** Recoveries after the last D-SACK before the window returns to its base (RFC 8985: 16). */
const REO_WND_PERSIST = 16;
/** Segments SACKed above a hole that count as a loss when no reordering was seen (DupThresh). */
const DUP_THRESH = 3;

/**
 * Whether transmission (t1, order1) happened after (t2, order2). RFC 8985 breaks ties of time by
 * sequence number, which is wrong for a retransmission sent in the same clock tick after new data;
 * the transmission order is exact.
 */
export function sentAfter(t1: number, order1: number, t2: number, order2: number): boolean {
  return t1 > t2 || (t1 === t2 && order1 > order2);
}

export class Rack {
  /** The most recently sent segment delivered (acknowledged or SACKed): its send time and transmission order. */
  xmitTs = -Infinity;
  xmitOrder = 0;
  /** RTT of that segment's latest transmission (ms). */
  rtt = 0;
  minRtt = Infinity;
  private minRttAt = -Infinity;
  reorderingSeen = false;
  /** Highest end sequence number delivered so far (RFC 8985 RACK.fack). */
  private fack = 0;
  private hasFack = false;
  reoWndMult = 1;
  private reoWndPersist = 0;
  /** Set to snd.nxt when a D-SACK grew the window: one increase per round trip. */
  private dsackRound: number | undefined;

  /**
   * RFC 8985 6.2 step 2: a segment was delivered by this ACK. For a retransmitted one it is
   * ambiguous which transmission arrived: an ACK sooner than the minimum RTT after the
   * retransmission is taken for the original's. (RFC 8985 also compares the timestamp echo with the
   * retransmission's TSval; as in Linux, that test is left out: a receiver echoes the segment at
   * its left edge, so while a hole lasts every SACK of a retransmission would look like the
   * original's, and a lost retransmission would never be detected.)
   */
  onDelivered(seg: SentSegment, now: number): void {
    const rtt = now - seg.sentAt;
    if (seg.xmits > 1 && rtt < this.minRtt) return;
    this.sampleMinRtt(rtt, now);
    this.rtt = rtt;
    if (sentAfter(seg.sentAt, seg.order, this.xmitTs, this.xmitOrder)) {
      this.xmitTs = seg.sentAt;
      this.xmitOrder = seg.order;
    }
  }

  /** RFC 8985 6.2 step 3: delivered below the highest delivered sequence and never resent: reordering. */
  checkReordering(seg: SentSegment): void {
    if (!this.hasFack || seqGt(seg.end, this.fack)) {
      this.fack = seg.end;
      this.hasFack = true;
    } else if (seg.xmits === 1 && seqLt(seg.end, this.fack)) {
      this.reorderingSeen = true;
    }
  }

  /** RFC 8985 6.2 step 4: a D-SACK arrived (at most one increase per round trip). */
  onDsack(sndUna: number, sndNxt: number): void {
    if (this.dsackRound !== undefined && seqGe(sndUna, this.dsackRound)) this.dsackRound = undefined;
    if (this.dsackRound === undefined) {
      this.dsackRound = sndNxt;
      this.reoWndMult++;
      this.reoWndPersist = REO_WND_PERSIST;
    }
  }

  /** A loss recovery ended: after 16 of them without a D-SACK the window returns to its base. */
  onRecoveryEnd(): void {
    if (this.reoWndPersist > 0 && --this.reoWndPersist === 0) this.reoWndMult = 1;
  }

  /** RFC 8985 6.2 step 4: the reordering window now (ms). */
  reoWnd(inRecovery: boolean, sackedSegments: number, srtt: number | undefined): number {
    if (!this.reorderingSeen && (inRecovery || sackedSegments >= DUP_THRESH)) return 0;
    const base = Number.isFinite(this.minRtt) ? this.minRtt / 4 : 0;
    return Math.min(this.reoWndMult * base, srtt ?? Infinity);
  }

  /**
   * RFC 8985 6.2 step 5: marks lost every segment in flight sent before the RACK segment whose
   * RTT plus reordering window has passed; returns the segments marked and the time (ms) until the
   * next one would expire (0 when none is waiting), for the reordering timer.
   */
  detectLoss(board: Scoreboard, now: number, reoWnd: number): { lost: SentSegment[]; waitMs: number } {
    const lost: SentSegment[] = [];
    let waitMs = 0;
    for (let seg = board.oldestSent(); seg; ) {
      const next = seg.newer;
      if (seg.lost && !seg.retrans) {
        seg = next;
        continue; // already waiting for its retransmission
      }
      if (!sentAfter(this.xmitTs, this.xmitOrder, seg.sentAt, seg.order)) break;
      const remaining = seg.sentAt + this.rtt + reoWnd - now;
      if (remaining <= 0) {
        if (board.markLost(seg)) lost.push(seg);
      } else {
        waitMs = Math.max(waitMs, remaining);
      }
      seg = next;
    }
    return { lost, waitMs };
  }

  private sampleMinRtt(rtt: number, now: number): void {
    if (rtt <= this.minRtt || now - this.minRttAt > MIN_RTT_WINDOW_MS) {
      this.minRtt = rtt;
      this.minRttAt = now;
    }
  }
}
