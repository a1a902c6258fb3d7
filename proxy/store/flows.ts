/**
 * Writing and reading the `flows` table: one INSERT per flow, alone or several in one transaction;
 * statements prepared once. Bodies are stored raw, as capped by capture, with their true size.
 */
import type Database from 'better-sqlite3';
import type { Flow, Header } from '../flow';
import type { WriteGate } from './write-gate';

export interface FlowRow {
  id: number;
  kind: string;
  source: string;
  started_at: number;
  ended_at: number | null;
  client_ip: string;
  client_port: number | null;
  method: string | null;
  url: string | null;
  scheme: string;
  host: string;
  port: number;
  server_ip: string | null;
  tls: number;
  sni: string | null;
  alpn: string | null;
  tls_version: string | null;
  http_version: string | null;
  request_headers: string;
  request_body: Buffer | null;
  request_body_size: number;
  request_body_truncated: number;
  response_status: number | null;
  response_headers: string;
  response_body: Buffer | null;
  response_body_size: number;
  response_body_truncated: number;
  timings: string;
  error: string | null;
  tags: string;
}

export class FlowStore {
  private readonly insertStmt: Database.Statement;
  private readonly getStmt: Database.Statement;
  private readonly insertManyTx: (flows: readonly Flow[], rows: Omit<FlowRow, 'id'>[]) => void;

  /** gate: shared with the analysis worker's connection, so the proxy never sleeps in SQLite's busy handler. */
  constructor(private readonly db: Database.Database, private readonly gate?: WriteGate) {
    this.insertStmt = db.prepare(`
      INSERT INTO flows (kind, source, started_at, ended_at, client_ip, client_port, method, url, scheme, host, port,
        server_ip, tls, sni, alpn, tls_version, http_version, request_headers, request_body, request_body_size, request_body_truncated,
        response_status, response_headers, response_body, response_body_size, response_body_truncated, timings, error, tags)
      VALUES (@kind, @source, @started_at, @ended_at, @client_ip, @client_port, @method, @url, @scheme, @host, @port,
        @server_ip, @tls, @sni, @alpn, @tls_version, @http_version, @request_headers, @request_body, @request_body_size, @request_body_truncated,
        @response_status, @response_headers, @response_body, @response_body_size, @response_body_truncated, @timings, @error, @tags)`);
    this.getStmt = db.prepare('SELECT * FROM flows WHERE id = ?');
    this.insertManyTx = db.transaction((flows: readonly Flow[], rows: Omit<FlowRow, 'id'>[]) => {
      for (let i = 0; i < rows.length; i++) flows[i].id = Number(this.insertStmt.run(rows[i]).lastInsertRowid);
    });
  }

  /** Stores a flow and returns its id (also set on the flow). */
  insert(flow: Flow): number {
    const row = flowToRow(flow);
    const info = this.gate ? this.gate.run(() => this.insertStmt.run(row)) : this.insertStmt.run(row);
    flow.id = Number(info.lastInsertRowid);
    return flow.id;
  }

  /**
   * Stores several flows in one transaction (ids set on each): a commit writes every page the rows
   * and the indexes touched, so sixteen flows together cost about a quarter of sixteen commits.
   * wait=false: if the analysis worker holds the write gate, writes nothing and returns false.
   * All or nothing: on an error nothing is stored and it throws.
   */
  insertMany(flows: readonly Flow[], wait = true): boolean {
    const rows = flows.map(flowToRow);
    const write = () => {
      try {
        this.insertManyTx(flows, rows);
      } catch (err) {
        for (const f of flows) f.id = undefined;
        throw err;
      }
    };
    if (!this.gate) write();
    else if (wait) this.gate.run(write);
    else if (!this.gate.tryRun(write).ran) return false;
    return true;
  }

  get(id: number): Flow | undefined {
    const row = this.getStmt.get(id) as FlowRow | undefined;
    return row ? rowToFlow(row) : undefined;
  }
}

function flowToRow(f: Flow): Omit<FlowRow, 'id'> {
  return {
    kind: f.kind,
    source: f.source,
    started_at: Math.round(f.startedAt),
    ended_at: f.endedAt === undefined ? null : Math.round(f.endedAt),
    client_ip: f.clientIp,
    client_port: f.clientPort ?? null,
    method: f.method ?? null,
    url: f.url ?? null,
    scheme: f.scheme,
    host: f.host,
    port: f.port,
    server_ip: f.serverIp ?? null,
    tls: f.tls ? 1 : 0,
    sni: f.sni ?? null,
    alpn: f.alpn ?? null,
    tls_version: f.tlsVersion ?? null,
    http_version: f.httpVersion ?? null,
    request_headers: JSON.stringify(f.requestHeaders),
    request_body: f.requestBody.bytes.length ? f.requestBody.bytes : null,
    request_body_size: f.requestBody.size,
    request_body_truncated: f.requestBody.truncated ? 1 : 0,
    response_status: f.responseStatus ?? null,
    response_headers: JSON.stringify(f.responseHeaders),
    response_body: f.responseBody.bytes.length ? f.responseBody.bytes : null,
    response_body_size: f.responseBody.size,
    response_body_truncated: f.responseBody.truncated ? 1 : 0,
    timings: JSON.stringify(f.timings),
    error: f.error ?? null,
    tags: JSON.stringify(f.tags),
  };
}

export function rowToFlow(r: FlowRow): Flow {
  return {
    id: r.id,
    kind: r.kind as Flow['kind'],
    source: r.source as Flow['source'],
    startedAt: r.started_at,
    endedAt: r.ended_at ?? undefined,
    clientIp: r.client_ip,
    clientPort: r.client_port ?? undefined,
    method: r.method ?? undefined,
    url: r.url ?? undefined,
    scheme: r.scheme as Flow['scheme'],
    host: r.host,
    port: r.port,
    serverIp: r.server_ip ?? undefined,
    tls: r.tls === 1,
    sni: r.sni ?? undefined,
    alpn: r.alpn ?? undefined,
    tlsVersion: r.tls_version ?? undefined,
    httpVersion: r.http_version ?? undefined,
    requestHeaders: JSON.parse(r.request_headers) as Header[],
    requestBody: { bytes: r.request_body ?? Buffer.alloc(0), size: r.request_body_size, truncated: r.request_body_truncated === 1 },
    responseStatus: r.response_status ?? undefined,
    responseHeaders: JSON.parse(r.response_headers) as Header[],
    responseBody: { bytes: r.response_body ?? Buffer.alloc(0), size: r.response_body_size, truncated: r.response_body_truncated === 1 },
    timings: JSON.parse(r.timings),
    error: r.error ?? undefined,
    tags: JSON.parse(r.tags) as string[],
  };
}
