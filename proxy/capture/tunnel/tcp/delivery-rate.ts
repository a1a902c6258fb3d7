/**
 * Delivery rate estimation (draft-cheng-iccrg-delivery-rate-estimation, as Linux's tcp_rate.c):
 * each segment remembers, when sent, how much had been delivered and when; when it is delivered
 * (acknowledged or SACKed) the difference over the elapsed time is a sample of the rate the path
 * delivers. BBR (bbr.ts) builds its model of the path from these samples. Samples taken while the
 * application had nothing to send are marked app-limited (they say little about the path).
 */
import type { SentSegment } from './scoreboard';
import { seqDiff } from './seq';

/** One ACK's rate sample. */
export interface RateSample {
  /** Bytes delivered over `intervalMs` (rate = delivered / intervalMs), or intervalMs < 0 when there is no valid sample. */
  delivered: number;
  intervalMs: number;
  /** Delivered count when the sampled segment was sent (BBR counts rounds with it). */
  priorDelivered: number;
  /** RTT of the most recently sent segment delivered by this ACK, or -1. */
  rttMs: number;
  appLimited: boolean;
  /** Bytes acknowledged or SACKed by this ACK, and segments newly declared lost. */
  newlyDelivered: number;
  losses: number;
}

export class DeliveryRate {
  /** Total bytes delivered so far, and when the last delivery happened. */
  delivered = 0;
  private deliveredTime = 0;
  private firstSentTime = 0;
  /** Non-zero while sending is limited by the application: the delivered count where that ends. */
  private appLimitedUntil = 0;
  // The sample being built from one ACK.
  private sample: { priorDelivered: number; sendElapsed: number; ackElapsed: number; appLimited: boolean; sentAt: number; xmits: number } | undefined;
  private newly = 0;

  /** Stamps a segment being (re)sent; `pipeBefore` is what was in flight before it. */
  onSend(seg: SentSegment, now: number, pipeBefore: number): void {
    if (pipeBefore === 0) this.firstSentTime = this.deliveredTime = now;
    seg.deliveredAtSend = this.delivered;
    seg.deliveredTimeAtSend = this.deliveredTime;
    seg.firstSentTimeAtSend = this.firstSentTime;
    seg.appLimitedAtSend = this.appLimitedUntil !== 0;
  }

  /** A segment was delivered by the ACK being processed. */
  onDelivered(seg: SentSegment, now: number): void {
    const len = seqDiff(seg.end, seg.start);
    this.delivered += len;
    this.newly += len;
    this.deliveredTime = now;
    if (!this.sample || seg.deliveredAtSend >= this.sample.priorDelivered) {
      this.sample = {
        priorDelivered: seg.deliveredAtSend,
        sendElapsed: seg.sentAt - seg.firstSentTimeAtSend,
        ackElapsed: now - seg.deliveredTimeAtSend,
        appLimited: seg.appLimitedAtSend,
        sentAt: seg.sentAt,
        xmits: seg.xmits,
      };
      this.firstSentTime = seg.sentAt;
    }
  }

  /** The sample of the ACK just processed (then starts the next one). */
  take(now: number, minRttMs: number, losses: number): RateSample {
    if (this.appLimitedUntil && this.delivered > this.appLimitedUntil) this.appLimitedUntil = 0;
    const s = this.sample;
    const out: RateSample = { delivered: 0, intervalMs: -1, priorDelivered: 0, rttMs: -1, appLimited: false, newlyDelivered: this.newly, losses };
    this.sample = undefined;
    this.newly = 0;
    if (!s) return out;
    out.priorDelivered = s.priorDelivered;
    out.appLimited = s.appLimited;
    if (s.xmits === 1) out.rttMs = now - s.sentAt;
    const interval = Math.max(s.sendElapsed, s.ackElapsed);
    // Shorter than the minimum RTT: an artefact (a burst of ACKs, a spurious retransmission).
    if (interval <= 0 || (Number.isFinite(minRttMs) && interval < minRttMs)) return out;
    out.delivered = this.delivered - s.priorDelivered;
    out.intervalMs = interval;
    return out;
  }

  /** The sender ran out of data with room in the window: samples until `pipe` is delivered are app-limited. */
  markAppLimited(pipe: number): void {
    this.appLimitedUntil = Math.max(this.delivered + pipe, 1);
  }
}
