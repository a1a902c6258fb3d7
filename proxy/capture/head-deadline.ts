/**
 * A request head must be complete within a deadline of its first byte (slowloris: a client
 * trickling one header byte every few seconds would otherwise hold a connection forever).
 *
 * Why our own and not Node's `headersTimeout`: Node checks it only for servers that listen (its
 * connection checker starts on the 'listening' event), and our HTTP parser never listens: the
 * front door, CONNECT tunnels, TLS interception and VPN mode hand it sockets. Every one of those
 * goes through ProxyServer.serveHttp, which registers it here.
 *
 * A connection waits for a head when it is handed to the parser and whenever every request read
 * on it so far has been read to its end. While waiting with no new byte it is idle (the idle
 * timeout applies, not this one); the sweep that first sees `bytesRead` grow marks the head as
 * started, and closes the connection if the head is still incomplete `timeoutMs` later. The sweep
 * runs every quarter of the deadline (at most every second), so a head gets between the deadline
 * and the deadline plus one sweep.
 *
 * The same bookkeeping tells when a connection has no response in progress (`afterResponses`):
 * what is written raw on a socket after pipelined requests (a refusal, an upgrade) waits for them.
 */
import type * as http from 'http';
import type { Duplex } from 'stream';

type ClientStream = Duplex & { bytesRead?: number; remoteAddress?: string };

interface Watch {
  socket: ClientStream;
  /** Requests whose head arrived and whose body has not been read to its end. */
  unread: number;
  /** Responses begun and not yet closed. */
  responding: number;
  waiting: boolean;
  /** The connection left HTTP (CONNECT, upgrade): no deadline, responses still counted. */
  left: boolean;
  bytesAtWait: number;
  headSince?: number;
  whenIdle: (() => void)[];
}

export class HeadDeadlines {
  private readonly watches = new Map<ClientStream, Watch>();
  private readonly sweepMs: number;
  private timer: NodeJS.Timeout | undefined;

  /** `timeoutMs` 0 turns deadlines off; `onExpired` is told before the connection is closed. */
  constructor(readonly timeoutMs: number, private readonly onExpired: (socket: ClientStream) => void) {
    this.sweepMs = Math.max(10, Math.min(1000, Math.floor(timeoutMs / 4)));
  }

  /** `socket` was handed to the parser: it waits for a head (one already begun if bytes are buffered). */
  watch(socket: ClientStream): void {
    if (socket.destroyed) return;
    let w = this.watches.get(socket);
    if (!w) {
      w = { socket, unread: 0, responding: 0, waiting: false, left: false, bytesAtWait: 0, whenIdle: [] };
      this.watches.set(socket, w);
      socket.once('close', () => this.forget(socket));
    }
    w.left = false;
    this.startWaiting(w);
    // Bytes put back by the sniffer (unshift) are the start of a head already.
    if (socket.readableLength > 0) w.headSince = Date.now();
    if (this.timeoutMs > 0) this.timer ??= setInterval(() => this.sweep(), this.sweepMs).unref();
  }

  /** A request head arrived on `req.socket`; it waits again once the request is read to its end. */
  headArrived(req: http.IncomingMessage, res: http.ServerResponse): void {
    const w = this.watches.get(req.socket);
    if (!w || w.left) return;
    w.waiting = false;
    w.headSince = undefined;
    w.unread++;
    w.responding++;
    let read = false;
    const bodyRead = () => {
      if (read) return;
      read = true;
      if (--w.unread === 0 && !w.socket.destroyed && !w.left) this.startWaiting(w);
    };
    req.once('end', bodyRead);
    req.once('close', bodyRead);
    res.once('close', () => {
      if (--w.responding > 0) return;
      const waiting = w.whenIdle.splice(0);
      for (const run of waiting) run();
    });
  }

  /** The connection left HTTP (CONNECT, upgrade): no more heads are parsed on it. */
  leaveHttp(socket: Duplex): void {
    const w = this.watches.get(socket as ClientStream);
    if (!w) return;
    w.left = true;
    w.waiting = false;
  }

  /** Runs `then` once no response is in progress on `socket` (at once if none is). */
  afterResponses(socket: Duplex, then: () => void): void {
    const w = this.watches.get(socket as ClientStream);
    if (!w || w.responding <= 0) return then();
    w.whenIdle.push(then);
  }

  /** The connection closed. */
  forget(socket: Duplex): void {
    this.watches.delete(socket as ClientStream);
    if (this.watches.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** Connections currently waiting for a head (tests and diagnostics). */
  waitingCount(): number {
    let n = 0;
    for (const w of this.watches.values()) if (w.waiting) n++;
    return n;
  }

  close(): void {
    for (const socket of [...this.watches.keys()]) this.forget(socket);
  }

  private startWaiting(w: Watch): void {
    w.waiting = true;
    w.bytesAtWait = w.socket.bytesRead ?? 0;
    w.headSince = undefined;
  }

  private sweep(): void {
    const now = Date.now();
    for (const w of [...this.watches.values()]) {
      if (!w.waiting) continue;
      if (w.headSince === undefined) {
        if ((w.socket.bytesRead ?? 0) > w.bytesAtWait) w.headSince = now;
        continue;
      }
      if (now - w.headSince >= this.timeoutMs) this.expire(w);
    }
  }

  private expire(w: Watch): void {
    const socket = w.socket;
    this.forget(socket);
    try {
      this.onExpired(socket);
    } finally {
      // A response still being written cannot be followed by ours: just close.
      if (w.responding > 0 || !socket.writable) socket.destroy();
      else {
        const text = 'phonehome: request head not complete in time\n';
        socket.end(`HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`, () => socket.destroy());
        setTimeout(() => socket.destroy(), 2000).unref();
      }
    }
  }
}
