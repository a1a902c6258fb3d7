/** The store: one SQLite file in the data dir holding flows, findings, decoded fields, devices and the events log. */
import type Database from 'better-sqlite3';
import * as path from 'path';
import { DB_FILE_NAME, openDatabase } from './db';
import { DeviceStore } from './devices';
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

  private constructor(readonly db: Database.Database, readonly file: string) {
    this.flows = new FlowStore(db);
    this.findings = new FindingStore(db);
    this.fields = new FieldStore(db);
    this.devices = new DeviceStore(db);
    this.events = new EventStore(db);
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
