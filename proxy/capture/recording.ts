/**
 * Turning traffic into stored Flows: a capped copy of each body (the bytes keep streaming; only the
 * first `limit` bytes are held), and a recorder that stores finished flows (batched per event-loop
 * turn) and then tells a listener. A failing store or listener is logged, never thrown into
 * the proxy: recording must not take traffic down with it.
 */
import type { Body, Flow, Header } from '../flow';
import type { Store } from '../store';

export class BodyTap {
  private readonly chunks: Buffer[] = [];
  private held = 0;
  size = 0;

  constructor(private readonly limit: number) {}

  add(chunk: Buffer): void {
    this.size += chunk.length;
    const room = this.limit - this.held;
    if (room <= 0) return;
    // Copy: the chunk may be a view into a pooled buffer that is reused after the write.
    const piece = chunk.length <= room ? Buffer.from(chunk) : Buffer.from(chunk.subarray(0, room));
    this.chunks.push(piece);
    this.held += piece.length;
  }

  toBody(): Body {
    return { bytes: Buffer.concat(this.chunks, this.held), size: this.size, truncated: this.held < this.size };
  }
}

/** node's rawHeaders ([k, v, k, v...]) as ordered pairs. */
export function headerPairs(raw: readonly string[]): Header[] {
  const out: Header[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i], raw[i + 1]]);
  return out;
}

export type Logger = (line: string) => void;

export const consoleLogger: Logger = (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);

/**
 * Flows (and body bytes) waiting to be stored at most: reaching either, the recorder stores them at
 * once, waiting for the write gate if it must.
 */
export const MAX_RECORD_BATCH = 256;
export const MAX_RECORD_BATCH_BYTES = 16 * 1024 * 1024;
/**
 * How long a batch may wait for the analysis worker's write to finish before the event loop blocks
 * on the gate: the worker holds it for a few ms per batch (longer when the scheduler preempts it,
 * as it runs at a lower priority), and meanwhile the proxy serves traffic.
 */
export const MAX_GATE_DEFER_MS = 200;
/**
 * The same when someone waits for the flow to be stored: the proxy holds a response's last bytes
 * until its flow is in SQLite (a flow the phone received survives a crash right after), so that
 * response waits this long at most before the event loop blocks on the gate instead.
 */
export const MAX_GATE_DEFER_WAITED_ON_MS = 5;

/**
 * Called once the flow's fate is known: stored (id set), or not (the store failed, logged). E.g.
 * to release a response held until its flow is stored, or to write rows that point at the flow.
 */
export type AfterStore = (flow: Flow, stored: boolean) => void;

/**
 * Stores finished flows, then hands each to the listener (analysis). The flows that finish in one
 * event-loop turn are written together, in one transaction, when the turn ends (setImmediate): one
 * commit per flow cost the proxy ~65 µs per flow, one per batch ~20-30 µs. If the analysis worker is
 * writing just then, the batch waits for it without blocking the proxy (write-gate.ts). A flow
 * waits in memory for at most that: one turn, or MAX_GATE_DEFER_MS, or until the batch is full.
 */
export class FlowRecorder {
  private failures = 0;
  private waiting: { flow: Flow; then?: AfterStore }[] = [];
  private waitingBytes = 0;
  private scheduled = false;
  /** When the oldest waiting flow found the gate taken (0: it did not). */
  private deferredSince = 0;
  /** Some waiting flow has an after-store step (a response held, a row to write). */
  private waitedOn = false;

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    private readonly onFlow?: (flow: Flow) => void,
  ) {}

  /** Queues the flow to be stored at the end of this event-loop turn; never throws. */
  record(flow: Flow, then?: AfterStore): void {
    if (flow.requestBody.truncated || flow.responseBody.truncated) {
      if (!flow.tags.includes('body-truncated')) flow.tags.push('body-truncated');
    }
    this.waiting.push({ flow, then });
    if (then) this.waitedOn = true;
    this.waitingBytes += flow.requestBody.bytes.length + flow.responseBody.bytes.length;
    if (this.waiting.length >= MAX_RECORD_BATCH || this.waitingBytes >= MAX_RECORD_BATCH_BYTES) this.flush(true);
    else this.schedule();
  }

  /** Stores every flow waiting now (shutdown; tests that read the store right after recording). */
  flushNow(): void {
    this.flush(true);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush(false);
    });
  }

  private flush(force: boolean): void {
    if (!this.waiting.length) return;
    const batch = this.waiting;
    const flows = batch.map((w) => w.flow);
    const maxDefer = this.waitedOn ? MAX_GATE_DEFER_WAITED_ON_MS : MAX_GATE_DEFER_MS;
    let stored: boolean;
    try {
      const wait = force || (this.deferredSince > 0 && Date.now() - this.deferredSince >= maxDefer);
      stored = this.store.flows.insertMany(flows, wait);
    } catch {
      // One bad flow must not sink the others: store them one by one.
      this.reset();
      for (const w of batch) this.deliver(w, this.insertOne(w.flow));
      return;
    }
    if (!stored) {
      if (!this.deferredSince) this.deferredSince = Date.now();
      if (!this.scheduled) {
        this.scheduled = true;
        void this.store.writeGate.whenFree(Math.max(1, maxDefer - (Date.now() - this.deferredSince))).then(() => {
          this.scheduled = false;
          this.flush(false);
        });
      }
      return;
    }
    this.reset();
    for (const w of batch) this.deliver(w, true);
  }

  private reset(): void {
    this.waiting = [];
    this.waitingBytes = 0;
    this.deferredSince = 0;
    this.waitedOn = false;
  }

  private insertOne(flow: Flow): boolean {
    try {
      this.store.flows.insert(flow);
      return true;
    } catch (err) {
      this.failures++;
      if (this.failures <= 5 || this.failures % 1000 === 0) this.log(`recording failed (${this.failures} so far): ${(err as Error).message}`);
      return false;
    }
  }

  private deliver({ flow, then }: { flow: Flow; then?: AfterStore }, stored: boolean): void {
    if (then) this.guarded('after-store step', flow, () => then(flow, stored));
    if (stored && this.onFlow) this.guarded('onFlow listener', flow, () => this.onFlow!(flow));
  }

  /** Runs a caller's step; its failure is logged, never thrown into the proxy. */
  private guarded(what: string, flow: Flow, step: () => void): void {
    try {
      step();
    } catch (err) {
      this.log(`${what} failed for flow ${flow.id}: ${(err as Error).message}`);
    }
  }
}
