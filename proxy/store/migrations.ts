/**
 * Forward-only schema migrations, tracked in `PRAGMA user_version`. Tables `flows` and `findings`
 * are public (users query them with sqlite3): add columns and tables, never rename or drop.
 * Append new migrations at the end; never edit one that has shipped.
 */
import type Database from 'better-sqlite3';

export interface Migration {
  version: number;
  description: string;
  up(db: Database.Database): void;
}

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    description: 'flows: every recorded exchange, TLS failure and raw tunnel',
    up(db) {
      db.exec(`
        CREATE TABLE flows (
          id INTEGER PRIMARY KEY,
          kind TEXT NOT NULL,                -- http | tls-failure | raw
          source TEXT NOT NULL,              -- proxy | vpn | har | pcap
          started_at INTEGER NOT NULL,       -- epoch ms
          ended_at INTEGER,
          client_ip TEXT NOT NULL,           -- which phone
          client_port INTEGER,
          method TEXT,
          url TEXT,
          scheme TEXT NOT NULL,              -- http | https | tcp | tls
          host TEXT NOT NULL,
          port INTEGER NOT NULL,
          server_ip TEXT,
          tls INTEGER NOT NULL,              -- 1 when the phone used TLS
          sni TEXT,
          alpn TEXT,
          tls_version TEXT,                  -- TLSv1.3, TLSv1.2... as negotiated with the phone
          http_version TEXT,                 -- 1.1, 1.0
          request_headers TEXT NOT NULL,     -- JSON [[name, value], ...] in wire order
          request_body BLOB,
          request_body_size INTEGER NOT NULL,
          request_body_truncated INTEGER NOT NULL,
          response_status INTEGER,
          response_headers TEXT NOT NULL,
          response_body BLOB,
          response_body_size INTEGER NOT NULL,
          response_body_truncated INTEGER NOT NULL,
          timings TEXT NOT NULL,             -- JSON {connectMs, tlsMs, firstByteMs, totalMs, ...}
          error TEXT,
          tags TEXT NOT NULL                 -- JSON ["pinning-suspected", ...]
        );
        CREATE INDEX flows_started_at ON flows(started_at);
        CREATE INDEX flows_host ON flows(host, started_at);
        CREATE INDEX flows_client ON flows(client_ip, started_at);
        CREATE INDEX flows_kind ON flows(kind, started_at);
      `);
    },
  },
];
