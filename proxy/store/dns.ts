/**
 * The `dns` table: every DNS query a phone made and what it was told (VPN mode, pcap import). A
 * lookup is evidence on its own (a query for zzhc.vnet.cn shows the activation client ran), and a
 * name can carry identifiers, so each query is also stored as a flow of kind `dns` and analysed.
 */
import type Database from 'better-sqlite3';
import type { WriteGate } from './write-gate';

export interface DnsAnswer {
  type: string;
  data: string;
  ttl: number;
}

export interface DnsRecord {
  id?: number;
  flowId?: number | null;
  ts: number;
  source: 'vpn' | 'pcap';
  clientIp: string;
  resolver?: string | null;
  name: string;
  type: string;
  rcode?: string | null;
  answers: DnsAnswer[];
  answeredAt?: number | null;
}

interface DnsRow {
  id: number; flow_id: number | null; ts: number; source: string; client_ip: string; resolver: string | null;
  name: string; type: string; rcode: string | null; answers: string; answered_at: number | null;
}

export class DnsStore {
  private readonly insertStmt: Database.Statement;
  private readonly recentStmt: Database.Statement;

  /** gate: shared with the analysis worker's connection, so VPN mode's DNS recording never sleeps in SQLite's busy handler. */
  constructor(db: Database.Database, private readonly gate?: WriteGate) {
    this.insertStmt = db.prepare(
      'INSERT INTO dns (flow_id, ts, source, client_ip, resolver, name, type, rcode, answers, answered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.recentStmt = db.prepare('SELECT * FROM dns WHERE (? IS NULL OR name = ?) ORDER BY id DESC LIMIT ?');
  }

  insert(r: DnsRecord): number {
    const args = [
      r.flowId ?? null, r.ts, r.source, r.clientIp, r.resolver ?? null, r.name.replace(/\.$/, ''), r.type,
      r.rcode ?? null, JSON.stringify(r.answers), r.answeredAt ?? null,
    ];
    const info = this.gate ? this.gate.run(() => this.insertStmt.run(...args)) : this.insertStmt.run(...args);
    return Number(info.lastInsertRowid);
  }

  /** Newest first; `name` filters on the exact name (case-insensitive). */
  recent(limit: number, name?: string): DnsRecord[] {
    return (this.recentStmt.all(name ?? null, name ?? null, limit) as DnsRow[]).map((r) => ({
      id: r.id, flowId: r.flow_id, ts: r.ts, source: r.source as DnsRecord['source'], clientIp: r.client_ip,
      resolver: r.resolver, name: r.name, type: r.type, rcode: r.rcode, answers: JSON.parse(r.answers) as DnsAnswer[],
      answeredAt: r.answered_at,
    }));
  }
}
