/**
 * WireGuard's four message layouts (little-endian u32 fields; first byte is the type, then three
 * zero bytes). Only lengths and offsets live here, so the handshake and transport code reads clearly.
 */
export const MSG_INITIATION = 1;
export const MSG_RESPONSE = 2;
export const MSG_COOKIE_REPLY = 3;
export const MSG_TRANSPORT = 4;

export const INITIATION_LEN = 148;
export const RESPONSE_LEN = 92;
export const COOKIE_REPLY_LEN = 64;
/** Header (type, receiver, counter) + the 16-byte tag of an empty (keepalive) payload. */
export const TRANSPORT_HEADER_LEN = 16;
export const TRANSPORT_MIN_LEN = TRANSPORT_HEADER_LEN + 16;

/** Initiation: sender 4..8, ephemeral 8..40, encrypted static 40..88, encrypted TAI64N 88..116, mac1 116..132, mac2 132..148. */
export const INIT = { sender: 4, ephemeral: 8, static: 40, timestamp: 88, mac1: 116, mac2: 132 } as const;
/** Response: sender 4..8, receiver 8..12, ephemeral 12..44, encrypted empty 44..60, mac1 60..76, mac2 76..92. */
export const RESP = { sender: 4, receiver: 8, ephemeral: 12, empty: 44, mac1: 60, mac2: 76 } as const;
/** Transport: receiver 4..8, counter 8..16 (u64), encrypted packet 16.. */
export const DATA = { receiver: 4, counter: 8, payload: 16 } as const;

/** The message type when the packet is well-formed enough to be looked at, else 0. */
export function messageType(msg: Buffer): number {
  if (msg.length < 4 || msg[1] !== 0 || msg[2] !== 0 || msg[3] !== 0) return 0;
  const t = msg[0];
  if (t === MSG_INITIATION && msg.length === INITIATION_LEN) return t;
  if (t === MSG_RESPONSE && msg.length === RESPONSE_LEN) return t;
  if (t === MSG_COOKIE_REPLY && msg.length === COOKIE_REPLY_LEN) return t;
  if (t === MSG_TRANSPORT && msg.length >= TRANSPORT_MIN_LEN) return t;
  return 0;
}
