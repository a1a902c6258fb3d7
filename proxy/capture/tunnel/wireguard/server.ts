/**
 * phonehome's WireGuard endpoint: one UDP socket, the responder side of the handshake for every
 * configured phone, transport data with counters and the anti-replay window, passive keepalives,
 * Reject-After-Time, endpoint roaming and cryptokey routing (a phone may only send from its own
 * tunnel address). It hands decrypted IP packets to `onPacket` and seals what `send` is given.
 *
 * The phone's app normally initiates (and, as initiator, rekeys after Rekey-After-Time, 120 s).
 * phonehome initiates too when it has a packet for a phone whose session is gone or past Reject-
 * After-Time (180 s), to the phone's last known endpoint, retrying every Rekey-Timeout (5 s) for
 * Rekey-Attempt-Time (90 s); and it rekeys sessions it initiated after 120 s. A phone behind NAT is
 * only reachable while its mapping lasts, hence PersistentKeepalive = 25 in the client config.
 * Under load (a flood of initiations) handshakes need mac2 and are rate-limited per address; a
 * message without gets a cookie reply (cookie.ts). Cookie replies from a phone under load are used
 * for phonehome's own initiations.
 */
import * as crypto from 'crypto';
import * as dgram from 'dgram';
import type { TunnelPeer } from '../types';
import { ipv4Bytes, ipv6Bytes, innerPacketLength, sourceIs, TUNNEL_MTU } from './addresses';
import { aeadOpen, aeadSeal, privateKeyFromRaw, StaticKey } from './crypto';
import { COOKIE_LIFETIME_MS, CookieChecker, LoadMonitor, openCookieReply, RateLimiter, sourceBytes } from './cookie';
import { consumeInitiation, consumeResponse, createInitiation, createResponse, InitiatorState, mac1Key, verifyMac1 } from './handshake';
import { DATA, INIT, messageType, MSG_COOKIE_REPLY, MSG_INITIATION, MSG_RESPONSE, MSG_TRANSPORT, RESP, TRANSPORT_HEADER_LEN } from './messages';
import { REJECT_AFTER_MESSAGES, ReplayWindow } from './replay';

export const REJECT_AFTER_TIME_MS = 180_000;
export const KEEPALIVE_TIMEOUT_MS = 10_000;
export const REKEY_AFTER_TIME_MS = 120_000;
export const REKEY_TIMEOUT_MS = 5_000;
export const REKEY_ATTEMPT_TIME_MS = 90_000;
/** wireguard-go accepts at most one initiation per peer every 20 ms (INITIATIONS_PER_SECOND 50). */
const MIN_INITIATION_INTERVAL_MS = 20;
const MAX_QUEUED = 128;
const EMPTY = Buffer.alloc(0);

interface Keypair {
  localIndex: number;
  remoteIndex: number;
  send: Buffer;
  recv: Buffer;
  sendCounter: bigint;
  replay: ReplayWindow;
  createdAt: number;
  /** True when phonehome initiated this session (then phonehome rekeys it after 120 s). */
  initiator: boolean;
  peer: PeerState;
}

/** A handshake phonehome initiated and awaits the response to. */
interface PendingInitiation {
  state: InitiatorState;
  /** mac1 of the initiation sent (a cookie reply to it is sealed with it as additional data). */
  mac1: Buffer;
  sentAt: number;
  /** When the first attempt of this series was sent (attempts stop after 90 s). */
  firstAt: number;
  timer?: NodeJS.Timeout;
}

interface PeerState {
  peer: TunnelPeer;
  v4: Buffer;
  v6: Buffer;
  endpoint?: { address: string; port: number };
  lastTimestamp?: Buffer;
  lastInitiationAt: number;
  lastHandshakeAt?: number;
  current?: Keypair;
  previous?: Keypair;
  next?: Keypair;
  /** A data packet arrived and nothing was sent since: a keepalive is due when the timer fires. */
  keepaliveDue: boolean;
  keepaliveTimer?: NodeJS.Timeout;
  pending?: PendingInitiation;
  queue: Buffer[];
  rxBytes: number;
  txBytes: number;
  /** A cookie the phone (under load) gave us for our initiations, and when. */
  cookie?: { value: Buffer; at: number };
}

export interface WireGuardServerOptions {
  /** Raw 32-byte server private key. */
  privateKey: Buffer;
  port: number;
  /** Default 0.0.0.0 (udp4); an IPv6 address binds udp6. */
  listenHost?: string;
  peers: TunnelPeer[];
  /** A decrypted IP packet from a phone (already trimmed of padding, source checked). */
  onPacket: (peer: TunnelPeer, packet: Buffer) => void;
  mtu?: number;
  log?: (line: string) => void;
  /** Clock for tests. */
  now?: () => number;
}

/** Why packets were dropped or what happened to them: every arriving datagram lands in one counter. */
export interface WireGuardCounters {
  handshakes: number;
  handshakesInitiated: number;
  dataPackets: number;
  keepalivesReceived: number;
  keepalivesSent: number;
  packetsSent: number;
  malformed: number;
  badMac1: number;
  badHandshake: number;
  unknownPeer: number;
  staleInitiation: number;
  initiationFlood: number;
  unexpectedType: number;
  unknownIndex: number;
  expiredKey: number;
  replayed: number;
  badAead: number;
  badInnerPacket: number;
  wrongSource: number;
  sendQueued: number;
  sendDropped: number;
  /** Under load: handshake messages answered with a cookie reply (no valid mac2), or dropped by the per-address limit. */
  cookieRepliesSent: number;
  handshakeRateLimited: number;
  /** Cookie replies received for phonehome's initiations (used), and ones that did not open. */
  cookieRepliesReceived: number;
  badCookieReply: number;
}

export interface PeerStats {
  name: string;
  publicKey: string;
  ipv4: string;
  ipv6: string;
  endpoint?: string;
  lastHandshakeAt?: number;
  rxBytes: number;
  txBytes: number;
}

export class WireGuardServer {
  private readonly key: StaticKey;
  private readonly ourMac1Key: Buffer;
  private readonly socket: dgram.Socket;
  private readonly peers = new Map<string, PeerState>();
  private readonly byIndex = new Map<number, Keypair>();
  /** Local indices of handshakes phonehome initiated (responses are addressed to them). */
  private readonly pendingByIndex = new Map<number, PeerState>();
  private readonly mtu: number;
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private sweepTimer?: NodeJS.Timeout;
  private closed = false;
  private bound = false;
  readonly counters: WireGuardCounters = {
    handshakes: 0, handshakesInitiated: 0, dataPackets: 0, keepalivesReceived: 0, keepalivesSent: 0, packetsSent: 0, malformed: 0, badMac1: 0,
    badHandshake: 0, unknownPeer: 0, staleInitiation: 0, initiationFlood: 0, unexpectedType: 0, unknownIndex: 0,
    expiredKey: 0, replayed: 0, badAead: 0, badInnerPacket: 0, wrongSource: 0, sendQueued: 0, sendDropped: 0,
    cookieRepliesSent: 0, handshakeRateLimited: 0, cookieRepliesReceived: 0, badCookieReply: 0,
  };
  private readonly cookies: CookieChecker;
  private readonly load = new LoadMonitor();
  /** Under load: handshakes per address (wireguard-go's 20/s), and cookie replies per address. */
  private readonly handshakeLimit = new RateLimiter();
  private readonly cookieReplyLimit = new RateLimiter();

  constructor(private readonly opts: WireGuardServerOptions) {
    this.key = privateKeyFromRaw(opts.privateKey);
    this.ourMac1Key = mac1Key(this.key.publicKey);
    this.mtu = opts.mtu ?? TUNNEL_MTU;
    this.now = opts.now ?? Date.now;
    this.log = opts.log ?? (() => undefined);
    this.cookies = new CookieChecker(this.key.publicKey, this.now);
    const host = opts.listenHost ?? '0.0.0.0';
    this.socket = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
    this.socket.on('message', (msg, rinfo) => this.receive(msg, rinfo));
    this.socket.on('error', (err) => this.log(`wireguard: socket error: ${err.message}`));
    this.setPeers(opts.peers);
  }

  get publicKey(): string {
    return this.key.publicKey.toString('base64');
  }

  listen(): Promise<{ port: number }> {
    return new Promise((resolve, reject) => {
      this.socket.once('error', reject);
      this.socket.bind(this.opts.port, this.opts.listenHost ?? '0.0.0.0', () => {
        this.socket.off('error', reject);
        this.bound = true;
        this.sweepTimer = setInterval(() => this.sweep(), 5_000);
        this.sweepTimer.unref();
        resolve({ port: this.socket.address().port });
      });
    });
  }

  /** Replaces the peer set (new phones added while running); sessions of kept peers survive. */
  setPeers(peers: TunnelPeer[]): void {
    const wanted = new Set(peers.map((p) => p.publicKey));
    for (const [key, state] of this.peers) if (!wanted.has(key)) this.dropPeer(state);
    for (const peer of peers) {
      const existing = this.peers.get(peer.publicKey);
      if (existing && existing.peer.ipv4 === peer.ipv4 && existing.peer.ipv6 === peer.ipv6) {
        existing.peer = { ...peer };
        continue;
      }
      if (existing) this.dropPeer(existing);
      this.peers.set(peer.publicKey, {
        peer: { ...peer }, v4: ipv4Bytes(peer.ipv4), v6: ipv6Bytes(peer.ipv6), lastInitiationAt: -Infinity,
        keepaliveDue: false, queue: [], rxBytes: 0, txBytes: 0,
      });
    }
  }

  /** Seals one IP packet to a phone; queued (bounded) until the phone has a confirmed session. */
  send(peer: TunnelPeer, packet: Buffer): void {
    const state = this.peers.get(peer.publicKey);
    if (!state || this.closed) {
      this.counters.sendDropped++;
      return;
    }
    if (packet.length > this.mtu) {
      this.counters.sendDropped++;
      return;
    }
    if (!this.sendTo(state, packet)) {
      if (state.queue.length >= MAX_QUEUED) {
        state.queue.shift();
        this.counters.sendDropped++;
      }
      state.queue.push(Buffer.from(packet));
      this.counters.sendQueued++;
      // No session to send with (none yet, or past Reject-After-Time): ask the phone for one.
      if (!state.next) this.initiate(state);
    }
  }

  stats(): { publicKey: string; counters: WireGuardCounters; peers: PeerStats[] } {
    return {
      publicKey: this.publicKey,
      counters: { ...this.counters },
      peers: [...this.peers.values()].map((s) => ({
        name: s.peer.name, publicKey: s.peer.publicKey, ipv4: s.peer.ipv4, ipv6: s.peer.ipv6,
        endpoint: s.endpoint ? `${s.endpoint.address}:${s.endpoint.port}` : undefined,
        lastHandshakeAt: s.lastHandshakeAt, rxBytes: s.rxBytes, txBytes: s.txBytes,
      })),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    for (const state of this.peers.values()) this.dropPeer(state);
    // A socket whose bind failed never calls a close callback: do not wait for one.
    if (!this.bound) {
      try {
        this.socket.close();
      } catch { /* already closed by the failed bind */ }
      return;
    }
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  private receive(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    try {
      const type = messageType(msg);
      if (type === MSG_INITIATION) this.onInitiation(msg, rinfo);
      else if (type === MSG_TRANSPORT) this.onTransport(msg, rinfo);
      else if (type === MSG_RESPONSE) this.onResponse(msg, rinfo);
      else if (type === MSG_COOKIE_REPLY) this.onCookieReply(msg);
      else if (type === 0) this.counters.malformed++;
      else this.counters.unexpectedType++;
    } catch (err) {
      // A bug must not take the endpoint down; count it where a user looks.
      this.counters.malformed++;
      this.log(`wireguard: error handling a datagram from ${rinfo.address}: ${(err as Error).message}`);
    }
  }

  /**
   * Under load (too many handshake messages this second), a handshake message is worked on only
   * with a valid mac2 (its sender holds our cookie for its address) and within its address's
   * rate; without mac2 it gets a cookie reply, itself rate-limited. False: drop the message.
   */
  private admitHandshake(msg: Buffer, mac1Offset: number, senderIndex: number, rinfo: dgram.RemoteInfo): boolean {
    const now = this.now();
    if (!this.load.hit(now)) return true;
    const src = sourceBytes(rinfo.address, rinfo.port);
    // A zero mac2 (no cookie, as in a replayed initiation) needs no MAC computed to be refused.
    const mac2Given = msg.subarray(mac1Offset + 16, mac1Offset + 32).some((b) => b !== 0);
    if (!mac2Given || !this.cookies.checkMac2(msg, mac1Offset + 16, src)) {
      if (this.cookieReplyLimit.allow(rinfo.address, now)) {
        this.counters.cookieRepliesSent++;
        this.socket.send(this.cookies.reply(msg, senderIndex, mac1Offset, src), rinfo.port, rinfo.address);
      } else {
        this.counters.handshakeRateLimited++;
      }
      return false;
    }
    if (this.handshakeLimit.allow(rinfo.address, now)) return true;
    this.counters.handshakeRateLimited++;
    return false;
  }

  private onInitiation(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (!verifyMac1(msg, INIT.mac1, this.ourMac1Key)) {
      this.counters.badMac1++;
      return;
    }
    if (!this.admitHandshake(msg, INIT.mac1, msg.readUInt32LE(INIT.sender), rinfo)) return;
    const init = consumeInitiation(msg, this.key);
    if (!init) {
      this.counters.badHandshake++;
      return;
    }
    const state = this.peers.get(init.peerPublicKey.toString('base64'));
    if (!state) {
      this.counters.unknownPeer++;
      return;
    }
    // TAI64N is big-endian: byte order is time order. Equal or older means a replayed initiation.
    if (state.lastTimestamp && init.timestamp.compare(state.lastTimestamp) <= 0) {
      this.counters.staleInitiation++;
      return;
    }
    const now = this.now();
    if (now - state.lastInitiationAt < MIN_INITIATION_INTERVAL_MS) {
      this.counters.initiationFlood++;
      return;
    }
    const localIndex = this.newIndex();
    const response = createResponse(init, localIndex);
    if (!response) {
      this.counters.badHandshake++;
      return;
    }
    state.lastTimestamp = init.timestamp;
    state.lastInitiationAt = now;
    if (state.next) this.byIndex.delete(state.next.localIndex);
    const kp: Keypair = {
      localIndex, remoteIndex: init.senderIndex, send: response.keys.send, recv: response.keys.recv, sendCounter: 0n,
      replay: new ReplayWindow(), createdAt: now, initiator: false, peer: state,
    };
    state.next = kp; // usable for sending once the phone's first transport packet confirms it
    this.byIndex.set(localIndex, kp);
    state.endpoint = { address: rinfo.address, port: rinfo.port };
    this.counters.handshakes++;
    this.log(`wireguard: handshake with ${state.peer.name} from ${rinfo.address}:${rinfo.port}`);
    this.socket.send(response.message, rinfo.port, rinfo.address);
  }

  private onTransport(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const kp = this.byIndex.get(msg.readUInt32LE(DATA.receiver));
    if (!kp) {
      this.counters.unknownIndex++;
      return;
    }
    const now = this.now();
    if (now - kp.createdAt >= REJECT_AFTER_TIME_MS) {
      this.counters.expiredKey++;
      return;
    }
    const counter = msg.readBigUInt64LE(DATA.counter);
    if (!kp.replay.check(counter)) {
      this.counters.replayed++;
      return;
    }
    const plain = aeadOpen(kp.recv, counter, msg.subarray(DATA.payload), EMPTY);
    if (!plain) {
      this.counters.badAead++;
      return;
    }
    if (!kp.replay.update(counter)) {
      this.counters.replayed++;
      return;
    }
    const state = kp.peer;
    state.endpoint = { address: rinfo.address, port: rinfo.port }; // roaming: last authenticated source
    if (state.next === kp) this.confirm(state, kp, now);
    if (plain.length === 0) {
      this.counters.keepalivesReceived++;
      return;
    }
    const len = innerPacketLength(plain);
    if (!len) {
      this.counters.badInnerPacket++;
      return;
    }
    const packet = plain.subarray(0, len);
    if (!sourceIs(packet, state.v4, state.v6)) {
      this.counters.wrongSource++;
      return;
    }
    this.counters.dataPackets++;
    state.rxBytes += msg.length;
    this.armKeepalive(state);
    this.opts.onPacket(state.peer, packet);
  }

  /** Starts (or retries) a handshake to the phone's last known endpoint; no endpoint, nothing to do. */
  private initiate(state: PeerState, retry = false): void {
    if (!state.endpoint || this.closed) return;
    const now = this.now();
    const pending = state.pending;
    if (pending && !retry && now - pending.sentAt < REKEY_TIMEOUT_MS) return; // one in flight
    const firstAt = pending ? pending.firstAt : now;
    if (now - firstAt >= REKEY_ATTEMPT_TIME_MS) {
      // Rekey-Attempt-Time is over: give up and drop what waited for a session.
      this.clearPending(state);
      this.counters.sendDropped += state.queue.length;
      state.queue = [];
      return;
    }
    this.clearPending(state);
    const localIndex = this.newIndex();
    const peerKey = Buffer.from(state.peer.publicKey, 'base64');
    const cookie = state.cookie && now - state.cookie.at < COOKIE_LIFETIME_MS ? state.cookie.value : undefined;
    const { message, state: hs } = createInitiation(this.key, peerKey, localIndex, undefined, cookie);
    const next: PendingInitiation = { state: hs, mac1: Buffer.from(message.subarray(INIT.mac1, INIT.mac1 + 16)), sentAt: now, firstAt };
    // Rekey-Timeout: retry until a response arrives (the timer runs on the real clock).
    next.timer = setTimeout(() => {
      if (state.pending === next) this.initiate(state, true);
    }, REKEY_TIMEOUT_MS);
    next.timer.unref();
    state.pending = next;
    this.pendingByIndex.set(localIndex, state);
    this.counters.handshakesInitiated++;
    this.socket.send(message, state.endpoint.port, state.endpoint.address);
  }

  private clearPending(state: PeerState): void {
    if (!state.pending) return;
    if (state.pending.timer) clearTimeout(state.pending.timer);
    this.pendingByIndex.delete(state.pending.state.localIndex);
    state.pending = undefined;
  }

  private onResponse(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const state = this.pendingByIndex.get(msg.readUInt32LE(RESP.receiver));
    if (!state || !state.pending) {
      this.counters.unknownIndex++;
      return;
    }
    if (!verifyMac1(msg, RESP.mac1, this.ourMac1Key)) {
      this.counters.badMac1++;
      return;
    }
    if (!this.admitHandshake(msg, RESP.mac1, msg.readUInt32LE(RESP.sender), rinfo)) return;
    const done = consumeResponse(msg, state.pending.state, this.key);
    if (!done) {
      this.counters.badHandshake++;
      return;
    }
    const now = this.now();
    const localIndex = state.pending.state.localIndex;
    this.clearPending(state);
    const kp: Keypair = {
      localIndex, remoteIndex: done.remoteIndex, send: done.keys.send, recv: done.keys.recv, sendCounter: 0n,
      replay: new ReplayWindow(), createdAt: now, initiator: true, peer: state,
    };
    this.byIndex.set(localIndex, kp);
    state.endpoint = { address: rinfo.address, port: rinfo.port };
    this.counters.handshakes++;
    this.log(`wireguard: handshake (initiated by phonehome) with ${state.peer.name} at ${rinfo.address}:${rinfo.port}`);
    // The initiator may send at once; its first packet (data or a keepalive) confirms the session.
    this.confirm(state, kp, now);
    if (state.current === kp && kp.sendCounter === 0n) this.sendTo(state, EMPTY);
  }

  /** A phone under load answered our initiation with a cookie: the next attempt (Rekey-Timeout) carries mac2. */
  private onCookieReply(msg: Buffer): void {
    const state = this.pendingByIndex.get(msg.readUInt32LE(4));
    if (!state || !state.pending) {
      this.counters.unknownIndex++;
      return;
    }
    const cookie = openCookieReply(msg, Buffer.from(state.peer.publicKey, 'base64'), state.pending.mac1);
    if (!cookie) {
      this.counters.badCookieReply++;
      return;
    }
    this.counters.cookieRepliesReceived++;
    state.cookie = { value: cookie, at: this.now() };
  }

  /** The phone used the keypair of its latest handshake: it becomes current, the old one previous. */
  private confirm(state: PeerState, kp: Keypair, now: number): void {
    if (state.previous) this.byIndex.delete(state.previous.localIndex);
    state.previous = state.current;
    state.current = kp;
    if (state.next === kp) state.next = undefined;
    state.lastHandshakeAt = now;
    const queued = state.queue;
    state.queue = [];
    for (const p of queued) this.sendTo(state, p);
  }

  private usable(kp: Keypair | undefined): kp is Keypair {
    return !!kp && this.now() - kp.createdAt < REJECT_AFTER_TIME_MS && kp.sendCounter < REJECT_AFTER_MESSAGES;
  }

  private sendTo(state: PeerState, packet: Buffer): boolean {
    const kp = state.current;
    if (!this.usable(kp) || !state.endpoint) return false;
    // Pad to a multiple of 16 bytes, never past the MTU (as wireguard-go does).
    const padded = packet.length === 0 ? 0 : Math.min(Math.ceil(packet.length / 16) * 16, Math.max(this.mtu, packet.length));
    const plain = padded === packet.length ? packet : Buffer.concat([packet, Buffer.alloc(padded - packet.length)]);
    if (kp.initiator && this.now() - kp.createdAt >= REKEY_AFTER_TIME_MS && !state.pending) this.initiate(state);
    const counter = kp.sendCounter++;
    const sealed = aeadSeal(kp.send, counter, plain, EMPTY);
    const out = Buffer.allocUnsafe(TRANSPORT_HEADER_LEN + sealed.length);
    out.writeUInt32LE(MSG_TRANSPORT, 0);
    out.writeUInt32LE(kp.remoteIndex, DATA.receiver);
    out.writeBigUInt64LE(counter, DATA.counter);
    sealed.copy(out, DATA.payload);
    state.keepaliveDue = false;
    state.txBytes += out.length;
    if (packet.length === 0) this.counters.keepalivesSent++;
    else this.counters.packetsSent++;
    this.socket.send(out, state.endpoint.port, state.endpoint.address);
    return true;
  }

  /** Passive keepalive: a data packet received and nothing sent back within 10 s → an empty packet. */
  private armKeepalive(state: PeerState): void {
    state.keepaliveDue = true;
    if (state.keepaliveTimer) return;
    state.keepaliveTimer = setTimeout(() => {
      state.keepaliveTimer = undefined;
      if (state.keepaliveDue && !this.closed) this.sendTo(state, EMPTY);
      state.keepaliveDue = false;
    }, KEEPALIVE_TIMEOUT_MS);
    state.keepaliveTimer.unref();
  }

  /** Forgets keypairs past Reject-After-Time (their indices would only ever be refused). */
  private sweep(): void {
    const now = this.now();
    this.handshakeLimit.prune(now);
    this.cookieReplyLimit.prune(now);
    for (const state of this.peers.values()) {
      for (const slot of ['previous', 'current', 'next'] as const) {
        const kp = state[slot];
        if (kp && now - kp.createdAt >= REJECT_AFTER_TIME_MS) {
          this.byIndex.delete(kp.localIndex);
          state[slot] = undefined;
        }
      }
    }
  }

  private dropPeer(state: PeerState): void {
    for (const kp of [state.previous, state.current, state.next]) if (kp) this.byIndex.delete(kp.localIndex);
    if (state.keepaliveTimer) clearTimeout(state.keepaliveTimer);
    this.clearPending(state);
    this.peers.delete(state.peer.publicKey);
  }

  private newIndex(): number {
    for (;;) {
      const i = crypto.randomBytes(4).readUInt32LE(0);
      if (!this.byIndex.has(i) && !this.pendingByIndex.has(i)) return i;
    }
  }
}
