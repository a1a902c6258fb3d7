/**
 * Where analysis runs. WorkerAnalyser keeps one worker thread busy with the real analyser (so the
 * proxy's event loop never decodes payloads, nor writes what they contain), restarts it when it
 * crashes or overruns its time budget, and fails only the flow that was being analysed — errors
 * are data, never a lost flow.
 * InlineAnalyser runs an injected function in-process, for unit tests of the pipeline around it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Worker } from 'worker_threads';
import type { AnalysisResult, DeviceProfile } from '../analyse/types';
import type { Flow } from '../flow';
import type { StoredEvent } from '../store/events';
import { WriteGate } from '../store/write-gate';
import { RunningJobCell } from './running-job';
import type { WorkerInit, WorkerJob, WorkerReply } from './worker-protocol';
import type { Announce } from './recorder';
import type { JudgeSettings } from '../judge-config';

/** What the pipeline hands the analyser for one flow. */
export interface AnalysisJob {
  flow: Flow;
  profile: DeviceProfile | null;
  /** The device's name, for the messages. */
  device: string | null;
  /** The flow may carry findings from an earlier analysis (it came from SQLite, not from capture). */
  replace: boolean;
  /** Which messages its outcome appends (recorder.ts Announce); default all. */
  announce?: Announce;
}

/**
 * Either the result, for the caller to store (in-process analysers, a worker without the database
 * file), or the outcome already committed by the analyser, with its messages in seq order.
 * An analyser that stores never rejects for an analysis error (it stores the failure); it rejects
 * with StoreWriteError when the outcome could not be written (the flow stays pending).
 */
export type AnalysisOutput =
  | { kind: 'result'; result: AnalysisResult; omittedFields: number }
  | { kind: 'stored'; failed: boolean; events: StoredEvent[] };

export interface Analyser {
  analyse(job: AnalysisJob): Promise<AnalysisOutput>;
  /** How many times the analyser crashed (and was restarted) so far. */
  readonly crashes: number;
  /** Resolves when the analyser can take flows at full speed (loaded and warmed up). */
  ready?(): Promise<void>;
  close(): Promise<void>;
}

export class AnalysisCrashError extends Error {}
export class StoreWriteError extends Error {}

/**
 * The worker's heap: a small young generation keeps the proxy's resident memory low while capped
 * bodies (1 MB by default) are decoded; the old-generation cap turns a decoding blow-up into a
 * recorded worker crash instead of a proxy killed by the OOM killer.
 */
export const WORKER_RESOURCE_LIMITS = { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 512 };

/** The time one flow may take in the worker before it is presumed stuck and the worker restarted. */
export const DEFAULT_ANALYSIS_TIMEOUT_MS = 10_000;
/** A job posted again to this many fresh workers (each died with no job running) is failed. */
const MAX_ATTEMPTS = 3;

/**
 * The compiled worker script. jest runs the TypeScript sources, but a worker thread needs JS, so
 * from proxy/pipeline/*.ts this resolves dist/proxy/pipeline/worker.js (`npm test` builds first);
 * from dist/ it is the sibling file.
 */
export function workerScriptPath(): string {
  if (__filename.endsWith('.js')) return path.join(__dirname, 'worker.js');
  return path.resolve(__dirname, '../../dist/proxy/pipeline/worker.js');
}

interface PendingJob {
  job: WorkerJob;
  resolve(o: AnalysisOutput): void;
  reject(e: Error): void;
  attempts: number;
}

export interface WorkerAnalyserOptions {
  /** Module exporting analyseFlow (and optionally compileProfile); default the real analyser. */
  analyserModule?: string;
  /** The SQLite file: the worker then stores each outcome through its own connection. */
  dbFile?: string;
  /** The store's write gate (Store.writeGate.buffer), so the two threads' writers queue without sleeping. */
  writeGate?: SharedArrayBuffer;
  /** The worker runs PASSIVE WAL checkpoints every N ms (when the store has no checkpoint thread of its own). */
  checkpointIntervalMs?: number;
  timeoutMs?: number;
  onCrash?(reason: string): void;
  /** Home country, rules, user trackers and geo cache for the worker's judge (read once at start). */
  judge?: JudgeSettings;
  /** The proxy's load (LoadPublisher.buffer): the worker yields while the proxy is busy and the CPU saturated. */
  loadSignal?: SharedArrayBuffer;
}

export class WorkerAnalyser implements Analyser {
  crashes = 0;
  private worker: Worker | null = null;
  private readonly jobs = new Map<number, PendingJob>();
  private nextJobId = 1;
  private closed = false;
  private readonly watchdog: NodeJS.Timeout;
  private restartDelayMs = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private readonly timeoutMs: number;
  private readonly running = new RunningJobCell();
  private isReady = false;
  /** The worker thread's kernel id (Linux), once it is ready: for per-thread CPU figures. */
  kernelThreadId: number | undefined;
  private readonly readyWaiters: (() => void)[] = [];
  /** The job the watchdog last saw running, and since when. */
  private watched = { jobId: 0, since: 0 };

  constructor(private readonly opts: WorkerAnalyserOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_ANALYSIS_TIMEOUT_MS;
    const script = workerScriptPath();
    if (!fs.existsSync(script)) throw new Error(`analysis worker not built: ${script} is missing (run npm run build)`);
    this.spawn();
    this.watchdog = setInterval(() => this.checkStuck(), Math.max(50, Math.min(1000, this.timeoutMs / 4)));
    this.watchdog.unref();
  }

  /**
   * Resolves once the first worker has loaded its tables and warmed its code (warm-up.ts), or has
   * died trying, or after timeoutMs: flows submitted before are queued, not lost, either way.
   */
  ready(timeoutMs = 10_000): Promise<void> {
    if (this.isReady) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      timer.unref();
      this.readyWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private markReady(): void {
    this.isReady = true;
    for (const w of this.readyWaiters.splice(0)) w();
  }

  analyse(job: AnalysisJob): Promise<AnalysisOutput> {
    if (this.closed) return Promise.reject(new Error('analyser closed'));
    return new Promise((resolve, reject) => {
      const posted: WorkerJob = { jobId: this.nextJobId++, ...job, flow: withOwnBodyBuffers(job.flow) };
      this.jobs.set(posted.jobId, { job: posted, resolve, reject, attempts: 1 });
      this.worker?.postMessage(posted);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.markReady();
    clearInterval(this.watchdog);
    if (this.restartTimer) clearTimeout(this.restartTimer);
    for (const p of this.jobs.values()) p.reject(new Error('analyser closed'));
    this.jobs.clear();
    const w = this.worker;
    this.worker = null;
    if (!w) return;
    const threadId = w.threadId;
    await w.terminate();
    // Stopped mid-write: SQLite rolled the transaction back as the connection closed; free the gate too.
    if (this.opts.writeGate) new WriteGate(this.opts.writeGate).releaseIfHeldBy(threadId);
  }

  private spawn(): void {
    const workerData: WorkerInit & { runningJob: SharedArrayBuffer } = {
      analyserModule: this.opts.analyserModule,
      dbFile: this.opts.dbFile,
      writeGate: this.opts.writeGate,
      checkpointIntervalMs: this.opts.checkpointIntervalMs,
      runningJob: this.running.buffer,
      judge: this.opts.judge,
      loadSignal: this.opts.loadSignal,
    };
    this.running.stop();
    this.watched = { jobId: 0, since: Date.now() };
    const w = new Worker(workerScriptPath(), { workerData, resourceLimits: WORKER_RESOURCE_LIMITS });
    this.worker = w;
    w.on('message', (msg: WorkerReply[] | { ready: true; tid?: number }) => {
      if (!Array.isArray(msg)) {
        this.kernelThreadId = msg.tid;
        this.markReady();
        return;
      }
      this.restartDelayMs = 0;
      for (const reply of msg) this.settle(reply);
    });
    w.on('error', (err) => this.crashed(w, `analysis worker crashed: ${err.message}`));
    w.on('exit', (code) => this.crashed(w, `analysis worker exited with code ${code}`));
  }

  private settle(reply: WorkerReply): void {
    const p = this.jobs.get(reply.jobId);
    if (!p) return;
    this.jobs.delete(reply.jobId);
    if ('stored' in reply) {
      if (reply.stored) p.resolve({ kind: 'stored', failed: reply.failed, events: reply.events });
      else p.reject(new StoreWriteError(reply.error));
    } else if (reply.ok) p.resolve({ kind: 'result', result: reply.result, omittedFields: reply.omittedFields });
    else p.reject(new Error(reply.error));
  }

  /**
   * The job the worker was running when it died is the one that killed it: it fails. The others
   * (queued, or analysed and not yet written) go to the new worker, with replace set in case their
   * outcome was committed just before the end.
   */
  private crashed(w: Worker, reason: string): void {
    if (this.worker !== w || this.closed) return;
    this.markReady();
    const culprit = this.running.current;
    this.worker = null;
    this.crashes++;
    this.opts.onCrash?.(reason);
    if (this.opts.writeGate) new WriteGate(this.opts.writeGate).releaseIfHeldBy(w.threadId);
    void w.terminate();
    for (const [id, p] of this.jobs) {
      if (id === culprit || p.attempts >= MAX_ATTEMPTS) {
        this.jobs.delete(id);
        p.reject(new AnalysisCrashError(reason));
      }
    }
    // A worker that dies at once again and again (e.g. a broken build) is restarted with a growing delay.
    this.restartDelayMs = Math.min(5000, this.restartDelayMs ? this.restartDelayMs * 2 : 50);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.closed) return;
      this.spawn();
      for (const p of this.jobs.values()) {
        p.attempts++;
        p.job.replace = true;
        this.worker!.postMessage(p.job);
      }
    }, this.restartDelayMs);
  }

  /** A job that has been running (per the shared cell) for longer than the timeout is stuck. */
  private checkStuck(): void {
    if (!this.worker) return;
    const current = this.running.current;
    const now = Date.now();
    if (current !== this.watched.jobId) {
      this.watched = { jobId: current, since: now };
      return;
    }
    if (current !== 0 && now - this.watched.since > this.timeoutMs) {
      const flowId = this.jobs.get(current)?.job.flow.id;
      this.watched = { jobId: 0, since: now };
      this.crashed(this.worker, `analysis took longer than ${this.timeoutMs} ms (flow ${flowId}); worker restarted`);
    }
  }
}

/**
 * postMessage clones a Buffer's whole backing ArrayBuffer, and a small body (< 4 KiB) is a view into
 * Node's shared 8 KiB allocation pool: posting it as is copies the pool twice per flow. Exact-size
 * copies cost little and send only the body's own bytes. (Not transferred: the job is re-posted
 * after a worker restart.)
 */
export function withOwnBodyBuffers(flow: Flow): Flow {
  const own = (b: Buffer): Buffer => (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : Buffer.from(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));
  const req = own(flow.requestBody.bytes);
  const res = own(flow.responseBody.bytes);
  if (req === flow.requestBody.bytes && res === flow.responseBody.bytes) return flow;
  return { ...flow, requestBody: { ...flow.requestBody, bytes: req }, responseBody: { ...flow.responseBody, bytes: res } };
}

/** Runs an analyse function in-process (unit tests of the pipeline); the pipeline stores its results. */
export class InlineAnalyser implements Analyser {
  crashes = 0;
  constructor(private readonly fn: (flow: Flow, profile: DeviceProfile | null) => AnalysisResult | Promise<AnalysisResult>) {}
  async analyse(job: AnalysisJob): Promise<AnalysisOutput> {
    return { kind: 'result', result: await this.fn(job.flow, job.profile), omittedFields: 0 };
  }
  async close(): Promise<void> {}
}
