/**
 * Real captures nobody on this project wrote, for measuring detection (issue 19). The files are not
 * in the repository: test/fixtures/real/manifest.json names each one by public repository, path,
 * commit, size and SHA-256, and labels.json holds the ground truth read from them by hand.
 *
 *   node dist/scripts/real-fixtures.js extract OWNER/NAME DIR   copy that repository's files out of
 *       DIR (any git clone or bare mirror of it holding the commits named) into test/fixtures/real/data/,
 *       checking each SHA-256; nothing is downloaded
 *   node dist/scripts/real-fixtures.js measure [DIR] [--json] run `phonehome analyze --format jsonl`
 *       over every file present and print recall and precision per type against the labels, the
 *       misses, the false alarms, and false alarms per 1,000 requests of browsing captures. DIR
 *       defaults to test/fixtures/real; test/fixtures/sdk holds the synthetic SDK-shaped requests
 *       (committed files, marked so in their manifest)
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..', '..');
let HERE = join(ROOT, 'test', 'fixtures', 'real');
const DATA = (): string => join(HERE, 'data');

interface ManifestFile { file: string; committed?: boolean; repo?: string; path?: string; commit?: string; sha256: string; bytes: number; licence: string; kind: 'app' | 'browsing'; entries: number }
interface Label { type: string; value: string; key?: string; reason: string }
interface EntryLabel { ids: Label[]; uncertain?: Label[]; reason?: string }
interface FileLabels { entries?: Record<string, EntryLabel>; all?: EntryLabel }
interface Finding { entry: number; type: string; value: string; path: string; host: string; detector: string; confidence: number }

const manifest = (): ManifestFile[] => JSON.parse(readFileSync(join(HERE, 'manifest.json'), 'utf8')).files;
const labels = (): Record<string, FileLabels> => JSON.parse(readFileSync(join(HERE, 'labels.json'), 'utf8')).files;
const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

function extract(repo: string, dir: string): void {
  mkdirSync(DATA(), { recursive: true });
  const wanted = manifest().filter((f) => f.repo === repo);
  if (wanted.length === 0) throw new Error(`no file of ${repo} in manifest.json`);
  for (const f of wanted) {
    const bytes = execFileSync('git', ['-C', dir, 'show', `${f.commit}:${f.path}`], { maxBuffer: 64 << 20 });
    if (sha256(bytes) !== f.sha256) throw new Error(`${f.file}: SHA-256 differs from manifest.json (${sha256(bytes)})`);
    writeFileSync(join(DATA(), f.file), bytes);
    console.log(`${f.file}: ${bytes.length} bytes, checked`);
  }
}

function analyze(file: string): Finding[] {
  const out = execFileSync(process.execPath, [join(ROOT, 'bin', 'phonehome.js'), 'analyze', file, '--format', 'jsonl'], { maxBuffer: 256 << 20, stdio: ['ignore', 'pipe', 'ignore'] });
  return out.toString('utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line) as Finding);
}

interface Tally { tp: number; fp: number; fn: number }

function measure(asJson: boolean): void {
  const byType = new Map<string, Tally>();
  const tally = (type: string): Tally => byType.get(type) ?? (byType.set(type, { tp: 0, fp: 0, fn: 0 }), byType.get(type)!);
  const misses: string[] = [], falseAlarms: string[] = [], uncertainSeen: string[] = [], absent: string[] = [];
  let requests = 0, browsingRequests = 0, browsingFalseAlarms = 0;
  const allLabels = labels();
  for (const f of manifest()) {
    const path = f.committed ? join(HERE, f.file) : join(DATA(), f.file);
    if (!existsSync(path)) { absent.push(f.file); continue; }
    if (sha256(readFileSync(path)) !== f.sha256) throw new Error(`${f.file}: not the file manifest.json names`);
    const fileLabels = allLabels[f.file];
    if (!fileLabels) throw new Error(`${f.file}: no labels`);
    requests += f.entries;
    if (f.kind === 'browsing') browsingRequests += f.entries;
    const found = new Map<string, Finding>();
    for (const finding of analyze(path)) found.set(`${finding.entry}|${finding.type}|${finding.value}`, finding);
    const expected = new Set<string>(), uncertain = new Set<string>();
    for (let entry = 0; entry < f.entries; entry++) {
      const label = fileLabels.entries?.[String(entry)] ?? fileLabels.all;
      if (!label) throw new Error(`${f.file}: entry ${entry} has no label`);
      for (const id of label.ids) expected.add(`${entry}|${id.type}|${id.value}`);
      for (const id of label.uncertain ?? []) uncertain.add(`${entry}|${id.type}|${id.value}`);
    }
    for (const key of expected) {
      const [entry, type, value] = key.split('|');
      if (found.has(key)) tally(type).tp++;
      else { tally(type).fn++; misses.push(`${f.file}#${entry} ${type} ${value}`); }
    }
    for (const [key, finding] of found) {
      if (expected.has(key)) continue;
      if (uncertain.has(key)) { uncertainSeen.push(`${f.file}#${finding.entry} ${finding.type} ${finding.value} (${finding.path})`); continue; }
      tally(finding.type).fp++;
      if (f.kind === 'browsing') browsingFalseAlarms++;
      falseAlarms.push(`${f.file}#${finding.entry} ${finding.host} ${finding.type} ${finding.value} at ${finding.path} (${finding.detector}, ${finding.confidence})`);
    }
  }
  const rows = [...byType.entries()].sort().map(([type, t]) => ({
    type, ...t,
    recall: t.tp + t.fn ? t.tp / (t.tp + t.fn) : null,
    precision: t.tp + t.fp ? t.tp / (t.tp + t.fp) : null,
  }));
  const total = rows.reduce((s, r) => ({ tp: s.tp + r.tp, fp: s.fp + r.fp, fn: s.fn + r.fn }), { tp: 0, fp: 0, fn: 0 });
  const report = {
    requests, browsingRequests, absent, rows, total,
    browsingFalseAlarmsPer1000: browsingRequests ? (1000 * browsingFalseAlarms) / browsingRequests : null,
    misses, falseAlarms, uncertainSeen,
  };
  if (asJson) { console.log(JSON.stringify(report, null, 1)); return; }
  const pct = (x: number | null): string => (x === null ? '   -' : x.toFixed(2));
  console.log(`${requests} requests in ${manifest().length - absent.length} files${absent.length ? ` (absent, run extract: ${absent.join(', ')})` : ''}`);
  console.log('type        labelled  found  missed  false  recall  precision');
  for (const r of [...rows, { type: 'all', ...total, recall: total.tp / Math.max(1, total.tp + total.fn), precision: total.tp / Math.max(1, total.tp + total.fp) }]) {
    console.log(`${r.type.padEnd(11)} ${String(r.tp + r.fn).padStart(8)} ${String(r.tp).padStart(6)} ${String(r.fn).padStart(7)} ${String(r.fp).padStart(6)}   ${pct(r.recall)}       ${pct(r.precision)}`);
  }
  if (browsingRequests) console.log(`browsing: ${browsingFalseAlarms} false alarms in ${browsingRequests} requests (${report.browsingFalseAlarmsPer1000!.toFixed(1)} per 1,000)`);
  for (const [title, list] of [['missed', misses], ['false alarms', falseAlarms], ['found, labelled uncertain (not scored)', uncertainSeen]] as const) {
    if (list.length) console.log(`\n${title}:\n  ${list.join('\n  ')}`);
  }
}

const [command, ...args] = process.argv.slice(2);
if (command === 'extract' && args.length === 2) extract(args[0], resolve(args[1]));
else if (command === 'measure') {
  const dir = args.find((a) => !a.startsWith('--'));
  if (dir) HERE = resolve(dir);
  measure(args.includes('--json'));
}
else {
  console.error('usage: real-fixtures extract OWNER/NAME GIT_DIR | real-fixtures measure [DIR] [--json]');
  process.exitCode = 2;
}
