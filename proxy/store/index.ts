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
import { WriteGate } from './write-gate';

export class Store {
  readonly flows: FlowStore;
  readonly findings: FindingStore;
  readonly fields: FieldStore;
  readonly devices: DeviceStore;
  readonly events: EventStore;
  readonly dns: DnsStore;
  /** Set when opened with backgroundCheckpoint: WAL checkpoints run in a worker thread. */
  checkpointer?: BackgroundCheckpointer;
  /** The checkpoint thread stopping after handOverCheckpoints(). */
  private handedOver?: Promise<void>;
  /** Taken by this process's writers of the file (main thread and analysis worker): see write-gate.ts. */
  readonly writeGate = new WriteGate();

  private constructor(readonly db: Database.Database, readonly file: string, backgroundCheckpoint: boolean) {
    this.flows = new FlowStore(db, this.writeGate);
    this.findings = new FindingStore(db);
    this.fields = new FieldStore(db);
    this.devices = new DeviceStore(db);
    this.events = new EventStore(db);
    this.dns = new DnsStore(db, this.writeGate);
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

  /**
   * Another thread of this process with its own connection (the analysis worker) takes over the WAL
   * checkpoints: the store's checkpoint thread stops, which saves its V8 isolate (about 11 MB).
   * Returns the interval the new owner should checkpoint at, or undefined when this store has no
   * checkpoint thread (its own connection checkpoints as it writes).
   */
  handOverCheckpoints(): number | undefined {
    const c = this.checkpointer;
    if (!c) return undefined;
    this.checkpointer = undefined;
    this.handedOver = c.stop();
    return c.intervalMs;
  }

  /** Closes the database (its last connection checkpoints the WAL into the file). */
  async closeAsync(): Promise<void> {
    await this.checkpointer?.stop();
    await this.handedOver;
    this.close();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
