/**
 * Why: the one call the proxy, the importers and `phonehome analyze` make — decode → detect →
 * judge — pure and total: whatever bytes come in, an AnalysisResult comes out (errors become notes).
 */
import type { Flow } from '../flow';
import type { AnalysisResult, Finding } from './types';
import type { CompiledProfile } from './profile';
import type { GeoLookup, Rule, TrackerList } from './judge';
import { alertSentenceOf, bumpSeverity, homeCountryOf, homeRegionOf, isCrossBorder, judgeDestination, matchRule, maxSeverity, severityOf } from './judge';
import { detectFields } from './detect';
import { decodeFlow, type DecodeLimits } from './decode';
import type { DecodeResult } from './types';

export { compileProfile, normalizeProfileValue, ProfileValueError } from './profile';
export type { CompiledProfile } from './profile';
export type { GeoLookup, Rule, TrackerList, TrackerEntry } from './judge';
export { judgeDestination, severityOf, SEVERITY_TABLE, parseRules, RulesError, trackerList, validateTrackerEntries, TrackerListError } from './judge';
export { explainFinding, TYPE_LABEL, TYPE_MEANING } from './detect';

export interface AnalyseOptions {
  profile?: CompiledProfile;
  geo?: GeoLookup;
  limits?: Partial<DecodeLimits>;
  /** Known tracking companies (default: none; trackerList() gives the shipped list plus the user's). */
  trackers?: TrackerList;
  /** User overrides (`--rules`), first match wins. */
  rules?: readonly Rule[];
  /** `--home-country`: used when neither profile nor flow tells the phone's country. */
  homeCountry?: string;
}

export function analyseFlow(flow: Flow, opts: AnalyseOptions = {}): AnalysisResult {
  let decoded: DecodeResult;
  try {
    decoded = decodeFlow(flow, opts.limits);
  } catch (err) {
    decoded = { fields: [], notes: [`decoding failed: ${messageOf(err)}`], limitsHit: [] };
  }
  return analyseDecoded(flow, decoded, opts);
}

/**
 * Everything analyseFlow does after decoding: detect, judge, the sentence. Exported for the
 * benchmarks that time this part apart from decoding (scripts/bench-*); `decoded` is used up
 * (its notes array becomes the result's).
 */
export function analyseDecoded(flow: Flow, decoded: DecodeResult, opts: AnalyseOptions): AnalysisResult {
  const destination = judgeDestination(flow, opts.geo, opts.trackers);
  /* The decoder's own array, made for this flow alone: added to, not copied. */
  const notes = decoded.notes;
  let findings: Finding[] = [];
  try {
    for (const d of detectFields(decoded.fields, opts.profile)) {
      findings.push({
        type: d.type,
        value: d.value,
        path: d.path,
        chain: d.chain,
        detector: d.detector,
        confidence: d.confidence,
        explanation: d.explanation,
        severity: severityOf(d.type, destination.cleartext, d.confidence, d.subject),
        key: d.key,
      });
    }
  } catch (err) {
    findings = [];
    notes.push(`detection failed: ${messageOf(err)}`);
  }
  if (findings.length) findings = judgeFindings(findings, destination, opts, notes);
  const result: AnalysisResult = {
    findings,
    fields: decoded.fields,
    destination,
    severity: maxSeverity(findings.map((f) => f.severity)),
    notes,
    limitsHit: decoded.limitsHit,
  };
  if (findings.length) result.sentence = alertSentenceOf(findings, destination, flow.kind === 'dns');
  return result;
}

/**
 * Where the findings went and how bad that is: the home region (profile, IMSI, phone number,
 * --home-country) against the destination's country, the tracker bump, then the user's rules.
 * Fills destination.homeCountry/crossBorder; returns the findings kept (rules may ignore some).
 */
function judgeFindings(findings: Finding[], destination: AnalysisResult['destination'], opts: AnalyseOptions, notes: string[]): Finding[] {
  const home = homeCountryOf(opts.profile, findings, opts.homeCountry);
  if (home) destination.homeCountry = home.country;
  const crossBorder = destination.local ? false : isCrossBorder(home ? homeRegionOf(home.country) : undefined, destination.country);
  if (crossBorder !== undefined) destination.crossBorder = crossBorder;
  const tracker = destination.tracker !== undefined;
  if (crossBorder || tracker) {
    const bumps = { crossBorder, tracker };
    for (const f of findings) f.severity = bumpSeverity(f.severity, bumps);
  }
  /* Without rules every finding is kept as it is. */
  const rules = opts.rules;
  if (!rules?.length) return findings;
  const kept: Finding[] = [];
  let ignoredBy: Map<number, number> | undefined;
  for (const f of findings) {
    const rule = matchRule(rules, { type: f.type, host: destination.host, country: destination.country, cleartext: destination.cleartext, tracker, crossBorder });
    if (rule?.action === 'ignore') {
      ignoredBy ??= new Map();
      ignoredBy.set(rule.index, (ignoredBy.get(rule.index) ?? 0) + 1);
      continue;
    }
    if (rule) {
      f.severity = rule.action;
      f.rule = rule.index;
    }
    kept.push(f);
  }
  if (ignoredBy) for (const [rule, n] of ignoredBy) notes.push(`${n} finding${n === 1 ? '' : 's'} ignored by rule ${rule}`);
  return kept;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
