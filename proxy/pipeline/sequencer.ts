/**
 * Publishes stored messages to the broadcaster in seq order, without gaps. Two threads write the
 * events log — the analysis worker (each flow's messages, committed on its own connection) and the
 * main thread (a flow whose worker crashed, in-process analysers) — and the worker's committed
 * messages reach the main thread by postMessage, later than they reached SQLite. A WebSocket client
 * skips any live message with seq <= the last it got, so publishing seq 12 before seq 11 would lose
 * 11 for it. SQLite hands out seq under its write lock, so committed seqs form a prefix without holes:
 * a message that arrives early waits here for the ones before it, and if those do not arrive within
 * `gapWaitMs` (a writer that died after committing, another process) they are read back from SQLite.
 */
import type { EventStore, StoredEvent } from '../store/events';
import type { Broadcaster } from './broadcaster';

/** How long an early message waits for the lower seqs before they are read from SQLite. */
export const DEFAULT_GAP_WAIT_MS = 200;

export class EventSequencer {
  /** The seq the broadcaster gets next. */
  private next: number;
  private readonly held = new Map<number, StoredEvent>();
  private gapTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly events: Pick<EventStore, 'after' | 'latestSeq'>,
    private readonly broadcaster: Broadcaster,
    private readonly gapWaitMs = DEFAULT_GAP_WAIT_MS,
  ) {
    this.next = events.latestSeq() + 1;
  }

  /** Messages just committed by any writer (any order; duplicates and already-published ones are ignored). */
  committed(events: StoredEvent[]): void {
    for (const e of events) if (e.seq >= this.next) this.held.set(e.seq, e);
    this.drain();
  }

  /** Messages held back waiting for a lower seq (tests). */
  get waiting(): number {
    return this.held.size;
  }

  close(): void {
    if (this.gapTimer) clearTimeout(this.gapTimer);
    this.gapTimer = null;
  }

  private drain(): void {
    for (let e = this.held.get(this.next); e; e = this.held.get(this.next)) {
      this.held.delete(this.next);
      this.next++;
      this.broadcaster.publish(e);
    }
    if (this.held.size === 0) {
      if (this.gapTimer) clearTimeout(this.gapTimer);
      this.gapTimer = null;
    } else if (!this.gapTimer) {
      this.gapTimer = setTimeout(() => this.fillGap(), this.gapWaitMs);
      this.gapTimer.unref();
    }
  }

  /** The lower seqs did not come: read them from the log (they are committed), then go on. */
  private fillGap(): void {
    this.gapTimer = null;
    if (this.held.size === 0) return;
    const lowestHeld = Math.min(...this.held.keys());
    try {
      for (const e of this.events.after(this.next - 1, lowestHeld - this.next)) {
        if (e.seq >= lowestHeld) break;
        this.held.set(e.seq, e);
      }
    } catch {
      // The store is closing: nothing more will be published anyway.
    }
    // Seqs that are in no row (never committed) are skipped.
    if (!this.held.has(this.next)) this.next = Math.min(...this.held.keys());
    this.drain();
  }
}
