/**
 * A mutex shared by the threads of one process that write the same SQLite file (the proxy's main
 * thread records flows; the analysis worker writes their findings). SQLite already serialises
 * writers, but a writer that finds the file locked sleeps in SQLite's busy handler for 1 ms, then
 * 2, 5, 10... — on the proxy's event loop that is a stall far longer than the other thread's
 * sub-millisecond transaction. Taking this gate first, the waiter wakes the moment the holder
 * leaves (Atomics.wait/notify). It is only an optimisation: SQLite's lock and busy_timeout still
 * guard correctness (other processes, a holder that died), so a wait that lasts too long gives up
 * and goes ahead.
 */
import { threadId } from 'worker_threads';

/** Atomics.waitAsync (V8 since Node 16; in TypeScript's lib only from ES2024). */
interface AtomicsWaitAsync {
  waitAsync(cell: Int32Array, index: number, value: number, timeoutMs: number): { async: false; value: string } | { async: true; value: Promise<string> };
}

/** After this long without the gate, write anyway and let SQLite's busy_timeout arbitrate. */
export const GATE_MAX_WAIT_MS = 2000;

export class WriteGate {
  /** Slot 0: 0 when free, else the holder's threadId + 1. Slot 1: how many threads wait for it. */
  private readonly cell: Int32Array;
  /** A 4-byte buffer (older callers) has no waiter count: every release notifies. */
  private readonly counted: boolean;
  private readonly me = threadId + 1;
  private depth = 0;
  /** How often this thread found the gate taken, and how long it waited in total (benchmarks). */
  readonly contention = { waits: 0, waitedMs: 0 };

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(8)) {
    this.cell = new Int32Array(buffer);
    this.counted = this.cell.length > 1;
  }

  /** Runs fn holding the gate (re-entrant within one thread). */
  run<T>(fn: () => T): T {
    if (this.depth > 0) {
      this.depth++;
      try {
        return fn();
      } finally {
        this.depth--;
      }
    }
    const held = this.acquire();
    this.depth = 1;
    try {
      return fn();
    } finally {
      this.depth = 0;
      if (held) this.release();
    }
  }

  /**
   * Runs fn holding the gate if it is free now (or already held by this thread); otherwise returns
   * `{ ran: false }` at once, so an event loop can serve other work and try again (see whenFree).
   */
  tryRun<T>(fn: () => T): { ran: true; value: T } | { ran: false } {
    if (this.depth > 0) return { ran: true, value: this.run(fn) };
    if (Atomics.compareExchange(this.cell, 0, 0, this.me) !== 0) return { ran: false };
    this.depth = 1;
    try {
      return { ran: true, value: fn() };
    } finally {
      this.depth = 0;
      this.release();
    }
  }

  /** Resolves when the gate is released (or after timeoutMs), without blocking this thread. */
  whenFree(timeoutMs: number): Promise<void> {
    // Counted first, then the holder read: a release in between is seen as a changed value.
    this.waiting(1);
    const holder = Atomics.load(this.cell, 0);
    const w = holder === 0 ? undefined : (Atomics as unknown as AtomicsWaitAsync).waitAsync(this.cell, 0, holder, timeoutMs);
    if (!w?.async) {
      this.waiting(-1);
      return Promise.resolve();
    }
    return w.value.then(() => this.waiting(-1));
  }

  private waiting(delta: number): void {
    if (this.counted) Atomics.add(this.cell, 1, delta);
  }

  /** Frees the gate if a thread that died held it (threadId of the dead thread). */
  releaseIfHeldBy(deadThreadId: number): void {
    if (Atomics.compareExchange(this.cell, 0, deadThreadId + 1, 0) === deadThreadId + 1) Atomics.notify(this.cell, 0);
  }

  private acquire(): boolean {
    if (Atomics.compareExchange(this.cell, 0, 0, this.me) === 0) return true;
    const started = performance.now();
    this.contention.waits++;
    const deadline = Date.now() + GATE_MAX_WAIT_MS;
    try {
      for (;;) {
        const holder = Atomics.compareExchange(this.cell, 0, 0, this.me);
        if (holder === 0) return true;
        const left = deadline - Date.now();
        if (left <= 0) return false;
        this.waiting(1);
        Atomics.wait(this.cell, 0, holder, Math.min(left, 50));
        this.waiting(-1);
      }
    } finally {
      this.contention.waitedMs += performance.now() - started;
    }
  }

  /** Notifies only when some thread waits: a notify costs a lock in V8 even with no waiter. */
  private release(): void {
    Atomics.compareExchange(this.cell, 0, this.me, 0);
    if (!this.counted || Atomics.load(this.cell, 1) > 0) Atomics.notify(this.cell, 0);
  }
}
