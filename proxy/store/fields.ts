/**
 * The `fields` table: every decoded leaf of a flow (path, key, value, chain), so that any payload
 * key can be queried in SQL whatever its encoding. Capped per flow and per value, because a hostile
 * payload can decode into millions of leaves.
 */
import type Database from 'better-sqlite3';
import type { DecodedField } from '../analyse/types';

/** At most this many decoded fields are stored per flow (the rest are counted in a note). */
export const MAX_FIELDS_PER_FLOW = 2000;
/** A stored field value is cut to this many characters (value_truncated = 1). */
export const MAX_FIELD_VALUE_CHARS = 4096;

export interface FieldRow {
  path: string;
  key: string | null;
  value: string;
  chain: string[];
  truncated: boolean;
}

export class FieldStore {
  private readonly insertStmt: Database.Statement;
  private readonly byFlowStmt: Database.Statement;

  constructor(db: Database.Database) {
    this.insertStmt = db.prepare('INSERT INTO fields (flow_id, path, key, value, value_truncated, chain) VALUES (?, ?, ?, ?, ?, ?)');
    this.byFlowStmt = db.prepare('SELECT path, key, value, value_truncated, chain FROM fields WHERE flow_id = ? ORDER BY id');
  }

  /** Stores up to MAX_FIELDS_PER_FLOW fields (call inside the flow's transaction); returns how many were left out. */
  insertForFlow(flowId: number, fields: DecodedField[]): number {
    const kept = Math.min(fields.length, MAX_FIELDS_PER_FLOW);
    for (let i = 0; i < kept; i++) {
      const f = fields[i];
      const value = String(f.value);
      const cut = value.length > MAX_FIELD_VALUE_CHARS;
      this.insertStmt.run(flowId, f.path, f.key ?? null, cut ? value.slice(0, MAX_FIELD_VALUE_CHARS) : value, cut ? 1 : 0, JSON.stringify(f.chain ?? []));
    }
    return fields.length - kept;
  }

  forFlow(flowId: number): FieldRow[] {
    return (this.byFlowStmt.all(flowId) as { path: string; key: string | null; value: string; value_truncated: number; chain: string }[]).map((r) => ({
      path: r.path,
      key: r.key,
      value: r.value,
      chain: JSON.parse(r.chain) as string[],
      truncated: r.value_truncated === 1,
    }));
  }
}
