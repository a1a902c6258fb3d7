/**
 * The pcap/pcapng side of `phonehome analyze`: streams a capture through the importer, analyses
 * each HTTP request as it completes (so a large capture never sits in memory) and returns the
 * finding records in request order, plus a one-line summary of what could not be read (TLS server
 * names, DNS lookups) — the hosts the phone talked to even when the content is encrypted.
 */
import * as fs from 'node:fs';
import { analyseFlow, type AnalyseOptions } from '../analyse';
import type { Destination, Finding } from '../analyse/types';
import { sniffCaptureFormat } from '../capture/import/pcap/file-reader';
import { importCapture } from '../capture/import/pcap/capture-import';
import type { FindingRecord } from './analyze-format';

export type RecordMaker = (file: string, entry: number, method: string | undefined, url: string | undefined, f: Finding, d: Destination, sentence: string | undefined) => FindingRecord;

/** True when the file starts with a pcap or pcapng magic number (whatever its name). */
export function isCaptureFile(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const head = Buffer.alloc(4);
    const n = fs.readSync(fd, head, 0, 4, 0);
    return sniffCaptureFormat(head.subarray(0, n)) !== null;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

export interface CaptureAnalysis {
  /** False when nothing could be read at all (the problems say why). */
  read: boolean;
  requests: number;
  records: FindingRecord[];
  problems: string[];
  summary: string;
}

const MAX_LISTED_NAMES = 20;

export function analyseCapture(file: string, base: string, opts: AnalyseOptions, toRecord: RecordMaker, onProgress?: (done: number, total: number) => void): CaptureAnalysis {
  const out: CaptureAnalysis = { read: false, requests: 0, records: [], problems: [], summary: '' };
  const tlsNames = new Map<string, number>();
  const dnsNames = new Map<string, number>();
  const count = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  let result;
  try {
    result = importCapture(file, ({ flow, requestIndex }) => {
      if (flow.kind === 'dns') return void count(dnsNames, flow.host);
      if (flow.scheme === 'tls') return void count(tlsNames, flow.sni ?? `${flow.serverIp} (no SNI)`);
      if (flow.kind !== 'http' || requestIndex === undefined) return;
      const r = analyseFlow(flow, opts);
      for (const note of r.notes) out.problems.push(`${base}: entry ${requestIndex}: ${note}`);
      if (flow.error) out.problems.push(`${base}: entry ${requestIndex}: ${flow.error}`);
      for (const f of r.findings) out.records.push(toRecord(base, requestIndex, flow.method, flow.url, f, r.destination, r.sentence));
    }, { onProgress });
  } catch (err) {
    out.problems.push(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    return out;
  }
  if (result.error) {
    out.problems.push(`${base}: ${result.error.message}${result.packets ? `; the ${result.packets} packets before it were analysed` : ''}`);
  }
  for (const n of result.notes) out.problems.push(`${base}: ${n}`);
  out.read = result.packets > 0 || !result.error;
  out.requests = result.httpRequests;
  /* Requests complete out of order across connections: report them in capture order. */
  out.records.sort((a, b) => a.entry - b.entry);
  const list = (m: Map<string, number>) => {
    const names = [...m.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([n, c]) => (c > 1 ? `${n} (${c})` : n));
    return names.length > MAX_LISTED_NAMES ? `${names.slice(0, MAX_LISTED_NAMES).join(', ')}, …` : names.join(', ');
  };
  const parts = [`${base}: ${result.httpRequests} HTTP request${result.httpRequests === 1 ? '' : 's'}`];
  if (result.tlsConnections) parts.push(`${result.tlsConnections} TLS connection${result.tlsConnections === 1 ? '' : 's'} (not decrypted): ${list(tlsNames)}`);
  if (result.dnsQueries) parts.push(`${result.dnsQueries} DNS lookup${result.dnsQueries === 1 ? '' : 's'}: ${list(dnsNames)}`);
  if (result.rawConnections) parts.push(`${result.rawConnections} other TCP connection${result.rawConnections === 1 ? '' : 's'}`);
  out.summary = parts.join('; ');
  return out;
}
