/**
 * Log lines about what one hostile client does (connections refused over the cap, heads that never
 * finish) must not become a flood of their own: the first event of a kind logs at once, later ones
 * within the window are counted and reported in one line when the window ends.
 */
import type { Logger } from './recording';

interface Pending {
  suppressed: number;
  lastLine: string;
  timer: NodeJS.Timeout;
}

/** Keys remembered at most; beyond, new keys log without throttling state (never unbounded memory). */
const MAX_KEYS = 4096;

export class ThrottledLog {
  private readonly pending = new Map<string, Pending>();

  constructor(private readonly log: Logger, private readonly windowMs = 60_000) {}

  /** Logs `line` now, or counts it if `key` logged within the window (then reported at its end). */
  note(key: string, line: string): void {
    const p = this.pending.get(key);
    if (p) {
      p.suppressed++;
      p.lastLine = line;
      return;
    }
    this.log(line);
    if (this.pending.size >= MAX_KEYS) return;
    const timer = setTimeout(() => this.flush(key), this.windowMs);
    timer.unref();
    this.pending.set(key, { suppressed: 0, lastLine: line, timer });
  }

  /** Reports what is still counted (at close). */
  flushAll(): void {
    for (const key of [...this.pending.keys()]) this.flush(key);
  }

  private flush(key: string): void {
    const p = this.pending.get(key);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(key);
    if (p.suppressed) this.log(`${p.lastLine} (${p.suppressed} more like this since that line was first logged)`);
  }
}
