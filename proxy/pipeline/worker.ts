/**
 * The analysis worker thread: runs the pure analyser on flows posted by the main thread, one at a
 * time, so that decoding hostile payloads never blocks the proxy's event loop. Given the database
 * file, it also stores each outcome (findings, fields, verdict, messages) through its own SQLite
 * connection — the flows analysed since the last write share one transaction — and posts back only
 * the committed messages for the main thread to broadcast. Runs as compiled JS
 * (dist/proxy/pipeline/worker.js).
 */
import { parentPort, workerData } from 'worker_threads';
import * as realAnalyser from '../analyse';
import type { AnalysisResult, DeviceProfile } from '../analyse/types';
import type { Flow } from '../flow';
import { loadGeoLookup } from '../geo';
import { judgeOptionsOf, type JudgeOptions, type JudgeSettings } from '../judge-config';
import { MAX_FIELDS_PER_FLOW } from '../store/fields';
import type { AnalysisOutcome } from './recorder';
import { openWorkerRecorder, WorkerRecorder } from './worker-store';
import type { WorkerInit, WorkerJob, WorkerReply } from './worker-protocol';
import { RunningJobCell } from './running-job';
import { analysisNice, lowerThisThreadPriority, thisThreadKernelId } from './thread-priority';
import { warmUp } from './warm-up';
import { YieldPolicy } from './cpu-yield';

interface AnalyserModule {
  analyseFlow(flow: Flow, opts: { profile?: never; geo?: never; limits?: { timeBudgetMs: number } } & Partial<JudgeOptions>): AnalysisResult;
  compileProfile?(profile: DeviceProfile): unknown;
}

const init = (workerData ?? {}) as WorkerInit & { runningJob: SharedArrayBuffer };
/** Tests of crash handling substitute a module that misbehaves on purpose; everything else uses the real analyser. */
// eslint-disable-next-line @typescript-eslint/no-var-requires
const analyser: AnalyserModule = init.analyserModule ? (require(init.analyserModule) as AnalyserModule) : (realAnalyser as unknown as AnalyserModule);
const judgeSettings: JudgeSettings | undefined = init.judge;
const judge: Partial<JudgeOptions> = judgeOptionsOfSafe(judgeSettings);
const geo = loadGeo(judgeSettings?.geoCacheDir);
const compiledProfiles = new Map<string, unknown>();
/** Which job this thread is analysing, readable by the main thread's watchdog without a message. */
const running = new RunningJobCell(init.runningJob);
const store: WorkerRecorder | null = init.dbFile ? openWorkerRecorder(init) : null;
/**
 * The decode time budget is wall-clock time. This thread is off the request path and watched by the
 * pipeline's 10 s timeout, but on a busy machine it can be descheduled for longer than the default
 * 100 ms, and a leaking flow would then be cut before its identifiers are found. 1 s keeps the limit
 * against hostile payloads, with room for scheduling delays.
 */
const LIVE_LIMITS = { timeBudgetMs: 1000 };
/** A batch is written at the latest this long after its first outcome, even while jobs keep coming. */
const MAX_BATCH_DELAY_MS = 20;

/**
 * With a cache directory (`start` passes the user's cache directory) the tables load here, before the worker
 * says it is ready: tens of ms from the binary cache (seconds once, when it is first built). Without
 * one they load on the first public address this worker judges.
 */
function loadGeo(cacheDir: string | undefined): unknown {
  try {
    return loadGeoLookup({ cacheDir });
  } catch {
    return undefined;
  }
}

/** The settings were checked at start; should they still fail here, judge with the shipped trackers only rather than crash-loop. */
function judgeOptionsOfSafe(settings: JudgeSettings | undefined): Partial<JudgeOptions> {
  try {
    return judgeOptionsOf(settings);
  } catch {
    return judgeOptionsOf(undefined);
  }
}

function compiled(profile: DeviceProfile | null): unknown {
  if (!profile) return undefined;
  if (!analyser.compileProfile) return profile;
  const key = JSON.stringify(profile);
  let c = compiledProfiles.get(key);
  if (c === undefined) {
    c = analyser.compileProfile(profile);
    if (compiledProfiles.size > 256) compiledProfiles.clear();
    compiledProfiles.set(key, c);
  }
  return c;
}

/** Structured clone turns Buffers into Uint8Arrays; the analyser expects Buffers. */
function revive(flow: Flow): Flow {
  const asBuffer = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return {
    ...flow,
    requestBody: { ...flow.requestBody, bytes: asBuffer(flow.requestBody.bytes) },
    responseBody: { ...flow.responseBody, bytes: asBuffer(flow.responseBody.bytes) },
  };
}

/** The flow as the writer needs it: its bodies' sizes, not their bytes (freed before the batch is written). */
function withoutBodies(flow: Flow): Flow {
  const none = Buffer.alloc(0);
  return { ...flow, requestBody: { ...flow.requestBody, bytes: none }, responseBody: { ...flow.responseBody, bytes: none } };
}

function analyse(job: WorkerJob): { result: AnalysisResult; omittedFields: number } | { error: string } {
  try {
    const result = analyser.analyseFlow(revive(job.flow), { ...judge, profile: compiled(job.profile) as never, geo: geo as never, limits: LIVE_LIMITS });
    const omittedFields = Math.max(0, result.fields.length - MAX_FIELDS_PER_FLOW);
    if (omittedFields) result.fields = result.fields.slice(0, MAX_FIELDS_PER_FLOW);
    return { result, omittedFields };
  } catch (err) {
    return { error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) };
  }
}

let batch: { jobId: number; outcome: AnalysisOutcome }[] = [];
let batchStartedAt = 0;
let flushScheduled = false;

function flush(): void {
  flushScheduled = false;
  const items = batch;
  batch = [];
  if (!items.length || !store) return;
  parentPort!.postMessage(store.write(items));
}

/** While the proxy is busy and the CPU saturated, pause between jobs (cpu-yield.ts), holding nothing. */
const yieldPolicy = init.loadSignal ? new YieldPolicy(init.loadSignal) : null;
const sleepCell = new Int32Array(new SharedArrayBuffer(4));
/** Longest pause before one job: the thread's timers (WAL checkpoints) run between jobs. */
const MAX_YIELD_PER_JOB_MS = 250;

function yieldWhileBusy(): void {
  if (!yieldPolicy) return;
  let pause = yieldPolicy.pauseMs();
  if (!pause) return;
  flush();
  for (let waited = 0; pause && waited < MAX_YIELD_PER_JOB_MS; pause = yieldPolicy.pauseMs()) {
    Atomics.wait(sleepCell, 0, 0, pause);
    waited += pause;
  }
}

parentPort!.on('message', (job: WorkerJob) => {
  yieldWhileBusy();
  running.start(job.jobId);
  const out = analyse(job);
  running.stop();
  if (!store) {
    const reply: WorkerReply = 'error' in out ? { jobId: job.jobId, ok: false, error: out.error } : { jobId: job.jobId, ok: true, ...out };
    parentPort!.postMessage([reply]);
    return;
  }
  const base = { flow: withoutBodies(job.flow), replace: job.replace, device: job.device, announce: job.announce };
  if (!batch.length) batchStartedAt = Date.now();
  batch.push({ jobId: job.jobId, outcome: 'error' in out ? { ...base, error: out.error } : { ...base, ...out } });
  // Jobs already queued on the port are analysed first and share the transaction (one commit).
  if (Date.now() - batchStartedAt >= MAX_BATCH_DELAY_MS) flush();
  else if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
});
lowerThisThreadPriority(analysisNice());
// The real analyser only: tests substitute modules that hang or crash on purpose.
if (!init.analyserModule) warmUp((flow) => analyser.analyseFlow(flow, { ...judge, geo: geo as never, limits: LIVE_LIMITS }));
parentPort!.postMessage({ ready: true, tid: thisThreadKernelId() });
