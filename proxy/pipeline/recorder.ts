/**
 * Writes what analysis produced for one flow — findings, decoded fields, the flow's verdict, the
 * device's last-seen time and the WebSocket messages describing it — in one SQLite transaction, so a
 * crash never leaves a flow half analysed or an alert without its findings (several flows share one
 * transaction under load). It runs in the analysis worker on the worker's own connection (the proxy's
 * event loop then never waits on these writes), and on the main thread for in-process analysers and
 * for flows whose worker died. Also reads back the flows still waiting for analysis (the catch-up loop).
 */
import type Database from 'better-sqlite3';
import type { AnalysisResult, DeviceProfile } from '../analyse/types';
import type { Flow } from '../flow';
import type { DeviceStore } from '../store/devices';
import type { EventStore } from '../store/events';
import type { FieldStore } from '../store/fields';
import type { FindingStore } from '../store/findings';
import type { WriteGate } from '../store/write-gate';
import type { StoredEvent } from '../store/events';
import { MAX_FIELDS_PER_FLOW } from '../store/fields';
import { severityRank } from '../store/findings';
import { FlowRow, rowToFlow } from '../store/flows';
import type { FindingRow } from '../store/findings';
import { SummaryRow, toAlert, toFlowSummary, type AlertFacts } from './summaries';

export const ANALYSIS_PENDING = 0;
/**
 * Which messages a flow's analysis appends to `events`: all (flow, and alert when it has findings);
 * alerts only, or none — a re-analysis of a device's past traffic (reanalysis.ts) announces a
 * bounded number of alerts and then one summary, not a message per flow.
 */
export type Announce = 'all' | 'alerts' | 'none';
export const ANALYSIS_DONE = 1;
export const ANALYSIS_FAILED = 2;

/** The parts of a store the recorder writes through (a Store, or the worker's own connection). */
export interface RecorderStore {
  db: Database.Database;
  devices: Pick<DeviceStore, 'seen' | 'nameOf'>;
  findings: Pick<FindingStore, 'insertForFlow'>;
  fields: Pick<FieldStore, 'insertForFlow'>;
  events: Pick<EventStore, 'append'>;
  writeGate?: WriteGate;
}

export class AnalysisRecorder {
  private readonly updateStmt: Database.Statement;
  private readonly failStmt: Database.Statement;
  private readonly deleteFindingsStmt: Database.Statement;
  private readonly deleteFieldsStmt: Database.Statement;
  private readonly pendingStmt: Database.Statement;
  private readonly pendingCountStmt: Database.Statement;
  private readonly batchTx: (items: AnalysisOutcome[]) => StoredEvent[][];

  constructor(private readonly store: RecorderStore) {
    const db = store.db;
    this.updateStmt = db.prepare(`UPDATE flows SET analysis_state = ${ANALYSIS_DONE}, analysed_at = @now, analysis_error = NULL,
      analysis_notes = @notes, severity = @severity, severity_rank = @rank, finding_count = @count, finding_types = @types,
      dest_country = @country, dest_org = @org, dest_asn = @asn, dest_domain = @domain, dest_local = @local, tracker = @tracker,
      tracker_category = @trackerCategory, home_country = @homeCountry, cross_border = @crossBorder, sentence = @sentence WHERE id = @id`);
    // Only a flow still waiting: a worker that died right after committing its analysis keeps that analysis.
    this.failStmt = db.prepare(`UPDATE flows SET analysis_state = ${ANALYSIS_FAILED}, analysed_at = @now, analysis_error = @error,
      severity = 'info', severity_rank = 0, finding_count = 0, finding_types = '[]', sentence = NULL WHERE id = @id AND analysis_state = ${ANALYSIS_PENDING}`);
    this.deleteFindingsStmt = db.prepare('DELETE FROM findings WHERE flow_id = ?');
    this.deleteFieldsStmt = db.prepare('DELETE FROM fields WHERE flow_id = ?');
    this.pendingStmt = db.prepare(`SELECT * FROM flows WHERE analysis_state = ${ANALYSIS_PENDING} ORDER BY id LIMIT ?`);
    this.pendingCountStmt = db.prepare(`SELECT COUNT(*) AS n FROM flows WHERE analysis_state = ${ANALYSIS_PENDING}`);
    const tx = db.transaction((items: AnalysisOutcome[]) => {
      this.markDevicesSeen(items);
      return items.map((i) => this.write(i));
    });
    const gate = store.writeGate;
    this.batchTx = gate ? (items) => gate.run(() => tx(items)) : tx;
  }

  /** Stores the analysis of a stored flow; returns the messages to broadcast (flow, then alert when it has findings). */
  record(flow: Flow, result: AnalysisResult, omittedFields = 0, replace = true): StoredEvent[] {
    return this.batchTx([{ flow, result, omittedFields, replace }])[0];
  }

  /** Errors are data: an analysis that failed or crashed is recorded on the flow and still announced. */
  recordFailure(flow: Flow, error: string, replace = true): StoredEvent[] {
    return this.batchTx([{ flow, error, replace }])[0];
  }

  /** Several outcomes in one transaction (one commit under load); messages in order. */
  recordBatch(items: AnalysisOutcome[]): StoredEvent[] {
    return this.batchTx(items).flat();
  }

  /** Like recordBatch, with each outcome's messages apart (the worker replies per flow). */
  recordEach(items: AnalysisOutcome[]): StoredEvent[][] {
    return this.batchTx(items);
  }

  /** One devices upsert per phone per batch (its earliest and latest flow), not one per flow. */
  private markDevicesSeen(items: AnalysisOutcome[]): void {
    const range = new Map<string, { first: number; last: number }>();
    for (const { flow } of items) {
      const r = range.get(flow.clientIp);
      if (!r) range.set(flow.clientIp, { first: flow.startedAt, last: flow.startedAt });
      else {
        r.first = Math.min(r.first, flow.startedAt);
        r.last = Math.max(r.last, flow.startedAt);
      }
    }
    for (const [clientIp, { first, last }] of range) {
      this.store.devices.seen(clientIp, first);
      if (last !== first) this.store.devices.seen(clientIp, last);
    }
  }

  private write(i: AnalysisOutcome): StoredEvent[] {
    // The device's name as the caller knew it (the worker's connection has no view of the dashboard's edits).
    const device = i.device !== undefined ? i.device : this.store.devices.nameOf(i.flow.clientIp);
    const announce = i.announce ?? 'all';
    return 'result' in i
      ? this.writeResult(i.flow, i.result, i.omittedFields ?? 0, i.replace, device, announce)
      : this.writeFailure(i.flow, i.error, i.replace, device, announce);
  }

  /**
   * Pending flows, oldest first, read one row at a time so a caller can stop early (bodies are large).
   * `again`: the flow was analysed before (a re-analysis), not waiting for its first analysis.
   */
  *pending(limit: number): Generator<{ flow: Flow; again: boolean }> {
    for (const row of this.pendingStmt.iterate(limit) as IterableIterator<FlowRow & { analysed_at: number | null }>) {
      yield { flow: rowToFlow(row), again: row.analysed_at !== null };
    }
  }

  pendingCount(): number {
    return (this.pendingCountStmt.get() as { n: number }).n;
  }

  private writeResult(flow: Flow, result: AnalysisResult, omittedFields: number, replace: boolean, device: string | null, announce: Announce): StoredEvent[] {
    const id = flow.id!;
    if (replace) {
      this.deleteFindingsStmt.run(id);
      this.deleteFieldsStmt.run(id);
    }
    const dest = result.destination ?? { host: flow.host, cleartext: !flow.tls };
    const findingRows = this.store.findings.insertForFlow(
      { flowId: id, host: flow.host, clientIp: flow.clientIp, tls: flow.tls, startedAt: flow.startedAt, destination: dest, sentence: result.sentence },
      result.findings,
      device,
    );
    const leftOut = this.store.fields.insertForFlow(id, result.fields) + omittedFields;
    const notes = [...(result.notes ?? [])];
    if (leftOut > 0) notes.push(`${leftOut} decoded fields beyond the cap of ${MAX_FIELDS_PER_FLOW} per flow were not stored`);
    const types = JSON.stringify([...new Set(result.findings.map((f) => f.type))]);
    const severity = result.findings.length ? result.severity : 'info';
    const verdict = { severity, count: result.findings.length, types, country: dest.country ?? null, org: dest.org ?? null, asn: dest.asn ?? null };
    const judged = {
      domain: dest.domain ?? null, local: dest.local ? 1 : null, tracker: dest.tracker?.company ?? null, trackerCategory: dest.tracker?.category ?? null,
      homeCountry: dest.homeCountry ?? null, crossBorder: dest.crossBorder === undefined ? null : dest.crossBorder ? 1 : 0, sentence: result.sentence ?? null,
    };
    this.updateStmt.run({ id, now: Date.now(), notes: JSON.stringify(notes), rank: severityRank(severity), ...verdict, ...judged });
    return this.announce(flow, ANALYSIS_DONE, verdict, device, findingRows, announce, { dest, sentence: result.sentence });
  }

  private writeFailure(flow: Flow, error: string, replace: boolean, device: string | null, announce: Announce): StoredEvent[] {
    const id = flow.id!;
    if (this.failStmt.run({ id, now: Date.now(), error }).changes === 0) return [];
    if (replace) {
      this.deleteFindingsStmt.run(id);
      this.deleteFieldsStmt.run(id);
    }
    const verdict = { severity: 'info', count: 0, types: '[]', country: null, org: null, asn: null };
    return this.announce(flow, ANALYSIS_FAILED, verdict, device, [], announce);
  }

  /** The flow and alert messages, built from what was just written (no read-back). */
  private announce(flow: Flow, state: number, v: Verdict, device: string | null, findings: FindingRow[], announce: Announce, judged?: AlertFacts): StoredEvent[] {
    if (announce === 'none' || (announce === 'alerts' && findings.length === 0)) return [];
    const id = flow.id!;
    const summary = toFlowSummary(summaryRowOf(flow, state, v), device);
    const events: StoredEvent[] = announce === 'all' ? [this.store.events.append('flow', summary, id)] : [];
    if (findings.length > 0) events.push(this.store.events.append('alert', toAlert(summary, findings, { country: v.country, org: v.org }, judged), id));
    return events;
  }
}

interface Verdict {
  severity: string;
  count: number;
  /** JSON list of finding types. */
  types: string;
  country: string | null;
  org: string | null;
  asn: number | null;
}

/**
 * One flow's analysis outcome: a result, or the error that stopped it. `replace`: drop earlier
 * findings (re-analysis). `device`: the device's name for the messages (default: read from devices).
 * `announce`: which messages to append (default all).
 */
export type AnalysisOutcome =
  | { flow: Flow; result: AnalysisResult; omittedFields?: number; replace: boolean; device?: string | null; announce?: Announce }
  | { flow: Flow; error: string; replace: boolean; device?: string | null; announce?: Announce };

function summaryRowOf(f: Flow, state: number, v: Verdict): SummaryRow {
  return {
    id: f.id!, started_at: Math.round(f.startedAt), ended_at: f.endedAt === undefined ? null : Math.round(f.endedAt), client_ip: f.clientIp,
    kind: f.kind, method: f.method ?? null, url: f.url ?? null, scheme: f.scheme, host: f.host, port: f.port, server_ip: f.serverIp ?? null,
    tls: f.tls ? 1 : 0, sni: f.sni ?? null, response_status: f.responseStatus ?? null, request_body_size: f.requestBody.size,
    response_body_size: f.responseBody.size, error: f.error ?? null, tags: JSON.stringify(f.tags), severity: v.severity,
    finding_types: v.types, finding_count: v.count, analysis_state: state, dest_country: v.country, dest_org: v.org, dest_asn: v.asn,
  };
}

/** Re-exported for callers that only need the profile shape. */
export type { DeviceProfile };
