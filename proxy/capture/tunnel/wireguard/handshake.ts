/**
 * The Noise IKpsk2 handshake of WireGuard, both halves: the responder (what phonehome is to a phone)
 * and the initiator (used by the tests and the benchmark to drive the responder, and the basis for
 * a later initiator side). Pure functions over buffers: no sockets, no timers, no peer table.
 */
import * as crypto from 'crypto';
import {
  aeadOpen, aeadSeal, dh, generateEphemeral, hash, INITIAL_CHAIN_KEY, INITIAL_HASH, kdf, KEY_LEN, LABEL_MAC1, mac,
  StaticKey, tai64n,
} from './crypto';
import { INIT, INITIATION_LEN, MSG_INITIATION, MSG_RESPONSE, RESP, RESPONSE_LEN } from './messages';

const EMPTY = Buffer.alloc(0);
export const ZERO_PSK = Buffer.alloc(KEY_LEN);

/** The key mac1 is computed with for messages sent to the holder of `publicKey`. */
export function mac1Key(publicKey: Buffer): Buffer {
  return hash(Buffer.from(LABEL_MAC1), publicKey);
}

/** mac1 check of an initiation or response addressed to us (constant-time compare). */
export function verifyMac1(msg: Buffer, mac1Offset: number, key: Buffer): boolean {
  const expected = mac(key, msg.subarray(0, mac1Offset));
  return crypto.timingSafeEqual(expected, msg.subarray(mac1Offset, mac1Offset + 16));
}

/** mac1, and mac2 when the receiver gave us a cookie (else zero), as the last 32 bytes of a handshake message. */
function writeMacs(msg: Buffer, mac1Offset: number, key: Buffer, cookie?: Buffer): void {
  mac(key, msg.subarray(0, mac1Offset)).copy(msg, mac1Offset);
  if (cookie) mac(cookie, msg.subarray(0, mac1Offset + 16)).copy(msg, mac1Offset + 16);
  else msg.fill(0, mac1Offset + 16, mac1Offset + 32);
}

/** Transport keys of one completed handshake. */
export interface SessionKeys {
  send: Buffer;
  recv: Buffer;
}

/** What the responder learns from a valid initiation; `chainKey`/`hash` continue into the response. */
export interface ReceivedInitiation {
  peerPublicKey: Buffer;
  senderIndex: number;
  timestamp: Buffer;
  ephemeral: Buffer;
  chainKey: Buffer;
  hash: Buffer;
}

/**
 * Decrypts an initiation addressed to `responder`. mac1 is the caller's check (it is cheap and
 * comes first); null here means the initiation is not valid Noise for our static key.
 */
export function consumeInitiation(msg: Buffer, responder: StaticKey): ReceivedInitiation | null {
  if (msg.length !== INITIATION_LEN || msg[0] !== MSG_INITIATION) return null;
  const ephemeral = msg.subarray(INIT.ephemeral, INIT.ephemeral + 32);
  let h = hash(INITIAL_HASH, responder.publicKey);
  let c = INITIAL_CHAIN_KEY;
  [c] = kdf(1, c, ephemeral);
  h = hash(h, ephemeral);
  const es = dh(responder.privateKey, ephemeral);
  if (!es) return null;
  let k: Buffer;
  [c, k] = kdf(2, c, es);
  const encStatic = msg.subarray(INIT.static, INIT.static + 48);
  const peerPublicKey = aeadOpen(k, 0n, encStatic, h);
  if (!peerPublicKey) return null;
  h = hash(h, encStatic);
  const ss = dh(responder.privateKey, peerPublicKey);
  if (!ss) return null;
  [c, k] = kdf(2, c, ss);
  const encTime = msg.subarray(INIT.timestamp, INIT.timestamp + 28);
  const timestamp = aeadOpen(k, 0n, encTime, h);
  if (!timestamp) return null;
  h = hash(h, encTime);
  return { peerPublicKey: Buffer.from(peerPublicKey), senderIndex: msg.readUInt32LE(INIT.sender), timestamp, ephemeral: Buffer.from(ephemeral), chainKey: c, hash: h };
}

/**
 * The response message's chaining-key and hash steps, identical on both sides (Noise IKpsk2 "e, ee,
 * se, psk"): mix the responder's ephemeral public key, the two Diffie-Hellman results and the PSK.
 * Returns the chaining key, the hash (ready to authenticate the empty payload) and its AEAD key.
 */
function responseKeySchedule(chainKey: Buffer, h0: Buffer, responderEphemeral: Buffer, ee: Buffer, se: Buffer, psk: Buffer): { c: Buffer; h: Buffer; k: Buffer } {
  let [c] = kdf(1, chainKey, responderEphemeral);
  const h = hash(h0, responderEphemeral);
  [c] = kdf(1, c, ee);
  [c] = kdf(1, c, se);
  const [c2, t, k] = kdf(3, c, psk);
  return { c: c2, h: hash(h, t), k };
}

/** Builds the response to a consumed initiation and derives the responder's transport keys. */
export function createResponse(
  init: ReceivedInitiation, localIndex: number, psk: Buffer = ZERO_PSK, ephemeral: StaticKey = generateEphemeral(),
): { message: Buffer; keys: SessionKeys } | null {
  const msg = Buffer.alloc(RESPONSE_LEN);
  msg[0] = MSG_RESPONSE;
  msg.writeUInt32LE(localIndex >>> 0, RESP.sender);
  msg.writeUInt32LE(init.senderIndex >>> 0, RESP.receiver);
  ephemeral.publicKey.copy(msg, RESP.ephemeral);
  const ee = dh(ephemeral.privateKey, init.ephemeral);
  const se = dh(ephemeral.privateKey, init.peerPublicKey);
  if (!ee || !se) return null;
  const { c, h, k } = responseKeySchedule(init.chainKey, init.hash, ephemeral.publicKey, ee, se, psk);
  const empty = aeadSeal(k, 0n, EMPTY, h);
  empty.copy(msg, RESP.empty);
  writeMacs(msg, RESP.mac1, mac1Key(init.peerPublicKey));
  const [recv, send] = kdf(2, c, EMPTY);
  return { message: msg, keys: { send, recv } };
}

/** Initiator state kept between sending an initiation and receiving the response. */
export interface InitiatorState {
  localIndex: number;
  ephemeral: StaticKey;
  chainKey: Buffer;
  hash: Buffer;
}

/** An initiation to `responderPublicKey`; with `cookie` (from the responder's cookie reply) it carries mac2. */
export function createInitiation(
  initiator: StaticKey, responderPublicKey: Buffer, localIndex: number, timestamp: Buffer = tai64n(), cookie?: Buffer,
): { message: Buffer; state: InitiatorState } {
  const msg = Buffer.alloc(INITIATION_LEN);
  msg[0] = MSG_INITIATION;
  msg.writeUInt32LE(localIndex >>> 0, INIT.sender);
  const e = generateEphemeral();
  e.publicKey.copy(msg, INIT.ephemeral);
  let h = hash(INITIAL_HASH, responderPublicKey);
  let c = INITIAL_CHAIN_KEY;
  [c] = kdf(1, c, e.publicKey);
  h = hash(h, e.publicKey);
  const es = dh(e.privateKey, responderPublicKey);
  if (!es) throw new Error('invalid responder public key');
  let k: Buffer;
  [c, k] = kdf(2, c, es);
  const encStatic = aeadSeal(k, 0n, initiator.publicKey, h);
  encStatic.copy(msg, INIT.static);
  h = hash(h, encStatic);
  const ss = dh(initiator.privateKey, responderPublicKey);
  if (!ss) throw new Error('invalid responder public key');
  [c, k] = kdf(2, c, ss);
  const encTime = aeadSeal(k, 0n, timestamp, h);
  encTime.copy(msg, INIT.timestamp);
  h = hash(h, encTime);
  writeMacs(msg, INIT.mac1, mac1Key(responderPublicKey), cookie);
  return { message: msg, state: { localIndex, ephemeral: e, chainKey: c, hash: h } };
}

/** Completes the initiator's handshake; null when the response is not for this state. */
export function consumeResponse(
  msg: Buffer, state: InitiatorState, initiator: StaticKey, psk: Buffer = ZERO_PSK,
): { keys: SessionKeys; remoteIndex: number } | null {
  if (msg.length !== RESPONSE_LEN || msg[0] !== MSG_RESPONSE) return null;
  if (msg.readUInt32LE(RESP.receiver) !== state.localIndex >>> 0) return null;
  if (!verifyMac1(msg, RESP.mac1, mac1Key(initiator.publicKey))) return null;
  const re = msg.subarray(RESP.ephemeral, RESP.ephemeral + 32);
  const ee = dh(state.ephemeral.privateKey, re);
  const se = dh(initiator.privateKey, re);
  if (!ee || !se) return null;
  const { c, h, k } = responseKeySchedule(state.chainKey, state.hash, re, ee, se, psk);
  if (!aeadOpen(k, 0n, msg.subarray(RESP.empty, RESP.empty + 16), h)) return null;
  const [send, recv] = kdf(2, c, EMPTY);
  return { keys: { send, recv }, remoteIndex: msg.readUInt32LE(RESP.sender) };
}
