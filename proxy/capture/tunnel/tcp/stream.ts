/**
 * A tunnelled TCP connection as a node Duplex, so the interception core (TLS, HTTP parser, raw
 * relay) takes it exactly like a proxy client's socket. Backpressure is the TCP window both ways:
 * the reader not reading leaves bytes in the connection's receive buffer, which shrinks the window
 * the phone sees; writes beyond the send buffer wait for the phone's ACKs. It carries the socket
 * fields the core reads (remote = the phone, local = the destination the phone dialled) and an idle
 * timeout; it is not a net.Socket, and callers cast it where a net.Socket type is expected.
 */
import { Duplex } from 'stream';
import type { TcpConnection } from './connection';

export class TcpStream extends Duplex {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly remoteFamily: 'IPv4' | 'IPv6';
  /** Where the phone was going: the destination address and port of its SYN. */
  readonly localAddress: string;
  readonly localPort: number;
  bytesRead = 0;
  bytesWritten = 0;
  readonly connecting = false;

  private wantRead = false;
  private ended = false;
  private pendingWrite: (() => void) | undefined;
  private idleMs = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private lastActivity = 0;

  constructor(readonly conn: TcpConnection) {
    super({ allowHalfOpen: true, highWaterMark: 64 * 1024 });
    this.remoteAddress = conn.remote.ip;
    this.remotePort = conn.remote.port;
    this.remoteFamily = conn.ipVersion === 6 ? 'IPv6' : 'IPv4';
    this.localAddress = conn.local.ip;
    this.localPort = conn.local.port;
  }

  /** The connection's events, for the handler to wire before accept(). */
  onReadable(): void {
    this.touch();
    this.pull();
  }

  onDrain(): void {
    this.touch();
    const cb = this.pendingWrite;
    this.pendingWrite = undefined;
    cb?.();
  }

  onClosed(reason: string): void {
    this.clearIdle();
    if (reason === 'normal') {
      this.pull();
      if (!this.ended && this.conn.readEnded) this.finishRead();
      const cb = this.pendingWrite;
      this.pendingWrite = undefined;
      cb?.();
      if (!this.destroyed) this.destroy();
      return;
    }
    if (reason === 'aborted') {
      // We reset it ourselves (destroy, or phonehome stopping): no error to report.
      if (!this.destroyed) this.destroy();
      return;
    }
    const err = Object.assign(new Error(reason === 'reset' ? 'read ECONNRESET (the phone reset the connection)' : `tunnelled TCP connection closed: ${reason}`), {
      code: reason === 'reset' ? 'ECONNRESET' : 'ETIMEDOUT',
    });
    this.destroy(err);
  }

  override _read(): void {
    this.wantRead = true;
    this.pull();
  }

  private pull(): void {
    while (this.wantRead && !this.ended) {
      const chunk = this.conn.read();
      if (!chunk) break;
      this.bytesRead += chunk.length;
      this.touch();
      this.wantRead = this.push(chunk);
    }
    if (!this.ended && this.conn.readEnded) this.finishRead();
  }

  private finishRead(): void {
    this.ended = true;
    this.push(null);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.conn.state === 'CLOSED') return cb(new Error('write after the tunnelled connection closed'));
    this.touch();
    this.bytesWritten += chunk.length;
    if (this.conn.write(chunk)) cb();
    else this.pendingWrite = () => cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.conn.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.clearIdle();
    // Like closing a socket: what was written is still delivered, then FIN; unread data from the
    // phone resets the connection instead (TcpConnection.close()).
    this.conn.close();
    const pending = this.pendingWrite;
    this.pendingWrite = undefined;
    pending?.();
    cb(err);
  }

  // ---- the parts of net.Socket the interception core and node's HTTP server call -------------

  setTimeout(ms: number, cb?: () => void): this {
    if (cb) this.once('timeout', cb);
    this.idleMs = ms;
    this.clearIdle();
    if (ms > 0) this.armIdle();
    return this;
  }

  setNoDelay(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  address(): { address: string; port: number; family: string } {
    return { address: this.localAddress, port: this.localPort, family: this.remoteFamily };
  }

  private touch(): void {
    this.lastActivity = Date.now();
  }

  private armIdle(): void {
    this.lastActivity = Date.now();
    const check = () => {
      const idle = Date.now() - this.lastActivity;
      if (idle >= this.idleMs) {
        this.idleTimer = undefined;
        this.emit('timeout');
        return;
      }
      this.idleTimer = setTimeout(check, this.idleMs - idle);
      this.idleTimer.unref();
    };
    this.idleTimer = setTimeout(check, this.idleMs);
    this.idleTimer.unref();
  }

  private clearIdle(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }
}
