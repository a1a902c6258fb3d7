/** The store: one SQLite file in the data dir holding flows, findings, decoded fields, devices, DNS queries and the events log. */
import type Database from 'better-sqlite3';
import * as path from 'path';
import { BackgroundCheckpointer } from './checkpointer';
import { DB_FILE_NAME, openDatabase } from './db';
import { DeviceStore } from './devices';
import { DnsStore } from './dns';
import { EventStore } from './events';
import { FieldStore } from './fields';
import { FindingStore } from './findings';
import { FlowStore } from './flows';

export class Store {
  readonly flows: FlowStore;
  readonly findings: FindingStore;
  readonly fields: FieldStore;
  readonly devices: DeviceStore;
  readonly events: EventStore;
  readonly dns: DnsStore;
  /** Set when opened with backgroundCheckpoint: WAL checkpoints run in a worker thread. */
  readonly checkpointer?: BackgroundCheckpointer;

  private constructor(readonly db: Database.Database, readonly file: string, backgroundCheckpoint: boolean) {
    this.flows = new FlowStore(db);
    this.findings = new FindingStore(db);
    this.fields = new FieldStore(db);
    this.devices = new DeviceStore(db);
    this.events = new EventStore(db);
    this.dns = new DnsStore(db);
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
