/**
 * `phonehome export`: writes recorded HTTP flows as a HAR 1.2 file (proxy/export/har.ts), with
 * phonehome's findings in each entry, for whoever the evidence goes to next. Reads the database
 * read-only, so it works while `phonehome start` is running; streams entry by entry, so a large
 * database is never held in memory.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import type { Command } from '../cli';
import { resolveDataDir } from '../data-dir';
import { harEntry, harOpening, HAR_CLOSE, type ExportedFinding } from '../export/har';
import { DB_FILE_NAME } from '../store/db';
import { rowToFlow, type FlowRow } from '../store/flows';
import { DATA_DIR_FLAG, UsageError } from './args';

const DETAILS = `Exports the HTTP flows of the database (proxy, VPN mode, imports) as HAR 1.2: requests and
responses as recorded (bodies as text, or base64 when binary; cut bodies say so in _phonehome),
the server address, and in each entry's _phonehome the findings (type, value, where, how decoded,
why), the severity and the alert sentence. Chrome and Firefox devtools, mitmproxy, HTTP Toolkit
and phonehome analyze read it. TLS failures, raw connections and DNS lookups are not HTTP and are
left out (they are in the database: see "The tables" in the README).

--since and --until take an ISO date/time (2026-11-28, 2026-11-28T17:00:00Z) or epoch milliseconds.

Exit status: 0 when the file was written (also with no flow), 1 when the database cannot be read,
2 for usage errors.`;

function parseTime(flag: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const ms = /^\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
  if (!Number.isFinite(ms)) throw new UsageError(`--${flag} takes an ISO date/time or epoch milliseconds (got '${raw}')`);
  return ms;
}

interface ExportFilter {
  device?: string;
  host?: string;
  since?: number;
  until?: number;
  onlyFindings: boolean;
  limit?: number;
}

/** WHERE clause and parameters for the filter: kind http, then the options given. */
function whereOf(f: ExportFilter): { sql: string; params: Record<string, string | number> } {
  const parts = ["kind = 'http'"];
  const params: Record<string, string | number> = {};
  if (f.device) {
    parts.push('(client_ip = @device OR client_ip IN (SELECT client_ip FROM devices WHERE name = @device))');
    params.device = f.device;
  }
  if (f.host) {
    parts.push("(host = @host OR host LIKE '%.' || @host)");
    params.host = f.host;
  }
  if (f.since !== undefined) {
    parts.push('started_at >= @since');
    params.since = f.since;
  }
  if (f.until !== undefined) {
    parts.push('started_at < @until');
    params.until = f.until;
  }
  if (f.onlyFindings) parts.push('finding_count > 0');
  return { sql: parts.join(' AND '), params };
}

/** Writes the HAR to `out` (a file descriptor); returns how many entries it holds. */
export function exportHar(db: Database.Database, out: number, filter: ExportFilter, version: string): number {
  const { sql, params } = whereOf(filter);
  const flows = db.prepare(`SELECT * FROM flows WHERE ${sql} ORDER BY id${filter.limit ? ' LIMIT @limit' : ''}`);
  const findings = db.prepare('SELECT type, value, path, chain, detector, confidence, explanation, severity FROM findings WHERE flow_id = ? ORDER BY id');
  const device = db.prepare('SELECT name FROM devices WHERE client_ip = ?').pluck();
  fs.writeSync(out, harOpening(version));
  let n = 0;
  for (const row of flows.iterate(filter.limit ? { ...params, limit: filter.limit } : params) as IterableIterator<FlowRow & Record<string, unknown>>) {
    const flow = rowToFlow(row);
    const found = (findings.all(flow.id) as (Omit<ExportedFinding, 'chain'> & { chain: string })[]).map((f) => ({ ...f, chain: JSON.parse(f.chain) as string[] }));
    const entry = harEntry(flow, {
      device: (device.get(flow.clientIp) as string | undefined) ?? null,
      severity: (row.severity as string | null) ?? null,
      sentence: (row.sentence as string | null) ?? null,
      country: (row.dest_country as string | null) ?? null,
      org: (row.dest_org as string | null) ?? null,
      findings: found,
    });
    fs.writeSync(out, (n ? ',\n' : '') + JSON.stringify(entry));
    n++;
  }
  fs.writeSync(out, HAR_CLOSE);
  return n;
}

/** phonehome's version, from the package.json above this file (sources or dist/). */
function packageVersion(): string {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'phonehome' && pkg.version) return pkg.version;
    } catch {
      // not here: go up
    }
  }
  return 'unknown';
}

export const command: Command = {
  spec: {
    name: 'export',
    summary: 'write recorded HTTP flows and their findings as a HAR file',
    usage: 'phonehome export [-o FILE] [--device D] [--host H] [--since T] [--until T] [--only-findings]',
    flags: [
      { name: 'out', type: 'string', placeholder: 'FILE', description: 'write the HAR here (default: standard output)' },
      { name: 'device', type: 'string', placeholder: 'D', description: "only this phone (its address, or the name given to it)" },
      { name: 'host', type: 'string', placeholder: 'H', description: 'only requests to this host or its subdomains' },
      { name: 'since', type: 'string', placeholder: 'T', description: 'only flows that started at or after T' },
      { name: 'until', type: 'string', placeholder: 'T', description: 'only flows that started before T' },
      { name: 'only-findings', type: 'boolean', description: 'only flows in which an identifier was found' },
      { name: 'limit', type: 'int', placeholder: 'N', min: 1, description: 'at most N flows (oldest first)' },
      DATA_DIR_FLAG,
    ],
    details: DETAILS,
  },
  async run(args) {
    if (args.positionals.length) throw new UsageError(`unexpected argument '${args.positionals[0]}' (the output file goes after --out)`);
    const filter: ExportFilter = {
      device: args.flags['device'] as string | undefined,
      host: (args.flags['host'] as string | undefined)?.toLowerCase(),
      since: parseTime('since', args.flags['since'] as string | undefined),
      until: parseTime('until', args.flags['until'] as string | undefined),
      onlyFindings: args.flags['only-findings'] === true,
      limit: args.flags['limit'] as number | undefined,
    };
    const file = path.join(resolveDataDir(args.flags['data-dir'] as string | undefined), DB_FILE_NAME);
    let db: Database.Database;
    try {
      db = new Database(file, { readonly: true, fileMustExist: true });
      db.pragma('busy_timeout = 5000');
      db.prepare('SELECT sentence FROM flows LIMIT 0').all();
    } catch (err) {
      process.stderr.write(`phonehome export: cannot read ${file}: ${(err as Error).message}\n`);
      return 1;
    }
    const outFile = args.flags['out'] as string | undefined;
    // Written next to the target and renamed at the end: a failed export leaves no half file.
    const tmp = outFile ? `${outFile}.${process.pid}.tmp` : undefined;
    const fd = tmp ? fs.openSync(tmp, 'w', 0o600) : 1;
    try {
      const n = exportHar(db, fd, filter, packageVersion());
      if (tmp) {
        fs.closeSync(fd);
        fs.renameSync(tmp, outFile!);
        process.stderr.write(`phonehome export: ${n} flow${n === 1 ? '' : 's'} written to ${outFile}\n`);
      }
      return 0;
    } catch (err) {
      if (tmp) {
        try {
          fs.closeSync(fd);
        } catch {
          // already closed
        }
        fs.rmSync(tmp, { force: true });
      }
      throw err;
    } finally {
      db.close();
    }
  },
};
