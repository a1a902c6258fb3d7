/**
 * BBR congestion control (version 1, draft-cardwell-iccrg-bbr-congestion-control-00, as Linux's
 * tcp_bbr.c): instead of reading every loss as congestion, it models the path from delivery-rate
 * samples (the bottleneck bandwidth, a windowed maximum over 10 round trips) and RTT samples (the
 * propagation delay, a windowed minimum over 10 s), paces at a gain times the bandwidth and keeps
 * about two bandwidth-delay products in flight. Random loss on a Wi-Fi (a few percent) hardly
 * slows it; loss-based CUBIC collapses there to the Mathis rate (~1.4 Mbit/s at 3% and 50 ms).
 * States: STARTUP (gain 2/ln2 until the bandwidth stops growing by 25% for three rounds), DRAIN,
 * PROBE_BW (an eight-phase gain cycle 1.25, 0.75, 1 x 6) and PROBE_RTT (four segments for 200 ms
 * when the minimum RTT is 10 s old). During loss recovery it conserves packets for a round and
 * restores its window afterwards, as Linux does. ACK aggregation (Linux since 5.1, for Wi-Fi's
 * bursts of ACKs) adds to the window the most data an ACK burst delivered beyond what the
 * bandwidth explains: here the bursts also come from our own event loop, which reads the ACKs
 * that queued while it was busy all at once.
 *
 * Like BBRv2/v3 (and unlike v1), a round trip that loses too much caps what may be in flight
 * (inflight_hi, 0.7 of the flight that lost), and the cap then grows back round by round. The
 * threshold is 10% where BBRv3's is 2%: a Wi-Fi's few percent of random loss must not read as
 * congestion, a receiver's overflowing socket buffer (measured: a busy wireguard-go dropping 10%
 * of a burst) must.
 */
import type { CongestionControl, CongestionEvent } from './congestion';

const HIGH_GAIN = 2 / Math.LN2;
const DRAIN_GAIN = 1 / HIGH_GAIN;
const CWND_GAIN = 2;
const PACING_GAIN_CYCLE = [1.25, 0.75, 1, 1, 1, 1, 1, 1];
const BW_FILTER_ROUNDS = 10;
const MIN_RTT_WINDOW_MS = 10_000;
const PROBE_RTT_MS = 200;
const FULL_BW_GROWTH = 1.25;
const FULL_BW_ROUNDS = 3;
const MIN_CWND_SEGMENTS = 4;
const INITIAL_WINDOW_SEGMENTS = 10;
/** ACK aggregation: the max filter spans two windows of five rounds; the extra is capped at 100 ms of data. */
const EXTRA_ACKED_WIN_ROUNDS = 5;
const EXTRA_ACKED_MAX_MS = 100;
const ACK_EPOCH_RESET_BYTES = 1 << 30;
/**
 * A round counts as congested when it lost over this share of its data and at least LOSS_MIN_SEGMENTS
 * segments (as BBRv2 wants several loss events before leaving startup): one loss in a ten-segment
 * round is not congestion.
 */
const LOSS_THRESH = 0.1;
const LOSS_MIN_SEGMENTS = 8;
const INFLIGHT_HI_BETA = 0.7;
/** Linux paces 1% below the estimate, so queues the gain-1 phases built drain. */
const PACING_MARGIN = 0.99;

type BbrMode = 'startup' | 'drain' | 'probe_bw' | 'probe_rtt';

/** Running maximum over the last `window` rounds (a monotonic queue of [round, value]). */
class WindowedMax {
  private entries: [number, number][] = [];
  constructor(private readonly window: number) {}

  update(round: number, value: number): void {
    while (this.entries.length && this.entries[this.entries.length - 1][1] <= value) this.entries.pop();
    this.entries.push([round, value]);
    while (this.entries[0][0] <= round - this.window) this.entries.shift();
  }

  get max(): number {
    return this.entries.length ? this.entries[0][1] : 0;
  }
}

export class Bbr implements CongestionControl {
  readonly algorithm = 'bbr';
  readonly usesPrr = false;
  cwnd = 0;
  ssthresh = Infinity;
  /** Bytes per millisecond. */
  pacingRate = 0;
  cwndLimited = false;
  mode: BbrMode = 'startup';
  private readonly bw = new WindowedMax(BW_FILTER_ROUNDS);
  private minRtt = Infinity;
  private minRttStamp = 0;
  private roundCount = 0;
  private nextRoundDelivered = 0;
  private roundStart = false;
  private fullBw = 0;
  private fullBwCount = 0;
  private fullBwReached = false;
  private pacingGain = HIGH_GAIN;
  private cwndGain = HIGH_GAIN;
  private cycleIndex = 0;
  private cycleStamp = 0;
  private probeRttDoneAt: number | undefined;
  private probeRttRoundDone = false;
  private priorCwnd = 0;
  private packetConservation = false;
  /** ACK aggregation: bytes acknowledged in the current epoch, its start, and the max extra over two windows. */
  private ackEpochAcked = 0;
  private ackEpochStart = 0;
  private readonly extraAcked = [0, 0];
  private extraAckedWinIdx = 0;
  private extraAckedWinRounds = 0;
  /** Loss-based cap on the flight (Infinity until a round loses more than LOSS_THRESH). */
  private inflightHi = Infinity;
  private roundLost = 0;
  private roundDelivered = 0;
  private roundMaxPipe = 0;
  /** Segments the cap grows by in the next round without congestion (doubling, as BBRv2's probe up). */
  private inflightHiGrowth = 1;
  private prevRecovery: 'open' | 'recovery' | 'loss' = 'open';

  constructor(
    private readonly mss: () => number,
    private readonly random: () => number = Math.random,
  ) {}

  get inSlowStart(): boolean {
    return this.mode === 'startup';
  }

  start(srtt: number | undefined): void {
    this.cwnd = INITIAL_WINDOW_SEGMENTS * this.mss();
    this.pacingRate = (HIGH_GAIN * this.cwnd) / Math.max(1, srtt ?? 1);
  }

  onAck(e: CongestionEvent): void {
    const rs = e.rs;
    this.updateBandwidth(e);
    this.updateInflightHi(e);
    this.updateAckAggregation(e);
    this.updateCyclePhase(e);
    this.checkFullBandwidth(e);
    this.checkDrain(e);
    this.updateMinRtt(e);
    this.updateGains();
    this.setPacingRate();
    this.setCwnd(e, rs.newlyDelivered);
  }

  onRecoveryStart(): void {
    this.saveCwnd();
  }

  onRecoveryEnd(): void {
    // The window is restored by the next ACK (setCwnd sees the recovery end).
  }

  onTimeout(first: boolean): void {
    if (first) this.saveCwnd();
    this.fullBw = 0;
    this.roundStart = true; // a timeout ends a round
    this.cwnd = this.mss();
    this.prevRecovery = 'loss';
  }

  /** A spurious loss response: Linux's BBR only restarts its full-bandwidth detection (the window comes back as recovery ends). */
  undo(): void {
    this.fullBw = 0;
    this.fullBwCount = 0;
  }

  onTailLossRepaired(): void {
    // BBR's window does not react to a single repaired loss (its ssthresh is infinite).
  }

  private get bandwidth(): number {
    return this.bw.max;
  }

  /** Bytes in flight that make `gain` bandwidth-delay products (the initial window without a model). */
  private inflight(gain: number): number {
    if (!Number.isFinite(this.minRtt) || this.bandwidth === 0) return INITIAL_WINDOW_SEGMENTS * this.mss();
    return gain * this.bandwidth * this.minRtt;
  }

  /** Room for the sender's bursts: three send quanta (about a millisecond of data each, two segments at least). */
  private quantizationBudget(cwnd: number): number {
    const mss = this.mss();
    const quantum = Math.min(64 * 1024, Math.max(2 * mss, this.pacingRate));
    let out = cwnd + 3 * quantum;
    if (this.mode === 'probe_bw' && this.cycleIndex === 0) out += 2 * mss;
    return out;
  }

  private updateBandwidth(e: CongestionEvent): void {
    const rs = e.rs;
    this.roundStart = false;
    if (rs.intervalMs <= 0) return;
    if (rs.priorDelivered >= this.nextRoundDelivered) {
      this.nextRoundDelivered = e.delivered;
      this.roundCount++;
      this.roundStart = true;
      this.packetConservation = false;
    }
    const bw = rs.delivered / rs.intervalMs;
    if (!rs.appLimited || bw >= this.bandwidth) this.bw.update(this.roundCount, bw);
  }

  /** Per round: too much lost caps the flight at 0.7 of what it was; a clean round lets the cap grow. */
  private updateInflightHi(e: CongestionEvent): void {
    const mss = this.mss();
    if (this.roundStart) {
      const total = this.roundLost + this.roundDelivered;
      if (this.roundLost >= LOSS_MIN_SEGMENTS * mss && this.roundLost / total > LOSS_THRESH) {
        this.inflightHi = Math.max(MIN_CWND_SEGMENTS * mss, Math.min(this.inflightHi, this.roundMaxPipe) * INFLIGHT_HI_BETA);
        this.inflightHiGrowth = 1;
        if (this.mode === 'startup') this.fullBwReached = true;
      } else if (Number.isFinite(this.inflightHi) && this.roundDelivered > 0) {
        this.inflightHi += this.inflightHiGrowth * mss;
        this.inflightHiGrowth = Math.min(this.inflightHiGrowth * 2, 1024);
        if (this.inflightHi > 4 * this.inflight(CWND_GAIN) + this.aggregationCwnd()) this.inflightHi = Infinity;
      }
      this.roundLost = 0;
      this.roundDelivered = 0;
      this.roundMaxPipe = 0;
    }
    this.roundLost += e.rs.losses * mss;
    this.roundDelivered += e.rs.newlyDelivered;
    this.roundMaxPipe = Math.max(this.roundMaxPipe, e.pipeBefore);
  }

  /** The excess of data acknowledged over what the bandwidth explains since the epoch began (an ACK burst). */
  private updateAckAggregation(e: CongestionEvent): void {
    const acked = e.rs.newlyDelivered;
    if (acked <= 0 || e.rs.intervalMs <= 0) return;
    if (this.roundStart && ++this.extraAckedWinRounds >= EXTRA_ACKED_WIN_ROUNDS) {
      this.extraAckedWinRounds = 0;
      this.extraAckedWinIdx = 1 - this.extraAckedWinIdx;
      this.extraAcked[this.extraAckedWinIdx] = 0;
    }
    let expected = this.bandwidth * (e.now - this.ackEpochStart);
    if (this.ackEpochAcked <= expected || this.ackEpochAcked + acked >= ACK_EPOCH_RESET_BYTES) {
      this.ackEpochAcked = 0;
      this.ackEpochStart = e.now;
      expected = 0;
    }
    this.ackEpochAcked += acked;
    const extra = Math.min(this.ackEpochAcked - expected, this.cwnd);
    if (extra > this.extraAcked[this.extraAckedWinIdx]) this.extraAcked[this.extraAckedWinIdx] = extra;
  }

  /** Window room for ACK bursts, once the bandwidth is known. */
  private aggregationCwnd(): number {
    if (!this.fullBwReached) return 0;
    return Math.min(Math.max(this.extraAcked[0], this.extraAcked[1]), this.bandwidth * EXTRA_ACKED_MAX_MS);
  }

  private updateCyclePhase(e: CongestionEvent): void {
    if (this.mode !== 'probe_bw') return;
    const fullLength = e.now - this.cycleStamp > this.minRtt;
    let next: boolean;
    if (this.pacingGain === 1) next = fullLength;
    else if (this.pacingGain > 1) next = fullLength && (e.rs.losses > 0 || e.pipeBefore >= this.inflight(this.pacingGain));
    else next = fullLength || e.pipeBefore <= this.inflight(1);
    if (next) {
      this.cycleIndex = (this.cycleIndex + 1) % PACING_GAIN_CYCLE.length;
      this.cycleStamp = e.now;
    }
  }

  private checkFullBandwidth(e: CongestionEvent): void {
    if (this.fullBwReached || !this.roundStart || e.rs.appLimited) return;
    if (this.bandwidth >= this.fullBw * FULL_BW_GROWTH) {
      this.fullBw = this.bandwidth;
      this.fullBwCount = 0;
      return;
    }
    if (++this.fullBwCount >= FULL_BW_ROUNDS) this.fullBwReached = true;
  }

  private checkDrain(e: CongestionEvent): void {
    if (this.mode === 'startup' && this.fullBwReached) this.mode = 'drain';
    if (this.mode === 'drain' && e.pipe <= this.inflight(1)) this.enterProbeBw(e.now);
  }

  private enterProbeBw(now: number): void {
    this.mode = 'probe_bw';
    // A random phase, never the draining one, so flows sharing a link do not probe in step.
    this.cycleIndex = (PACING_GAIN_CYCLE.length - Math.floor(this.random() * (PACING_GAIN_CYCLE.length - 1))) % PACING_GAIN_CYCLE.length;
    this.cycleStamp = now;
  }

  private updateMinRtt(e: CongestionEvent): void {
    const expired = e.now > this.minRttStamp + MIN_RTT_WINDOW_MS;
    if (e.rs.rttMs >= 0 && (e.rs.rttMs < this.minRtt || expired)) {
      this.minRtt = e.rs.rttMs;
      this.minRttStamp = e.now;
    }
    if (expired && this.mode !== 'probe_rtt' && Number.isFinite(this.minRtt)) {
      this.mode = 'probe_rtt';
      this.saveCwnd();
      this.probeRttDoneAt = undefined;
    }
    if (this.mode !== 'probe_rtt') return;
    if (this.probeRttDoneAt === undefined && e.pipe <= MIN_CWND_SEGMENTS * this.mss()) {
      this.probeRttDoneAt = e.now + PROBE_RTT_MS;
      this.probeRttRoundDone = false;
      this.nextRoundDelivered = e.delivered;
    } else if (this.probeRttDoneAt !== undefined) {
      if (this.roundStart) this.probeRttRoundDone = true;
      if (this.probeRttRoundDone && e.now >= this.probeRttDoneAt) {
        this.minRttStamp = e.now;
        this.cwnd = Math.max(this.cwnd, this.priorCwnd);
        if (this.fullBwReached) this.enterProbeBw(e.now);
        else this.mode = 'startup';
      }
    }
  }

  private updateGains(): void {
    switch (this.mode) {
      case 'startup':
        this.pacingGain = HIGH_GAIN;
        this.cwndGain = HIGH_GAIN;
        break;
      case 'drain':
        this.pacingGain = DRAIN_GAIN;
        this.cwndGain = HIGH_GAIN;
        break;
      case 'probe_bw':
        this.pacingGain = PACING_GAIN_CYCLE[this.cycleIndex];
        this.cwndGain = CWND_GAIN;
        break;
      case 'probe_rtt':
        this.pacingGain = 1;
        this.cwndGain = 1;
        break;
    }
  }

  private setPacingRate(): void {
    if (this.bandwidth === 0) return;
    const rate = this.pacingGain * this.bandwidth * PACING_MARGIN;
    if (this.fullBwReached || rate > this.pacingRate) this.pacingRate = rate;
  }

  private setCwnd(e: CongestionEvent, acked: number): void {
    const mss = this.mss();
    let cwnd = this.cwnd;
    if (acked > 0) {
      if (e.rs.losses > 0) cwnd = Math.max(cwnd - e.rs.losses * mss, mss);
      if (e.mode === 'recovery' && this.prevRecovery !== 'recovery') {
        // Entering recovery: conserve packets for one round (send as much as is delivered).
        this.packetConservation = true;
        this.nextRoundDelivered = e.delivered;
        cwnd = e.pipe + acked;
      } else if (this.prevRecovery !== 'open' && e.mode === 'open') {
        cwnd = Math.max(cwnd, this.priorCwnd);
        this.packetConservation = false;
      }
      this.prevRecovery = e.mode;
      if (this.packetConservation) {
        cwnd = Math.max(cwnd, e.pipe + acked);
      } else {
        const target = this.quantizationBudget(this.inflight(this.cwndGain) + this.aggregationCwnd());
        if (this.fullBwReached) cwnd = Math.min(cwnd + acked, target);
        else if (cwnd < target || e.delivered < INITIAL_WINDOW_SEGMENTS * mss) cwnd += acked;
        cwnd = Math.max(cwnd, MIN_CWND_SEGMENTS * mss);
      }
    }
    if (this.mode === 'probe_rtt') cwnd = Math.min(cwnd, MIN_CWND_SEGMENTS * mss);
    this.cwnd = Math.min(cwnd, Math.max(this.inflightHi, MIN_CWND_SEGMENTS * mss));
  }

  private saveCwnd(): void {
    if (this.prevRecovery === 'open' && this.mode !== 'probe_rtt') this.priorCwnd = this.cwnd;
    else this.priorCwnd = Math.max(this.priorCwnd, this.cwnd);
  }
}
