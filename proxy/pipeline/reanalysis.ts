/**
 * Re-checking a device's past traffic with its current profile (`POST /api/devices/:ip/reanalyse`).
 * The device's flows are marked pending again and the catch-up loop analyses them like any backlog;
 * a pending flow that was analysed before (analysed_at set) is a re-analysis, in SQLite, so this
 * holds across a restart. Two rules keep one click from flooding the machine:
 * - one run per device at a time: while any of its flows still waits, a second request is refused;
 * - bounded messages: a run announces at most ALERT_BUDGET alerts on the live stream (no per-flow
 *   messages), then one `reanalysis` message when its last flow is done, with the counts. A run over
 *   100,000 flows appends about ALERT_BUDGET + 1 events, not 200,000.
 */
import type Database from 'better-sqlite3';
import type { Store } from '../store';
import type { StoredEvent } from '../store/events';
import type { Announce } from './recorder';

/** Alerts a run announces live; the rest are in the tables (Flows view, REST), counted in the summary. */
export const ALERT_BUDGET = 100;

export interface ReanalysisSummary {
  clientIp: string;
  device: string | null;
  /** Flows the run analysed again. */
  flows: number;
  /** Of those, flows with findings now. */
  withFindings: number;
  /** Alerts sent on the live stream during the run (at most ALERT_BUDGET; the rest were not announced). */
  announced: number;
  startedAt: number;
  finishedAt: number;
}

export type ReanalysisStart = { started: true; queued: number } | { started: false; queued: number; left: number };

interface Run {
  clientIp: string;
  startedAt: number;
  queued: number;
  /** The device's newest flow when the run started: the run covers flows up to it. */
  upTo: number;
  announced: number;
}

export class DeviceReanalysis {
  private readonly runs = new Map<string, Run>();
  private readonly markStmt: Database.Statement;
  private readonly leftStmt: Database.Statement;
  private readonly newestStmt: Database.Statement;
  private readonly withFindingsStmt: Database.Statement;

  /** publish: hands a committed message to the live stream (the pipeline's sequencer). */
  constructor(private readonly store: Store, private readonly publish: (events: StoredEvent[]) => void, private readonly log: (m: string) => void) {
    const db = store.db;
    // Rows analysed before analysed_at existed get one, so that they too count as analysed before.
    this.markStmt = db.prepare('UPDATE flows SET analysis_state = 0, analysed_at = COALESCE(analysed_at, started_at) WHERE client_ip = ? AND analysis_state <> 0');
    this.leftStmt = db.prepare('SELECT COUNT(*) AS n FROM flows WHERE analysis_state = 0 AND client_ip = ? AND analysed_at IS NOT NULL');
    this.newestStmt = db.prepare('SELECT COALESCE(MAX(id), 0) AS id FROM flows WHERE client_ip = ?');
    this.withFindingsStmt = db.prepare('SELECT COUNT(*) AS n FROM flows WHERE client_ip = ? AND id <= ? AND finding_count > 0');
  }

  /** Starts a run for the device, or says how far the running one is. */
  start(clientIp: string): ReanalysisStart {
    const left = this.left(clientIp);
    if (left > 0) {
      const run = this.runFor(clientIp, left);
      return { started: false, queued: run.queued, left };
    }
    const queued = this.store.writeGate.run(() => this.markStmt.run(clientIp)).changes;
    const run: Run = { clientIp, startedAt: Date.now(), queued, upTo: this.newest(clientIp), announced: 0 };
    if (queued > 0) this.runs.set(clientIp, run);
    this.log(`re-analysing ${queued} flow(s) of ${clientIp}`);
    return { started: true, queued };
  }

  /** How the next re-analysed flow of this device is announced: its alert while the run's budget lasts. */
  announceFor(clientIp: string): Announce {
    return this.runFor(clientIp).announced < ALERT_BUDGET ? 'alerts' : 'none';
  }

  /** Counts the alerts a re-analysed flow's outcome announced. */
  announced(clientIp: string, events: StoredEvent[]): void {
    const run = this.runs.get(clientIp);
    if (run) for (const e of events) if (e.type === 'alert') run.announced++;
  }

  /** Finishes the runs with no flow left (called on the pipeline's timer): one summary message each. */
  check(): void {
    for (const run of [...this.runs.values()]) {
      let left: number;
      try {
        left = this.left(run.clientIp);
      } catch {
        return; // the store is closing
      }
      if (left > 0) continue;
      this.runs.delete(run.clientIp);
      this.finish(run);
    }
  }

  /** Runs in progress (tests, stats). */
  get running(): number {
    return this.runs.size;
  }

  private finish(run: Run): void {
    try {
      const summary: ReanalysisSummary = {
        clientIp: run.clientIp,
        device: this.store.devices.nameOf(run.clientIp),
        flows: run.queued,
        withFindings: (this.withFindingsStmt.get(run.clientIp, run.upTo) as { n: number }).n,
        announced: run.announced,
        startedAt: run.startedAt,
        finishedAt: Date.now(),
      };
      const event = this.store.writeGate.run(() => this.store.events.append('reanalysis', summary, null));
      this.publish([event]);
      this.log(`re-analysis of ${run.clientIp} done: ${summary.flows} flow(s), ${summary.withFindings} with findings`);
    } catch (err) {
      this.log(`re-analysis of ${run.clientIp}: could not store its summary: ${(err as Error).message}`);
    }
  }

  /** The device's run; a run left by an earlier process (its flows still pending) is taken over. */
  private runFor(clientIp: string, left?: number): Run {
    let run = this.runs.get(clientIp);
    if (!run) {
      const queued = left ?? this.left(clientIp);
      run = { clientIp, startedAt: Date.now(), queued, upTo: this.newest(clientIp), announced: 0 };
      this.runs.set(clientIp, run);
    }
    return run;
  }

  private left(clientIp: string): number {
    return (this.leftStmt.get(clientIp) as { n: number }).n;
  }

  private newest(clientIp: string): number {
    return (this.newestStmt.get(clientIp) as { id: number }).id;
  }
}
