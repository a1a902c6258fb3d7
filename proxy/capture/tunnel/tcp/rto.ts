/**
 * The retransmission timeout of RFC 6298: smoothed RTT and variance from samples (never from an
 * ambiguous retransmission, Karn's rule, enforced by the callers), exponential back-off on each
 * expiry, and a ceiling. The variance term has a floor (200 ms, as Linux's), so the timer never
 * fires less than 200 ms after an ACK was due, whatever the RTT: RFC 6298's 1 s minimum is for
 * paths nobody measured, and a Wi-Fi's jitter must not cause spurious timeouts either.
 * With timestamps there is a sample on every ACK; RFC 7323 appendix G scales the gains by the
 * number of samples expected per round trip, so SRTT still moves at RFC 6298's pace.
 */
export class RtoEstimator {
  srtt: number | undefined;
  rttvar = 0;
  rto: number;

  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
    initialMs: number,
    /** Clock granularity G of RFC 6298 (ms). */
    private readonly granularityMs = 1,
  ) {
    this.rto = initialMs;
  }

  /** One RTT sample (ms); `perRound` samples are expected per round trip (RFC 7323 appendix G). */
  sample(rttMs: number, perRound = 1): void {
    const r = Math.max(0, rttMs);
    if (this.srtt === undefined) {
      this.srtt = r;
      this.rttvar = r / 2;
    } else {
      const n = Math.max(1, perRound);
      const beta = 0.25 / n;
      const alpha = 0.125 / n;
      this.rttvar = (1 - beta) * this.rttvar + beta * Math.abs(this.srtt - r);
      this.srtt = (1 - alpha) * this.srtt + alpha * r;
    }
    this.rto = this.clamp(this.srtt + Math.max(this.granularityMs, 4 * this.rttvar, this.minMs));
  }

  /** Doubles the timeout after an expiry (RFC 6298 5.5). */
  backoff(): void {
    this.rto = this.clamp(this.rto * 2);
  }

  private clamp(ms: number): number {
    return Math.min(this.maxMs, Math.max(this.minMs, ms));
  }
}
