/**
 * The `findings` table: one row per identifier found in a flow, with where it went copied from the
 * flow so that finding lists and the destinations view filter and group without a join.
 */
import type Database from 'better-sqlite3';
import type { Destination, Finding, Severity } from '../analyse/types';
import { SEVERITIES } from '../analyse/types';

/** The public finding row (dashboard/API.md "FindingRow"). */
export interface FindingRow {
  id: number;
  flowId: number;
  type: string;
  value: string;
  path: string;
  chain: string[];
  detector: string;
  confidence: number;
  explanation: string;
  severity: Severity;
  host: string;
  clientIp: string;
  device: string | null;
  tls: boolean;
  startedAt: number;
  country: string | null;
  org: string | null;
  /** Judge facts (migration 4): server address, registrable domain, tracker company, cross-border (null unknown), the rule that set the severity, the flow's sentence. */
  asn: number | null;
  serverIp: string | null;
  domain: string | null;
  tracker: string | null;
  crossBorder: boolean | null;
  rule: number | null;
  sentence: string | null;
}

export interface FindingFilter {
  type?: string;
  host?: string;
  /** Client address of the device. */
  clientIp?: string;
  /** At least this severity. */
  severity?: Severity;
  before?: number;
  limit: number;
}

export interface DestinationRow {
  host: string;
  country: string | null;
  org: string | null;
  asn: number | null;
  /** Identifier sightings (findings) sent to this host. */
  total: number;
  /** Of which in cleartext. */
  cleartext: number;
  types: Record<string, number>;
  firstSeen: number;
  lastSeen: number;
}

/** What the findings of one flow share: the flow they came from and where it went. */
export interface FindingContext {
  flowId: number;
  host: string;
  clientIp: string;
  tls: boolean;
  startedAt: number;
  destination?: Destination;
  /** The flow's alert sentence, copied onto each finding. */
  sentence?: string;
}

export function severityRank(s: string | null | undefined): number {
  const i = SEVERITIES.indexOf((s ?? 'info') as Severity);
  return i < 0 ? 0 : i;
}

interface DbFindingRow {
  id: number; flow_id: number; type: string; value: string; path: string; chain: string; detector: string;
  confidence: number; explanation: string; severity: string; host: string; client_ip: string; tls: number;
  started_at: number; country: string | null; org: string | null; device: string | null;
  asn: number | null; server_ip: string | null; dest_domain: string | null; tracker: string | null; cross_border: number | null;
  rule: number | null; sentence: string | null;
}

const SELECT_FINDING = `SELECT f.*, d.name AS device FROM findings f LEFT JOIN devices d ON d.client_ip = f.client_ip`;

export class FindingStore {
  private readonly insertStmt: Database.Statement;
  private readonly byFlowStmt: Database.Statement;

  constructor(private readonly db: Database.Database) {
    this.insertStmt = db.prepare(`
      INSERT INTO findings (flow_id, type, value, path, chain, detector, confidence, explanation, severity, severity_rank,
        field_key, host, client_ip, tls, started_at, country, org, asn, server_ip, dest_domain, tracker, cross_border, rule, sentence)
      VALUES (@flow_id, @type, @value, @path, @chain, @detector, @confidence, @explanation, @severity, @severity_rank,
        @field_key, @host, @client_ip, @tls, @started_at, @country, @org, @asn, @server_ip, @dest_domain, @tracker, @cross_border, @rule, @sentence)`);
    this.byFlowStmt = db.prepare(`${SELECT_FINDING} WHERE f.flow_id = ? ORDER BY f.id`);
  }

  /** Inserts the findings of one flow (call inside the flow's transaction); returns them as stored rows. */
  insertForFlow(ctx: FindingContext, findings: Finding[], device: string | null = null): FindingRow[] {
    const rows: FindingRow[] = [];
    const d = ctx.destination;
    const judged = {
      asn: d?.asn ?? null, serverIp: d?.serverIp ?? null, domain: d?.domain ?? null, tracker: d?.tracker?.company ?? null,
      crossBorder: d?.crossBorder ?? null, sentence: ctx.sentence ?? null,
    };
    for (const f of findings) {
      const info = this.insertStmt.run({
        flow_id: ctx.flowId,
        type: f.type,
        value: f.value,
        path: f.path,
        chain: JSON.stringify(f.chain ?? []),
        detector: f.detector,
        confidence: f.confidence,
        explanation: f.explanation,
        severity: f.severity,
        severity_rank: severityRank(f.severity),
        field_key: f.key ?? null,
        host: ctx.host,
        client_ip: ctx.clientIp,
        tls: ctx.tls ? 1 : 0,
        started_at: Math.round(ctx.startedAt),
        country: ctx.destination?.country ?? null,
        org: ctx.destination?.org ?? null,
        asn: judged.asn,
        server_ip: judged.serverIp,
        dest_domain: judged.domain,
        tracker: judged.tracker,
        cross_border: judged.crossBorder === null ? null : judged.crossBorder ? 1 : 0,
        rule: f.rule ?? null,
        sentence: judged.sentence,
      });
      rows.push({
        id: Number(info.lastInsertRowid), flowId: ctx.flowId, type: f.type, value: f.value, path: f.path, chain: f.chain ?? [],
        detector: f.detector, confidence: f.confidence, explanation: f.explanation, severity: f.severity, host: ctx.host,
        clientIp: ctx.clientIp, device, tls: ctx.tls, startedAt: Math.round(ctx.startedAt),
        country: ctx.destination?.country ?? null, org: ctx.destination?.org ?? null, ...judged, rule: f.rule ?? null,
      });
    }
    return rows;
  }

  forFlow(flowId: number): FindingRow[] {
    return (this.byFlowStmt.all(flowId) as DbFindingRow[]).map(toFindingRow);
  }

  /** Newest first, keyset-paginated on id. */
  list(filter: FindingFilter): FindingRow[] {
    const where: string[] = [];
    const params: Record<string, unknown> = { limit: filter.limit };
    if (filter.type) { where.push('f.type = @type'); params.type = filter.type; }
    if (filter.host) { where.push('instr(lower(f.host), @host) > 0'); params.host = filter.host.toLowerCase(); }
    if (filter.clientIp) { where.push('f.client_ip = @clientIp'); params.clientIp = filter.clientIp; }
    if (filter.severity) { where.push('f.severity_rank >= @rank'); params.rank = severityRank(filter.severity); }
    if (filter.before !== undefined) { where.push('f.id < @before'); params.before = filter.before; }
    const sql = `${SELECT_FINDING} ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY f.id DESC LIMIT @limit`;
    return (this.db.prepare(sql).all(params) as DbFindingRow[]).map(toFindingRow);
  }

  /** Which hosts received which identifier types: the "who gets my IMEI?" view, by total descending. */
  destinations(filter: { clientIp?: string; type?: string }): DestinationRow[] {
    const where: string[] = [];
    const params: Record<string, unknown> = {};
    if (filter.clientIp) { where.push('client_ip = @clientIp'); params.clientIp = filter.clientIp; }
    if (filter.type) { where.push('type = @type'); params.type = filter.type; }
    const rows = this.db.prepare(`
      SELECT host, type, COUNT(*) AS n, SUM(tls = 0) AS clear, MIN(started_at) AS first, MAX(started_at) AS last
      FROM findings ${where.length ? 'WHERE ' + where.join(' AND ') : ''}
      GROUP BY host, type`).all(params) as { host: string; type: string; n: number; clear: number; first: number; last: number }[];
    const byHost = new Map<string, DestinationRow>();
    for (const r of rows) {
      let d = byHost.get(r.host);
      if (!d) {
        d = { host: r.host, country: null, org: null, asn: null, total: 0, cleartext: 0, types: {}, firstSeen: r.first, lastSeen: r.last };
        byHost.set(r.host, d);
      }
      d.total += r.n;
      d.cleartext += r.clear;
      d.types[r.type] = r.n;
      d.firstSeen = Math.min(d.firstSeen, r.first);
      d.lastSeen = Math.max(d.lastSeen, r.last);
    }
    const where2 = this.db.prepare('SELECT country, org, asn FROM findings WHERE host = ? AND country IS NOT NULL ORDER BY id DESC LIMIT 1');
    const out = [...byHost.values()].sort((a, b) => b.total - a.total || a.host.localeCompare(b.host));
    for (const d of out) {
      const geo = where2.get(d.host) as { country: string | null; org: string | null; asn: number | null } | undefined;
      if (geo) Object.assign(d, geo);
    }
    return out;
  }
}

function toFindingRow(r: DbFindingRow): FindingRow {
  return {
    id: r.id,
    flowId: r.flow_id,
    type: r.type,
    value: r.value,
    path: r.path,
    chain: JSON.parse(r.chain) as string[],
    detector: r.detector,
    confidence: r.confidence,
    explanation: r.explanation,
    severity: r.severity as Severity,
    host: r.host,
    clientIp: r.client_ip,
    device: r.device ?? null,
    tls: r.tls === 1,
    startedAt: r.started_at,
    country: r.country,
    org: r.org,
    asn: r.asn ?? null,
    serverIp: r.server_ip ?? null,
    domain: r.dest_domain ?? null,
    tracker: r.tracker ?? null,
    crossBorder: r.cross_border === null || r.cross_border === undefined ? null : r.cross_border === 1,
    rule: r.rule ?? null,
    sentence: r.sentence ?? null,
  };
}
