/**
 * `phonehome import FILE …`: stores the flows of a capture (pcap/pcapng, recognised by magic bytes)
 * or a HAR file in the database, analysed, so the dashboard shows them like live ones. Streams: a
 * capture packet by packet and a HAR entry by entry, imported in batches as they are read (one
 * transaction per batch), with a progress bar on a terminal. A corrupt tail is reported with its
 * offset; everything before it is kept.
 */
import * as path from 'node:path';
import type { Command } from '../cli';
import { analyseFlow, compileProfile, type CompiledProfile, type GeoLookup } from '../analyse';
import type { DeviceProfile } from '../analyse/types';
import { ensureDataDir } from '../data-dir';
import type { Flow } from '../flow';
import { judgeOptionsOf, type JudgeOptions } from '../judge-config';
import { JUDGE_FLAGS, judgeSettingsFromFlags, loadGeoOrWarn } from './judge-flags';
import { AnalysisRecorder, type AnalysisOutcome } from '../pipeline/recorder';
import { loadProfileFile, ProfileFileError } from '../profile-file';
import { Store } from '../store';
import type { DnsRecord } from '../store/dns';
import { readHarFile } from '../capture/import/har';
import { importCapture, DEFAULT_BODY_LIMIT } from '../capture/import/pcap/capture-import';
import { isCaptureFile } from './analyze-capture';
import { DATA_DIR_FLAG, UsageError } from './args';
import { ProgressBar } from './progress';

const DETAILS = `Reads pcap/pcapng captures (tcpdump, Wireshark, PCAPdroid) and HAR files and stores every
flow in the database of the data directory, analysed: the dashboard (phonehome start) then shows
them like live traffic. From a capture: each HTTP/1.x request (any port), each TLS connection with
its server name (not decrypted), each DNS lookup (also in the dns table) and other TCP connections
with their first bytes.

Files are streamed (memory follows the largest HAR entry or the open connections, not the file),
with a progress bar on a terminal for files over 16 MB. A file that breaks off (truncated, corrupt)
is imported up to the byte offset named on stderr.

--device NAME names the phone: every client address in the file gets this device name (a profile
already set for that address is kept). --profile FILE analyses with that device profile where the
address has none of its own.

Exit status: 0 when something was imported (problems are reported on stderr), 1 when no file
could be read, 2 for usage errors.`;

const OFFLINE_LIMITS = { timeBudgetMs: 2000 };
/** Flows per transaction, and body bytes held before a batch is written. */
const BATCH_FLOWS = 256;
const BATCH_BODY_BYTES = 32 * 1024 * 1024;

interface Pending {
  flow: Flow;
  dns?: DnsRecord;
}

class Importer {
  private batch: Pending[] = [];
  private batchBytes = 0;
  private readonly recorder: AnalysisRecorder;
  private readonly named = new Set<string>();
  private readonly compiled = new Map<string, CompiledProfile | undefined>();
  private readonly writeTx: (items: Array<Pending>) => void;
  flows = 0;
  findings = 0;

  constructor(
    private readonly store: Store,
    private readonly opts: { device?: string; defaultProfile?: DeviceProfile; geo?: GeoLookup; judge: JudgeOptions; warn(text: string): void },
  ) {
    this.recorder = new AnalysisRecorder(store);
    this.writeTx = store.db.transaction((items: Pending[]) => {
      for (const { flow, dns } of items) {
        this.store.flows.insert(flow);
        if (dns) this.store.dns.insert({ ...dns, flowId: flow.id });
      }
    });
  }

  add(flow: Flow, dns?: DnsRecord): void {
    if (this.opts.device && !this.named.has(flow.clientIp)) {
      this.named.add(flow.clientIp);
      const existing = this.store.devices.profileOf(flow.clientIp);
      this.store.devices.setProfile(flow.clientIp, { ...(existing ?? {}), name: this.opts.device });
      this.compiled.delete(flow.clientIp);
    }
    this.batch.push({ flow, dns });
    this.batchBytes += flow.requestBody.bytes.length + flow.responseBody.bytes.length;
    if (this.batch.length >= BATCH_FLOWS || this.batchBytes >= BATCH_BODY_BYTES) this.flush();
  }

  /** Stores the batch (pending analysis), analyses it, and records the results: a crash in between leaves flows the live pipeline analyses later. */
  flush(): void {
    if (!this.batch.length) return;
    const items = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    this.writeTx(items);
    const outcomes: AnalysisOutcome[] = items.map(({ flow }) => {
      try {
        const result = analyseFlow(flow, { ...this.opts.judge, profile: this.profileFor(flow.clientIp), geo: this.opts.geo, limits: OFFLINE_LIMITS });
        this.findings += result.findings.length;
        return { flow, result, replace: false };
      } catch (err) {
        return { flow, error: `analysis failed: ${(err as Error).message}`, replace: false };
      }
    });
    this.recorder.recordBatch(outcomes);
    this.flows += items.length;
  }

  private profileFor(clientIp: string): CompiledProfile | undefined {
    if (!this.compiled.has(clientIp)) {
      const own = this.store.devices.profileOf(clientIp);
      const hasValues = own && Object.keys(own).some((k) => k !== 'name');
      const profile = hasValues ? own : this.opts.defaultProfile;
      let compiled: CompiledProfile | undefined;
      try {
        compiled = profile ? compileProfile(profile) : undefined;
      } catch (err) {
        this.opts.warn(`profile of ${clientIp} ignored (${(err as Error).message})`);
      }
      this.compiled.set(clientIp, compiled);
    }
    return this.compiled.get(clientIp);
  }
}

export const command: Command = {
  spec: {
    name: 'import',
    summary: 'store the flows of a pcap/pcapng capture or HAR file in the database (analysed)',
    usage: 'phonehome import FILE [FILE …] [--device NAME] [--profile FILE] [--home-country CC] [--rules FILE] [--data-dir DIR]',
    flags: [
      { name: 'device', type: 'string', placeholder: 'NAME', description: 'device name for the phone(s) in the file' },
      { name: 'profile', type: 'string', placeholder: 'FILE', description: "the phone's own identifiers (JSON device profile)" },
      { name: 'body-limit', type: 'int', placeholder: 'BYTES', description: 'bytes of each body stored', default: DEFAULT_BODY_LIMIT, min: 0 },
      ...JUDGE_FLAGS,
      DATA_DIR_FLAG,
    ],
    details: DETAILS,
  },
  async run(args) {
    if (!args.positionals.length) throw new UsageError('give at least one capture or HAR file (see phonehome import --help)');
    const device = typeof args.flags.device === 'string' ? args.flags.device.trim() : undefined;
    if (device !== undefined && (!device || device.length > 200)) throw new UsageError('--device needs a name of 1 to 200 characters');
    let defaultProfile: DeviceProfile | undefined;
    if (typeof args.flags.profile === 'string') {
      try {
        defaultProfile = loadProfileFile(args.flags.profile);
        compileProfile(defaultProfile);
      } catch (err) {
        if (err instanceof ProfileFileError) throw new UsageError(`profile ${err.message}`);
        throw new UsageError(`profile ${(err as Error).message}`);
      }
    }
    const warn = (text: string) => process.stderr.write(`phonehome import: ${text}\n`);
    const dataDir = ensureDataDir(args.flags['data-dir'] as string | undefined, warn);
    const settings = judgeSettingsFromFlags(args, dataDir);
    const judge = judgeOptionsOf(settings);
    const geo = loadGeoOrWarn(warn, settings.geoCacheDir);
    const store = Store.open({ dataDir });
    const importer = new Importer(store, { device, defaultProfile, geo, judge, warn });
    let filesRead = 0;
    try {
      for (const file of args.positionals) {
        const base = path.basename(file);
        const before = importer.flows;
        if (isCaptureFile(file)) {
          const bar = new ProgressBar(process.stderr, base);
          let result;
          try {
            result = importCapture(file, ({ flow, dns }) => importer.add(flow, dns), {
              bodyLimit: args.flags['body-limit'] as number,
              onProgress: (done, total) => bar.update(done, total),
            });
          } catch (err) {
            bar.done();
            warn(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
            continue;
          }
          importer.flush();
          bar.done();
          if (result.error) warn(`${base}: ${result.error.message}${result.packets ? '; everything before it was imported' : ''}`);
          for (const n of result.notes) warn(`${base}: ${n}`);
          if (result.packets === 0 && result.error) continue;
          filesRead++;
          process.stdout.write(`${base}: ${importer.flows - before} flows (${result.httpRequests} HTTP requests, ${result.tlsConnections} TLS connections, ${result.dnsQueries} DNS lookups, ${result.rawConnections} other TCP connections)\n`);
          continue;
        }
        const bar = new ProgressBar(process.stderr, base);
        let har;
        try {
          /* Streamed: flows go to the importer's batches as they are read, so memory follows the largest entry. */
          har = readHarFile(file, base, (flow) => importer.add(flow), { onProgress: (done, total) => bar.update(done, total) });
        } catch (err) {
          bar.done();
          warn(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
          continue;
        }
        importer.flush();
        bar.done();
        for (const e of har.errors) warn(e.entry === null && !har.read ? `${e.message} (nor a pcap/pcapng capture)` : e.message);
        if (!har.read) continue;
        filesRead++;
        process.stdout.write(`${base}: ${importer.flows - before} flows (HAR entries)\n`);
      }
    } finally {
      importer.flush();
      await store.closeAsync();
    }
    process.stdout.write(`imported ${importer.flows} flows with ${importer.findings} findings into ${path.join(dataDir, 'phonehome.db')}\n`);
    return filesRead === 0 ? 1 : 0;
  },
};
