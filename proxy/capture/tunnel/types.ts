/**
 * VPN mode's internal contracts, shared by the WireGuard endpoint (wireguard/), the IP layer with
 * UDP, DNS and ICMP (ip/), and the userspace TCP (tcp/). WireGuard hands decrypted IP packets of a
 * peer to the IP layer; the IP layer hands TCP segments to a TcpSegmentHandler and serialises the
 * segments it sends back. Keep these shapes stable: three modules are built against them.
 */

import type { IncomingTcpConnection } from './tcp/handler';

/** A phone: one WireGuard peer with its tunnel addresses (its device key is `ipv4`). */
export interface TunnelPeer {
  /** base64 Curve25519 public key, as in WireGuard configs. */
  publicKey: string;
  /** Human name given with `phonehome wireguard add NAME`. */
  name: string;
  /** The phone's tunnel IPv4 address, e.g. 10.77.0.2: packets from any other source are dropped. */
  ipv4: string;
  /** The phone's tunnel IPv6 address, e.g. fd77::2. */
  ipv6: string;
}

/** Sends one IP packet (≤ tunnel MTU) to a peer through WireGuard. */
export type PacketSink = (peer: TunnelPeer, ipPacket: Buffer) => void;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

export interface TcpOptions {
  mss?: number;
  /** Window scale shift (0..14). */
  windowScale?: number;
  sackPermitted?: boolean;
  /** [TSval, TSecr] */
  timestamps?: [number, number];
  /** SACK blocks (RFC 2018), each [left edge, right edge) as unsigned sequence numbers; at most 4. */
  sack?: SackBlock[];
}

/** One SACK block: the first sequence number received and the one after the last. */
export type SackBlock = [start: number, end: number];

/** A TCP segment with its addresses, independent of the IP version (parsed or to be built). */
export interface TcpSegment {
  /** 4 or 6; src/dst are textual addresses of that family. */
  ipVersion: 4 | 6;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  /** Unsigned 32-bit sequence and acknowledgement numbers. */
  seq: number;
  ack: number;
  /** Bit set of TCP_* flags. */
  flags: number;
  /** Window field as on the wire (unscaled). */
  window: number;
  options: TcpOptions;
  payload: Buffer;
}

/** What the TCP layer (part 2) provides to the IP layer; until then the IP layer answers SYNs with RST. */
export interface TcpSegmentHandler {
  /** A checksum-valid segment from the phone. `send` serialises and tunnels a segment back. */
  onSegment(peer: TunnelPeer, segment: TcpSegment, send: (segment: TcpSegment) => void): void;
  /**
   * A service of phonehome's own inside the tunnel (DNS over TCP): offered each new connection
   * before interception; it returns true when it took the connection.
   */
  addLocalService?(serve: (conn: IncomingTcpConnection) => boolean): void;
  /** Stop all connections (phonehome is stopping). */
  close(): void;
}
