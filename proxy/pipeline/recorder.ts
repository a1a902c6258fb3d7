/**
 * Writes what analysis produced for one flow — findings, decoded fields, the flow's verdict, the
 * device's last-seen time and the WebSocket messages describing it — in one SQLite transaction, so a
 * crash never leaves a flow half analysed or an alert without its findings. Also reads back the
 * flows still waiting for analysis (the catch-up loop).
 */
import type Database from 'better-sqlite3';
import type { AnalysisResult, DeviceProfile } from '../analyse/types';
import type { Flow } from '../flow';
import type { Store } from '../store';
import type { StoredEvent } from '../store/events';
import { MAX_FIELDS_PER_FLOW } from '../store/fields';
import { severityRank } from '../store/findings';
import { FlowRow, rowToFlow } from '../store/flows';
import { SUMMARY_COLUMNS, SummaryRow, toAlert, toFlowSummary, FlowSummary } from './summaries';

export const ANALYSIS_PENDING = 0;
export const ANALYSIS_DONE = 1;
export const ANALYSIS_FAILED = 2;

export class AnalysisRecorder {
  private readonly db: Database.Database;
  private readonly updateStmt: Database.Statement;
  private readonly failStmt: Database.Statement;
  private readonly deleteFindingsStmt: Database.Statement;
  private readonly deleteFieldsStmt: Database.Statement;
  private readonly summaryStmt: Database.Statement;
  private readonly pendingStmt: Database.Statement;
  private readonly pendingCountStmt: Database.Statement;
  private readonly recordTx: (flow: Flow, result: AnalysisResult, omittedFields: number) => StoredEvent[];
  private readonly failTx: (flow: Flow, error: string) => StoredEvent[];

  constructor(private readonly store: Store) {
    const db = (this.db = store.db);
    this.updateStmt = db.prepare(`UPDATE flows SET analysis_state = ${ANALYSIS_DONE}, analysed_at = @now, analysis_error = NULL,
      analysis_notes = @notes, severity = @severity, severity_rank = @rank, finding_count = @count, finding_types = @types,
      dest_country = @country, dest_org = @org, dest_asn = @asn WHERE id = @id`);
    this.failStmt = db.prepare(`UPDATE flows SET analysis_state = ${ANALYSIS_FAILED}, analysed_at = @now, analysis_error = @error,
      severity = 'info', severity_rank = 0, finding_count = 0, finding_types = '[]' WHERE id = @id`);
    this.deleteFindingsStmt = db.prepare('DELETE FROM findings WHERE flow_id = ?');
    this.deleteFieldsStmt = db.prepare('DELETE FROM fields WHERE flow_id = ?');
    this.summaryStmt = db.prepare(`SELECT ${SUMMARY_COLUMNS} FROM flows WHERE id = ?`);
    this.pendingStmt = db.prepare(`SELECT * FROM flows WHERE analysis_state = ${ANALYSIS_PENDING} ORDER BY id LIMIT ?`);
    this.pendingCountStmt = db.prepare(`SELECT COUNT(*) AS n FROM flows WHERE analysis_state = ${ANALYSIS_PENDING}`);
    this.recordTx = db.transaction((flow, result, omittedFields) => this.writeResult(flow, result, omittedFields));
    this.failTx = db.transaction((flow, error) => this.writeFailure(flow, error));
  }

  /** Stores the analysis of a stored flow; returns the messages to broadcast (flow, then alert when it has findings). */
  record(flow: Flow, result: AnalysisResult, omittedFields = 0): StoredEvent[] {
    return this.recordTx(flow, result, omittedFields);
  }

  /** Errors are data: an analysis that failed or crashed is recorded on the flow and still announced. */
  recordFailure(flow: Flow, error: string): StoredEvent[] {
    return this.failTx(flow, error);
  }

  /** Oldest flows still waiting for analysis. */
  pending(limit: number): Flow[] {
    return (this.pendingStmt.all(limit) as FlowRow[]).map(rowToFlow);
  }

  pendingCount(): number {
    return (this.pendingCountStmt.get() as { n: number }).n;
  }

  summary(flowId: number): FlowSummary | undefined {
    const row = this.summaryStmt.get(flowId) as SummaryRow | undefined;
    return row ? toFlowSummary(row, this.store.devices.nameOf(row.client_ip)) : undefined;
  }

  private writeResult(flow: Flow, result: AnalysisResult, omittedFields: number): StoredEvent[] {
    const id = flow.id!;
    this.deleteFindingsStmt.run(id);
    this.deleteFieldsStmt.run(id);
    this.store.devices.seen(flow.clientIp, flow.startedAt);
    const dest = result.destination ?? { host: flow.host, cleartext: !flow.tls };
    this.store.findings.insertForFlow(
      { flowId: id, host: flow.host, clientIp: flow.clientIp, tls: flow.tls, startedAt: flow.startedAt, destination: dest },
      result.findings,
    );
    const leftOut = this.store.fields.insertForFlow(id, result.fields) + omittedFields;
    const notes = [...(result.notes ?? [])];
    if (leftOut > 0) notes.push(`${leftOut} decoded fields beyond the cap of ${MAX_FIELDS_PER_FLOW} per flow were not stored`);
    const types = [...new Set(result.findings.map((f) => f.type))];
    const severity = result.findings.length ? result.severity : 'info';
    this.updateStmt.run({
      id,
      now: Date.now(),
      notes: JSON.stringify(notes),
      severity,
      rank: severityRank(severity),
      count: result.findings.length,
      types: JSON.stringify(types),
      country: dest.country ?? null,
      org: dest.org ?? null,
      asn: dest.asn ?? null,
    });
    return this.announce(id, dest.country ?? null, dest.org ?? null);
  }

  private writeFailure(flow: Flow, error: string): StoredEvent[] {
    const id = flow.id!;
    this.deleteFindingsStmt.run(id);
    this.deleteFieldsStmt.run(id);
    this.store.devices.seen(flow.clientIp, flow.startedAt);
    this.failStmt.run({ id, now: Date.now(), error });
    return this.announce(id, null, null);
  }

  private announce(id: number, country: string | null, org: string | null): StoredEvent[] {
    const summary = this.summary(id);
    if (!summary) return [];
    const events: StoredEvent[] = [this.store.events.append('flow', summary, id)];
    if (summary.findingCount > 0) {
      const alert = toAlert(summary, this.store.findings.forFlow(id), { country, org });
      events.push(this.store.events.append('alert', alert, id));
    }
    return events;
  }
}

/** Re-exported for callers that only need the profile shape. */
export type { DeviceProfile };
