/**
 * A cap on the connections one client address holds open at once. A phone browsing opens a few
 * dozen; one hostile client on the Wi-Fi opening thousands would otherwise use up the laptop's file
 * descriptors (every intercepted connection also holds one to its server) and starve the others.
 * Over the cap a connection gets a short 429 and is closed; the log says so once per minute per
 * address, with a count.
 */
import type * as net from 'net';
import type { Logger } from './recording';
import { ThrottledLog } from './throttled-log';

export const DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 512;

/** A refused connection that does not read our answer is dropped after this long. */
const REFUSAL_LINGER_MS = 5000;

export class ClientConnectionLimit {
  private readonly open = new Map<string, number>();
  private readonly refusals: ThrottledLog;

  /** `max` 0 turns the cap off. */
  constructor(private readonly max: number, log: Logger) {
    this.refusals = new ThrottledLog(log);
  }

  /**
   * Counts `socket` against `address` until it closes and returns true, or answers it with 429,
   * closes it and returns false when the address already holds `max` connections.
   */
  admit(address: string, socket: net.Socket): boolean {
    if (this.max <= 0) return true;
    const count = this.open.get(address) ?? 0;
    if (count >= this.max) {
      this.refuse(address, socket);
      return false;
    }
    this.open.set(address, count + 1);
    socket.once('close', () => {
      const left = (this.open.get(address) ?? 1) - 1;
      if (left > 0) this.open.set(address, left);
      else this.open.delete(address);
    });
    return true;
  }

  /** Connections `address` holds open now. */
  openFrom(address: string): number {
    return this.open.get(address) ?? 0;
  }

  close(): void {
    this.refusals.flushAll();
  }

  private refuse(address: string, socket: net.Socket): void {
    this.refusals.note(address, `refused a connection from ${address}: it already holds ${this.max} open connections (--max-client-connections)`);
    const text = `phonehome: too many connections from your address (${this.max} open); close some and retry\n`;
    socket.end(`HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
    socket.setTimeout(REFUSAL_LINGER_MS, () => socket.destroy());
    socket.resume();
  }
}
