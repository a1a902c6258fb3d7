/**
 * The ground floor of the TCP machine: the connection's state (RFC 793 variables), options agreed
 * in the handshake (MSS, window scaling, SACK, timestamps), building and emitting segments with
 * the options each one carries, the window we advertise, ACKs (delayed or at once, with SACK
 * blocks), and the end of a connection (TIME_WAIT, finish). sender.ts adds sending data and its
 * timers, connection.ts the state machine that reacts to segments and the application's API; the
 * split only keeps each file readable.
 */
import { ByteQueue } from './byte-queue';
import type { TcpClock, TimerHandle } from './clock';
import { Reassembly } from './reassembly';
import { LossRecovery } from './recovery';
import { RtoEstimator } from './rto';
import { MAX_SACK_BLOCKS, MAX_SACK_BLOCKS_WITH_TS, SackReport } from './sack-report';
import { seqAdd, seqDiff, seqGt, seqLt } from './seq';
import { Timestamps } from './timestamps';
import { tcpOptionsLength } from '../ip/tcp';
import { TCP_ACK, TCP_RST, TCP_SYN, TcpOptions, TcpSegment } from '../types';
import { ByteBudget, newStats, TcpCloseReason, TcpConnectionEvents, TcpConnectionOptions, TcpEndpoint, TcpState } from './connection-types';

const MAX_WINDOW_SHIFT = 14;

export abstract class TcpConnectionBase {
  state: TcpState;
  closeReason: TcpCloseReason | undefined;
  readonly stats = newStats();

  protected readonly clock: TcpClock;
  /** The receive window's current ceiling (grows with the measured throughput, up to rcvBufMax). */
  protected rcvBufSize: number;
  protected readonly rcvBufMax: number;
  protected readonly sndBufSize: number;
  protected readonly sndBufMax: number;
  protected readonly delayedAckMs: number;
  protected readonly timeWaitMs: number;
  protected readonly finWait2Ms: number;
  protected readonly maxRetries: number;
  protected readonly maxSynRetries: number;
  protected readonly rto: RtoEstimator;
  protected readonly budget: ByteBudget | undefined;
  protected readonly offerSack: boolean;
  protected readonly offerTimestamps: boolean;

  // Send side (RFC 793 names).
  protected readonly iss: number;
  protected sndUna: number;
  /** Next new sequence number to send (retransmissions come from the scoreboard, not from here). */
  protected sndNxt: number;
  /** Highest sequence number sent so far. */
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
  /** SACK in use: both ends offered it (RFC 2018). */
  protected sackOk = false;
  protected writeBlocked = false;
  /** close() was called: no reader any more. */
  protected orphaned = false;

  /** Scoreboard, loss detection and congestion control of what we send. */
  protected readonly recovery: LossRecovery;
  protected readonly ts: Timestamps;

  // Receive side.
  protected irs = 0;
  protected rcvNxt = 0;
  protected rcvShift = 0;
  protected rcvAdvEdge = 0;
  /** The acknowledgement number of the last ACK we sent (RFC 7323's Last.ACK.sent). */
  protected lastAckSent = 0;
  protected readonly rcvQueue: Buffer[] = [];
  protected rcvQueued = 0;
  protected peerFin = false;
  protected eofDelivered = false;
  protected readonly ooo = new Reassembly();
  protected readonly sackReport = new SackReport(this.stats);
  protected pendingAcks = 0;
  /** Bytes the reader has taken with read() so far. */
  protected readTotal = 0;
  /** Receive autotuning: when the current round trip's measurement started, what was read then, and the receive-side RTT. */
  private rcvSpaceAt: number | undefined;
  private rcvSpaceRead = 0;
  private rcvRtt: number | undefined;

  // Timers (the sending ones are in sender.ts).
  protected delAckTimer: TimerHandle | undefined;
  protected timeWaitTimer: TimerHandle | undefined;
  protected windowUpdateTimer: TimerHandle | undefined;

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
    this.rcvBufMax = opts.receiveBuffer ?? 4 * 1024 * 1024;
    this.rcvBufSize = Math.min(this.rcvBufMax, opts.initialReceiveWindow ?? 256 * 1024);
    this.sndBufSize = opts.sendBuffer ?? 256 * 1024;
    this.sndBufMax = Math.max(this.sndBufSize, opts.sendBufferMax ?? 4 * 1024 * 1024);
    this.delayedAckMs = opts.delayedAckMs ?? 40;
    this.timeWaitMs = opts.timeWaitMs ?? 30_000;
    this.finWait2Ms = opts.finWait2Ms ?? 60_000;
    this.maxRetries = opts.maxRetries ?? 12;
    this.maxSynRetries = opts.maxSynRetries ?? 5;
    this.rto = new RtoEstimator(opts.minRtoMs ?? 200, opts.maxRtoMs ?? 60_000, opts.initialRtoMs ?? 1000);
    this.budget = opts.budget;
    this.offerSack = opts.sack ?? true;
    this.offerTimestamps = opts.timestamps ?? true;
    const random = opts.random ?? Math.random;
    this.iss = (opts.iss ?? random() * 0x100000000) >>> 0;
    this.sndUna = this.iss;
    this.sndNxt = this.iss;
    this.sndMax = this.iss;
    this.sndDataEnd = seqAdd(this.iss, 1);
    this.ts = new Timestamps(this.clock, (random() * 0x100000000) >>> 0);
    this.recovery = new LossRecovery(() => this.mssOut(), () => this.sackOk, () => this.ts.enabled, this.stats, opts.congestionControl, random);
  }

  /** True while the reader is being told about new data (its reads need no window update). */
  protected delivering = false;

  // ---- segments out -------------------------------------------------------------------------

  protected sendSynSegment(withAck: boolean): void {
    const options: TcpOptions = { mss: this.ourMss };
    if (this.offerScaling && (!withAck || this.peerOfferedScaling)) options.windowScale = this.ourShift();
    // A SYN-ACK offers only what the phone's SYN offered (RFC 2018, RFC 7323).
    if (this.offerSack && (!withAck || this.sackOk)) options.sackPermitted = true;
    if (this.offerTimestamps && (!withAck || this.ts.enabled)) options.timestamps = [this.ts.now(), withAck ? this.ts.recent : 0];
    const window = Math.min(65535, this.rcvBufSize);
    const seg = this.segment(this.iss, withAck ? this.rcvNxt : 0, withAck ? TCP_SYN | TCP_ACK : TCP_SYN, Buffer.alloc(0), window);
    seg.options = options;
    this.emit(seg);
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

  /** Sends a segment, adding the timestamps and SACK blocks it carries in this connection. */
  protected emit(seg: TcpSegment): void {
    const synchronizedAck = (seg.flags & (TCP_ACK | TCP_SYN | TCP_RST)) === TCP_ACK;
    if (synchronizedAck && this.ts.enabled) seg.options.timestamps = [this.ts.now(), this.ts.recent];
    if (synchronizedAck && this.sackOk) {
      // SACK blocks only as many as fit in the MSS with the payload (all of them on a pure ACK).
      let max = this.ts.enabled ? MAX_SACK_BLOCKS_WITH_TS : MAX_SACK_BLOCKS;
      while (max > 0 && seg.payload.length + tcpOptionsLength(this.ts.enabled, max) > this.mssBase()) max--;
      if (max > 0 && (this.ooo.size > 0 || seg.payload.length === 0)) {
        const blocks = this.sackReport.blocks(this.rcvNxt, this.ooo, max);
        if (blocks) seg.options.sack = blocks;
      }
    }
    if (seg.flags & TCP_ACK) {
      this.pendingAcks = 0;
      this.lastAckSent = seg.ack;
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

  /**
   * Receive autotuning (Linux's dynamic right-sizing, simplified): once per receive RTT, the window
   * ceiling grows to four times what the reader took in that RTT (twice for the sender's window
   * growth, twice for holes and reordering), never above rcvBufMax. A reader that stops reading
   * stops the growth; memory stays bounded by the phone's budget in any case.
   */
  protected tuneReceiveWindow(segTsecr: number | undefined): void {
    const now = this.clock.now();
    const echo = this.ts.enabled && segTsecr ? now - this.ts.timeOf(segTsecr) : undefined;
    if (echo !== undefined && echo >= 0 && echo < 60_000) this.rcvRtt = this.rcvRtt === undefined || echo < this.rcvRtt ? echo : 0.875 * this.rcvRtt + 0.125 * echo;
    if (this.rcvSpaceAt === undefined) {
      this.rcvSpaceAt = now;
      this.rcvSpaceRead = this.readTotal;
      return;
    }
    if (now - this.rcvSpaceAt < (this.rcvRtt ?? this.rto.srtt ?? 200)) return;
    const taken = this.readTotal - this.rcvSpaceRead;
    if (taken * 4 > this.rcvBufSize) this.rcvBufSize = Math.min(this.rcvBufMax, taken * 4);
    this.rcvSpaceAt = now;
    this.rcvSpaceRead = this.readTotal;
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

  // ---- the end of a connection ---------------------------------------------------------------

  protected enterTimeWait(): void {
    this.state = 'TIME_WAIT';
    this.stopSendTimer();
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
    this.stopSendTimer();
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

  protected abstract stopSendTimer(): void;

  // ---- options and helpers --------------------------------------------------------------------

  /** The phone's SYN (or, for an active open, SYN-ACK) options: what this connection will use. */
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
    // Used only when both ends offered them (a SYN-ACK can only confirm what our SYN offered).
    this.sackOk = this.offerSack && options.sackPermitted === true;
    if (this.offerTimestamps && options.timestamps) this.ts.start(options.timestamps[0]);
  }

  /** Smallest shift that lets the window field express the whole receive buffer at its largest. */
  protected ourShift(): number {
    let shift = 0;
    while (shift < MAX_WINDOW_SHIFT && this.rcvBufMax >>> shift > 65535) shift++;
    return shift;
  }

  /** Payload and option bytes a segment may carry: the peer's MSS, capped by ours (same tunnel MTU). */
  protected mssBase(): number {
    return Math.min(this.peerMss, this.ourMss);
  }

  /** Payload bytes per segment we send: the MSS less the timestamps every segment carries (RFC 6691). */
  protected mssOut(): number {
    return this.mssBase() - tcpOptionsLength(this.ts.enabled, 0);
  }

  protected inWindow(seq: number, window: number): boolean {
    return !seqLt(seq, this.rcvNxt) && seqLt(seq, seqAdd(this.rcvNxt, Math.max(window, 1)));
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
