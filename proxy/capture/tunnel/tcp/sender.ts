/**
 * The sending half of the TCP machine: new data and FIN within the congestion window (recovery.ts)
 * and the phone's window, retransmissions of what loss detection declared lost (lowest first, before
 * new data), what an ACK changes for the sender (send queue, RTT, the loss recovery machinery),
 * and the one timer the sender needs, whose purpose changes with the situation: SYN retransmission,
 * RACK's reordering timer, the tail loss probe, the retransmission timeout (RFC 6298, restarted
 * only by ACKs of new data), the persist timer against a zero window and the silly-window override.
 * The timer is moved lazily: a deadline pushed later leaves the clock's timer alone until it fires.
 */
import type { TimerHandle } from './clock';
import { TcpConnectionBase } from './connection-base';
import type { SentSegment } from './scoreboard';
import { seqAdd, seqDiff, seqGt, seqLt, seqMax } from './seq';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TcpSegment } from '../types';

type TimerKind = 'syn' | 'rto' | 'reorder' | 'probe' | 'persist';

/** Pacing sends up to this far ahead of schedule: a timer cannot fire more finely than 1 ms. */
const PACING_QUANTUM_MS = 1;
/**
 * A pacing timer that fires late (a busy event loop) may catch up on up to this much of the
 * schedule at once, so the average rate stays the pacing rate (Linux keeps a similar credit for
 * OS jitter); without it every late timer would lower the rate BBR then measures.
 */
const PACING_CREDIT_MS = 5;
/**
 * A loss timer that fires this much after its deadline was delayed by a busy process, and the
 * ACKs that would have stopped it may be waiting unread: it waits one turn of the event loop
 * (I/O is read after timers) before acting. Without that, a 250 ms stall of the process made
 * the timeout fire first and resend a whole window that had been delivered.
 */
const LATE_TIMER_MS = 10;

export abstract class TcpSender extends TcpConnectionBase {
  protected retries = 0;
  protected persistBackoff = 0;
  /** When our SYN (or SYN-ACK) was first sent, for its RTT (undefined once it was sent again: Karn). */
  protected synSentAt: number | undefined;
  private timer: TimerHandle | undefined;
  private timerAt = 0;
  private timerKind: TimerKind | undefined;
  private timerDeadline = 0;
  /** The timer already waited once for unread ACKs after firing late. */
  private timerDeferred = false;
  /** When the retransmission timeout started counting (RFC 6298 5.1 and 5.3). */
  private rtoStart: number | undefined;
  /** Last time data went out or an ACK came in: the tail loss probe counts from here. */
  private lastActivity = 0;
  /** Pacing (with BBR): when the next segment is due, and the timer that resumes sending then. */
  private paceNext = 0;
  private paceTimer: TimerHandle | undefined;

  // ---- sending ----------------------------------------------------------------------------

  /** Sends what the windows allow: lost segments first, then new data, then our FIN. */
  protected flush(): void {
    if (!this.canSendData()) return;
    const mss = this.mssOut();
    const board = this.recovery.board;
    let cwndLimited = false;
    let outOfData = false;
    // The window counts whole segments, as Linux's does: one may go while anything is left of it.
    for (;;) {
      const quota = this.recovery.quota;
      const lost = board.nextLost();
      if (lost) {
        if (quota <= 0) {
          cwndLimited = true;
          break;
        }
        if (this.mustPace()) break;
        this.retransmit(lost);
        continue;
      }
      const unsent = seqDiff(this.sndDataEnd, this.sndNxt);
      if (unsent > 0) {
        const room = seqDiff(seqAdd(this.sndUna, this.sndWnd), this.sndNxt);
        const len = Math.min(unsent, room, mss);
        if (len <= 0) break;
        // Sender silly-window avoidance: no tiny segment into a tiny window when more is queued.
        if (len < mss && len < unsent && room < this.maxSndWnd / 2) break;
        if (quota <= 0) {
          cwndLimited = true;
          break;
        }
        if (this.mustPace()) break;
        this.sendNew(len);
        continue;
      }
      if (this.finQueued && this.sndNxt === this.finSeq) {
        this.sendNew(0);
        continue;
      }
      outOfData = true;
      break;
    }
    const cc = this.recovery.cc;
    const pipe = board.pipe;
    cc.cwndLimited = cwndLimited || (cc.inSlowStart ? pipe * 2 >= cc.cwnd : pipe + mss >= cc.cwnd);
    // Nothing more to send with room in the window: rate samples until this flight is delivered
    // say how fast the application writes, not how fast the path is.
    if (outOfData && board.pendingLost === 0 && pipe < cc.cwnd) this.recovery.rate.markAppLimited(pipe);
    this.updateTimer(false);
  }

  /** With pacing: true (and a timer armed) when the next segment is not due yet. */
  private mustPace(): boolean {
    if (!this.recovery.cc.pacingRate) return false;
    const now = this.clock.now();
    if (this.paceNext <= now + PACING_QUANTUM_MS) return false;
    if (!this.paceTimer) {
      this.paceTimer = this.clock.setTimeout(() => {
        this.paceTimer = undefined;
        this.flush();
      }, this.paceNext - now - PACING_QUANTUM_MS);
    }
    return true;
  }

  /** Sends `len` new data bytes from sndNxt (with FIN if they reach it; len 0 sends the FIN alone). */
  protected sendNew(len: number): SentSegment {
    const start = this.sndNxt;
    const { end } = this.transmit(start, len);
    const seg = this.recovery.onSent(start, end, this.clock.now(), this.lastTsval);
    this.sndNxt = end;
    this.sndMax = seqMax(this.sndMax, end);
    return seg;
  }

  protected retransmit(seg: SentSegment): void {
    const finIncluded = this.finQueued && seg.end === seqAdd(this.finSeq, 1);
    this.transmit(seg.start, seqDiff(seg.end, seg.start) - (finIncluded ? 1 : 0));
    this.stats.retransmissions++;
    this.recovery.onRetransmitted(seg, this.clock.now(), this.lastTsval);
  }

  private lastTsval = 0;

  /** Emits `len` bytes of the send queue from `seq`, with FIN when they end where it goes. */
  private transmit(seq: number, len: number): { end: number } {
    const offset = seqDiff(seq, this.sndUna) - (this.sndUna === this.iss ? 1 : 0);
    const data = this.sendQueue.slice(offset, len);
    const dataEnd = seqAdd(seq, data.length);
    const fin = this.finQueued && dataEnd === this.finSeq;
    let flags = TCP_ACK;
    if (data.length) flags |= TCP_PSH;
    if (fin) flags |= TCP_FIN;
    const seg = this.segment(seq, this.rcvNxt, flags, data, this.advertise());
    this.lastTsval = this.ts.now();
    if (this.ts.enabled) seg.options.timestamps = [this.lastTsval, this.ts.recent];
    this.emit(seg);
    const now = this.clock.now();
    this.lastActivity = now;
    const rate = this.recovery.cc.pacingRate;
    if (rate) this.paceNext = Math.max(this.paceNext, now - PACING_CREDIT_MS) + Math.max(data.length, 1) / rate;
    return { end: seqAdd(dataEnd, fin ? 1 : 0) };
  }

  protected sendSyn(withAck: boolean): void {
    if (seqLt(this.iss, this.sndMax)) {
      this.stats.retransmissions++;
      this.synSentAt = undefined;
    } else {
      this.synSentAt = this.clock.now();
    }
    this.sndNxt = seqAdd(this.iss, 1);
    this.sndMax = this.sndNxt;
    this.sendSynSegment(withAck);
    this.arm('syn', this.clock.now() + this.rto.rto);
  }

  /** Write backpressure: the configured buffer, or twice the congestion window on a fast path. */
  protected sendBufferLimit(): number {
    return Math.max(this.sndBufSize, Math.min(this.sndBufMax, 2 * this.recovery.cwnd));
  }

  // ---- ACKs for what we sent ----------------------------------------------------------------

  /** The SYN (or SYN-ACK) was acknowledged: its RTT, if unambiguous, is the first sample. */
  protected synAcknowledged(tsecr: number | undefined): void {
    const echo = this.ts.rttFromEcho(tsecr);
    if (this.synSentAt !== undefined) this.rto.sample(this.clock.now() - this.synSentAt);
    else if (echo !== undefined) this.rto.sample(echo);
    this.synSentAt = undefined;
    this.retries = 0;
    this.stopSendTimer();
    this.recovery.cc.start(this.rto.srtt);
  }

  /**
   * An acceptable ACK (sndUna <= ack <= sndMax): frees acknowledged bytes, samples the RTT and
   * runs loss recovery. Returns the data bytes newly acknowledged.
   */
  protected ackSent(seg: TcpSegment, ack: number, duplicate: boolean): number {
    const prevUna = this.sndUna;
    const acked = seqDiff(ack, prevUna);
    const now = this.clock.now();
    this.lastActivity = now;
    let dataAcked = 0;
    if (acked > 0) {
      dataAcked = acked;
      if (prevUna === this.iss) dataAcked--; // our SYN
      if (this.finQueued && seqGt(ack, this.finSeq)) dataAcked--;
      dataAcked = Math.min(Math.max(dataAcked, 0), this.sendQueue.length);
      this.sendQueue.consume(dataAcked);
      this.stats.bytesOut += dataAcked;
      this.sndUna = ack;
      if (seqLt(this.sndNxt, ack)) this.sndNxt = ack;
      this.retries = 0;
      this.sampleRtt(seg, prevUna, now);
    }
    if (acked > 0 || this.recovery.board.count > 0) {
      this.recovery.onAck({
        una: ack, ackField: seg.ack >>> 0, prevUna, sndMax: this.sndMax, sack: seg.options.sack, tsecr: seg.options.timestamps?.[1], duplicate, now,
        srtt: this.rto.srtt, maxWindow: this.maxSndWnd,
      });
    }
    if (acked > 0) this.rtoStart = now;
    return dataAcked;
  }

  /**
   * An RTT sample on every ACK of new data (RFC 7323 appendix G gains): the send time of the
   * latest segment it acknowledges whose transmission is unambiguous: sent once (Karn), or, with
   * timestamps, resent and echoed with the retransmission's TSval or later.
   */
  private sampleRtt(seg: TcpSegment, prevUna: number, now: number): void {
    const perRound = Math.ceil(seqDiff(this.sndMax, prevUna) / (2 * this.mssOut()));
    const tsecr = seg.options.timestamps?.[1];
    const echoed = (s: SentSegment) => s.xmits === 1 || (this.ts.enabled && tsecr !== undefined && !seqLt(tsecr, s.tsval));
    const latest = this.recovery.board.latestUnambiguousUpTo(seg.ack, echoed);
    if (latest) this.rto.sample(now - latest.sentAt, perRound);
  }

  /** After ACK processing: the writer may continue once the queue is below its limit. */
  protected maybeDrain(): void {
    if (this.writeBlocked && this.sendQueue.length < this.sendBufferLimit()) {
      this.writeBlocked = false;
      this.events.drain?.();
    }
  }

  // ---- the timer -----------------------------------------------------------------------------

  /** Points the timer at what matters now; `restart` re-anchors a persist timer. */
  protected updateTimer(restart: boolean): void {
    if (this.state === 'SYN_SENT' || this.state === 'SYN_RECEIVED' || this.state === 'CLOSED' || this.state === 'TIME_WAIT') return;
    const now = this.clock.now();
    const recovery = this.recovery;
    if (recovery.board.count > 0) {
      this.rtoStart ??= now;
      const rtoAt = this.rtoStart + (this.sndWnd === 0 ? this.persistMs() : this.rto.rto);
      if (recovery.reorderWaitMs > 0) return this.arm('reorder', Math.min(now + recovery.reorderWaitMs, rtoAt));
      if (recovery.probeAllowed()) return this.arm('probe', Math.min(this.lastActivity + recovery.probeTimeout(this.rto.srtt), rtoAt));
      return this.arm('rto', rtoAt);
    }
    this.rtoStart = undefined;
    // Data waiting with nothing in flight: no ACK will come to restart sending, so a timer must
    // (the persist timer for a zero window, the SWS override for a too-small one).
    const blocked = seqDiff(this.sndDataEnd, this.sndNxt) > 0 || (this.finQueued && this.sndNxt === this.finSeq);
    if (blocked && this.canSendData()) {
      if (this.timerKind !== 'persist' || restart) this.arm('persist', now + this.persistMs());
    } else {
      this.stopSendTimer();
    }
  }

  private persistMs(): number {
    return Math.min(60_000, Math.max(this.rto.rto, 200) * 2 ** this.persistBackoff);
  }

  private arm(kind: TimerKind, deadline: number): void {
    if (deadline !== this.timerDeadline) this.timerDeferred = false;
    this.timerKind = kind;
    this.timerDeadline = deadline;
    if (this.timer && this.timerAt <= deadline) return; // fires first and looks again
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timerAt = deadline;
    this.timer = this.clock.setTimeout(() => this.onTimer(), Math.max(0, deadline - this.clock.now()));
  }

  protected stopSendTimer(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.timerKind = undefined;
  }

  private onTimer(): void {
    this.timer = undefined;
    const kind = this.timerKind;
    if (!kind || this.state === 'CLOSED' || this.state === 'TIME_WAIT') return;
    const now = this.clock.now();
    if (now < this.timerDeadline) {
      this.timerAt = this.timerDeadline;
      this.timer = this.clock.setTimeout(() => this.onTimer(), this.timerDeadline - now);
      return;
    }
    if (now - this.timerDeadline > LATE_TIMER_MS && !this.timerDeferred && kind !== 'syn') {
      this.timerDeferred = true;
      this.timerAt = now;
      this.timer = this.clock.setTimeout(() => this.onTimer(), 0);
      return;
    }
    this.timerDeferred = false;
    this.timerKind = undefined;
    if (kind === 'syn') this.onSynTimeout();
    else if (kind === 'reorder') this.onReorderTimeout();
    else if (kind === 'probe') this.onProbeTimeout();
    else if (kind === 'persist') this.onPersistTimeout();
    else this.onRetransmissionTimeout();
  }

  private onSynTimeout(): void {
    if (this.state !== 'SYN_SENT' && this.state !== 'SYN_RECEIVED') return;
    if (++this.retries > this.maxSynRetries) return this.giveUp();
    this.stats.timeouts++;
    this.rto.backoff();
    this.sendSyn(this.state === 'SYN_RECEIVED');
  }

  private onReorderTimeout(): void {
    this.recovery.onReorderTimer({ una: this.sndUna, sndMax: this.sndMax, now: this.clock.now(), srtt: this.rto.srtt });
    this.flush();
  }

  /** RFC 8985 7.3: new data if the window allows, else the last segment again, to draw an ACK. */
  private onProbeTimeout(): void {
    if (!this.recovery.probeAllowed() || !this.canSendData()) return this.updateTimer(false);
    const unsent = seqDiff(this.sndDataEnd, this.sndNxt);
    const room = seqDiff(seqAdd(this.sndUna, this.sndWnd), this.sndNxt);
    if (unsent > 0 && room > 0) {
      this.sendNew(Math.min(unsent, room, this.mssOut()));
      this.recovery.onProbeSent(this.sndMax, undefined);
    } else {
      const last = this.recovery.board.lastUnsacked();
      if (!last) return this.updateTimer(false);
      this.retransmit(last);
      this.recovery.onProbeSent(this.sndMax, last);
    }
    this.rtoStart = this.clock.now();
    this.updateTimer(false);
  }

  private onPersistTimeout(): void {
    if (!this.canSendData() || this.recovery.board.count > 0) return this.updateTimer(false);
    const unsent = seqDiff(this.sndDataEnd, this.sndNxt);
    if (this.sndWnd === 0) {
      // Persist: probe the closed window with one byte so a lost window update cannot deadlock us.
      this.stats.windowProbes++;
      this.persistBackoff = Math.min(this.persistBackoff + 1, 12);
      if (unsent > 0 || this.finQueued) this.sendNew(Math.min(1, unsent));
    } else {
      // SWS override: the window stayed too small for a full segment; send what fits.
      const len = Math.min(this.sndWnd, this.mssOut(), unsent);
      if (len > 0 || this.finQueued) this.sendNew(Math.max(0, len));
    }
    this.updateTimer(true);
  }

  private onRetransmissionTimeout(): void {
    const first = this.recovery.board.first();
    if (!first) return this.updateTimer(false);
    if (this.sndWnd === 0) {
      // The window closed with data in flight: resend its head as the window probe (never a
      // reason to give up while the phone answers).
      this.stats.windowProbes++;
      this.persistBackoff = Math.min(this.persistBackoff + 1, 12);
      this.retransmit(first);
      this.rtoStart = this.clock.now();
      return this.updateTimer(false);
    }
    if (++this.retries > this.maxRetries) return this.giveUp();
    this.stats.timeouts++;
    this.rto.backoff();
    this.recovery.onTimeout(this.sndUna, this.sndMax);
    this.rtoStart = this.clock.now();
    this.flush();
  }

  protected giveUp(): void {
    if (this.state !== 'SYN_SENT') this.emit(this.segment(this.sndNxt, this.rcvNxt, TCP_RST | TCP_ACK, Buffer.alloc(0), 0));
    this.finish('timeout');
  }
}
