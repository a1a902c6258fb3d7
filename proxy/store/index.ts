/** The store: one SQLite file in the data dir holding flows (and, later, findings, fields, devices). */
import type Database from 'better-sqlite3';
import * as path from 'path';
import { DB_FILE_NAME, openDatabase } from './db';
import { FlowStore } from './flows';

export class Store {
  readonly flows: FlowStore;

  private constructor(readonly db: Database.Database, readonly file: string) {
    this.flows = new FlowStore(db);
  }

  /** Opens (creating and migrating as needed) `phonehome.db` in dataDir, or an explicit file path. */
  static open(opts: { dataDir?: string; file?: string }): Store {
    const file = opts.file ?? path.join(opts.dataDir ?? '.', DB_FILE_NAME);
    return new Store(openDatabase(file), file);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
