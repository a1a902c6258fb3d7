/**
 * Loss recovery for the data we send to the phone, as a modern kernel does it, from each ACK:
 *  - SACK scoreboard (RFC 6675) fed by the phone's SACK blocks; D-SACK blocks (RFC 2883) told
 *    apart and used to undo a congestion response that proves spurious and to widen RACK's
 *    reordering window;
 *  - loss detection by RACK (RFC 8985) when the phone does SACK (all phones do), by three
 *    duplicate ACKs and partial ACKs (RFC 6582) when it does not;
 *  - Tail Loss Probe (RFC 8985 section 7): a lost tail is repaired by a probe after two RTTs
 *    instead of a retransmission timeout, and a probe that repaired a loss still reduces the window;
 *  - one congestion response per recovery episode: with CUBIC (congestion.ts) a reduction paced by
 *    Proportional Rate Reduction (RFC 6937); with BBR (bbr.ts, the default) its own model, fed by
 *    delivery-rate samples (delivery-rate.ts);
 *  - undo (Linux's, after RFC 3522 and RFC 2883): when every retransmission of an episode is
 *    reported duplicate by D-SACK, or an ACK's timestamp echo shows the originals arrived, the
 *    window is restored.
 * It keeps no bytes and no timers: the connection sends what it is told and asks when to wake up.
 */
import type { SackBlock } from '../types';
import type { TcpConnectionStats } from './connection-types';
import { Bbr } from './bbr';
import { CongestionAlgorithm, CongestionControl, Cubic } from './congestion';
import { DeliveryRate } from './delivery-rate';
import { Rack } from './rack';
import { Scoreboard, SentSegment } from './scoreboard';
import { seqDiff, seqGe, seqGt, seqLe, seqLt } from './seq';

export type RecoveryMode = 'open' | 'recovery' | 'loss';

/** What one ACK from the phone says, after the connection checked it is acceptable. */
export interface AckInput {
  /** SND.UNA after this ACK (its ACK field, or SND.UNA for an ACK overtaken by a later one). */
  una: number;
  /** The segment's own ACK field: a D-SACK is told apart against it (RFC 2883). */
  ackField: number;
  prevUna: number;
  /** Highest sequence number sent (SND.MAX). */
  sndMax: number;
  sack: SackBlock[] | undefined;
  tsecr: number | undefined;
  /** RFC 5681 duplicate ACK (no data, no window change, nothing new acknowledged). */
  duplicate: boolean;
  now: number;
  srtt: number | undefined;
  /** The largest window the phone has offered (bounds how old a D-SACK may be). */
  maxWindow: number;
}

/** The connection's counters this module keeps. */
export type RecoveryStats = Pick<TcpConnectionStats, 'fastRetransmits' | 'spuriousRetransmissions' | 'undos' | 'tailLossProbes'>;

/** RFC 8985 7.2: worst-case delayed ACK time added to a probe timeout for a single segment in flight. */
const WC_DEL_ACK_MS = 200;

export class LossRecovery {
  readonly board = new Scoreboard();
  readonly rack = new Rack();
  readonly cc: CongestionControl;
  readonly rate = new DeliveryRate();
  mode: RecoveryMode = 'open';
  /** Time (ms) until RACK's reordering timer should look again (0: nothing waiting). */
  reorderWaitMs = 0;
  /** Recovery point: the episode ends when this is cumulatively acknowledged. */
  private recover = 0;
  private prrDelivered = 0;
  private prrOut = 0;
  private recoverFs = 1;
  /** Undo state of the current episode: SND.UNA at its start, retransmissions not yet known spurious, first retransmission's TSval. */
  private undoMarker: number | undefined;
  private undoRetrans = 0;
  private undoTsval: number | undefined;
  private rtoEpisodeReduced = false;
  private tlpEndSeq: number | undefined;
  private tlpIsRetrans = false;
  private tlpSeg: { start: number; end: number } | undefined;
  private dupAcks = 0;

  constructor(
    private readonly mss: () => number,
    private readonly sackEnabled: () => boolean,
    private readonly tsEnabled: () => boolean,
    private readonly stats: RecoveryStats,
    algorithm: CongestionAlgorithm = 'bbr',
    random: () => number = Math.random,
  ) {
    this.cc = algorithm === 'cubic' ? new Cubic(mss) : new Bbr(mss, random);
  }

  get cwnd(): number {
    return this.cc.cwnd;
  }

  /** Bytes the congestion window lets us send now (may be negative). */
  get quota(): number {
    return this.cc.cwnd - this.board.pipe;
  }

  /** The ACK's effect on the scoreboard, loss detection and the window. */
  onAck(a: AckInput): void {
    const sackedBefore = this.board.sackedBytes;
    const pipeBefore = this.board.pipe;
    let blocks = this.sackEnabled() && a.sack ? validBlocks(a.sack, a.una, a.sndMax, a.maxWindow) : [];
    let dsack = false;
    if (blocks.length && isDsack(blocks, a.ackField)) {
      dsack = true;
      this.onDsack(blocks[0], a);
      blocks = blocks.slice(1);
    }
    const acked = this.board.ackTo(a.una);
    const sacked = this.board.sack(blocks).sort((x, y) => seqDiff(x.start, y.start));
    for (const seg of acked) this.delivered(seg, a);
    for (const seg of sacked) this.delivered(seg, a);
    const advanced = seqGt(a.una, a.prevUna);
    const delivered = seqDiff(a.una, a.prevUna) + (this.board.sackedBytes - sackedBefore);

    if (advanced && this.undoPossible() && this.tsEnabled() && this.undoTsval !== undefined && a.tsecr && seqLt(a.tsecr, this.undoTsval)) {
      // The ACK echoes a timestamp from before our first retransmission: the originals arrived.
      if (this.mode === 'loss' || (this.mode === 'recovery' && seqGe(a.una, this.recover))) this.undo(true);
    }
    this.checkTailProbe(a, dsack);

    if (this.mode !== 'open' && seqGe(a.una, this.recover)) this.endEpisode();
    const lost = this.detectLosses(a, advanced);

    if (this.mode === 'recovery' && this.cc.usesPrr) this.proportionalRateReduction(delivered);
    const rs = this.rate.take(a.now, this.rack.minRtt, lost);
    this.cc.onAck({ now: a.now, rs, pipeBefore, pipe: this.board.pipe, delivered: this.rate.delivered, srtt: a.srtt, mode: this.mode });
  }

  /** New data went out. */
  onSent(start: number, end: number, now: number, tsval: number): SentSegment {
    if (this.mode === 'recovery') this.prrOut += seqDiff(end, start);
    const pipeBefore = this.board.pipe;
    const seg = this.board.sent(start, end, now, tsval);
    this.rate.onSend(seg, now, pipeBefore);
    return seg;
  }

  /** A segment went out again (a repair of a detected loss, a timeout's, or a tail probe). */
  onRetransmitted(seg: SentSegment, now: number, tsval: number): void {
    if (this.mode === 'recovery') {
      this.prrOut += seqDiff(seg.end, seg.start);
      if (seg.lost) this.stats.fastRetransmits++;
    }
    if (this.undoMarker !== undefined && this.mode !== 'open') {
      this.undoRetrans++;
      this.undoTsval ??= tsval;
    }
    const pipeBefore = this.board.pipe;
    this.board.retransmitted(seg, now, tsval);
    this.rate.onSend(seg, now, pipeBefore);
  }

  /** The retransmission timer expired: everything not SACKed is lost, slow start from one segment. */
  onTimeout(una: number, sndMax: number): void {
    const first = this.mode === 'open' || (this.mode === 'loss' && !this.rtoEpisodeReduced);
    if (this.mode === 'open') this.startUndo(una);
    this.cc.onTimeout(first);
    this.rtoEpisodeReduced = true;
    this.mode = 'loss';
    this.recover = sndMax;
    this.dupAcks = 0;
    this.tlpEndSeq = undefined;
    // The phone dropped data it had SACKed (reneging): the SACK marks cannot be trusted.
    if (this.board.first()?.sacked) this.board.clearSacks();
    this.board.markAllLost();
    this.reorderWaitMs = 0;
  }

  /** The reordering timer fired: RACK looks again with the time that passed. */
  onReorderTimer(a: { una: number; sndMax: number; now: number; srtt: number | undefined }): void {
    this.reorderWaitMs = 0;
    const lost = this.runRack(a.now, a.srtt);
    if (lost > 0 && this.mode === 'open') this.enterRecovery(a.una, a.sndMax);
  }

  /** Whether a tail loss probe may be scheduled now (RFC 8985 7.2). */
  probeAllowed(): boolean {
    return this.sackEnabled() && this.mode === 'open' && this.tlpEndSeq === undefined && this.board.count > 0;
  }

  /** The probe timeout (RFC 8985 7.2). */
  probeTimeout(srtt: number | undefined): number {
    if (srtt === undefined) return 1000;
    return 2 * srtt + (this.board.count === 1 ? WC_DEL_ACK_MS : 0);
  }

  /** A probe was sent: new data, or the last segment again. */
  onProbeSent(sndMax: number, retransmitted: SentSegment | undefined): void {
    this.stats.tailLossProbes++;
    this.tlpEndSeq = sndMax;
    this.tlpIsRetrans = retransmitted !== undefined;
    this.tlpSeg = retransmitted ? { start: retransmitted.start, end: retransmitted.end } : undefined;
  }

  private delivered(seg: SentSegment, a: AckInput): void {
    this.rack.onDelivered(seg, a.now);
    this.rack.checkReordering(seg);
    this.rate.onDelivered(seg, a.now);
  }

  private onDsack(block: SackBlock, a: AckInput): void {
    this.stats.spuriousRetransmissions++;
    this.rack.onDsack(a.una, a.sndMax);
    if (this.tlpEndSeq !== undefined && this.tlpIsRetrans && this.tlpSeg && seqLe(block[0], this.tlpSeg.start) && seqGe(block[1], this.tlpSeg.end)) {
      this.tlpEndSeq = undefined; // the probe and the original both arrived: no loss
      return;
    }
    if (this.undoMarker === undefined || seqLt(block[0], this.undoMarker)) return;
    this.undoRetrans -= Math.max(1, Math.round(seqDiff(block[1], block[0]) / this.mss()));
    if (this.undoRetrans <= 0 && this.undoPossible()) this.undo(false);
  }

  private checkTailProbe(a: AckInput, dsack: boolean): void {
    if (this.tlpEndSeq === undefined || seqLt(a.una, this.tlpEndSeq)) return;
    const end = this.tlpEndSeq;
    this.tlpEndSeq = undefined;
    if (!this.tlpIsRetrans || dsack) return;
    // The probe repaired a loss nobody detected: react as to a loss, once (RFC 8985 7.4.2).
    if ((seqGt(a.una, end) || (a.una === end && !a.duplicate)) && this.mode === 'open') this.cc.onTailLossRepaired();
  }

  /** Marks lost segments (RACK, or duplicate ACKs without SACK); returns how many. */
  private detectLosses(a: AckInput, advanced: boolean): number {
    let lost = 0;
    if (this.sackEnabled()) {
      lost = this.runRack(a.now, a.srtt);
    } else {
      // Without SACK: the third duplicate ACK, or a partial ACK in recovery, says the first segment is lost.
      if (advanced) this.dupAcks = 0;
      else if (a.duplicate) this.dupAcks++;
      const first = this.board.first();
      const partial = advanced && this.mode !== 'open';
      if (first && (this.dupAcks === 3 || partial) && this.board.markLost(first)) lost = 1;
    }
    if (lost > 0 && this.mode === 'open') this.enterRecovery(a.una, a.sndMax);
    return lost;
  }

  private runRack(now: number, srtt: number | undefined): number {
    const reoWnd = this.rack.reoWnd(this.mode !== 'open', this.board.sackedSegments, srtt);
    const { lost, waitMs } = this.rack.detectLoss(this.board, now, reoWnd);
    this.reorderWaitMs = waitMs;
    return lost.length;
  }

  private enterRecovery(una: number, sndMax: number): void {
    this.startUndo(una);
    // A tail probe still in flight will be D-SACKed if it was needless: count it with this episode.
    if (this.tlpEndSeq !== undefined && this.tlpIsRetrans) this.undoRetrans++;
    this.cc.onRecoveryStart();
    this.mode = 'recovery';
    this.recover = sndMax;
    this.prrDelivered = 0;
    this.prrOut = 0;
    this.recoverFs = Math.max(seqDiff(sndMax, una), 1);
  }

  /** RFC 6937: how much may go out for this ACK; the window becomes pipe + that. */
  private proportionalRateReduction(delivered: number): void {
    const mss = this.mss();
    const ssthresh = this.cc.ssthresh;
    const pipe = this.board.pipe;
    this.prrDelivered += delivered;
    let sndcnt: number;
    if (pipe > ssthresh) {
      sndcnt = Math.ceil((this.prrDelivered * ssthresh) / this.recoverFs) - this.prrOut;
    } else {
      // Slow start back up to ssthresh, but no faster than what the ACKs deliver (PRR-SSRB).
      const limit = Math.max(this.prrDelivered - this.prrOut, delivered) + mss;
      sndcnt = Math.min(ssthresh - pipe, limit);
    }
    // The first retransmission of an episode always goes out (fast retransmit).
    sndcnt = Math.max(sndcnt, this.prrOut === 0 && this.board.pendingLost > 0 ? mss : 0);
    this.cc.cwnd = pipe + sndcnt;
  }

  private endEpisode(): void {
    this.cc.onRecoveryEnd(this.mode);
    this.mode = 'open';
    this.rtoEpisodeReduced = false;
    this.rack.onRecoveryEnd();
  }

  private startUndo(una: number): void {
    this.undoMarker = una;
    this.undoRetrans = 0;
    this.undoTsval = undefined;
  }

  private undoPossible(): boolean {
    return this.undoMarker !== undefined;
  }

  /** The episode's congestion response was spurious: restore the window (and forget loss marks). */
  private undo(unmarkLost: boolean): void {
    this.cc.undo();
    this.stats.undos++;
    if (unmarkLost) this.board.unmarkLost();
    this.undoMarker = undefined;
    if (this.mode !== 'open') {
      this.mode = 'open';
      this.rtoEpisodeReduced = false;
      this.rack.onRecoveryEnd();
    }
  }
}

/**
 * SACK blocks worth believing: start before end, nothing beyond what we sent, and nothing older
 * than the largest window before SND.UNA (a D-SACK may report data just below it). A hostile phone
 * can only make us retransmit less eagerly or sooner, never act on ranges we never sent.
 */
export function validBlocks(blocks: SackBlock[], una: number, sndMax: number, maxWindow: number): SackBlock[] {
  const floor = (una - Math.max(maxWindow, 65535)) >>> 0;
  return blocks.filter(([start, end]) => seqLt(start, end) && seqLe(end, sndMax) && seqGe(start, floor)).slice(0, 4);
}

/** RFC 2883: the first block is a D-SACK when it lies below the cumulative ACK or inside the second block. */
export function isDsack(blocks: SackBlock[], una: number): boolean {
  const [first, second] = blocks;
  if (seqLe(first[1], una)) return true;
  return second !== undefined && seqGe(first[0], second[0]) && seqLe(first[1], second[1]);
}
