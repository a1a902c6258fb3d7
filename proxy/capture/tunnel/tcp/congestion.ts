/**
 * Congestion control for the data we send to the phone: NewReno (RFC 5681 slow start and
 * congestion avoidance, RFC 6582 fast recovery with partial ACKs), with an initial window of ten
 * segments (RFC 6928). The connection tells it about ACKs and timeouts and asks it for `cwnd`.
 */
import { seqDiff, seqGe, seqGt } from './seq';

export type AckAction = 'none' | 'retransmit';

export class NewReno {
  cwnd = 0;
  ssthresh = 0x7fffffff;
  private dupAcks = 0;
  private inRecovery = false;
  /** Highest sequence sent when the last loss was detected (RFC 6582 `recover`). */
  private recover: number;

  constructor(private readonly mss: () => number, iss: number) {
    this.recover = iss;
  }

  start(): void {
    this.cwnd = 10 * this.mss();
  }

  /** `acked` new bytes up to `sndUna`; 'retransmit' when a partial ACK shows the next hole lost. */
  onNewAck(sndUna: number, sndMax: number, acked: number): AckAction {
    const mss = this.mss();
    this.dupAcks = 0;
    if (this.inRecovery) {
      if (seqGe(sndUna, this.recover)) {
        this.inRecovery = false;
        this.cwnd = Math.min(this.ssthresh, Math.max(seqDiff(sndMax, sndUna), mss) + mss);
        return 'none';
      }
      this.cwnd = Math.max(mss, this.cwnd - acked + mss);
      return 'retransmit';
    }
    if (this.cwnd < this.ssthresh) this.cwnd += Math.min(acked, mss);
    else this.cwnd += Math.max(1, Math.floor((mss * mss) / this.cwnd));
    return 'none';
  }

  /** A duplicate ACK; 'retransmit' on the third (fast retransmit), unless still recovering. */
  onDupAck(sndUna: number, sndMax: number): AckAction {
    const mss = this.mss();
    this.dupAcks++;
    if (this.inRecovery) {
      this.cwnd += mss;
      return 'none';
    }
    if (this.dupAcks !== 3 || !seqGt(sndUna, this.recover)) return 'none';
    this.ssthresh = Math.max(Math.floor(seqDiff(sndMax, sndUna) / 2), 2 * mss);
    this.recover = sndMax;
    this.inRecovery = true;
    this.cwnd = this.ssthresh + 3 * mss;
    return 'retransmit';
  }

  /** The retransmission timer expired: back to one segment, slow start to half the flight. */
  onTimeout(sndUna: number, sndMax: number): void {
    const mss = this.mss();
    this.ssthresh = Math.max(Math.floor(seqDiff(sndMax, sndUna) / 2), 2 * mss);
    this.cwnd = mss;
    this.inRecovery = false;
    this.dupAcks = 0;
    this.recover = sndMax;
  }
}
