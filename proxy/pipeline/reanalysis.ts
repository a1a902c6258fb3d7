/**
 * Re-checking a device's past traffic with its current profile (`POST /api/devices/:ip/reanalyse`).
 * The device's flows are marked pending again and the catch-up loop analyses them like any backlog;
 * a pending flow that was analysed before (analysed_at set) is a re-analysis, in SQLite, so this
 * holds across a restart. Three rules keep one click from hurting the machine:
 * - one run per device at a time: while one runs (or, after a restart, its flows still wait), another is refused;
 * - marking is done in small transactions between event-loop turns: on a device with 100,000 flows
 *   one UPDATE held the write gate (and the proxy's inserts) for 2.5 s;
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
/** Flows marked pending per transaction: about 12 ms of writes each (25 µs per row measured on 100,000). */
const MARK_CHUNK = 500;
/**
 * Whether a device still has flows waiting is read through the pending flows' index, which holds
 * every device's: with another device's 100,000 flows waiting it takes 240 ms. So a run is checked
 * when its own count says it is done, and otherwise only this often (a safety net).
 */
const RECHECK_MS = 10_000;

export interface ReanalysisSummary {
  clientIp: string;
  device: string | null;
  /** Flows the run analysed again. */
  flows: number;
  /** Of the device's flows up to the run's start, those with findings now. */
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
  /** Flows marked for this run so far. */
  queued: number;
  /** Of those, analysed again so far. */
  analysed: number;
  /** The device's newest flow when the run started: the run covers flows up to it. */
  upTo: number;
  marking: boolean;
  announced: number;
  /** Flows in flight allowed to announce their alert: counted against the budget until they are settled. */
  reserved: number;
  /** When it was last looked for in SQLite (check()). */
  checkedAt: number;
}

export class DeviceReanalysis {
  private readonly runs = new Map<string, Run>();
  private readonly markStmt: Database.Statement;
  private readonly waitingStmt: Database.Statement;
  private readonly newestStmt: Database.Statement;
  private readonly withFindingsStmt: Database.Statement;
  private closed = false;

  /**
   * publish: hands a committed message to the live stream (the pipeline's sequencer);
   * marked: flows were marked pending (the pipeline's catch-up takes them).
   */
  constructor(
    private readonly store: Store,
    private readonly publish: (events: StoredEvent[]) => void,
    private readonly marked: () => void,
    private readonly log: (m: string) => void,
  ) {
    const db = store.db;
    // Rows analysed before analysed_at existed get one, so that they too count as analysed before.
    this.markStmt = db.prepare(`UPDATE flows SET analysis_state = 0, analysed_at = COALESCE(analysed_at, started_at)
      WHERE id IN (SELECT id FROM flows WHERE client_ip = ? AND id > ? AND id <= ? AND analysis_state <> 0 ORDER BY id LIMIT ${MARK_CHUNK})
      RETURNING id`);
    // '+client_ip': read through the pending flows' index (few rows once a run is done), not the device's (all its flows).
    this.waitingStmt = db.prepare('SELECT 1 FROM flows WHERE analysis_state = 0 AND +client_ip = ? AND analysed_at IS NOT NULL LIMIT 1');
    this.newestStmt = db.prepare('SELECT COALESCE(MAX(id), 0) AS id FROM flows WHERE client_ip = ?');
    this.withFindingsStmt = db.prepare('SELECT COUNT(*) AS n FROM flows WHERE client_ip = ? AND id <= ? AND finding_count > 0');
    // Runs an earlier process left (stopped before they were done): taken over, counted once.
    const orphans = db.prepare('SELECT +client_ip AS ip, COUNT(*) AS n FROM flows WHERE analysis_state = 0 AND analysed_at IS NOT NULL GROUP BY +client_ip').all() as { ip: string; n: number }[];
    for (const { ip, n } of orphans) this.runs.set(ip, this.newRun(ip, n, false));
  }

  /** Starts a run for the device (resolves once its flows are marked), or says how far the running one is. */
  async start(clientIp: string): Promise<ReanalysisStart> {
    const running = this.runs.get(clientIp);
    if (running) return { started: false, queued: running.queued, left: Math.max(0, running.queued - running.analysed) };
    const run = this.newRun(clientIp, 0, true);
    this.runs.set(clientIp, run);
    let cursor = 0;
    try {
      while (!this.closed) {
        const ids = this.store.writeGate.run(() => this.markStmt.all(clientIp, cursor, run.upTo)) as { id: number }[];
        if (!ids.length) break;
        run.queued += ids.length;
        for (const { id } of ids) if (id > cursor) cursor = id;
        this.marked();
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      run.marking = false;
    }
    this.log(`re-analysing ${run.queued} flow(s) of ${clientIp}`);
    if (run.queued === 0) this.runs.delete(clientIp);
    return { started: true, queued: run.queued };
  }

  /**
   * How the next re-analysed flow of this device is announced: its alert while the run's budget
   * lasts (flows in flight hold their place in it, so the budget is never overshot).
   */
  announceFor(clientIp: string): Announce {
    let run = this.runs.get(clientIp);
    if (!run) {
      // Marked by another process on this database: a run of unknown size, checked on the timer.
      run = this.newRun(clientIp, 0, false);
      this.runs.set(clientIp, run);
    }
    if (run.announced + run.reserved >= ALERT_BUDGET) return 'none';
    run.reserved++;
    return 'alerts';
  }

  /** A re-analysed flow left the pipeline: stored (with these messages), or left waiting after a failed write. */
  settled(clientIp: string, announce: Announce, events: StoredEvent[], stored: boolean): void {
    const run = this.runs.get(clientIp);
    if (!run) return;
    if (announce === 'alerts') run.reserved = Math.max(0, run.reserved - 1);
    if (stored) run.analysed++;
    for (const e of events) if (e.type === 'alert') run.announced++;
  }

  /** Finishes the runs with no flow left waiting (the pipeline's timer): one summary message each. */
  check(): void {
    const now = Date.now();
    for (const run of [...this.runs.values()]) {
      if (run.marking) continue;
      const due = run.analysed >= run.queued ? now - run.checkedAt >= 1000 : now - run.checkedAt >= RECHECK_MS;
      if (!due) continue;
      run.checkedAt = now;
      try {
        if (this.waiting(run.clientIp)) continue;
      } catch {
        return; // the store is closing
      }
      this.runs.delete(run.clientIp);
      this.finish(run);
    }
  }

  /** Runs in progress. */
  get running(): number {
    return this.runs.size;
  }

  close(): void {
    this.closed = true;
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

  private newRun(clientIp: string, queued: number, marking: boolean): Run {
    return { clientIp, startedAt: Date.now(), queued, analysed: 0, upTo: this.newest(clientIp), marking, announced: 0, reserved: 0, checkedAt: 0 };
  }

  private waiting(clientIp: string): boolean {
    return this.waitingStmt.get(clientIp) !== undefined;
  }

  private newest(clientIp: string): number {
    return (this.newestStmt.get(clientIp) as { id: number }).id;
  }
}
