/**
 * The shapes around one TCP connection: its states, options, events and counters, kept apart from
 * the machine (connection.ts) so the tunnel's handler and the tests read them without its internals.
 */
import type { TcpSegment } from '../types';
import type { TcpClock } from './clock';
import type { CongestionAlgorithm } from './congestion';

export type TcpState =
  | 'SYN_PENDING'
  | 'SYN_SENT'
  | 'SYN_RECEIVED'
  | 'ESTABLISHED'
  | 'FIN_WAIT_1'
  | 'FIN_WAIT_2'
  | 'CLOSING'
  | 'TIME_WAIT'
  | 'CLOSE_WAIT'
  | 'LAST_ACK'
  | 'CLOSED';

/** Why a connection reached CLOSED. */
export type TcpCloseReason = 'normal' | 'reset' | 'timeout' | 'aborted' | 'refused';

export interface TcpEndpoint {
  ip: string;
  port: number;
}

export interface TcpConnectionOptions {
  clock: TcpClock;
  /** The MSS we advertise (tunnel MTU minus IP and TCP headers). */
  mss: number;
  /**
   * Receive buffer: the most bytes held for the reader, in order or not (default 4 MiB; the window
   * scale is chosen for it). The window starts at initialReceiveWindow and grows, as Linux's
   * receive autotuning does, to four times what the reader took in one round trip.
   */
  receiveBuffer?: number;
  /** Where the receive window starts (default 256 KiB, at most receiveBuffer). */
  initialReceiveWindow?: number;
  /**
   * Send buffer: write() reports backpressure beyond this (default 256 KiB), or beyond twice the
   * congestion window when that is larger (a fast path needs more in flight), up to sendBufferMax.
   */
  sendBuffer?: number;
  /** Ceiling of the send buffer's growth with the congestion window (default 4 MiB). */
  sendBufferMax?: number;
  /** Offer window scaling in our SYN / accept it in the peer's (default true). */
  windowScaling?: boolean;
  /** Offer SACK (RFC 2018) / accept the peer's offer (default true). */
  sack?: boolean;
  /** Offer timestamps (RFC 7323) / accept the peer's offer (default true). */
  timestamps?: boolean;
  /** Congestion control of what we send (default 'bbr'; 'cubic' is the loss-based alternative). */
  congestionControl?: CongestionAlgorithm;
  /** Random numbers in [0, 1) for the ISS, the timestamp origin and BBR's probing phase (default Math.random; tests pass a seeded one). */
  random?: () => number;
  /** Initial send sequence number (default random). */
  iss?: number;
  delayedAckMs?: number;
  minRtoMs?: number;
  maxRtoMs?: number;
  initialRtoMs?: number;
  /** TIME_WAIT length (2 MSL; default 30 s). */
  timeWaitMs?: number;
  /** How long a closed-by-us (orphaned) connection waits in FIN_WAIT_2 for the peer's FIN (default 60 s). */
  finWait2Ms?: number;
  /** Retransmissions of one segment before the connection is given up (default 12). */
  maxRetries?: number;
  /** SYN or SYN-ACK retransmissions before giving up (default 5). */
  maxSynRetries?: number;
  /** Shared receive-side byte budget of all the phone's connections (optional). */
  budget?: ByteBudget;
}

/** Bytes held by several connections together (one phone's receive buffers). */
export interface ByteBudget {
  used: number;
  limit: number;
}

export interface TcpConnectionEvents {
  /** A segment to send to the peer. */
  output(segment: TcpSegment): void;
  /** The handshake completed. */
  established?(): void;
  /** In-order data or the peer's end of stream became available to read(). */
  readable?(): void;
  /** The send buffer went below its size again after write() returned false. */
  drain?(): void;
  /** The connection reached CLOSED (after TIME_WAIT for a normal close). */
  closed?(reason: TcpCloseReason): void;
}

export interface TcpConnectionStats {
  segmentsIn: number;
  segmentsOut: number;
  /** Payload bytes delivered in order to the reader / acknowledged by the peer. */
  bytesIn: number;
  bytesOut: number;
  /** Segments sent again (timeouts, fast retransmits, tail loss probes). */
  retransmissions: number;
  /** Retransmissions of segments declared lost by RACK or duplicate ACKs (not by a timeout). */
  fastRetransmits: number;
  timeouts: number;
  /** Tail loss probes sent (RFC 8985). */
  tailLossProbes: number;
  /** D-SACK blocks from the peer: segments it received twice (our retransmission was not needed). */
  spuriousRetransmissions: number;
  /** Congestion responses undone because D-SACK or timestamps showed them spurious. */
  undos: number;
  /** D-SACK blocks we sent: segments the peer sent us twice. */
  dsacksSent: number;
  /** Segments dropped by PAWS (an old duplicate: its timestamp went back). */
  pawsDrops: number;
  /** Zero-window probes sent by the persist timer. */
  windowProbes: number;
  /** Segments received ahead of a hole. */
  outOfOrder: number;
  /** Segments received that carried only data we already had. */
  duplicates: number;
  /** Segments (or parts) dropped: out of window, unacceptable, or beyond the reassembly limit. */
  dropped: number;
}

export function newStats(): TcpConnectionStats {
  return {
    segmentsIn: 0, segmentsOut: 0, bytesIn: 0, bytesOut: 0, retransmissions: 0, fastRetransmits: 0, timeouts: 0, tailLossProbes: 0,
    spuriousRetransmissions: 0, undos: 0, dsacksSent: 0, pawsDrops: 0, windowProbes: 0, outOfOrder: 0, duplicates: 0, dropped: 0,
  };
}

/** The sender's view of the path (TcpConnection.path): for diagnostics and tests. */
export interface TcpPathInfo {
  algorithm: 'bbr' | 'cubic';
  /** Congestion window and slow-start threshold (bytes; ssthresh Infinity when none). */
  cwnd: number;
  ssthresh: number;
  /** Pacing rate (bytes/s; 0 without pacing). */
  pacingRate: number;
  /** Loss recovery state: open, fast recovery, or after a timeout. */
  recovery: 'open' | 'recovery' | 'loss';
  srttMs: number | undefined;
  rtoMs: number;
  /** RACK's reordering window now (ms), and whether reordering was seen on this connection. */
  reorderWindowMs: number;
  reorderingSeen: boolean;
  /** Options in use (both ends offered them). */
  sack: boolean;
  timestamps: boolean;
  /** The receive window's current ceiling (grows with receive autotuning). */
  receiveWindow: number;
}
