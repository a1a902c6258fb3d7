/**
 * The analysis worker's own SQLite connection and what it writes through it: each batch of analysed
 * flows in one transaction (AnalysisRecorder), retried one by one if the batch fails, so one bad
 * write does not sink the others. Optionally also the WAL checkpoints, so that no separate
 * checkpoint thread (and its V8 isolate) is needed while the pipeline runs.
 */
import { openDatabase } from '../store/db';
import { DeviceStore } from '../store/devices';
import { EventStore } from '../store/events';
import { FieldStore } from '../store/fields';
import { FindingStore } from '../store/findings';
import { WriteGate } from '../store/write-gate';
import { AnalysisOutcome, AnalysisRecorder } from './recorder';
import type { WorkerInit, WorkerReply } from './worker-protocol';

/** This connection writes small rows; a small page cache keeps the worker's memory low (SQLite's default here is 16 MB). */
const WORKER_CACHE_KIB = 2048;

export interface WorkerRecorder {
  write(items: { jobId: number; outcome: AnalysisOutcome }[]): WorkerReply[];
}

export function openWorkerRecorder(init: WorkerInit): WorkerRecorder {
  const db = openDatabase(init.dbFile!);
  db.pragma(`cache_size = -${WORKER_CACHE_KIB}`);
  // Checkpoints are someone else's job (the store's checkpointer, or this thread's timer below).
  db.pragma('wal_autocheckpoint = 0');
  const recorder = new AnalysisRecorder({
    db,
    devices: new DeviceStore(db),
    findings: new FindingStore(db),
    fields: new FieldStore(db),
    events: new EventStore(db),
    writeGate: init.writeGate ? new WriteGate(init.writeGate) : undefined,
  });
  if (init.checkpointIntervalMs) {
    const timer = setInterval(() => {
      try {
        db.pragma('wal_checkpoint(PASSIVE)');
      } catch {
        // Busy or closing: the next tick tries again.
      }
    }, init.checkpointIntervalMs);
    timer.unref();
  }
  return {
    write(items) {
      try {
        const events = recorder.recordEach(items.map((i) => i.outcome));
        return items.map((i, n) => ({ jobId: i.jobId, stored: true, failed: 'error' in i.outcome, events: events[n] }));
      } catch {
        return items.map((i) => {
          try {
            return { jobId: i.jobId, stored: true, failed: 'error' in i.outcome, events: recorder.recordEach([i.outcome])[0] };
          } catch (err) {
            return { jobId: i.jobId, stored: false, error: (err as Error).message };
          }
        });
      }
    },
  };
}
