/**
 * Where analysis runs. WorkerAnalyser keeps one worker thread busy with the real analyser (so the
 * proxy's event loop never decodes payloads), restarts it when it crashes or overruns its time
 * budget, and fails only the flow that was being analysed — errors are data, never a lost flow.
 * InlineAnalyser runs an injected function in-process, for unit tests of the pipeline around it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Worker } from 'worker_threads';
import type { AnalysisResult, DeviceProfile } from '../analyse/types';
import type { Flow } from '../flow';
import type { WorkerJob, WorkerReply } from './worker-protocol';
import type { JudgeSettings } from '../judge-config';

export interface AnalysisOutput {
  result: AnalysisResult;
  /** Decoded fields the worker left out (beyond the per-flow cap) to keep messages small. */
  omittedFields: number;
}

export interface Analyser {
  analyse(flow: Flow, profile: DeviceProfile | null): Promise<AnalysisOutput>;
  /** How many times the analyser crashed (and was restarted) so far. */
  readonly crashes: number;
  close(): Promise<void>;
}

export class AnalysisCrashError extends Error {}

/**
 * The worker's heap: a small young generation keeps the proxy's resident memory low while capped
 * bodies (1 MB by default) are decoded; the old-generation cap turns a decoding blow-up into a
 * recorded worker crash instead of a proxy killed by the OOM killer.
 */
export const WORKER_RESOURCE_LIMITS = { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 512 };

/** The time one flow may take in the worker before it is presumed stuck and the worker restarted. */
export const DEFAULT_ANALYSIS_TIMEOUT_MS = 10_000;

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
  startedAt: number;
}

export interface WorkerAnalyserOptions {
  /** Module exporting analyseFlow (and optionally compileProfile); default the real analyser. */
  analyserModule?: string;
  timeoutMs?: number;
  onCrash?(reason: string): void;
  /** Home country, rules, user trackers and geo cache for the worker's judge (read once at start). */
  judge?: JudgeSettings;
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

  constructor(private readonly opts: WorkerAnalyserOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_ANALYSIS_TIMEOUT_MS;
    const script = workerScriptPath();
    if (!fs.existsSync(script)) throw new Error(`analysis worker not built: ${script} is missing (run npm run build)`);
    this.spawn();
    this.watchdog = setInterval(() => this.checkStuck(), Math.max(50, Math.min(1000, this.timeoutMs / 4)));
    this.watchdog.unref();
  }

  analyse(flow: Flow, profile: DeviceProfile | null): Promise<AnalysisOutput> {
    if (this.closed) return Promise.reject(new Error('analyser closed'));
    return new Promise((resolve, reject) => {
      const job: WorkerJob = { jobId: this.nextJobId++, flow: withOwnBodyBuffers(flow), profile };
      const pending: PendingJob = { job, resolve, reject, startedAt: Date.now() };
      const first = this.jobs.size === 0;
      this.jobs.set(job.jobId, pending);
      if (first) pending.startedAt = Date.now();
      this.worker?.postMessage(job);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.watchdog);
    if (this.restartTimer) clearTimeout(this.restartTimer);
    for (const p of this.jobs.values()) p.reject(new Error('analyser closed'));
    this.jobs.clear();
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }

  private spawn(): void {
    const w = new Worker(workerScriptPath(), { workerData: { analyserModule: this.opts.analyserModule, judge: this.opts.judge }, resourceLimits: WORKER_RESOURCE_LIMITS });
    this.worker = w;
    w.on('message', (msg: WorkerReply | { ready: true }) => {
      if (!('jobId' in msg)) {
        // Start-up time (loading the analyser) does not count against the first flow's time budget.
        const head = this.jobs.values().next();
        if (!head.done) head.value.startedAt = Date.now();
        return;
      }
      const p = this.jobs.get(msg.jobId);
      if (!p) return;
      this.jobs.delete(msg.jobId);
      this.restartDelayMs = 0;
      const head = this.jobs.values().next();
      if (!head.done) head.value.startedAt = Date.now();
      if (msg.ok) p.resolve({ result: msg.result, omittedFields: msg.omittedFields });
      else p.reject(new Error(msg.error));
    });
    w.on('error', (err) => this.crashed(w, `analysis worker crashed: ${err.message}`));
    w.on('exit', (code) => this.crashed(w, `analysis worker exited with code ${code}`));
  }

  /** The worker analyses jobs in order, so the oldest pending job is the one it was running. */
  private crashed(w: Worker, reason: string): void {
    if (this.worker !== w || this.closed) return;
    this.worker = null;
    this.crashes++;
    this.opts.onCrash?.(reason);
    void w.terminate();
    const head = this.jobs.values().next();
    if (!head.done) {
      this.jobs.delete(head.value.job.jobId);
      head.value.reject(new AnalysisCrashError(reason));
    }
    // A worker that dies at once again and again (e.g. a broken build) is restarted with a growing delay.
    this.restartDelayMs = Math.min(5000, this.restartDelayMs ? this.restartDelayMs * 2 : 50);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.closed) return;
      this.spawn();
      const now = Date.now();
      for (const p of this.jobs.values()) {
        p.startedAt = now;
        this.worker!.postMessage(p.job);
      }
    }, this.restartDelayMs);
  }

  private checkStuck(): void {
    if (!this.worker) return;
    const head = this.jobs.values().next();
    if (head.done) return;
    if (Date.now() - head.value.startedAt > this.timeoutMs) {
      this.crashed(this.worker, `analysis took longer than ${this.timeoutMs} ms (flow ${head.value.job.flow.id}); worker restarted`);
    }
  }
}

/**
 * postMessage clones a Buffer's whole backing ArrayBuffer, and a small body (< 4 KiB) is a view into
 * Node's shared 8 KiB allocation pool: posting it as is copies the pool twice per flow. Exact-size
 * copies cost little and send only the body's own bytes. (Not transferred: the job is re-posted
 * after a worker restart.)
 */
function withOwnBodyBuffers(flow: Flow): Flow {
  const own = (b: Buffer): Buffer => (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : Buffer.from(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));
  const req = own(flow.requestBody.bytes);
  const res = own(flow.responseBody.bytes);
  if (req === flow.requestBody.bytes && res === flow.responseBody.bytes) return flow;
  return { ...flow, requestBody: { ...flow.requestBody, bytes: req }, responseBody: { ...flow.responseBody, bytes: res } };
}

/** Runs an analyse function in-process (unit tests of the pipeline). */
export class InlineAnalyser implements Analyser {
  crashes = 0;
  constructor(private readonly fn: (flow: Flow, profile: DeviceProfile | null) => AnalysisResult | Promise<AnalysisResult>) {}
  async analyse(flow: Flow, profile: DeviceProfile | null): Promise<AnalysisOutput> {
    return { result: await this.fn(flow, profile), omittedFields: 0 };
  }
  async close(): Promise<void> {}
}
