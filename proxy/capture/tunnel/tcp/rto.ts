/**
 * The retransmission timeout of RFC 6298: smoothed RTT and variance from samples (taken only from
 * segments sent once, Karn's rule, enforced by the caller), a floor (200 ms here, as Linux, instead
 * of the RFC's 1 s), exponential back-off on each expiry, and a ceiling.
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

  sample(rttMs: number): void {
    const r = Math.max(0, rttMs);
    if (this.srtt === undefined) {
      this.srtt = r;
      this.rttvar = r / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    this.rto = this.clamp(this.srtt + Math.max(this.granularityMs, 4 * this.rttvar));
  }

  /** Doubles the timeout after an expiry (RFC 6298 5.5). */
  backoff(): void {
    this.rto = this.clamp(this.rto * 2);
  }

  private clamp(ms: number): number {
    return Math.min(this.maxMs, Math.max(this.minMs, ms));
  }
}
