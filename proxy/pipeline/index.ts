/**
 * The live analysis pipeline: capture stores a flow and hands it here; it is analysed off the
 * request path (worker thread), which also writes its findings, fields and messages in one
 * transaction on its own connection; the main thread only broadcasts the committed messages, in seq
 * order (sequencer.ts). The in-memory queue is bounded (flows and body bytes): when full, the flow
 * stays `pending` in SQLite and the catch-up loop analyses it later (also after a restart). Nothing
 * is dropped silently.
 */
import type { DeviceProfile } from '../analyse/types';
import type { Flow } from '../flow';
import type { Store } from '../store';
import type { StoredEvent } from '../store/events';
import { Analyser, StoreWriteError, withOwnBodyBuffers, WorkerAnalyser, WorkerAnalyserOptions } from './analyser';
import { Broadcaster } from './broadcaster';
import { AnalysisOutcome, AnalysisRecorder, Announce } from './recorder';
import { DeviceReanalysis, ReanalysisStart } from './reanalysis';
import type { JudgeSettings } from '../judge-config';
import { EventSequencer } from './sequencer';
import { LoadPublisher, yieldEnabled } from './cpu-yield';

/**
 * Flows held in memory awaiting analysis; beyond this they wait in SQLite (state pending), which
 * holds a backlog just as well. Kept short: when the proxy saturates the CPU, the worker yields
 * and falls behind (cpu-yield.ts), and every flow held here survives the young-generation GC and
 * is copied into the old one, at the proxy's expense (`npm run bench:pipeline -- --compare-queue-limit 1000`).
 */
export const DEFAULT_QUEUE_LIMIT = 64;
/**
 * Body bytes held in memory by queued and in-flight flows; beyond this they wait in SQLite too.
 * Without it, 5000 queued flows with 1 MiB bodies would be 5 GB when analysis falls behind.
 */
export const DEFAULT_QUEUE_BYTE_LIMIT = 32 * 1024 * 1024;
/** Flows handed to the analyser at once (the worker runs them in order; this keeps it fed). */
export const DEFAULT_IN_FLIGHT = 8;
/**
 * Body bytes handed to the analyser at once (one flow always goes): each posted body is copied into
 * the message and again into the worker, so eight 1 MB bodies in flight are ~16 MB more resident.
 */
export const IN_FLIGHT_BYTE_LIMIT = 4 * 1024 * 1024;
/** How often the catch-up loop looks for pending flows in SQLite. */
export const DEFAULT_CATCH_UP_INTERVAL_MS = 1000;

export interface PipelineOptions {
  store: Store;
  /** Default: the real analyser in a worker thread. */
  analyser?: Analyser;
  /** Profile for every device that has none of its own (`--profile FILE`). */
  defaultProfile?: DeviceProfile | null;
  queueLimit?: number;
  queueByteLimit?: number;
  inFlight?: number;
  catchUpIntervalMs?: number;
  broadcaster?: Broadcaster;
  log?(message: string): void;
  /** Settings of the judge for the default worker analyser (`--home-country`, `--rules`, data dir). */
  judge?: JudgeSettings;
}

export interface PipelineStats {
  /** Flows waiting for analysis (in memory or in SQLite). */
  pending: number;
  analysed: number;
  failed: number;
  /** Flows that did not fit in the in-memory queue and were left for the catch-up loop. */
  overflowed: number;
  crashes: number;
}

export class AnalysisPipeline {
  readonly broadcaster: Broadcaster;
  readonly recorder: AnalysisRecorder;
  readonly sequencer: EventSequencer;
  /** Re-analysis of a device's past flows: one run per device, bounded messages (reanalysis.ts). */
  readonly reanalysis: DeviceReanalysis;
  defaultProfile: DeviceProfile | null;
  private readonly analyser: Analyser;
  /**
   * replace: the flow may carry findings from an earlier analysis (it came from SQLite, not from capture).
   * again: it was analysed before and is re-analysed (reanalysis.ts).
   */
  private readonly queue: { flow: Flow; replace: boolean; again: boolean }[] = [];
  /** Finished analyses waiting for the next write: written together, one transaction per event-loop turn. */
  private writes: AnalysisOutcome[] = [];
  private flushScheduled = false;
  /** Ids queued or being analysed, so the catch-up loop never takes a flow twice. */
  private readonly active = new Set<number>();
  private inFlight = 0;
  private inFlightBytes = 0;
  private readonly queueLimit: number;
  private readonly queueByteLimit: number;
  /** Body bytes of the flows queued or in flight (see DEFAULT_QUEUE_BYTE_LIMIT). */
  private heldBytes = 0;
  private readonly maxInFlight: number;
  private readonly timer: NodeJS.Timeout;
  /** This (the proxy's) thread's load, for the worker to yield to (cpu-yield.ts). */
  private readonly load = new LoadPublisher();
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  private counts = { analysed: 0, failed: 0, overflowed: 0 };
  private readonly log: (m: string) => void;
  /** After a failed write, the catch-up loop waits for its timer instead of retrying at once. */
  private writeBackoffUntil = 0;

  constructor(private readonly opts: PipelineOptions) {
    this.broadcaster = opts.broadcaster ?? new Broadcaster();
    this.recorder = new AnalysisRecorder(opts.store);
    this.sequencer = new EventSequencer(opts.store.events, this.broadcaster);
    this.defaultProfile = opts.defaultProfile ?? null;
    this.log = opts.log ?? ((m) => process.stderr.write(`phonehome: ${m}\n`));
    this.reanalysis = new DeviceReanalysis(opts.store, (events) => this.sequencer.committed(events), () => this.catchUp(), this.log);
    this.analyser = opts.analyser ?? new WorkerAnalyser({ ...defaultWorkerOptions(opts.store, (reason) => this.log(reason)), judge: opts.judge, loadSignal: yieldEnabled() ? this.load.buffer : undefined });
    this.queueLimit = opts.queueLimit ?? DEFAULT_QUEUE_LIMIT;
    this.queueByteLimit = opts.queueByteLimit ?? DEFAULT_QUEUE_BYTE_LIMIT;
    this.maxInFlight = opts.inFlight ?? DEFAULT_IN_FLIGHT;
    this.timer = setInterval(() => this.catchUp(true), opts.catchUpIntervalMs ?? DEFAULT_CATCH_UP_INTERVAL_MS);
    this.timer.unref();
    setImmediate(() => this.catchUp());
  }

  /** Called for each stored flow (flow.id set). O(1); never throws; never blocks on analysis. */
  submit(flow: Flow): void {
    if (this.closed || flow.id === undefined || this.active.has(flow.id)) return;
    if (!this.hasRoomFor(flow)) {
      this.counts.overflowed++;
      return;
    }
    this.hold(flow, false, false);
    this.pump();
  }

  /** Analyses a device's past flows again with its current profile, unless a run for it is going on. */
  reanalyse(clientIp: string): Promise<ReanalysisStart> {
    return this.reanalysis.start(clientIp);
  }

  /** Room in the queue by count and by body bytes; one flow always fits when nothing is held. */
  private hasRoomFor(flow: Flow): boolean {
    if (this.queue.length >= this.queueLimit) return false;
    return this.heldBytes === 0 || this.heldBytes + bodyBytes(flow) <= this.queueByteLimit;
  }

  private hold(flow: Flow, replace: boolean, again: boolean): void {
    this.active.add(flow.id!);
    this.heldBytes += bodyBytes(flow);
    // A small body is a slice of one of Node's shared 8 KiB pool chunks: queued as is, it would keep
    // the whole chunk alive (thousands of queued flows, thousands of chunks).
    this.queue.push({ flow: withOwnBodyBuffers(flow), replace, again });
  }

  private release(flow: Flow): void {
    this.active.delete(flow.id!);
    this.heldBytes -= bodyBytes(flow);
  }

  /** Resolves when the analyser has loaded and warmed up (see warm-up.ts); flows submitted before wait in the queue. */
  ready(): Promise<void> {
    return this.analyser.ready?.() ?? Promise.resolve();
  }

  /** The analysis thread's kernel id (Linux, real worker only): benchmarks read its CPU time. */
  analysisThreadId(): number | undefined {
    return this.analyser instanceof WorkerAnalyser ? this.analyser.kernelThreadId : undefined;
  }

  stats(): PipelineStats {
    return {
      pending: this.recorder.pendingCount(),
      analysed: this.counts.analysed,
      failed: this.counts.failed,
      overflowed: this.counts.overflowed,
      crashes: this.analyser.crashes,
    };
  }

  /** Resolves when nothing is queued, in flight, or pending in SQLite (tests and benchmarks). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.catchUp();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.reanalysis.close();
    clearInterval(this.timer);
    this.load.close();
    const deadline = Date.now() + 5000;
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await this.analyser.close();
    this.sequencer.close();
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private isIdle(): boolean {
    return this.queue.length === 0 && this.inFlight === 0 && this.recorder.pendingCount() === 0;
  }

  private pump(): void {
    while (!this.closed && this.inFlight < this.maxInFlight && this.queue.length) {
      const size = bodyBytes(this.queue[0].flow);
      if (this.inFlight > 0 && this.inFlightBytes + size > IN_FLIGHT_BYTE_LIMIT) break;
      const { flow, replace, again } = this.queue.shift()!;
      this.inFlight++;
      this.inFlightBytes += size;
      const { profile, device } = this.deviceOf(flow.clientIp);
      const announce: Announce = again ? this.reanalysis.announceFor(flow.clientIp) : 'all';
      this.analyser.analyse({ flow, profile, device, replace, announce }).then(
        (out) => {
          if (out.kind === 'result') this.enqueueWrite({ flow, result: out.result, omittedFields: out.omittedFields, replace, device, announce });
          else this.stored(flow, out.failed, out.events, announce);
        },
        (err: Error) => {
          if (this.closed || err instanceof StoreWriteError) {
            // Shutting down, or the worker could not write: the flow stays pending in SQLite and is
            // analysed later (the catch-up loop, or the next start).
            if (!this.closed) this.writeFailed(flow, err);
            if (again) this.reanalysis.settled(flow.clientIp, announce, [], false);
            this.done(flow);
            return;
          }
          this.enqueueWrite({ flow, error: err.message, replace, device, announce });
        },
      );
    }
  }

  private enqueueWrite(outcome: AnalysisOutcome): void {
    this.writes.push(outcome);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.writes;
    this.writes = [];
    if (this.opts.store.db.open) {
      let perFlow: StoredEvent[][];
      try {
        perFlow = this.recorder.recordEach(batch);
        for (const o of batch) this.counts['result' in o ? 'analysed' : 'failed']++;
      } catch {
        // One bad write must not sink the others: retry them one by one.
        perFlow = batch.map((o) => this.writeOne(o));
      }
      batch.forEach((o, i) => {
        if (o.announce && o.announce !== 'all') this.reanalysis.settled(o.flow.clientIp, o.announce, perFlow[i], true);
      });
      this.sequencer.committed(perFlow.flat());
    }
    for (const o of batch) this.done(o.flow);
  }

  /** The analyser stored the outcome itself: count it and broadcast its messages. */
  private stored(flow: Flow, failed: boolean, events: StoredEvent[], announce: Announce): void {
    this.counts[failed ? 'failed' : 'analysed']++;
    if (announce !== 'all') this.reanalysis.settled(flow.clientIp, announce, events, true);
    this.sequencer.committed(events);
    this.done(flow);
  }

  /** A flow left the pipeline (stored, or left pending): make room and keep the worker fed. */
  private done(flow: Flow): void {
    this.inFlight--;
    this.inFlightBytes -= bodyBytes(flow);
    this.release(flow);
    if (this.queue.length) this.pump();
    else if (this.inFlight === 0) this.catchUp();
  }

  private writeFailed(flow: Flow, err: Error): void {
    this.log(`could not store the analysis of flow ${flow.id}: ${err.message}`);
    this.writeBackoffUntil = Date.now() + (this.opts.catchUpIntervalMs ?? DEFAULT_CATCH_UP_INTERVAL_MS);
  }

  private writeOne(o: AnalysisOutcome): StoredEvent[] {
    try {
      const events = this.recorder.recordBatch([o]);
      this.counts['result' in o ? 'analysed' : 'failed']++;
      return events;
    } catch (err) {
      // The flow stays pending in SQLite; the catch-up loop retries it later.
      this.writeFailed(o.flow, err as Error);
      return [];
    }
  }

  /** The profile to analyse with and the name to announce (read here: the dashboard edits them on this connection). */
  private deviceOf(clientIp: string): { profile: DeviceProfile | null; device: string | null } {
    try {
      return { profile: this.opts.store.devices.profileOf(clientIp) ?? this.defaultProfile, device: this.opts.store.devices.nameOf(clientIp) };
    } catch {
      return { profile: this.defaultProfile, device: null };
    }
  }

  /** Takes pending flows from SQLite when the in-memory queue has drained. */
  private catchUp(fromTimer = false): void {
    if (this.closed || !this.opts.store.db.open) return;
    if (fromTimer && this.reanalysis.running) this.reanalysis.check();
    if (!fromTimer && Date.now() < this.writeBackoffUntil) return;
    if (this.queue.length === 0 && this.inFlight === 0) {
      let found = 0;
      try {
        for (const { flow, again } of this.recorder.pending(Math.min(this.queueLimit, 200) + this.active.size)) {
          if (this.active.has(flow.id!)) continue;
          if (!this.hasRoomFor(flow)) break;
          this.hold(flow, true, again);
          found++;
        }
      } catch (err) {
        this.log(`catch-up failed: ${(err as Error).message}`);
      }
      if (found) {
        this.pump();
        return;
      }
    }
    if (this.idleWaiters.length && this.isIdle()) for (const w of this.idleWaiters.splice(0)) w();
  }
}

/**
 * The real analyser in a worker that stores its outcomes itself (a file store), and takes over the
 * WAL checkpoints when the store runs them in a thread of its own (one V8 isolate less).
 */
function defaultWorkerOptions(store: Store, onCrash: (reason: string) => void): WorkerAnalyserOptions {
  if (store.file === ':memory:') return { onCrash };
  const checkpointIntervalMs = store.handOverCheckpoints();
  return { onCrash, dbFile: store.file, writeGate: store.writeGate.buffer, checkpointIntervalMs };
}

function bodyBytes(flow: Flow): number {
  return flow.requestBody.bytes.length + flow.responseBody.bytes.length;
}

export { Broadcaster } from './broadcaster';
export { WorkerAnalyser, InlineAnalyser, StoreWriteError } from './analyser';
export type { Analyser } from './analyser';
