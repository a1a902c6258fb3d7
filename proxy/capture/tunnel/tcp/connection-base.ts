/**
 * The half of the TCP machine that produces segments and keeps time: the connection's state
 * (RFC 793 variables), sending data and FIN within the congestion and peer windows, ACKs (delayed
 * or at once) with the window we advertise, and the retransmission, persist, SWS-override,
 * delayed-ACK and TIME_WAIT timers. connection.ts adds the state machine that reacts to segments
 * and the application's API; the split only keeps each file readable.
 */
import { ByteQueue } from './byte-queue';
import { NewReno } from './congestion';
import type { TcpClock, TimerHandle } from './clock';
import { Reassembly } from './reassembly';
import { RtoEstimator } from './rto';
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax } from './seq';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TcpOptions, TcpSegment } from '../types';
import { ByteBudget, newStats, TcpCloseReason, TcpConnectionEvents, TcpConnectionOptions, TcpEndpoint, TcpState } from './connection-types';

const MAX_WINDOW_SHIFT = 14;

function randomIss(): number {
  return (Math.random() * 0x100000000) >>> 0;
}

export abstract class TcpConnectionBase {
  state: TcpState;
  closeReason: TcpCloseReason | undefined;
  readonly stats = newStats();

  protected readonly clock: TcpClock;
  protected readonly rcvBufSize: number;
  protected readonly sndBufSize: number;
  protected readonly delayedAckMs: number;
  protected readonly timeWaitMs: number;
  protected readonly finWait2Ms: number;
  protected readonly maxRetries: number;
  protected readonly maxSynRetries: number;
  protected readonly rto: RtoEstimator;
  protected readonly budget: ByteBudget | undefined;

  // Send side (RFC 793 names).
  protected readonly iss: number;
  protected sndUna: number;
  protected sndNxt: number;
  /** Highest sequence number sent so far (sndNxt goes back after a timeout). */
  protected sndMax: number;
  /** Sequence number after the last byte written by the application. */
  protected sndDataEnd: number;
  protected sndWnd = 0;
  protected maxSndWnd = 0;
  protected sndWl1 = 0;
  protected sndWl2 = 0;
  protected sndShift = 0;
  protected readonly sendQueue = new ByteQueue();
  protected finQueued = false;
  protected finSeq = 0;
  protected peerMss = 536;
  protected peerOfferedScaling = false;
  protected writeBlocked = false;
  /** close() was called: no reader any more. */
  protected orphaned = false;

  // Congestion control (NewReno).
  protected readonly cc: NewReno;

  // Receive side.
  protected irs = 0;
  protected rcvNxt = 0;
  protected rcvShift = 0;
  protected rcvAdvEdge = 0;
  protected readonly rcvQueue: Buffer[] = [];
  protected rcvQueued = 0;
  protected peerFin = false;
  protected eofDelivered = false;
  protected readonly ooo = new Reassembly();
  protected pendingAcks = 0;

  // Timers.
  protected rtxTimer: TimerHandle | undefined;
  protected delAckTimer: TimerHandle | undefined;
  protected timeWaitTimer: TimerHandle | undefined;
  protected windowUpdateTimer: TimerHandle | undefined;
  protected retries = 0;
  protected persistBackoff = 0;
  /** Karn: the one segment being timed (its end sequence number and send time). */
  protected timing: { seq: number; at: number } | undefined;

  protected constructor(
    readonly local: TcpEndpoint,
    readonly remote: TcpEndpoint,
    readonly ipVersion: 4 | 6,
    protected readonly ourMss: number,
    protected readonly offerScaling: boolean,
    opts: TcpConnectionOptions,
    protected readonly events: TcpConnectionEvents,
    state: TcpState,
  ) {
    this.clock = opts.clock;
    this.state = state;
    this.rcvBufSize = opts.receiveBuffer ?? 256 * 1024;
    this.sndBufSize = opts.sendBuffer ?? 256 * 1024;
    this.delayedAckMs = opts.delayedAckMs ?? 40;
    this.timeWaitMs = opts.timeWaitMs ?? 30_000;
    this.finWait2Ms = opts.finWait2Ms ?? 60_000;
    this.maxRetries = opts.maxRetries ?? 12;
    this.maxSynRetries = opts.maxSynRetries ?? 5;
    this.rto = new RtoEstimator(opts.minRtoMs ?? 200, opts.maxRtoMs ?? 60_000, opts.initialRtoMs ?? 1000);
    this.budget = opts.budget;
    this.iss = (opts.iss ?? randomIss()) >>> 0;
    this.sndUna = this.iss;
    this.sndNxt = this.iss;
    this.sndMax = this.iss;
    this.sndDataEnd = seqAdd(this.iss, 1);
    this.cc = new NewReno(() => this.mssOut(), this.iss);
  }

  /** True while the reader is being told about new data (its reads need no window update). */
  protected delivering = false;

  // ---- sending ----------------------------------------------------------------------------

  /** Sends what the windows allow: new data, then our FIN once all data is out. */
  protected flush(): void {
    if (!this.canSendData()) return;
    const mss = this.mssOut();
    for (;;) {
      const flight = seqDiff(this.sndNxt, this.sndUna);
      const unsent = seqDiff(this.sndDataEnd, this.sndNxt);
      const room = Math.min(this.cc.cwnd, this.sndWnd) - flight;
      if (unsent > 0) {
        if (room <= 0) break;
        const len = Math.min(unsent, room, mss);
        // Sender silly-window avoidance: no tiny segment into a tiny window when more is queued.
        if (len < mss && len < unsent && room < this.maxSndWnd / 2) break;
        this.sendDataAt(this.sndNxt, len);
        continue;
      }
      if (this.finQueued && this.sndNxt === this.finSeq) {
        this.sendDataAt(this.sndNxt, 0);
        continue;
      }
      break;
    }
    this.armRtxTimer();
  }

  /** Sends `len` data bytes from `seq` (plus FIN if they reach it); advances sndNxt for new data. */
  protected sendDataAt(seq: number, len: number): void {
    const offset = seqDiff(seq, this.sndUna) - (this.sndUna === this.iss ? 1 : 0);
    const data = this.sendQueue.slice(offset, len);
    const end = seqAdd(seq, data.length);
    const fin = this.finQueued && end === this.finSeq;
    let flags = TCP_ACK;
    if (data.length) flags |= TCP_PSH;
    if (fin) flags |= TCP_FIN;
    const segEnd = seqAdd(end, fin ? 1 : 0);
    const retransmission = seqLt(seq, this.sndMax);
    if (retransmission) {
      this.stats.retransmissions++;
      this.timing = undefined; // Karn
    } else if (!this.timing) {
      this.timing = { seq: segEnd, at: this.clock.now() };
    }
    this.emit(this.segment(seq, this.rcvNxt, flags, data, this.advertise()));
    if (seqGt(segEnd, this.sndNxt) && seq === this.sndNxt) this.sndNxt = segEnd;
    this.sndMax = seqMax(this.sndMax, segEnd);
  }

  protected retransmitFirst(): void {
    const len = Math.min(this.mssOut(), Math.max(0, seqDiff(this.sndDataEnd, this.sndUna)));
    this.sendDataAt(this.sndUna, len);
  }

  protected sendSyn(withAck: boolean): void {
    const options: TcpOptions = { mss: this.ourMss };
    if (this.offerScaling && (!withAck || this.peerOfferedScaling)) options.windowScale = this.ourShift();
    const window = Math.min(65535, this.rcvBufSize);
    const seg = this.segment(this.iss, withAck ? this.rcvNxt : 0, withAck ? TCP_SYN | TCP_ACK : TCP_SYN, Buffer.alloc(0), window);
    seg.options = options;
    if (seqLt(this.iss, this.sndMax)) {
      this.stats.retransmissions++;
      this.timing = undefined;
    } else {
      this.timing = { seq: seqAdd(this.iss, 1), at: this.clock.now() };
    }
    this.sndNxt = seqAdd(this.iss, 1);
    this.sndMax = this.sndNxt;
    this.emit(seg);
    this.restartRtxTimer();
  }

  protected sendAck(): void {
    this.emit(this.segment(this.sndNxt, this.rcvNxt, TCP_ACK, Buffer.alloc(0), this.advertise()));
  }

  protected segment(seq: number, ack: number, flags: number, payload: Buffer, window: number): TcpSegment {
    return {
      ipVersion: this.ipVersion,
      srcIp: this.local.ip,
      dstIp: this.remote.ip,
      srcPort: this.local.port,
      dstPort: this.remote.port,
      seq: seq >>> 0,
      ack: flags & TCP_ACK ? ack >>> 0 : 0,
      flags,
      window,
      options: {},
      payload,
    };
  }

  protected emit(seg: TcpSegment): void {
    if (seg.flags & TCP_ACK) {
      this.pendingAcks = 0;
      if (this.delAckTimer) {
        this.clock.clearTimeout(this.delAckTimer);
        this.delAckTimer = undefined;
      }
    }
    this.stats.segmentsOut++;
    this.events.output(seg);
  }

  /** The window field for an outgoing segment (scaled), remembering the right edge it grants. */
  protected advertise(): number {
    const wnd = this.freeReceiveSpace();
    const field = Math.min(65535, wnd >>> this.rcvShift);
    const edge = seqAdd(this.rcvNxt, field << this.rcvShift);
    if (seqGt(edge, this.rcvAdvEdge)) this.rcvAdvEdge = edge;
    return field;
  }

  protected freeReceiveSpace(): number {
    let free = this.rcvBufSize - this.rcvQueued;
    if (this.budget) free = Math.min(free, Math.max(0, this.budget.limit - this.budget.used));
    return Math.max(0, Math.min(free, 65535 << this.rcvShift));
  }

  /** Bytes beyond rcvNxt we accept: what we advertised (never shrunk), or more if space opened. */
  protected acceptWindow(): number {
    return Math.max(this.freeReceiveSpace(), seqDiff(this.rcvAdvEdge, this.rcvNxt));
  }

  protected maybeWindowUpdate(): void {
    if (this.delivering || !this.acceptsData()) return;
    const advertised = Math.max(0, seqDiff(this.rcvAdvEdge, this.rcvNxt));
    const now = this.freeReceiveSpace();
    if (now - advertised >= Math.min(this.rcvBufSize / 2, this.ourMss) * 2 || (advertised < this.ourMss && now >= this.ourMss)) this.sendAck();
  }

  protected scheduleAck(immediate: boolean): void {
    if (immediate || ++this.pendingAcks >= 2) return this.sendAck();
    if (!this.delAckTimer) {
      this.delAckTimer = this.clock.setTimeout(() => {
        this.delAckTimer = undefined;
        if (this.state !== 'CLOSED') this.sendAck();
      }, this.delayedAckMs);
    }
  }

  // ---- timers -----------------------------------------------------------------------------

  protected armRtxTimer(): void {
    const inFlight = seqDiff(this.sndMax, this.sndUna) > 0;
    // Data waiting with nothing in flight: no ACK will come to restart sending, so a timer must
    // (the persist timer for a zero window, the SWS override for a too-small one).
    const blocked = seqDiff(this.sndDataEnd, this.sndNxt) > 0 || (this.finQueued && this.sndNxt === this.finSeq);
    if (inFlight || blocked) {
      if (!this.rtxTimer) this.startRtxTimer();
    } else this.stopRtxTimer();
  }

  protected restartRtxTimer(): void {
    this.stopRtxTimer();
    this.startRtxTimer();
  }

  protected startRtxTimer(): void {
    const persist = this.sndWnd === 0 && this.isSynchronized();
    const ms = persist ? Math.min(60_000, Math.max(this.rto.rto, 200) * 2 ** this.persistBackoff) : this.rto.rto;
    this.rtxTimer = this.clock.setTimeout(() => {
      this.rtxTimer = undefined;
      this.onRtxTimer();
    }, ms);
  }

  protected stopRtxTimer(): void {
    if (this.rtxTimer) this.clock.clearTimeout(this.rtxTimer);
    this.rtxTimer = undefined;
  }

  protected onRtxTimer(): void {
    if (this.state === 'CLOSED' || this.state === 'TIME_WAIT') return;
    if (this.state === 'SYN_SENT' || this.state === 'SYN_RECEIVED') {
      if (++this.retries > this.maxSynRetries) return this.giveUp();
      this.stats.timeouts++;
      this.rto.backoff();
      this.sendSyn(this.state === 'SYN_RECEIVED');
      return;
    }
    if (this.sndWnd > 0 && seqDiff(this.sndMax, this.sndUna) === 0) {
      // SWS override: the window stayed too small for a full segment; send what fits.
      const len = Math.min(this.sndWnd, this.mssOut(), seqDiff(this.sndDataEnd, this.sndNxt));
      if (len > 0) this.sendDataAt(this.sndNxt, len);
      else if (this.finQueued && this.sndNxt === this.finSeq) this.sendDataAt(this.sndNxt, 0);
      this.startRtxTimer();
      return;
    }
    if (this.sndWnd === 0) {
      // Persist timer: probe the closed window with one byte so a lost window update cannot
      // deadlock us. Probes never give up while the peer keeps answering.
      this.stats.windowProbes++;
      this.persistBackoff = Math.min(this.persistBackoff + 1, 12);
      const hasData = seqDiff(this.sndDataEnd, this.sndUna) > (this.sndUna === this.iss ? 1 : 0);
      if (hasData || this.finQueued) this.sendProbe();
      this.startRtxTimer();
      return;
    }
    if (++this.retries > this.maxRetries) return this.giveUp();
    this.stats.timeouts++;
    this.cc.onTimeout(this.sndUna, this.sndMax);
    this.rto.backoff();
    this.timing = undefined;
    // Go back N: everything after sndUna is sent again as the window reopens.
    this.sndNxt = this.sndUna;
    this.flush();
    if (!this.rtxTimer) this.startRtxTimer();
  }

  protected sendProbe(): void {
    const len = Math.min(1, Math.max(0, seqDiff(this.sndDataEnd, this.sndUna)));
    const seq = this.sndUna;
    const offset = 0;
    const data = this.sendQueue.slice(offset, len);
    const fin = this.finQueued && seqAdd(seq, data.length) === this.finSeq;
    const segEnd = seqAdd(seq, data.length + (fin ? 1 : 0));
    if (seqLt(seq, this.sndMax)) this.stats.retransmissions++;
    this.timing = undefined;
    this.emit(this.segment(seq, this.rcvNxt, TCP_ACK | (fin ? TCP_FIN : 0) | (data.length ? TCP_PSH : 0), data, this.advertise()));
    if (seqGt(segEnd, this.sndNxt)) this.sndNxt = segEnd;
    this.sndMax = seqMax(this.sndMax, segEnd);
  }

  protected giveUp(): void {
    if (this.state !== 'SYN_SENT') this.emit(this.segment(this.sndNxt, this.rcvNxt, TCP_RST | TCP_ACK, Buffer.alloc(0), 0));
    this.finish('timeout');
  }

  protected enterTimeWait(): void {
    this.state = 'TIME_WAIT';
    this.stopRtxTimer();
    this.startTimeWait();
  }

  protected startTimeWait(ms = this.timeWaitMs): void {
    if (this.timeWaitTimer) this.clock.clearTimeout(this.timeWaitTimer);
    this.timeWaitTimer = this.clock.setTimeout(() => this.finish('normal'), ms);
  }

  protected finish(reason: TcpCloseReason): void {
    if (this.state === 'CLOSED') return;
    this.state = 'CLOSED';
    this.closeReason = reason;
    this.stopRtxTimer();
    if (this.delAckTimer) this.clock.clearTimeout(this.delAckTimer);
    if (this.timeWaitTimer) this.clock.clearTimeout(this.timeWaitTimer);
    if (this.windowUpdateTimer) this.clock.clearTimeout(this.windowUpdateTimer);
    this.delAckTimer = this.timeWaitTimer = this.windowUpdateTimer = undefined;
    this.ooo.clear();
    // Unread data of a reset or abandoned connection is discarded; after a normal close the
    // reader may still drain it (or close(), which discards it).
    if (reason !== 'normal') this.discardUnread();
    this.events.closed?.(reason);
  }

  /** Drops data nobody will read, returning its bytes to the phone's shared budget. */
  protected discardUnread(): void {
    if (this.budget) this.budget.used -= this.rcvQueued;
    this.rcvQueued = 0;
    this.rcvQueue.length = 0;
  }

  // ---- helpers ----------------------------------------------------------------------------

  protected sampleRtt(ack: number): void {
    if (this.timing && seqGe(ack, this.timing.seq)) {
      this.rto.sample(this.clock.now() - this.timing.at);
      this.timing = undefined;
    }
  }

  protected takePeerOptions(options: TcpOptions): void {
    if (options.mss) this.peerMss = Math.max(64, options.mss);
    else this.peerMss = this.ipVersion === 6 ? 1220 : 536;
    if (options.windowScale !== undefined && this.offerScaling) {
      this.sndShift = Math.min(MAX_WINDOW_SHIFT, options.windowScale);
      this.rcvShift = this.ourShift();
      this.peerOfferedScaling = true;
    } else {
      this.sndShift = 0;
      this.rcvShift = 0;
    }
  }

  /** Smallest shift that lets the window field express the whole receive buffer. */
  protected ourShift(): number {
    let shift = 0;
    while (shift < MAX_WINDOW_SHIFT && this.rcvBufSize >>> shift > 65535) shift++;
    return shift;
  }

  /** Payload bytes per segment we send: the peer's MSS, capped by ours (same tunnel MTU). */
  protected mssOut(): number {
    return Math.min(this.peerMss, this.ourMss);
  }

  protected inWindow(seq: number, window: number): boolean {
    return seqGe(seq, this.rcvNxt) && seqLt(seq, seqAdd(this.rcvNxt, Math.max(window, 1)));
  }

  protected isSynchronized(): boolean {
    return this.state !== 'SYN_SENT' && this.state !== 'SYN_RECEIVED' && this.state !== 'SYN_PENDING' && this.state !== 'CLOSED';
  }

  protected canSendData(): boolean {
    return this.state === 'ESTABLISHED' || this.state === 'CLOSE_WAIT' || this.state === 'FIN_WAIT_1' || this.state === 'LAST_ACK' || this.state === 'CLOSING';
  }

  protected acceptsData(): boolean {
    return this.state === 'ESTABLISHED' || this.state === 'FIN_WAIT_1' || this.state === 'FIN_WAIT_2';
  }
}
