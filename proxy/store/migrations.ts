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
  {
    version: 2,
    description: 'analysis: per-flow analysis state and verdict; findings, fields, devices and the events log behind the WebSocket',
    up(db) {
      db.exec(`
        -- analysis_state: 0 pending (recorded, not analysed yet), 1 analysed, 2 failed (analysis_error says why)
        ALTER TABLE flows ADD COLUMN analysis_state INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE flows ADD COLUMN analysed_at INTEGER;
        ALTER TABLE flows ADD COLUMN analysis_error TEXT;
        ALTER TABLE flows ADD COLUMN analysis_notes TEXT;      -- JSON ["gzip expansion cut at ...", ...]
        ALTER TABLE flows ADD COLUMN severity TEXT;             -- highest finding severity (info with none)
        ALTER TABLE flows ADD COLUMN severity_rank INTEGER;     -- 0 info .. 4 critical
        ALTER TABLE flows ADD COLUMN finding_count INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE flows ADD COLUMN finding_types TEXT;        -- JSON ["imei", "iccid"]
        ALTER TABLE flows ADD COLUMN dest_country TEXT;
        ALTER TABLE flows ADD COLUMN dest_org TEXT;
        ALTER TABLE flows ADD COLUMN dest_asn INTEGER;
        CREATE INDEX flows_pending ON flows(id) WHERE analysis_state = 0;
        CREATE INDEX flows_host_id ON flows(host, id);
        CREATE INDEX flows_client_id ON flows(client_ip, id);
        CREATE INDEX flows_alerts ON flows(id) WHERE finding_count > 0;

        CREATE TABLE findings (
          id INTEGER PRIMARY KEY,
          flow_id INTEGER NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
          type TEXT NOT NULL,                -- imei | imsi | iccid | phone | cell_id | location | mac | ...
          value TEXT NOT NULL,               -- normalized (DESIGN.md "Normalized values")
          path TEXT NOT NULL,                -- body>base64>json:$.IMEI1
          chain TEXT NOT NULL,               -- JSON ["base64", "json"]
          detector TEXT NOT NULL,            -- profile | pattern | key
          confidence REAL NOT NULL,
          explanation TEXT NOT NULL,
          severity TEXT NOT NULL,
          severity_rank INTEGER NOT NULL,
          field_key TEXT,
          -- copied from the flow so that finding lists filter without a join
          host TEXT NOT NULL,
          client_ip TEXT NOT NULL,
          tls INTEGER NOT NULL,
          started_at INTEGER NOT NULL,
          country TEXT,
          org TEXT,
          asn INTEGER
        );
        CREATE INDEX findings_flow ON findings(flow_id);
        CREATE INDEX findings_type ON findings(type, id);
        CREATE INDEX findings_client ON findings(client_ip, id);
        CREATE INDEX findings_value ON findings(type, value);
        CREATE INDEX findings_host ON findings(host, type, tls, started_at, client_ip);

        CREATE TABLE fields (
          id INTEGER PRIMARY KEY,
          flow_id INTEGER NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
          path TEXT NOT NULL,
          key TEXT COLLATE NOCASE,           -- nearest key name; compare case-insensitively
          value TEXT NOT NULL,               -- cut at MAX_FIELD_VALUE_CHARS (value_truncated = 1)
          value_truncated INTEGER NOT NULL DEFAULT 0,
          chain TEXT NOT NULL                -- JSON ["base64", "json"]
        );
        CREATE INDEX fields_flow ON fields(flow_id);
        CREATE INDEX fields_key ON fields(key, flow_id);

        CREATE TABLE devices (
          client_ip TEXT PRIMARY KEY,
          name TEXT,
          profile TEXT,                      -- JSON device profile, or NULL
          first_seen INTEGER,
          last_seen INTEGER,
          updated_at INTEGER
        );

        -- The persistent message log behind the WebSocket: seq is the message sequence number.
        CREATE TABLE events (
          seq INTEGER PRIMARY KEY AUTOINCREMENT,
          type TEXT NOT NULL,                -- flow | alert
          ts INTEGER NOT NULL,
          flow_id INTEGER,
          data TEXT NOT NULL                 -- JSON message payload
        );
      `);
    },
  },
  {
    version: 3,
    description: 'dns: every DNS query and its answers (VPN mode, pcap import), each also a flow of kind dns',
    up(db) {
      db.exec(`
        CREATE TABLE dns (
          id INTEGER PRIMARY KEY,
          flow_id INTEGER REFERENCES flows(id) ON DELETE SET NULL,  -- the kind=dns flow analysed for identifiers
          ts INTEGER NOT NULL,               -- epoch ms of the query
          source TEXT NOT NULL,              -- vpn | pcap
          client_ip TEXT NOT NULL,           -- the phone (its tunnel address in VPN mode)
          resolver TEXT,                     -- address the phone sent the query to
          name TEXT NOT NULL COLLATE NOCASE, -- queried name, no trailing dot
          type TEXT NOT NULL,                -- A | AAAA | HTTPS | TXT | ... (TYPEnnn when unknown)
          rcode TEXT,                        -- NOERROR | NXDOMAIN | SERVFAIL ...; NULL when no answer came
          answers TEXT NOT NULL,             -- JSON [{"type":"A","data":"93.184.216.34","ttl":300}, ...]
          answered_at INTEGER                -- epoch ms of the answer, NULL when none
        );
        CREATE INDEX dns_name ON dns(name, ts);
        CREATE INDEX dns_client ON dns(client_ip, ts);
        CREATE INDEX dns_flow ON dns(flow_id);
      `);
    },
  },
  {
    version: 4,
    description: 'judge: where the data went — registrable domain, known tracker, local address, home country, cross-border flag and the alert sentence, on flows and findings',
    up(db) {
      db.exec(`
        ALTER TABLE flows ADD COLUMN dest_domain TEXT;          -- registrable domain of the host (public suffix list)
        ALTER TABLE flows ADD COLUMN dest_local INTEGER;        -- 1: server address is loopback/private/link-local
        ALTER TABLE flows ADD COLUMN tracker TEXT;              -- company of a known tracker host, else NULL
        ALTER TABLE flows ADD COLUMN tracker_category TEXT;     -- advertising | analytics | crash-reporting | telemetry | activation
        ALTER TABLE flows ADD COLUMN home_country TEXT;         -- the phone's home country used for cross_border
        ALTER TABLE flows ADD COLUMN cross_border INTEGER;      -- 1 outside the home region, 0 inside, NULL unknown
        ALTER TABLE flows ADD COLUMN sentence TEXT;             -- the alert sentence of a flow with findings

        ALTER TABLE findings ADD COLUMN server_ip TEXT;
        ALTER TABLE findings ADD COLUMN dest_domain TEXT;
        ALTER TABLE findings ADD COLUMN tracker TEXT;
        ALTER TABLE findings ADD COLUMN cross_border INTEGER;
        ALTER TABLE findings ADD COLUMN rule INTEGER;           -- the --rules entry (1-based) that set the severity
        ALTER TABLE findings ADD COLUMN sentence TEXT;          -- copied from the flow
      `);
    },
  },
];
