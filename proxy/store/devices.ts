/**
 * The `devices` table: each phone seen (keyed by client address for now), its name and device
 * profile (set with `phonehome start --profile IP=FILE` or from the dashboard), first and last seen.
 */
import type Database from 'better-sqlite3';
import type { DeviceProfile } from '../analyse/types';

export interface DeviceRow {
  clientIp: string;
  name: string | null;
  profile: DeviceProfile | null;
  flows: number;
  findings: number;
  firstSeen: number | null;
  lastSeen: number | null;
}

interface DbDevice { client_ip: string; name: string | null; profile: string | null; first_seen: number | null; last_seen: number | null }

export class DeviceStore {
  private readonly seenStmt: Database.Statement;
  private readonly setProfileStmt: Database.Statement;
  private readonly getStmt: Database.Statement;
  private readonly countsStmt: Database.Statement;
  /** Name and profile per client, read once: this process is the only writer (setProfile updates it). */
  private readonly cache = new Map<string, { name: string | null; profile: DeviceProfile | null }>();

  constructor(private readonly db: Database.Database) {
    this.seenStmt = db.prepare(`
      INSERT INTO devices (client_ip, first_seen, last_seen) VALUES (@ip, @ts, @ts)
      ON CONFLICT(client_ip) DO UPDATE SET
        first_seen = MIN(COALESCE(first_seen, @ts), @ts), last_seen = MAX(COALESCE(last_seen, @ts), @ts)`);
    this.setProfileStmt = db.prepare(`
      INSERT INTO devices (client_ip, name, profile, updated_at) VALUES (@ip, @name, @profile, @now)
      ON CONFLICT(client_ip) DO UPDATE SET name = @name, profile = @profile, updated_at = @now`);
    this.getStmt = db.prepare('SELECT * FROM devices WHERE client_ip = ?');
    this.countsStmt = db.prepare(`SELECT
      (SELECT COUNT(*) FROM flows WHERE client_ip = @ip) AS flows,
      (SELECT COUNT(*) FROM findings WHERE client_ip = @ip) AS findings`);
  }

  /** Records that a device sent a flow at `ts` (call inside the flow's transaction). */
  seen(clientIp: string, ts: number): void {
    this.seenStmt.run({ ip: clientIp, ts: Math.round(ts) });
  }

  /** Sets (or clears, with null) a device's profile; its name comes from the profile's `name`. */
  setProfile(clientIp: string, profile: DeviceProfile | null): DeviceRow {
    this.setProfileStmt.run({ ip: clientIp, name: profile?.name ?? null, profile: profile ? JSON.stringify(profile) : null, now: Date.now() });
    this.cache.delete(clientIp);
    return this.get(clientIp)!;
  }

  profileOf(clientIp: string): DeviceProfile | null {
    return this.cached(clientIp).profile;
  }

  nameOf(clientIp: string): string | null {
    return this.cached(clientIp).name;
  }

  private cached(clientIp: string): { name: string | null; profile: DeviceProfile | null } {
    let c = this.cache.get(clientIp);
    if (!c) {
      const row = this.getStmt.get(clientIp) as DbDevice | undefined;
      c = { name: row?.name ?? null, profile: row?.profile ? (JSON.parse(row.profile) as DeviceProfile) : null };
      if (this.cache.size > 10_000) this.cache.clear();
      this.cache.set(clientIp, c);
    }
    return c;
  }

  get(clientIp: string): DeviceRow | undefined {
    const row = this.getStmt.get(clientIp) as DbDevice | undefined;
    if (!row) return undefined;
    return toDevice(row, this.countsStmt.get({ ip: clientIp }) as { flows: number; findings: number });
  }

  /** Every device, with its totals, most recently seen first. */
  list(): DeviceRow[] {
    const flows = new Map((this.db.prepare('SELECT client_ip, COUNT(*) AS n FROM flows GROUP BY client_ip').all() as { client_ip: string; n: number }[]).map((r) => [r.client_ip, r.n]));
    const findings = new Map((this.db.prepare('SELECT client_ip, COUNT(*) AS n FROM findings GROUP BY client_ip').all() as { client_ip: string; n: number }[]).map((r) => [r.client_ip, r.n]));
    const rows = this.db.prepare('SELECT * FROM devices ORDER BY last_seen DESC NULLS LAST, client_ip').all() as DbDevice[];
    return rows.map((r) => toDevice(r, { flows: flows.get(r.client_ip) ?? 0, findings: findings.get(r.client_ip) ?? 0 }));
  }

  count(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM devices').get() as { n: number }).n;
  }
}

function toDevice(r: DbDevice, counts: { flows: number; findings: number }): DeviceRow {
  return {
    clientIp: r.client_ip,
    name: r.name,
    profile: r.profile ? (JSON.parse(r.profile) as DeviceProfile) : null,
    flows: counts.flows,
    findings: counts.findings,
    firstSeen: r.first_seen,
    lastSeen: r.last_seen,
  };
}
