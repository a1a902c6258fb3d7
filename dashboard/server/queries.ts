/**
 * The reads behind the dashboard's REST views. Lists are newest first and keyset-paginated on id
 * (`before`), so page N costs the same as page 1 with 100k flows; filters use the indexes made in
 * migration 2. Bodies are returned as base64 plus text — never interpreted.
 */
import { TextDecoder } from 'util';
import type { Severity } from '../../proxy/analyse/types';
import { headerValue, Header } from '../../proxy/flow';
import type { Store } from '../../proxy/store';
import type { FindingRow } from '../../proxy/store/findings';
import { severityRank } from '../../proxy/store/findings';
import type { FieldRow } from '../../proxy/store/fields';
import { FlowRow } from '../../proxy/store/flows';
import { FlowSummary, SUMMARY_COLUMNS, SummaryRow, toFlowSummary } from '../../proxy/pipeline/summaries';

export interface FlowFilter {
  host?: string;
  /** Client address or device name. */
  device?: string;
  type?: string;
  severity?: Severity;
  q?: string;
  before?: number;
  limit: number;
}

export interface BodyView {
  size: number;
  truncated: boolean;
  base64: string;
  text: string | null;
  contentType: string | null;
}

export interface FlowDetail {
  flow: FlowSummary & {
    requestHeaders: Header[];
    responseHeaders: Header[];
    requestBody: BodyView;
    responseBody: BodyView;
    timings: Record<string, number>;
  };
  findings: FindingRow[];
  fields: FieldRow[];
  notes: string[];
  destination: { host: string; serverIp: string | null; country: string | null; org: string | null; asn: number | null; cleartext: boolean };
}

export class DashboardQueries {
  constructor(private readonly store: Store) {}

  /** Device name → its client addresses; anything else is taken as a client address. */
  clientIpsFor(device: string): string[] {
    const rows = this.store.db.prepare('SELECT client_ip FROM devices WHERE name = ?').all(device) as { client_ip: string }[];
    return rows.length ? rows.map((r) => r.client_ip) : [device];
  }

  deviceNames(): Map<string, string> {
    const rows = this.store.db.prepare('SELECT client_ip, name FROM devices WHERE name IS NOT NULL').all() as { client_ip: string; name: string }[];
    return new Map(rows.map((r) => [r.client_ip, r.name]));
  }

  flows(filter: FlowFilter): FlowSummary[] {
    const where: string[] = [];
    const params: Record<string, unknown> = { limit: filter.limit };
    // A case-insensitive substring, as API.md says and as the page filters live messages (vnet.cn matches zzhc.vnet.cn).
    if (filter.host) { where.push('instr(lower(host), @host) > 0'); params.host = filter.host.toLowerCase(); }
    if (filter.device) {
      const ips = this.clientIpsFor(filter.device);
      where.push(`client_ip IN (${ips.map((_, i) => `@ip${i}`).join(', ')})`);
      ips.forEach((ip, i) => (params[`ip${i}`] = ip));
    }
    if (filter.type) { where.push('id IN (SELECT flow_id FROM findings WHERE type = @type)'); params.type = filter.type; }
    if (filter.severity) {
      const rank = severityRank(filter.severity);
      // "info" includes flows not analysed yet; any higher level needs findings of at least that severity.
      if (rank > 0) { where.push('finding_count > 0 AND severity_rank >= @rank'); params.rank = rank; }
    }
    if (filter.q) { where.push('instr(url, @q) > 0'); params.q = filter.q; }
    if (filter.before !== undefined) { where.push('id < @before'); params.before = filter.before; }
    const sql = `SELECT ${SUMMARY_COLUMNS} FROM flows ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id DESC LIMIT @limit`;
    const names = this.deviceNames();
    return (this.store.db.prepare(sql).all(params) as SummaryRow[]).map((r) => toFlowSummary(r, names.get(r.client_ip) ?? null));
  }

  flowDetail(id: number): FlowDetail | undefined {
    const row = this.store.db.prepare(`SELECT * FROM flows WHERE id = ?`).get(id) as
      | (FlowRow & SummaryRow & { analysis_notes: string | null; analysis_error: string | null })
      | undefined;
    if (!row) return undefined;
    const summary = toFlowSummary(row, this.store.devices.nameOf(row.client_ip));
    const requestHeaders = parseJson<Header[]>(row.request_headers, []);
    const responseHeaders = parseJson<Header[]>(row.response_headers, []);
    const notes = parseJson<string[]>(row.analysis_notes, []);
    if (row.analysis_error) notes.unshift(`analysis failed: ${row.analysis_error}`);
    if (row.analysis_state === 0) notes.unshift('not analysed yet');
    return {
      flow: {
        ...summary,
        requestHeaders,
        responseHeaders,
        requestBody: bodyView(row.request_body, row.request_body_size, row.request_body_truncated === 1, headerValue(requestHeaders, 'content-type')),
        responseBody: bodyView(row.response_body, row.response_body_size, row.response_body_truncated === 1, headerValue(responseHeaders, 'content-type')),
        timings: parseJson<Record<string, number>>(row.timings, {}),
      },
      findings: this.store.findings.forFlow(id),
      fields: this.store.fields.forFlow(id),
      notes,
      destination: {
        host: row.host,
        serverIp: row.server_ip,
        country: row.dest_country,
        org: row.dest_org,
        asn: row.dest_asn,
        cleartext: row.tls !== 1,
      },
    };
  }

  stats(seq: number): { flows: number; findings: number; alerts: number; devices: number; queue: { pending: number; analysed: number }; seq: number } {
    const db = this.store.db;
    const n = (sql: string) => (db.prepare(sql).get() as { n: number }).n;
    const flows = n('SELECT COUNT(*) AS n FROM flows');
    const pending = n('SELECT COUNT(*) AS n FROM flows WHERE analysis_state = 0');
    return {
      flows,
      findings: n('SELECT COUNT(*) AS n FROM findings'),
      alerts: n('SELECT COUNT(*) AS n FROM flows WHERE finding_count > 0'),
      devices: n('SELECT COUNT(*) AS n FROM devices'),
      queue: { pending, analysed: flows - pending },
      seq,
    };
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Text only when the bytes are valid UTF-8 without control characters other than whitespace. */
export function bodyView(bytes: Buffer | null, size: number, truncated: boolean, contentType: string | undefined): BodyView {
  const b = bytes ?? Buffer.alloc(0);
  let text: string | null = null;
  try {
    const t = utf8.decode(b);
    if (!/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(t)) text = t;
  } catch {
    text = null;
  }
  return { size, truncated, base64: b.toString('base64'), text, contentType: contentType ?? null };
}

function parseJson<T>(s: string | null, fallback: T): T {
  if (!s) return fallback;
  try {
    return JSON.parse(s) as T;
  } catch {
    return fallback;
  }
}
