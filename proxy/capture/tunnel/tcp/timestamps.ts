/**
 * TCP timestamps (RFC 7323) of one connection, used only when the phone's SYN offered them: our
 * TSval clock (32 ms ticks from a random per-connection origin; see below), TS.Recent (the phone's
 * TSval we echo, taken only from a segment covering the left edge of our last ACK, RFC 7323 4.3),
 * PAWS (RFC 7323 5) and RTT samples from the echo on every ACK.
 *
 * PAWS drops a segment whose TSval is older than TS.Recent by more than PAWS_TOLERANCE ticks: an
 * old duplicate from a previous turn of the sequence space. Linux tolerates one tick, which on a
 * reordering link also drops live segments: a retransmission that fills a hole raises TS.Recent
 * above data sent before it and still on its way (and a reordered ACK carries an older TSval
 * than the one before it). Measured through a relay that delays datagrams 20-40 ms, the kernel
 * dropped 817 ACKs of one 5 MB transfer that way. Sequence numbers cannot wrap within 2048 ticks
 * (2 s at the usual 1 ms tick) below 17 Gbit/s, so the tolerance costs PAWS nothing here.
 *
 * The phone's kernel applies Linux's one-tick PAWS to what we send, and on a link that reorders
 * by 20-40 ms it dropped 226 of our segments in one 5 MB download (sent before a retransmission,
 * overtaken by it): with 1 ms ticks, anything sent 2 ms before a retransmission and arriving after
 * it is lost. Our clock ticks every 32 ms instead (RFC 7323 allows 1 ms to 1 s per tick), so
 * segments reordered by up to a tick pass. RTT samples come from each segment's send time (exact;
 * the timestamp echo only tells which transmission an ACK answers), not from the coarse echo.
 */
import type { TcpClock } from './clock';
import { seqDiff, seqGe, seqLe, seqLt } from './seq';

/** TS.Recent idle longer than this is no longer trusted for PAWS (RFC 7323 5.5: 24 days). */
const PAWS_IDLE_MS = 24 * 24 * 3600 * 1000;
/** A TSval at most this far behind TS.Recent still passes (reordering and retransmissions, see above). */
export const PAWS_TOLERANCE = 2048;
/** Milliseconds per tick of our TSval clock. */
export const TS_TICK_MS = 32;

export class Timestamps {
  enabled = false;
  /** TS.Recent: the phone's timestamp we echo. */
  recent = 0;
  private recentAt = -Infinity;
  private hasRecent = false;

  constructor(
    private readonly clock: TcpClock,
    private readonly origin = (Math.random() * 0x100000000) >>> 0,
  ) {}

  /** Our TSval for a segment sent now. */
  now(): number {
    return (Math.floor(this.clock.now() / TS_TICK_MS) + this.origin) >>> 0;
  }

  /** TSval → our clock's time (ms, to a tick) at which a segment with that TSval was sent. */
  timeOf(tsval: number): number {
    return this.clock.now() - seqDiff(this.now(), tsval) * TS_TICK_MS;
  }

  /** The phone's SYN or SYN-ACK: its TSval becomes TS.Recent. */
  start(tsval: number): void {
    this.enabled = true;
    this.setRecent(tsval);
  }

  /** PAWS (RFC 7323 5.3): false for a non-RST segment that must be dropped (its TSval went back). */
  acceptable(tsval: number | undefined): boolean {
    if (!this.enabled || tsval === undefined || !this.hasRecent) return true;
    if (seqDiff(this.recent, tsval) <= PAWS_TOLERANCE) return true;
    return this.clock.now() - this.recentAt > PAWS_IDLE_MS;
  }

  /**
   * RFC 7323 4.3: TS.Recent takes the TSval of an acceptable segment whose start is at or before
   * the left edge of our last ACK (so a delayed ACK echoes the earliest unacknowledged segment,
   * and data filling a hole makes the echo the retransmission's, not an older segment's).
   */
  update(tsval: number | undefined, segSeq: number, lastAckSent: number): void {
    if (!this.enabled || tsval === undefined) return;
    if (seqLe(segSeq, lastAckSent) && seqGe(tsval, this.recent)) this.setRecent(tsval);
  }

  /** RTT (ms, to a tick) from an echoed TSval; undefined when it is not a plausible echo of ours. */
  rttFromEcho(tsecr: number | undefined): number | undefined {
    if (!this.enabled || !tsecr) return undefined;
    const ticks = seqDiff(this.now(), tsecr);
    if (ticks < 0 || ticks * TS_TICK_MS > 60_000) return undefined;
    return ticks * TS_TICK_MS;
  }

  /** True when the echoed TSval predates `tsval` (the ACK was caused by something sent before it). */
  echoBefore(tsecr: number | undefined, tsval: number): boolean {
    return this.enabled && !!tsecr && seqLt(tsecr, tsval);
  }

  private setRecent(tsval: number): void {
    this.recent = tsval >>> 0;
    this.recentAt = this.clock.now();
    this.hasRecent = true;
  }
}
