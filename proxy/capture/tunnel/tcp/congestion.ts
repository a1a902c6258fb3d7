/**
 * Congestion control for the data we send to the phone: CUBIC (RFC 9438), the default of Linux,
 * Android and macOS, so phonehome shares a Wi-Fi with the phone's other traffic the way the
 * laptop's own kernel would. Slow start from ten segments (RFC 6928), a cubic window growth after
 * a reduction to 0.7 of the window (with fast convergence and the Reno-friendly region), and growth
 * only while the window is what limits sending (RFC 7661). The loss reaction itself (how fast to
 * send during recovery) is PRR in recovery.ts; this module says what the window is and becomes.
 * A reduction can be undone when it proves spurious (D-SACK, timestamps): undo() restores it.
 */

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
  cwndEpoch: number;
  wEst: number;
}

export class Cubic {
  cwnd = 0;
  ssthresh = Infinity;
  /** Window (segments) before the last reduction, and the time (s) the cubic takes to reach it again. */
  private wMax = 0;
  private k = 0;
  private epochStart: number | undefined;
  private cwndEpoch = 0;
  /** Reno-friendly window estimate (segments). */
  private wEst = 0;
  private saved: CubicState | undefined;
  /** Whether the last sending opportunity used the whole window (growth is allowed only then). */
  cwndLimited = false;

  constructor(private readonly mss: () => number) {}

  start(): void {
    this.cwnd = INITIAL_WINDOW_SEGMENTS * this.mss();
  }

  get inSlowStart(): boolean {
    return this.cwnd < this.ssthresh;
  }

  /** `delivered` bytes were acknowledged or SACKed, outside of loss recovery. rtt in ms. */
  onAck(delivered: number, now: number, rttMs: number): void {
    if (!this.cwndLimited || delivered <= 0) return;
    const mss = this.mss();
    if (this.inSlowStart) {
      this.cwnd = Math.min(this.cwnd + delivered, MAX_CWND);
      return;
    }
    const w = this.cwnd / mss;
    if (this.epochStart === undefined) {
      this.epochStart = now;
      this.cwndEpoch = w;
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

  /** A loss was detected (entering fast recovery): returns the new ssthresh (bytes). */
  onCongestion(): number {
    this.save();
    this.reduce();
    return this.ssthresh;
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
    this.cwndEpoch = s.cwndEpoch;
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
    this.saved = { cwnd: this.cwnd, ssthresh: this.ssthresh, wMax: this.wMax, k: this.k, epochStart: this.epochStart, cwndEpoch: this.cwndEpoch, wEst: this.wEst };
  }

  private wCubic(t: number): number {
    return C * (t - this.k) ** 3 + this.wMax;
  }
}
