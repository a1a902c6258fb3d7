/**
 * One TCP connection as a pure state machine: segments in, segments out through a callback, time
 * from an injected clock, no sockets. The tunnel terminates every connection a phone opens here,
 * whatever its destination, so this is the phone's peer TCP: SYN to TIME_WAIT with half-close and
 * RST, MSS and window scaling, RFC 6298 retransmission timers (back-off, Karn), NewReno fast
 * retransmit and recovery, out-of-order reassembly, delayed ACKs, a persist timer for zero windows,
 * and a receive window that is the free space of a bounded receive buffer (so a slow reader slows
 * the phone down instead of growing memory).
 *
 * When to answer the SYN: a passive connection starts in SYN_PENDING and sends nothing until the
 * owner calls accept() (send SYN-ACK) or refuse() (send RST). The tunnel dials the real
 * destination first, so a refused or unreachable port is refused for the phone too, as it would be
 * without phonehome; the phone's SYN retransmissions while we dial are absorbed.
 *
 * Active open (connect()) exists for the tests' simulated peer and the benchmark's client side.
 */
import { ByteQueue } from './byte-queue';
import { NewReno } from './congestion';
import type { TcpClock, TimerHandle } from './clock';
import { Reassembly } from './reassembly';
import { RtoEstimator } from './rto';
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, seqMax } from './seq';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TcpOptions, TcpSegment } from '../types';
import { ByteBudget, newStats, TcpCloseReason, TcpConnectionEvents, TcpConnectionOptions, TcpEndpoint, TcpState } from './connection-types';

export type { ByteBudget, TcpCloseReason, TcpConnectionEvents, TcpConnectionOptions, TcpConnectionStats, TcpEndpoint, TcpState } from './connection-types';

const MAX_WINDOW_SHIFT = 14;
function randomIss(): number {
  return (Math.random() * 0x100000000) >>> 0;
}

export class TcpConnection {
  state: TcpState;
  closeReason: TcpCloseReason | undefined;
  readonly stats = newStats();

  private readonly clock: TcpClock;
  private readonly rcvBufSize: number;
  private readonly sndBufSize: number;
  private readonly delayedAckMs: number;
  private readonly timeWaitMs: number;
  private readonly finWait2Ms: number;
  private readonly maxRetries: number;
  private readonly maxSynRetries: number;
  private readonly rto: RtoEstimator;
  private readonly budget: ByteBudget | undefined;

  // Send side (RFC 793 names).
  private readonly iss: number;
  private sndUna: number;
  private sndNxt: number;
  /** Highest sequence number sent so far (sndNxt goes back after a timeout). */
  private sndMax: number;
  /** Sequence number after the last byte written by the application. */
  private sndDataEnd: number;
  private sndWnd = 0;
  private maxSndWnd = 0;
  private sndWl1 = 0;
  private sndWl2 = 0;
  private sndShift = 0;
  private readonly sendQueue = new ByteQueue();
  private finQueued = false;
  private finSeq = 0;
  private peerMss = 536;
  private peerOfferedScaling = false;
  private writeBlocked = false;
  /** close() was called: no reader any more. */
  private orphaned = false;

  // Congestion control (NewReno).
  private readonly cc: NewReno;

  // Receive side.
  private irs = 0;
  private rcvNxt = 0;
  private rcvShift = 0;
  private rcvAdvEdge = 0;
  private readonly rcvQueue: Buffer[] = [];
  private rcvQueued = 0;
  private peerFin = false;
  private eofDelivered = false;
  private readonly ooo = new Reassembly();
  private pendingAcks = 0;

  // Timers.
  private rtxTimer: TimerHandle | undefined;
  private delAckTimer: TimerHandle | undefined;
  private timeWaitTimer: TimerHandle | undefined;
  private windowUpdateTimer: TimerHandle | undefined;
  private retries = 0;
  private persistBackoff = 0;
  /** Karn: the one segment being timed (its end sequence number and send time). */
  private timing: { seq: number; at: number } | undefined;

  private constructor(
    readonly local: TcpEndpoint,
    readonly remote: TcpEndpoint,
    readonly ipVersion: 4 | 6,
    private readonly ourMss: number,
    private readonly offerScaling: boolean,
    opts: TcpConnectionOptions,
    private readonly events: TcpConnectionEvents,
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

  /** A connection for a phone's SYN, answered only when accept() is called. */
  static fromSyn(syn: TcpSegment, opts: TcpConnectionOptions, events: TcpConnectionEvents): TcpConnection {
    const c = new TcpConnection(
      { ip: syn.dstIp, port: syn.dstPort },
      { ip: syn.srcIp, port: syn.srcPort },
      syn.ipVersion,
      opts.mss,
      opts.windowScaling ?? true,
      opts,
      events,
      'SYN_PENDING',
    );
    c.irs = syn.seq >>> 0;
    c.rcvNxt = seqAdd(c.irs, 1);
    c.rcvAdvEdge = c.rcvNxt;
    c.takePeerOptions(syn.options);
    c.sndWnd = syn.window;
    c.sndWl1 = syn.seq;
    return c;
  }

  /** Active open: sends a SYN at once. */
  static connect(local: TcpEndpoint, remote: TcpEndpoint, ipVersion: 4 | 6, opts: TcpConnectionOptions, events: TcpConnectionEvents): TcpConnection {
    const c = new TcpConnection(local, remote, ipVersion, opts.mss, opts.windowScaling ?? true, opts, events, 'SYN_SENT');
    c.sendSyn(false);
    return c;
  }

  // ---- application side -------------------------------------------------------------------

  accept(): void {
    if (this.state !== 'SYN_PENDING') return;
    this.state = 'SYN_RECEIVED';
    this.sendSyn(true);
  }

  refuse(): void {
    if (this.state !== 'SYN_PENDING') return;
    this.emit(this.segment(0, this.rcvNxt, TCP_RST | TCP_ACK, Buffer.alloc(0), 0));
    this.finish('refused');
  }

  /** Queues data; false when the send buffer is full (wait for the drain event). */
  write(data: Buffer): boolean {
    if (this.finQueued || this.state === 'CLOSED') return false;
    this.sendQueue.push(data);
    this.sndDataEnd = seqAdd(this.sndDataEnd, data.length);
    this.flush();
    const ok = this.sendQueue.length < this.sndBufSize;
    if (!ok) this.writeBlocked = true;
    return ok;
  }

  /** Bytes written but not yet acknowledged by the peer. */
  get bufferedToSend(): number {
    return this.sendQueue.length;
  }

  /** Half-close: a FIN after the data already written. */
  end(): void {
    if (this.finQueued || this.state === 'CLOSED' || this.state === 'SYN_PENDING') return;
    this.finQueued = true;
    this.finSeq = this.sndDataEnd;
    if (this.state === 'ESTABLISHED') this.state = 'FIN_WAIT_1';
    else if (this.state === 'CLOSE_WAIT') this.state = 'LAST_ACK';
    this.flush();
  }

  /** Next in-order chunk for the reader; null when none is waiting. */
  read(): Buffer | null {
    const chunk = this.rcvQueue.shift();
    if (!chunk) return null;
    this.rcvQueued -= chunk.length;
    if (this.budget) this.budget.used -= chunk.length;
    // One window update after the reader's whole batch of reads, not one per chunk read.
    if (!this.windowUpdateTimer && !this.delivering) {
      this.windowUpdateTimer = this.clock.setTimeout(() => {
        this.windowUpdateTimer = undefined;
        this.maybeWindowUpdate();
      }, 0);
    }
    return chunk;
  }

  /** Bytes received and held for the reader (in order, or out of order ahead of a hole). */
  get bufferedToRead(): number {
    return this.rcvQueued + this.ooo.bytes;
  }

  /** True once end() was called (our FIN is queued or sent). */
  get writeEnded(): boolean {
    return this.finQueued;
  }

  /** True once the peer's FIN has been read past (end of stream for the reader). */
  get readEnded(): boolean {
    return this.peerFin && this.rcvQueue.length === 0;
  }

  /**
   * The application is gone (a socket's close()): data already written is still delivered and
   * followed by our FIN, unless unread data is waiting, which resets the connection. Data arriving
   * later also resets it, and FIN_WAIT_2 ends after a timeout.
   */
  close(): void {
    if (this.state === 'CLOSED') return;
    if (this.rcvQueued > 0 || this.ooo.bytes > 0 || this.state === 'SYN_PENDING' || this.state === 'SYN_SENT') return this.abort();
    this.orphaned = true;
    this.end();
    if (this.state === 'FIN_WAIT_2') this.startTimeWait(this.finWait2Ms);
  }

  /** Sends RST and closes at once (the application gave up on the connection). */
  abort(): void {
    if (this.state === 'CLOSED') return;
    if (this.state === 'SYN_PENDING') return this.refuse();
    if (this.state !== 'TIME_WAIT' && this.state !== 'SYN_SENT') this.emit(this.segment(this.sndNxt, this.rcvNxt, TCP_RST | TCP_ACK, Buffer.alloc(0), 0));
    this.finish('aborted');
  }

  // ---- segments from the peer -------------------------------------------------------------

  onSegment(seg: TcpSegment): void {
    this.stats.segmentsIn++;
    switch (this.state) {
      case 'CLOSED':
        return;
      case 'SYN_PENDING':
        if (seg.flags & TCP_RST) this.finish('reset');
        return;
      case 'SYN_SENT':
        return this.onSynSentSegment(seg);
      default:
        return this.onSynchronizedSegment(seg);
    }
  }

  private onSynSentSegment(seg: TcpSegment): void {
    const hasAck = (seg.flags & TCP_ACK) !== 0;
    if (hasAck && (seqLe(seg.ack, this.iss) || seqGt(seg.ack, this.sndMax))) {
      if (!(seg.flags & TCP_RST)) this.emit(this.segment(seg.ack, 0, TCP_RST, Buffer.alloc(0), 0));
      return;
    }
    if (seg.flags & TCP_RST) {
      if (hasAck) this.finish('refused');
      return;
    }
    if (!(seg.flags & TCP_SYN)) return;
    this.irs = seg.seq >>> 0;
    this.rcvNxt = seqAdd(this.irs, 1);
    this.rcvAdvEdge = this.rcvNxt;
    this.takePeerOptions(seg.options);
    if (!hasAck) return; // simultaneous open: not needed by anything here
    this.sndUna = seg.ack >>> 0;
    this.sndWnd = seg.window; // never scaled in a SYN (RFC 7323)
    this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd);
    this.sndWl1 = seg.seq;
    this.sndWl2 = seg.ack;
    this.sampleRtt(seg.ack);
    this.retries = 0;
    this.stopRtxTimer();
    this.cc.start();
    this.state = 'ESTABLISHED';
    this.sendAck();
    this.events.established?.();
    if (this.finQueued) this.state = 'FIN_WAIT_1';
    this.flush();
  }

  private onSynchronizedSegment(seg: TcpSegment): void {
    const flags = seg.flags;
    let seq = seg.seq >>> 0;
    let payload = seg.payload;
    let fin = (flags & TCP_FIN) !== 0;
    const window = this.acceptWindow();

    if (this.state === 'TIME_WAIT') {
      if (flags & TCP_RST) return this.finish('normal');
      if (fin || payload.length) {
        // A retransmitted FIN: our last ACK was lost. Acknowledge again and restart 2 MSL.
        this.sendAck();
        this.startTimeWait();
      }
      return;
    }

    if (flags & TCP_RST) {
      if (seq === this.rcvNxt) return this.finish('reset');
      if (this.inWindow(seq, window)) this.sendAck(); // RFC 5961 challenge ACK
      return;
    }
    if (flags & TCP_SYN) {
      if (this.state === 'SYN_RECEIVED' && seq === this.irs) {
        this.sendSyn(true); // the phone did not get our SYN-ACK
        return;
      }
      this.sendAck(); // RFC 5961 challenge ACK
      return;
    }

    // Trim to what we can take: the left edge (old data) and the right edge (our window).
    const before = seqDiff(this.rcvNxt, seq);
    if (before > 0) {
      if (before >= payload.length + (fin ? 1 : 0)) {
        if (payload.length || fin) {
          this.stats.duplicates++;
          this.scheduleAck(true);
        }
        payload = Buffer.alloc(0);
        fin = false;
        seq = this.rcvNxt;
      } else {
        payload = payload.subarray(before);
        seq = this.rcvNxt;
      }
    }
    const beyond = seqDiff(seqAdd(seq, payload.length), seqAdd(this.rcvNxt, window));
    if (beyond > 0) {
      this.stats.dropped++;
      payload = payload.subarray(0, Math.max(0, payload.length - beyond));
      fin = false;
      this.scheduleAck(true);
    }
    if (payload.length === 0 && !fin && seqGt(seq, seqAdd(this.rcvNxt, window))) {
      // Entirely outside the window: only its ACK field is trusted below.
      seq = this.rcvNxt;
    }

    if (!(flags & TCP_ACK)) return;
    if (!this.processAck(seg, seq)) return;

    if (payload.length && this.orphaned) {
      // Nobody will ever read this: tell the phone, as a kernel does for a closed socket.
      return this.abort();
    }
    if ((payload.length || fin) && this.acceptsData()) this.receiveData(seq, payload, fin);
    this.flush();
  }

  /** Returns false when the segment must be dropped after its ACK. */
  private processAck(seg: TcpSegment, seq: number): boolean {
    const ack = seg.ack >>> 0;
    if (this.state === 'SYN_RECEIVED') {
      if (!(seqGt(ack, this.sndUna) && seqLe(ack, this.sndMax))) {
        this.emit(this.segment(ack, 0, TCP_RST, Buffer.alloc(0), 0));
        return false;
      }
      this.state = 'ESTABLISHED';
      this.cc.start();
      this.sndWnd = seg.window << this.sndShift;
      this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd);
      this.sndWl1 = seq;
      this.sndWl2 = ack;
      this.events.established?.();
      if (this.finQueued) this.state = 'FIN_WAIT_1';
    }
    if (seqGt(ack, this.sndMax)) {
      this.sendAck();
      return false;
    }
    const oldWnd = this.sndWnd;
    if (seqGe(ack, this.sndUna) && (seqLt(this.sndWl1, seq) || (this.sndWl1 === seq && seqLe(this.sndWl2, ack)))) {
      this.sndWnd = seg.window << this.sndShift;
      this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd);
      this.sndWl1 = seq;
      this.sndWl2 = ack;
    }
    if (oldWnd === 0 && this.sndWnd > 0) this.stopRtxTimer(); // persist ends; flush() re-arms for data
    const acked = seqDiff(ack, this.sndUna);
    if (acked > 0) this.onNewAck(ack, acked);
    else if (acked === 0 && seg.payload.length === 0 && !(seg.flags & (TCP_FIN | TCP_SYN)) && this.sndWnd === oldWnd && seqGt(this.sndMax, this.sndUna)) {
      this.onDupAck();
    }
    if (this.sndWnd > 0) this.persistBackoff = 0;
    return this.state !== 'CLOSED';
  }

  private onNewAck(ack: number, acked: number): void {
    let dataAcked = acked;
    if (this.sndUna === this.iss) dataAcked--; // our SYN
    const finAcked = this.finQueued && seqGt(ack, this.finSeq);
    if (finAcked) dataAcked--;
    dataAcked = Math.min(Math.max(dataAcked, 0), this.sendQueue.length);
    this.sendQueue.consume(dataAcked);
    this.stats.bytesOut += dataAcked;
    this.sndUna = ack;
    if (seqLt(this.sndNxt, ack)) this.sndNxt = ack;
    this.sampleRtt(ack);
    this.retries = 0;

    // A partial ACK in recovery (RFC 6582): the next hole is lost too.
    if (this.cc.onNewAck(this.sndUna, this.sndMax, acked) === 'retransmit') this.retransmitFirst();

    if (seqDiff(this.sndMax, this.sndUna) > 0) this.restartRtxTimer();
    else this.stopRtxTimer();

    if (finAcked) {
      if (this.state === 'FIN_WAIT_1') {
        this.state = 'FIN_WAIT_2';
        if (this.orphaned) this.startTimeWait(this.finWait2Ms); // the phone may never send its FIN
      }
      else if (this.state === 'CLOSING') this.enterTimeWait();
      else if (this.state === 'LAST_ACK') return this.finish('normal');
    }
    if (this.writeBlocked && this.sendQueue.length < this.sndBufSize) {
      this.writeBlocked = false;
      this.events.drain?.();
    }
  }

  private onDupAck(): void {
    if (this.cc.onDupAck(this.sndUna, this.sndMax) !== 'retransmit') return;
    this.stats.fastRetransmits++;
    this.retransmitFirst();
  }

  private receiveData(seq: number, payload: Buffer, fin: boolean): void {
    if (seq !== this.rcvNxt) {
      this.stats.outOfOrder++;
      if (!this.ooo.insert(seq, payload, fin)) this.stats.dropped++;
      this.scheduleAck(true); // a duplicate ACK tells the sender about the hole
      return;
    }
    const filledHole = this.ooo.size > 0 || this.ooo.finSeq !== undefined;
    if (payload.length) this.deliver(payload, true);
    for (const chunk of this.ooo.take(this.rcvNxt)) this.deliver(chunk, false);
    if (!fin && this.ooo.finSeq !== undefined && this.ooo.finSeq === this.rcvNxt && this.ooo.size === 0) fin = true;
    if (fin) {
      this.ooo.clear();
      this.onPeerFin();
      return;
    }
    // The reader runs first, so the ACK below carries the window its reading opened.
    this.delivering = true;
    try {
      this.events.readable?.();
    } finally {
      this.delivering = false;
    }
    if (this.state !== 'CLOSED') this.scheduleAck(filledHole);
  }

  private deliver(data: Buffer, copy: boolean): void {
    // Copy payloads that view a packet buffer: the reader may hold them for long.
    const chunk = copy ? Buffer.from(data) : data;
    this.rcvQueue.push(chunk);
    this.rcvQueued += chunk.length;
    if (this.budget) this.budget.used += chunk.length;
    this.rcvNxt = seqAdd(this.rcvNxt, chunk.length);
    this.stats.bytesIn += chunk.length;
  }

  private onPeerFin(): void {
    this.peerFin = true;
    this.rcvNxt = seqAdd(this.rcvNxt, 1);
    if (this.state === 'ESTABLISHED') this.state = 'CLOSE_WAIT';
    else if (this.state === 'FIN_WAIT_1') this.state = 'CLOSING';
    else if (this.state === 'FIN_WAIT_2') this.enterTimeWait();
    this.sendAck();
    if (!this.eofDelivered) {
      this.eofDelivered = true;
      this.events.readable?.();
    }
  }

  /** True while the reader is being told about new data (its reads need no window update). */
  private delivering = false;

  // ---- sending ----------------------------------------------------------------------------

  /** Sends what the windows allow: new data, then our FIN once all data is out. */
  private flush(): void {
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
  private sendDataAt(seq: number, len: number): void {
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

  private retransmitFirst(): void {
    const len = Math.min(this.mssOut(), Math.max(0, seqDiff(this.sndDataEnd, this.sndUna)));
    this.sendDataAt(this.sndUna, len);
  }

  private sendSyn(withAck: boolean): void {
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

  private sendAck(): void {
    this.emit(this.segment(this.sndNxt, this.rcvNxt, TCP_ACK, Buffer.alloc(0), this.advertise()));
  }

  private segment(seq: number, ack: number, flags: number, payload: Buffer, window: number): TcpSegment {
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

  private emit(seg: TcpSegment): void {
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
  private advertise(): number {
    const wnd = this.freeReceiveSpace();
    const field = Math.min(65535, wnd >>> this.rcvShift);
    const edge = seqAdd(this.rcvNxt, field << this.rcvShift);
    if (seqGt(edge, this.rcvAdvEdge)) this.rcvAdvEdge = edge;
    return field;
  }

  private freeReceiveSpace(): number {
    let free = this.rcvBufSize - this.rcvQueued;
    if (this.budget) free = Math.min(free, Math.max(0, this.budget.limit - this.budget.used));
    return Math.max(0, Math.min(free, 65535 << this.rcvShift));
  }

  /** Bytes beyond rcvNxt we accept: what we advertised (never shrunk), or more if space opened. */
  private acceptWindow(): number {
    return Math.max(this.freeReceiveSpace(), seqDiff(this.rcvAdvEdge, this.rcvNxt));
  }

  private maybeWindowUpdate(): void {
    if (this.delivering || !this.acceptsData()) return;
    const advertised = Math.max(0, seqDiff(this.rcvAdvEdge, this.rcvNxt));
    const now = this.freeReceiveSpace();
    if (now - advertised >= Math.min(this.rcvBufSize / 2, this.ourMss) * 2 || (advertised < this.ourMss && now >= this.ourMss)) this.sendAck();
  }

  private scheduleAck(immediate: boolean): void {
    if (immediate || ++this.pendingAcks >= 2) return this.sendAck();
    if (!this.delAckTimer) {
      this.delAckTimer = this.clock.setTimeout(() => {
        this.delAckTimer = undefined;
        if (this.state !== 'CLOSED') this.sendAck();
      }, this.delayedAckMs);
    }
  }

  // ---- timers -----------------------------------------------------------------------------

  private armRtxTimer(): void {
    const inFlight = seqDiff(this.sndMax, this.sndUna) > 0;
    // Data waiting with nothing in flight: no ACK will come to restart sending, so a timer must
    // (the persist timer for a zero window, the SWS override for a too-small one).
    const blocked = seqDiff(this.sndDataEnd, this.sndNxt) > 0 || (this.finQueued && this.sndNxt === this.finSeq);
    if (inFlight || blocked) {
      if (!this.rtxTimer) this.startRtxTimer();
    } else this.stopRtxTimer();
  }

  private restartRtxTimer(): void {
    this.stopRtxTimer();
    this.startRtxTimer();
  }

  private startRtxTimer(): void {
    const persist = this.sndWnd === 0 && this.isSynchronized();
    const ms = persist ? Math.min(60_000, Math.max(this.rto.rto, 200) * 2 ** this.persistBackoff) : this.rto.rto;
    this.rtxTimer = this.clock.setTimeout(() => {
      this.rtxTimer = undefined;
      this.onRtxTimer();
    }, ms);
  }

  private stopRtxTimer(): void {
    if (this.rtxTimer) this.clock.clearTimeout(this.rtxTimer);
    this.rtxTimer = undefined;
  }

  private onRtxTimer(): void {
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

  private sendProbe(): void {
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

  private giveUp(): void {
    if (this.state !== 'SYN_SENT') this.emit(this.segment(this.sndNxt, this.rcvNxt, TCP_RST | TCP_ACK, Buffer.alloc(0), 0));
    this.finish('timeout');
  }

  private enterTimeWait(): void {
    this.state = 'TIME_WAIT';
    this.stopRtxTimer();
    this.startTimeWait();
  }

  private startTimeWait(ms = this.timeWaitMs): void {
    if (this.timeWaitTimer) this.clock.clearTimeout(this.timeWaitTimer);
    this.timeWaitTimer = this.clock.setTimeout(() => this.finish('normal'), ms);
  }

  private finish(reason: TcpCloseReason): void {
    if (this.state === 'CLOSED') return;
    this.state = 'CLOSED';
    this.closeReason = reason;
    this.stopRtxTimer();
    if (this.delAckTimer) this.clock.clearTimeout(this.delAckTimer);
    if (this.timeWaitTimer) this.clock.clearTimeout(this.timeWaitTimer);
    if (this.windowUpdateTimer) this.clock.clearTimeout(this.windowUpdateTimer);
    this.delAckTimer = this.timeWaitTimer = this.windowUpdateTimer = undefined;
    this.ooo.clear();
    if (reason !== 'normal') {
      // Unread data of a reset or abandoned connection is discarded; after a normal close the
      // reader may still drain it.
      if (this.budget) this.budget.used -= this.rcvQueued;
      this.rcvQueued = 0;
      this.rcvQueue.length = 0;
    }
    this.events.closed?.(reason);
  }

  // ---- helpers ----------------------------------------------------------------------------

  private sampleRtt(ack: number): void {
    if (this.timing && seqGe(ack, this.timing.seq)) {
      this.rto.sample(this.clock.now() - this.timing.at);
      this.timing = undefined;
    }
  }

  private takePeerOptions(options: TcpOptions): void {
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
  private ourShift(): number {
    let shift = 0;
    while (shift < MAX_WINDOW_SHIFT && this.rcvBufSize >>> shift > 65535) shift++;
    return shift;
  }

  /** Payload bytes per segment we send: the peer's MSS, capped by ours (same tunnel MTU). */
  private mssOut(): number {
    return Math.min(this.peerMss, this.ourMss);
  }

  private inWindow(seq: number, window: number): boolean {
    return seqGe(seq, this.rcvNxt) && seqLt(seq, seqAdd(this.rcvNxt, Math.max(window, 1)));
  }

  private isSynchronized(): boolean {
    return this.state !== 'SYN_SENT' && this.state !== 'SYN_RECEIVED' && this.state !== 'SYN_PENDING' && this.state !== 'CLOSED';
  }

  private canSendData(): boolean {
    return this.state === 'ESTABLISHED' || this.state === 'CLOSE_WAIT' || this.state === 'FIN_WAIT_1' || this.state === 'LAST_ACK' || this.state === 'CLOSING';
  }

  private acceptsData(): boolean {
    return this.state === 'ESTABLISHED' || this.state === 'FIN_WAIT_1' || this.state === 'FIN_WAIT_2';
  }
}
