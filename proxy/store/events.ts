/**
 * The `events` table: the persistent message log behind the dashboard's WebSocket. A message is
 * inserted in the same transaction as the flow or findings it describes; its row id is its `seq`,
 * so sequence numbers keep increasing across restarts and a client can resume with `?since=N`.
 * Pruning: none for now — rows are small summaries (never bodies), about 1 KiB per flow.
 */
import type Database from 'better-sqlite3';

/** reanalysis: a device's re-analysis finished (proxy/pipeline/reanalysis.ts), one message for the whole run. */
export type EventType = 'flow' | 'alert' | 'reanalysis';

export interface StoredEvent<T = unknown> {
  seq: number;
  type: EventType;
  ts: number;
  data: T;
}

export class EventStore {
  private readonly insertStmt: Database.Statement;
  private readonly afterStmt: Database.Statement;
  private readonly latestStmt: Database.Statement;

  constructor(db: Database.Database) {
    this.insertStmt = db.prepare('INSERT INTO events (type, ts, flow_id, data) VALUES (?, ?, ?, ?)');
    this.afterStmt = db.prepare('SELECT seq, type, ts, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?');
    this.latestStmt = db.prepare('SELECT COALESCE(MAX(seq), 0) AS seq FROM events');
  }

  append<T>(type: EventType, data: T, flowId: number | null, ts = Date.now()): StoredEvent<T> {
    const info = this.insertStmt.run(type, ts, flowId, JSON.stringify(data));
    return { seq: Number(info.lastInsertRowid), type, ts, data };
  }

  /** Up to `limit` events with seq > since, oldest first. */
  after(since: number, limit: number): StoredEvent[] {
    return (this.afterStmt.all(since, limit) as { seq: number; type: EventType; ts: number; data: string }[]).map((r) => ({
      seq: r.seq, type: r.type, ts: r.ts, data: JSON.parse(r.data),
    }));
  }

  latestSeq(): number {
    return (this.latestStmt.get() as { seq: number }).seq;
  }
}
