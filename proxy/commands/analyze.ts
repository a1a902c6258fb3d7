/**
 * `phonehome analyze FILE.har|FILE.pcap …`: the same analysis the live proxy runs, over HAR files
 * exported from browsers, mitmproxy, HTTP Toolkit or Charles, and over pcap/pcapng captures
 * (tcpdump, Wireshark, PCAPdroid; recognised by their magic bytes, not their name). Prints one finding per line (JSONL, the public
 * record of DESIGN.md) or a table grouped by destination host. Broken files and entries are reported
 * and skipped; the rest is still analysed.
 */
import * as path from 'node:path';
import type { Command } from '../cli';
import { analyseFlow, compileProfile, ProfileValueError, type CompiledProfile } from '../analyse';
import { judgeOptionsOf } from '../judge-config';
import { JUDGE_FLAGS, judgeSettingsFromFlags, loadGeoOrWarn } from './judge-flags';
import { resolveDataDir } from '../data-dir';
import { loadProfileFile, ProfileFileError } from '../profile-file';
import type { Finding, Destination } from '../analyse/types';
import { readHarFile } from '../capture/import/har';
import { ProgressBar } from './progress';
import { DATA_DIR_FLAG, UsageError } from './args';
import { formatTable, terminalSafe, type FindingRecord } from './analyze-format';
import { analyseCapture, isCaptureFile } from './analyze-capture';

export type { FindingRecord } from './analyze-format';

const DETAILS = `Reads HAR 1.2 files (as exported by Chrome/Firefox devtools, mitmproxy, HTTP Toolkit,
Charles) and pcap/pcapng captures (tcpdump, Wireshark, PCAPdroid), decodes every request and
reports the device and user identifiers it carries. In a capture, HTTP/1.x is read on any port;
TLS connections cannot be decrypted, so their server names (SNI) are listed instead, with the
DNS lookups; a corrupt or truncated capture is analysed up to the byte offset named on stderr.

--format jsonl prints one JSON object per finding: file, entry (0-based HAR entry index; for a
capture, 0-based index of the HTTP request in capture order), type,
value (normalized), path, chain, detector, confidence, explanation, severity, key, host, method,
url, cleartext, and the destination: server_ip, country, asn, org, domain (registrable), local,
tracker (true/false, with tracker_company and tracker_category), home_country, cross_border
(true/false, null when unknown), rule (the --rules entry that set the severity) and sentence (the
alert sentence of the request). serverIp is the same as server_ip (older name).

--home-country CC is the phone's home country when the profile (country, IMSI, phone number) and
the request itself do not tell it; a transfer outside its region (EU/EEA and adequate countries for
a European phone, the country itself otherwise) is cross-border and one severity step higher.

--rules FILE overrides severities: {"rules": [{"type": "ad_id", "host": "test.example.com",
"action": "ignore"}, {"type": "imei", "action": "high"}]} (first match wins; see README).

Extra tracker hosts are read from <data-dir>/trackers.json. The offline address tables are cached
in ~/.cache/phonehome ($XDG_CACHE_HOME/phonehome): built once, in a few seconds, then loaded in
tens of milliseconds.

--profile FILE is a JSON device profile: {"name":"My phone","imei":["3540..."],"phone":"+47...",
"iccid":"89...","mac":"d4:6a:..."}. The phone's own values are then found in any encoding, hashed
(MD5/SHA-1/SHA-256) included.

Each request gets up to 2 s of decoding (the live proxy allows 1 s); the other decoding limits
(depth, decompressed bytes, fields) are those of the proxy. A body is read in order: what was found
before a limit was hit is reported, and the request is named on stderr with how far it was read.

Files are read as streams (a HAR entry by entry, a capture packet by packet), so memory follows the
largest entry or the open connections, not the file; a terminal shows a progress bar for files over
16 MB. A HAR or capture that breaks off (truncated, corrupt) is analysed up to the byte offset named
on stderr; a broken HAR entry is named by its index and the others are analysed.

Exit status: 0 when the analysis ran (whatever it found, even if some files or entries were
broken: those are reported on stderr); 1 when none of the files could be read; 2 for usage
errors (no file, unknown option, unreadable or invalid profile).`;

/** Offline there is no live latency to protect: each request may take longer to decode than in the proxy. */
const OFFLINE_LIMITS = { timeBudgetMs: 2000 };

export function loadProfile(file: string): CompiledProfile {
  try {
    return compileProfile(loadProfileFile(file));
  } catch (err) {
    if (err instanceof ProfileFileError || err instanceof ProfileValueError) throw new UsageError(`profile ${err.message}`);
    throw err;
  }
}

function toRecord(file: string, entry: number, method: string | undefined, url: string | undefined, f: Finding, d: Destination, sentence: string | undefined): FindingRecord {
  const rec: FindingRecord = {
    file,
    entry,
    type: f.type,
    value: f.value,
    path: f.path,
    chain: f.chain,
    detector: f.detector,
    confidence: f.confidence,
    explanation: f.explanation,
    severity: f.severity,
    key: f.key ?? null,
    host: d.host,
    method,
    url,
    cleartext: d.cleartext,
  };
  if (d.serverIp) rec.serverIp = d.serverIp;
  rec.server_ip = d.serverIp ?? null;
  rec.country = d.country ?? null;
  rec.asn = d.asn ?? null;
  rec.org = d.org ?? null;
  rec.domain = d.domain ?? null;
  rec.local = d.local === true;
  rec.tracker = d.tracker !== undefined;
  rec.tracker_company = d.tracker?.company ?? null;
  rec.tracker_category = d.tracker?.category ?? null;
  rec.home_country = d.homeCountry ?? null;
  rec.cross_border = d.crossBorder ?? null;
  rec.rule = f.rule ?? null;
  rec.sentence = sentence ?? '';
  return rec;
}

/** JSON lines to stdout in writes of about 64 KiB. */
class JsonlOut {
  private pending = '';
  write(r: FindingRecord): void {
    this.pending += JSON.stringify(r) + '\n';
    if (this.pending.length >= 64 * 1024) this.flush();
  }
  flush(): void {
    if (this.pending) process.stdout.write(this.pending);
    this.pending = '';
  }
}

export const command: Command = {
  spec: {
    name: 'analyze',
    summary: 'find phone and user identifiers in HAR files and pcap/pcapng captures',
    usage: 'phonehome analyze FILE.har|FILE.pcap|FILE.pcapng [FILE …] [--profile FILE] [--format jsonl|table] [--home-country CC] [--rules FILE]',
    flags: [
      { name: 'profile', type: 'string', placeholder: 'FILE', description: "the phone's own identifiers (JSON device profile)" },
      { name: 'format', type: 'string', placeholder: 'jsonl|table', description: 'output format', default: 'table' },
      ...JUDGE_FLAGS,
      DATA_DIR_FLAG,
    ],
    details: DETAILS,
  },
  async run(args) {
    const format = args.flags.format;
    if (format !== 'jsonl' && format !== 'table') throw new UsageError(`--format must be jsonl or table (got '${String(format)}')`);
    if (!args.positionals.length) throw new UsageError('give at least one HAR file or pcap/pcapng capture (see phonehome analyze --help)');
    const profile = typeof args.flags.profile === 'string' ? loadProfile(args.flags.profile) : undefined;
    const problems: string[] = [];
    const settings = judgeSettingsFromFlags(args, resolveDataDir(args.flags['data-dir'] as string | undefined));
    const judge = judgeOptionsOf(settings);
    const geo = loadGeoOrWarn((text) => problems.push(text), settings.geoCacheDir);
    /* `analyze … | head` closes stdout early: that is the reader's choice, not a failure. */
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
    });
    /* JSONL goes out as findings come (memory then does not grow with them); the table needs them all. */
    const jsonl = format === 'jsonl' ? new JsonlOut() : null;
    const records: FindingRecord[] = [];
    const keep = (r: FindingRecord) => (jsonl ? jsonl.write(r) : records.push(r));
    let filesRead = 0;
    let entries = 0;
    const captureSummaries: string[] = [];
    for (const file of args.positionals) {
      const base = path.basename(file);
      const bar = new ProgressBar(process.stderr, base);
      const onProgress = (done: number, total: number) => bar.update(done, total);
      if (isCaptureFile(file)) {
        const cap = analyseCapture(file, base, { ...judge, profile, geo, limits: OFFLINE_LIMITS }, toRecord, onProgress);
        bar.done();
        problems.push(...cap.problems);
        if (!cap.read) continue;
        filesRead++;
        entries += cap.requests;
        for (const r of cap.records) keep(r);
        captureSummaries.push(cap.summary);
        continue;
      }
      let har;
      try {
        /* Streamed: each entry is analysed as it is read, so memory follows the largest entry, not the file. */
        har = readHarFile(file, base, (flow, index) => {
          entries++;
          const result = analyseFlow(flow, { ...judge, profile, geo, limits: OFFLINE_LIMITS });
          for (const note of result.notes) problems.push(`${base}: entry ${index}: ${note}`);
          for (const f of result.findings) keep(toRecord(base, index, flow.method, flow.url, f, result.destination, result.sentence));
        }, { onProgress });
      } catch (err) {
        bar.done();
        problems.push(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
        continue;
      }
      bar.done();
      for (const e of har.errors) problems.push(e.message);
      if (har.read) filesRead++;
    }
    jsonl?.flush();
    for (const p of problems) process.stderr.write(`phonehome analyze: ${p}\n`);
    if (!jsonl) {
      process.stdout.write(formatTable(records, { files: filesRead, entries }));
      for (const line of captureSummaries) process.stdout.write(terminalSafe(line) + '\n');
    }
    return filesRead === 0 ? 1 : 0;
  },
};
