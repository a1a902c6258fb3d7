/**
 * Requests pipelined on one client connection are forwarded one at a time. Node's parser hands us
 * every request it reads at once, and forwarding them all at once let one connection open 1,000
 * server connections (1,000 pipelined GETs measured 1,000 concurrent connections at the origin).
 * HTTP/1.1 answers in order anyway, so a pipelining client loses nothing it was promised; the
 * server sees what the phone asked for, one request after another, as mitmproxy does.
 *
 * At most MAX_WAITING requests wait behind the one in progress; a connection that pipelines more
 * is closed (its waiting requests were never forwarded) and logged. A waiting request body is not
 * read, so Node stops reading the connection: the bytes it holds are bounded too.
 */
import type * as http from 'http';
import type { Duplex } from 'stream';

export const MAX_WAITING = 16;

interface Line {
  busy: boolean;
  waiting: (() => void)[];
}

export class PipelineGate {
  private readonly lines = new WeakMap<Duplex, Line>();

  constructor(private readonly onOverflow: (socket: Duplex) => void) {}

  /** Runs `start` now if no request on the same connection is in progress, else after those before it. */
  admit(req: http.IncomingMessage, res: http.ServerResponse, start: () => void): void {
    const socket = req.socket;
    let line = this.lines.get(socket);
    if (!line) {
      line = { busy: false, waiting: [] };
      this.lines.set(socket, line);
    }
    const l = line;
    const run = () => {
      l.busy = true;
      res.once('close', () => {
        l.busy = false;
        l.waiting.shift()?.();
      });
      start();
    };
    if (!l.busy) return run();
    if (l.waiting.length >= MAX_WAITING) {
      l.waiting.length = 0;
      this.onOverflow(socket);
      socket.destroy();
      return;
    }
    l.waiting.push(run);
  }
}
