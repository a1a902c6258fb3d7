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
import { harChunks, parseExportTime, type ExportFilter } from '../export/har-export';
import { DB_FILE_NAME } from '../store/db';
import { packageVersion } from '../version';
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
  const ms = parseExportTime(raw);
  if (ms === null) throw new UsageError(`--${flag} takes an ISO date/time or epoch milliseconds (got '${raw}')`);
  return ms;
}

export const command: Command = {
  spec: {
    name: 'export',
    summary: 'write recorded HTTP flows and their findings as a HAR file',
    usage: 'phonehome export [-o FILE] [--device D] [--host H] [--since T] [--until T] [--only-findings]',
    flags: [
      { name: 'out', type: 'string', placeholder: 'FILE', description: 'write the HAR here (default: standard output)' },
      { name: 'device', type: 'string', placeholder: 'D', description: "only this phone (its address, or the name given to it)" },
      { name: 'host', type: 'string', placeholder: 'H', description: 'only requests to hosts containing H (vnet.cn matches zzhc.vnet.cn)' },
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
      host: args.flags['host'] as string | undefined,
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
      let pieces = 0;
      for (const piece of harChunks(db, filter, packageVersion())) {
        fs.writeSync(fd, piece);
        pieces++;
      }
      const n = pieces - 2; // the opening and the close are not flows
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
