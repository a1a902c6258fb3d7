/**
 * The analysis worker thread: runs the pure analyser on flows posted by the main thread, one at a
 * time, so that decoding hostile payloads never blocks the proxy's event loop. It touches no SQLite:
 * the main thread is the only writer. Runs as compiled JS (dist/proxy/pipeline/worker.js).
 */
import { parentPort, workerData } from 'worker_threads';
import * as realAnalyser from '../analyse';
import type { AnalysisResult, DeviceProfile } from '../analyse/types';
import type { Flow } from '../flow';
import { loadGeoLookup } from '../geo';
import { judgeOptionsOf, type JudgeOptions, type JudgeSettings } from '../judge-config';
import { MAX_FIELDS_PER_FLOW } from '../store/fields';
import type { WorkerJob, WorkerReply } from './worker-protocol';

interface AnalyserModule {
  analyseFlow(flow: Flow, opts: { profile?: never; geo?: never; limits?: { timeBudgetMs: number } } & Partial<JudgeOptions>): AnalysisResult;
  compileProfile?(profile: DeviceProfile): unknown;
}

/** Tests of crash handling substitute a module that misbehaves on purpose; everything else uses the real analyser. */
const override: string | undefined = (workerData as { analyserModule?: string } | null)?.analyserModule;
// eslint-disable-next-line @typescript-eslint/no-var-requires
const analyser: AnalyserModule = override ? (require(override) as AnalyserModule) : (realAnalyser as unknown as AnalyserModule);
const judgeSettings: JudgeSettings | undefined = (workerData as { judge?: JudgeSettings } | null)?.judge;
const judge: Partial<JudgeOptions> = judgeOptionsOfSafe(judgeSettings);
const geo = loadGeo(judgeSettings?.geoCacheDir);
const compiledProfiles = new Map<string, unknown>();
/**
 * The decode time budget is wall-clock time. This thread is off the request path and watched by the
 * pipeline's 10 s timeout, but on a busy machine it can be descheduled for longer than the default
 * 100 ms, and a leaking flow would then be cut before its identifiers are found. 1 s keeps the limit
 * against hostile payloads, with room for scheduling delays.
 */
const LIVE_LIMITS = { timeBudgetMs: 1000 };

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

parentPort!.on('message', (job: WorkerJob) => {
  let reply: WorkerReply;
  try {
    const result = analyser.analyseFlow(revive(job.flow), { ...judge, profile: compiled(job.profile) as never, geo: geo as never, limits: LIVE_LIMITS });
    const omittedFields = Math.max(0, result.fields.length - MAX_FIELDS_PER_FLOW);
    if (omittedFields) result.fields = result.fields.slice(0, MAX_FIELDS_PER_FLOW);
    reply = { jobId: job.jobId, ok: true, result, omittedFields };
  } catch (err) {
    reply = { jobId: job.jobId, ok: false, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) };
  }
  parentPort!.postMessage(reply);
});
parentPort!.postMessage({ ready: true });
