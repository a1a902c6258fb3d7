/**
 * Opens the SQLite store (one file, WAL) and brings its schema up to date. Other store modules
 * prepare their statements once against the handle returned here.
 */
import Database from 'better-sqlite3';
import * as fs from 'fs';
import * as path from 'path';
import { MIGRATIONS } from './migrations';
import { ownerOnly } from '../data-dir';

export const DB_FILE_NAME = 'phonehome.db';

export function openDatabase(file: string, migrations = MIGRATIONS): Database.Database {
  if (file !== ':memory:') {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    /*
     * SQLite creates a database with mode 0644 (less the umask), and its -wal and -shm files with the
     * database's mode: made (or narrowed) to 0600 first, all three are owner-only whatever the
     * directory's mode. Left-overs of an older run are narrowed too.
     */
    ownerOnly(file, true);
    ownerOnly(`${file}-wal`, false);
    ownerOnly(`${file}-shm`, false);
  }
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  // NORMAL in WAL: a committed transaction survives a process kill; only a power loss can drop the last ones.
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db, migrations);
  return db;
}

export function schemaVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

export function migrate(db: Database.Database, migrations = MIGRATIONS): void {
  const current = schemaVersion(db);
  const latest = migrations.length ? migrations[migrations.length - 1].version : 0;
  if (current > latest) {
    throw new Error(`database schema version ${current} is newer than this phonehome (${latest}); upgrade phonehome`);
  }
  for (const m of migrations) {
    if (m.version <= current) continue;
    db.transaction(() => {
      m.up(db);
      db.pragma(`user_version = ${m.version}`);
    })();
  }
}
