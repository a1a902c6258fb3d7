/**
 * The human-readable report of `phonehome analyze`: findings grouped by destination host, worst
 * first. Captured values are hostile text: control characters are shown escaped so that a payload
 * cannot drive the user's terminal.
 */
import type { Severity } from '../analyse/types';
import { SEVERITIES } from '../analyse/types';

export interface FindingRecord {
  file: string;
  entry: number;
  type: string;
  value: string;
  path: string;
  chain: string[];
  detector: string;
  confidence: number;
  explanation: string;
  severity: Severity;
  key: string | null;
  host: string;
  method?: string;
  url?: string;
  cleartext: boolean;
  /** Older name of server_ip, kept for existing scripts. */
  serverIp?: string;
  server_ip?: string | null;
  country?: string | null;
  asn?: number | null;
  org?: string | null;
  domain?: string | null;
  local?: boolean;
  tracker?: boolean;
  tracker_company?: string | null;
  tracker_category?: string | null;
  home_country?: string | null;
  cross_border?: boolean | null;
  rule?: number | null;
  /** The alert sentence of the request this finding came from. */
  sentence?: string;
}

/** Escapes C0/C1 control characters and DEL (terminal escape sequences) as \xNN. */
export function terminalSafe(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function clip(text: string, width: number): string {
  const safe = terminalSafe(text);
  return safe.length > width ? safe.slice(0, width - 1) + '…' : safe;
}

const rank = (s: Severity) => SEVERITIES.indexOf(s);

export function formatTable(records: FindingRecord[], totals: { files: number; entries: number }): string {
  const lines: string[] = [];
  const byHost = new Map<string, FindingRecord[]>();
  for (const r of records) {
    const list = byHost.get(r.host) ?? [];
    list.push(r);
    byHost.set(r.host, list);
  }
  const hosts = [...byHost.entries()].map(([host, list]) => ({ host, list, worst: Math.max(...list.map((r) => rank(r.severity))) }));
  hosts.sort((a, b) => b.worst - a.worst || a.host.localeCompare(b.host));
  for (const { host, list, worst } of hosts) {
    const first = list[0];
    const facts = [first.cleartext ? 'cleartext HTTP' : 'TLS'];
    if (first.local) facts.push('local');
    if (first.country) facts.push(first.country);
    if (first.asn !== undefined && first.asn !== null) facts.push(`AS${first.asn}${first.org ? ' ' + first.org : ''}`);
    else if (first.org) facts.push(first.org);
    if (first.tracker_company) facts.push(`${first.tracker_category ?? 'tracker'}: ${first.tracker_company}`);
    lines.push(`${clip(host, 80)}  [${SEVERITIES[worst].toUpperCase()}]  (${facts.map((f) => clip(f, 60)).join(', ')})`);
    // One line per distinct alert sentence, with the requests it describes.
    const sentences = new Map<string, Set<string>>();
    for (const r of list) {
      if (!r.sentence) continue;
      const where = sentences.get(r.sentence) ?? new Set<string>();
      where.add(`${r.file}#${r.entry}`);
      sentences.set(r.sentence, where);
    }
    for (const [sentence, where] of sentences) {
      const refs = [...where];
      lines.push(`  ! ${clip(sentence, 200)}  [${clip(refs.slice(0, 3).join(', '), 80)}${refs.length > 3 ? ` +${refs.length - 3}` : ''}]`);
    }
    list.sort((a, b) => rank(b.severity) - rank(a.severity) || a.file.localeCompare(b.file) || a.entry - b.entry);
    for (const r of list) {
      lines.push(`  ${r.severity.padEnd(8)} ${r.type.padEnd(10)} ${clip(r.value, 40).padEnd(40)} ${clip(r.file, 30)}#${r.entry}  ${clip(r.path, 70)}`);
      lines.push(`           ${clip(r.explanation, 160)}`);
    }
    lines.push('');
  }
  const n = records.length;
  lines.push(`${n} finding${n === 1 ? '' : 's'} in ${totals.entries} request${totals.entries === 1 ? '' : 's'} from ${totals.files} file${totals.files === 1 ? '' : 's'}.`);
  return lines.join('\n') + '\n';
}
