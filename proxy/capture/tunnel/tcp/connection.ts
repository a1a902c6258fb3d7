/**
 * One TCP connection as a pure state machine: segments in, segments out through a callback, time
 * from an injected clock, no sockets. The tunnel terminates every connection a phone opens here,
 * whatever its destination, so this is the phone's peer TCP: SYN to TIME_WAIT with half-close and
 * RST, MSS and window scaling, SACK and D-SACK both ways, timestamps with PAWS, RACK-TLP loss
 * detection, BBR with pacing (or CUBIC with PRR; recovery.ts), RFC 6298 retransmission timers,
 * out-of-order reassembly, delayed ACKs, a persist timer for zero windows, and a receive window
 * that is the free space of a bounded, autotuned receive buffer (so a slow reader slows the phone
 * down instead of growing memory). SACK and timestamps are used only when the phone's SYN
 * offered them.
 *
 * When to answer the SYN: a passive connection starts in SYN_PENDING and sends nothing until the
 * owner calls accept() (send SYN-ACK) or refuse() (send RST). The tunnel dials the real
 * destination first, so a refused or unreachable port is refused for the phone too, as it would be
 * without phonehome; the phone's SYN retransmissions while we dial are absorbed.
 *
 * Active open (connect()) exists for the tests' simulated phone. The sending half and its timer are in
 * sender.ts, segment building and the receive window in connection-base.ts.
 */
import type { TcpConnectionEvents, TcpConnectionOptions, TcpEndpoint, TcpPathInfo } from './connection-types';
import { TcpSender } from './sender';
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from './seq';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, TcpSegment } from '../types';

export type { ByteBudget, TcpCloseReason, TcpConnectionEvents, TcpConnectionOptions, TcpConnectionStats, TcpEndpoint, TcpPathInfo, TcpState } from './connection-types';

export class TcpConnection extends TcpSender {
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
    c.lastAckSent = c.rcvNxt;
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
    const ok = this.sendQueue.length < this.sendBufferLimit();
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
    this.readTotal += chunk.length;
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

  /** The sender's view of the path now. */
  get path(): TcpPathInfo {
    const r = this.recovery;
    return {
      algorithm: r.cc.algorithm, cwnd: r.cc.cwnd, ssthresh: r.cc.ssthresh, pacingRate: r.cc.pacingRate * 1000, recovery: r.mode,
      srttMs: this.rto.srtt, rtoMs: this.rto.rto, reorderWindowMs: r.rack.reoWnd(r.mode !== 'open', r.board.sackedSegments, this.rto.srtt),
      reorderingSeen: r.rack.reorderingSeen, sack: this.sackOk, timestamps: this.ts.enabled, receiveWindow: this.rcvBufSize,
    };
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
    if (this.state === 'CLOSED') return this.discardUnread();
    if (this.rcvQueued > 0 || this.ooo.bytes > 0 || this.state === 'SYN_PENDING' || this.state === 'SYN_SENT') return this.abort();
    this.orphaned = true;
    this.end();
    if (this.state === 'FIN_WAIT_2') this.startTimeWait(this.finWait2Ms);
  }

  /** Sends RST and closes at once (the application gave up on the connection). */
  abort(): void {
    if (this.state === 'CLOSED') return this.discardUnread();
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
    this.lastAckSent = this.rcvNxt;
    this.takePeerOptions(seg.options);
    if (!hasAck) return; // simultaneous open: not needed by anything here
    this.sndUna = seg.ack >>> 0;
    this.sndWnd = seg.window; // never scaled in a SYN (RFC 7323)
    this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd);
    this.sndWl1 = seg.seq;
    this.sndWl2 = seg.ack;
    this.synAcknowledged(seg.options.timestamps?.[1]);
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

    const tsval = seg.options.timestamps?.[0];
    if (!(flags & TCP_RST) && !this.ts.acceptable(tsval)) {
      // PAWS (RFC 7323 5.3): an old duplicate from a wrapped sequence space; answered, not used.
      this.stats.pawsDrops++;
      this.sendAck();
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
      // Data we already had is reported back as a D-SACK (RFC 2883): the phone learns its
      // retransmission was not needed.
      if (payload.length) this.sackReport.onDuplicate(seq, seqAdd(seq, Math.min(before, payload.length)));
      if (before >= payload.length + (fin ? 1 : 0)) {
        // Old data, or a keep-alive probe (seq = rcvNxt - 1): either way the peer needs an ACK.
        if (payload.length || fin) this.stats.duplicates++;
        this.scheduleAck(true);
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
    this.ts.update(tsval, seg.seq, this.lastAckSent);
    if (!this.processAck(seg, seq)) return;

    if (payload.length && this.orphaned) {
      // Nobody will ever read this: tell the phone, as a kernel does for a closed socket.
      return this.abort();
    }
    if ((payload.length || fin) && this.acceptsData()) this.receiveData(seq, payload, fin, seg.options.timestamps?.[1]);
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
      this.synAcknowledged(seg.options.timestamps?.[1]);
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
    if (seqLt(ack, this.sndUna)) {
      // An ACK overtaken by a later one: its SACK blocks (a D-SACK above all) still say something.
      if (seg.options.sack && seqGe(ack, this.sndUna - this.maxSndWnd)) this.ackSent(seg, this.sndUna, false);
      return true;
    }
    const oldWnd = this.sndWnd;
    if (seqLt(this.sndWl1, seq) || (this.sndWl1 === seq && seqLe(this.sndWl2, ack))) {
      this.sndWnd = seg.window << this.sndShift;
      this.maxSndWnd = Math.max(this.maxSndWnd, this.sndWnd);
      this.sndWl1 = seq;
      this.sndWl2 = ack;
    }
    const duplicate = ack === this.sndUna && seg.payload.length === 0 && !(seg.flags & (TCP_FIN | TCP_SYN)) && this.sndWnd === oldWnd && seqGt(this.sndMax, this.sndUna);
    const finAcked = this.finQueued && seqGt(ack, this.finSeq) && !seqGt(this.sndUna, this.finSeq);
    this.ackSent(seg, ack, duplicate);
    if (this.sndWnd > 0) this.persistBackoff = 0;
    if (finAcked) {
      if (this.state === 'FIN_WAIT_1') {
        this.state = 'FIN_WAIT_2';
        if (this.orphaned) this.startTimeWait(this.finWait2Ms); // the phone may never send its FIN
      } else if (this.state === 'CLOSING') {
        this.enterTimeWait();
      } else if (this.state === 'LAST_ACK') {
        this.finish('normal');
        return false;
      }
    }
    this.maybeDrain();
    if (oldWnd === 0 && this.sndWnd > 0) this.updateTimer(true); // the persist timer ends
    return this.state !== 'CLOSED';
  }

  private receiveData(seq: number, payload: Buffer, fin: boolean, tsecr: number | undefined): void {
    if (seq !== this.rcvNxt) {
      this.stats.outOfOrder++;
      const added = this.ooo.insert(seq, payload, fin);
      if (added < 0) {
        this.stats.dropped++;
      } else if (added === 0 && payload.length) {
        this.stats.duplicates++;
        this.sackReport.onDuplicate(seq, seqAdd(seq, payload.length));
      } else if (payload.length) {
        this.sackReport.onOutOfOrder(seq);
      }
      this.scheduleAck(true); // the ACK's SACK blocks (or, without SACK, its repetition) tell the sender about the hole
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
    this.tuneReceiveWindow(tsecr);
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
}
