/**
 * Why: the CLI (`phonehome export`) and the dashboard (/api/export.har) export the same flows the
 * same way. This selects stored HTTP flows by a filter and yields the HAR text piece by piece: the
 * opening, one entry per flow, the close. Flows are read in pages of ids, with no query left open
 * between pieces, so the dashboard can pause between pages on the proxy's own connection (a
 * better-sqlite3 iterator held open would block the proxy's inserts on that connection).
 */
import type Database from 'better-sqlite3';
import { DeviceStore } from '../store/devices';
import { FindingStore, severityRank } from '../store/findings';
import { rowToFlow, type FlowRow } from '../store/flows';
import { harEntry, harOpening, HAR_CLOSE, type ExportedFinding } from './har';

export interface ExportFilter {
  /** A client address, or a device's name. */
  device?: string;
  /** Hosts containing this (case-insensitive: vnet.cn matches zzhc.vnet.cn), as the dashboard's lists. */
  host?: string;
  /** URLs containing this (case-sensitive, as the dashboard's `q`). */
  q?: string;
  /** Flows with a finding of this type. */
  type?: string;
  /** Flows of at least this severity (info < low < medium < high < critical). */
  severity?: string;
  since?: number;
  until?: number;
  onlyFindings?: boolean;
  limit?: number;
}

const PAGE = 200;

/** An ISO date/time or epoch milliseconds; undefined when absent, null when unreadable. */
export function parseExportTime(raw: string | undefined): number | undefined | null {
  if (raw === undefined || raw === '') return undefined;
  const ms = /^\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
  return Number.isFinite(ms) ? ms : null;
}

/** WHERE clause and parameters for the filter: kind http, then the options given. */
function whereOf(f: ExportFilter): { sql: string; params: Record<string, string | number> } {
  const parts = ["kind = 'http'"];
  const params: Record<string, string | number> = {};
  if (f.device) {
    parts.push('(client_ip = @device OR client_ip IN (SELECT client_ip FROM devices WHERE name = @device))');
    params.device = f.device;
  }
  if (f.host) {
    parts.push('instr(lower(host), @host) > 0');
    params.host = f.host.toLowerCase();
  }
  if (f.q) {
    parts.push('instr(url, @q) > 0');
    params.q = f.q;
  }
  if (f.type) {
    parts.push('id IN (SELECT flow_id FROM findings WHERE type = @type)');
    params.type = f.type;
  }
  if (f.severity) {
    parts.push('severity_rank >= @rank');
    params.rank = severityRank(f.severity);
  }
  if (f.since !== undefined) {
    parts.push('started_at >= @since');
    params.since = f.since;
  }
  if (f.until !== undefined) {
    parts.push('started_at < @until');
    params.until = f.until;
  }
  if (f.onlyFindings) parts.push('finding_count > 0');
  return { sql: parts.join(' AND '), params };
}

/** The HAR as text pieces: the opening, then one piece per flow (oldest first), then the close. */
export function* harChunks(db: Database.Database, filter: ExportFilter, version: string): Generator<string> {
  const { sql, params } = whereOf(filter);
  const page = db.prepare(`SELECT * FROM flows WHERE ${sql} AND id > @after ORDER BY id LIMIT @page`);
  const findings = new FindingStore(db);
  const devices = new DeviceStore(db);
  yield harOpening(version);
  let after = 0;
  let left = filter.limit ?? Number.MAX_SAFE_INTEGER;
  let first = true;
  while (left > 0) {
    const rows = page.all({ ...params, after, page: Math.min(PAGE, left) }) as (FlowRow & Record<string, unknown>)[];
    for (const row of rows) {
      const flow = rowToFlow(row);
      const found: ExportedFinding[] = findings.forFlow(row.id).map(({ type, value, path, chain, detector, confidence, explanation, severity }) =>
        ({ type, value, path, chain, detector, confidence, explanation, severity }));
      const entry = harEntry(flow, {
        device: devices.nameOf(flow.clientIp),
        severity: (row.severity as string | null) ?? null,
        sentence: (row.sentence as string | null) ?? null,
        country: (row.dest_country as string | null) ?? null,
        org: (row.dest_org as string | null) ?? null,
        findings: found,
      });
      yield (first ? '' : ',\n') + JSON.stringify(entry);
      first = false;
      after = row.id;
    }
    left -= rows.length;
    if (rows.length < PAGE) break;
  }
  yield HAR_CLOSE;
}
