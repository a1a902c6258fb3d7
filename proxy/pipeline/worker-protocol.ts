/** Messages between the main thread and the analysis worker (structured-cloned). */
import type { JudgeSettings } from '../judge-config';
import type { AnalysisResult, DeviceProfile } from '../analyse/types';
import type { Flow } from '../flow';
import type { StoredEvent } from '../store/events';
import type { Announce } from './recorder';

export interface WorkerJob {
  jobId: number;
  flow: Flow;
  profile: DeviceProfile | null;
  /** The device's name for the messages (the main thread's view: the dashboard edits it there). */
  device: string | null;
  /** The flow may carry findings from an earlier analysis: drop them first. */
  replace: boolean;
  /** Which messages its outcome appends (recorder.ts Announce); default all. */
  announce?: Announce;
}

/** workerData: with dbFile, the worker stores each outcome itself and replies `stored`. */
export interface WorkerInit {
  analyserModule?: string;
  dbFile?: string;
  /** The store's WriteGate buffer, shared with the main thread's writers. */
  writeGate?: SharedArrayBuffer;
  /** Run PASSIVE WAL checkpoints on this connection every N ms (instead of a checkpoint thread). */
  checkpointIntervalMs?: number;
  /** Home country, rules, user trackers and geo cache for the judge (read once at start). */
  judge?: JudgeSettings;
  /** The proxy's event loop utilisation, published by the main thread (cpu-yield.ts LoadPublisher). */
  loadSignal?: SharedArrayBuffer;
}

export type WorkerReply =
  /** Without dbFile: the result, for the main thread to store. */
  | { jobId: number; ok: true; result: AnalysisResult; omittedFields: number }
  | { jobId: number; ok: false; error: string }
  /** With dbFile: committed (analysis or failure), with the messages to broadcast, in seq order. */
  | { jobId: number; stored: true; failed: boolean; events: StoredEvent[] }
  /** With dbFile: the outcome could not be written; the flow stays pending in SQLite. */
  | { jobId: number; stored: false; error: string };
