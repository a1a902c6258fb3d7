/**
 * Congestion control for the data we send to the phone: the interface recovery.ts drives (BBR in
 * bbr.ts, or CUBIC here), and CUBIC (RFC 9438), the default of Linux, Android and macOS: slow start
 * from ten segments (RFC 6928), a cubic window growth after a reduction to 0.7 of the window (with
 * fast convergence and the Reno-friendly region), and growth only while the window is what limits
 * sending (RFC 7661). CUBIC's sending during recovery is PRR in recovery.ts; this module says what
 * the window is and becomes. A reduction can be undone when it proves spurious (D-SACK,
 * timestamps): undo() restores it.
 */
import type { RateSample } from './delivery-rate';
import type { RecoveryMode } from './recovery';

/** What one ACK tells the congestion control. */
export interface CongestionEvent {
  now: number;
  rs: RateSample;
  /** Bytes in flight before and after the ACK. */
  pipeBefore: number;
  pipe: number;
  /** Bytes delivered since the start of the connection. */
  delivered: number;
  srtt: number | undefined;
  /** The loss recovery state after the ACK. */
  mode: RecoveryMode;
}

export interface CongestionControl {
  readonly algorithm: CongestionAlgorithm;
  cwnd: number;
  ssthresh: number;
  /** Bytes per millisecond the sender paces at; 0 for no pacing. */
  readonly pacingRate: number;
  /** Set by the sender: the last sending opportunity used the whole window. */
  cwndLimited: boolean;
  /** Whether recovery.ts paces recovery with PRR (CUBIC) or the algorithm sets the window itself (BBR). */
  readonly usesPrr: boolean;
  readonly inSlowStart: boolean;
  start(srtt: number | undefined): void;
  onAck(e: CongestionEvent): void;
  /** Fast recovery starts (a loss was detected). */
  onRecoveryStart(): void;
  /** A recovery episode ended normally. */
  onRecoveryEnd(mode: RecoveryMode): void;
  onTimeout(firstOfEpisode: boolean): void;
  /** The response since the last recovery start or timeout proved spurious. */
  undo(): void;
  /** A tail loss probe repaired a loss nobody detected (RFC 8985 7.4.2). */
  onTailLossRepaired(): void;
}

export type CongestionAlgorithm = 'bbr' | 'cubic';

const BETA = 0.7;
const C = 0.4;
/** Reno-friendly additive increase for BETA (RFC 9438 4.3: 3 * (1 - beta) / (1 + beta)). */
const ALPHA = (3 * (1 - BETA)) / (1 + BETA);
const INITIAL_WINDOW_SEGMENTS = 10;
const MAX_CWND = 64 * 1024 * 1024;

interface CubicState {
  cwnd: number;
  ssthresh: number;
  wMax: number;
  k: number;
  epochStart: number | undefined;
  wEst: number;
}

export class Cubic implements CongestionControl {
  readonly algorithm = 'cubic';
  readonly usesPrr = true;
  readonly pacingRate = 0;
  cwnd = 0;
  ssthresh = Infinity;
  /** Window (segments) before the last reduction, and the time (s) the cubic takes to reach it again. */
  private wMax = 0;
  private k = 0;
  private epochStart: number | undefined;
  /** Reno-friendly window estimate (segments). */
  private wEst = 0;
  private saved: CubicState | undefined;
  /** Whether the last sending opportunity used the whole window (growth is allowed only then). */
  cwndLimited = false;

  constructor(private readonly mss: () => number) {}

  start(): void {
    this.cwnd = INITIAL_WINDOW_SEGMENTS * this.mss();
  }

  onRecoveryStart(): void {
    this.onCongestion();
  }

  onRecoveryEnd(mode: RecoveryMode): void {
    if (mode === 'recovery') this.cwnd = this.ssthresh; // RFC 6937: PRR ends at ssthresh
  }

  onTailLossRepaired(): void {
    this.onCongestion();
    this.cwnd = this.ssthresh;
  }

  get inSlowStart(): boolean {
    return this.cwnd < this.ssthresh;
  }

  /** Window growth from the bytes an ACK delivered, outside of fast recovery (PRR's time). */
  onAck(e: CongestionEvent): void {
    const delivered = e.rs.newlyDelivered;
    const now = e.now;
    const rttMs = e.srtt ?? 100;
    if (e.mode === 'recovery' || !this.cwndLimited || delivered <= 0) return;
    const mss = this.mss();
    if (this.inSlowStart) {
      this.cwnd = Math.min(this.cwnd + delivered, MAX_CWND);
      return;
    }
    const w = this.cwnd / mss;
    if (this.epochStart === undefined) {
      this.epochStart = now;
      this.k = this.wMax > w ? Math.cbrt((this.wMax - w) / C) : 0;
      if (this.wMax < w) this.wMax = w;
      this.wEst = w;
    }
    const t = (now - this.epochStart) / 1000;
    const rtt = rttMs / 1000;
    const target = Math.min(Math.max(this.wCubic(t + rtt), w), 1.5 * w);
    const acked = delivered / mss;
    this.wEst += (ALPHA * acked) / w;
    let next: number;
    if (this.wCubic(t) < this.wEst) next = this.wEst; // Reno-friendly region
    else next = w + ((target - w) / w) * acked;
    this.cwnd = Math.min(Math.max(next * mss, this.cwnd), MAX_CWND);
  }

  /** A loss was detected: the window's reduction (applied by PRR), revocable by undo(). */
  private onCongestion(): void {
    this.save();
    this.reduce();
  }

  /** The retransmission timer expired: slow start again from one segment. */
  onTimeout(firstOfEpisode: boolean): void {
    if (firstOfEpisode) {
      this.save();
      this.reduce();
    }
    this.cwnd = this.mss();
  }

  /** The reduction since the last onCongestion/onTimeout was spurious: restore what it replaced. */
  undo(): void {
    const s = this.saved;
    if (!s) return;
    this.cwnd = Math.max(this.cwnd, s.cwnd);
    this.ssthresh = Math.max(this.ssthresh, s.ssthresh);
    this.wMax = s.wMax;
    this.k = s.k;
    this.epochStart = s.epochStart;
    this.wEst = s.wEst;
    this.saved = undefined;
  }

  private reduce(): void {
    const mss = this.mss();
    const w = this.cwnd / mss;
    // Fast convergence: below the last maximum, release more bandwidth to newer flows.
    this.wMax = w < this.wMax ? (w * (1 + BETA)) / 2 : w;
    this.ssthresh = Math.max(Math.floor(w * BETA) * mss, 2 * mss);
    this.epochStart = undefined;
  }

  private save(): void {
    this.saved = { cwnd: this.cwnd, ssthresh: this.ssthresh, wMax: this.wMax, k: this.k, epochStart: this.epochStart, wEst: this.wEst };
  }

  private wCubic(t: number): number {
    return C * (t - this.k) ** 3 + this.wMax;
  }
}
