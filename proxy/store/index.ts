/** The store: one SQLite file in the data dir holding flows (and, later, findings, fields, devices). */
import type Database from 'better-sqlite3';
import * as path from 'path';
import { BackgroundCheckpointer } from './checkpointer';
import { DB_FILE_NAME, openDatabase } from './db';
import { FlowStore } from './flows';

export class Store {
  readonly flows: FlowStore;
  /** Set when opened with backgroundCheckpoint: WAL checkpoints run in a worker thread. */
  readonly checkpointer?: BackgroundCheckpointer;

  private constructor(readonly db: Database.Database, readonly file: string, backgroundCheckpoint: boolean) {
    this.flows = new FlowStore(db);
    if (backgroundCheckpoint && file !== ':memory:') {
      db.pragma('wal_autocheckpoint = 0');
      this.checkpointer = new BackgroundCheckpointer(file);
    }
  }

  /**
   * Opens (creating and migrating as needed) `phonehome.db` in dataDir, or an explicit file path.
   * backgroundCheckpoint: for the long-running proxy, keep WAL checkpoints off the event loop.
   */
  static open(opts: { dataDir?: string; file?: string; backgroundCheckpoint?: boolean }): Store {
    const file = opts.file ?? path.join(opts.dataDir ?? '.', DB_FILE_NAME);
    return new Store(openDatabase(file), file, opts.backgroundCheckpoint ?? false);
  }

  /** Closes the database (its last connection checkpoints the WAL into the file). */
  async closeAsync(): Promise<void> {
    await this.checkpointer?.stop();
    this.close();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
