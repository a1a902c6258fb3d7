/**
 * Why: the one call the proxy, the importers and `phonehome analyze` make — decode → detect →
 * judge — pure and total: whatever bytes come in, an AnalysisResult comes out (errors become notes).
 */
import type { Flow } from '../flow';
import type { AnalysisResult, Finding } from './types';
import type { CompiledProfile } from './profile';
import type { GeoLookup } from './judge';
import { judgeDestination, maxSeverity, severityOf } from './judge';
import { detectFields } from './detect';
import { decodeFlow, type DecodeLimits } from './decode';
import type { DecodeResult } from './types';

export { compileProfile, normalizeProfileValue, ProfileValueError } from './profile';
export type { CompiledProfile } from './profile';
export type { GeoLookup } from './judge';
export { judgeDestination, severityOf, SEVERITY_TABLE } from './judge';
export { explainFinding, TYPE_LABEL, TYPE_MEANING } from './detect';

export interface AnalyseOptions {
  profile?: CompiledProfile;
  geo?: GeoLookup;
  limits?: Partial<DecodeLimits>;
}

export function analyseFlow(flow: Flow, opts: AnalyseOptions = {}): AnalysisResult {
  const destination = judgeDestination(flow, opts.geo);
  let decoded: DecodeResult;
  try {
    decoded = decodeFlow(flow, opts.limits);
  } catch (err) {
    decoded = { fields: [], notes: [`decoding failed: ${messageOf(err)}`], limitsHit: [] };
  }
  const notes = [...decoded.notes];
  let findings: Finding[] = [];
  try {
    findings = detectFields(decoded.fields, opts.profile).map((d) => ({
      type: d.type,
      value: d.value,
      path: d.path,
      chain: d.chain,
      detector: d.detector,
      confidence: d.confidence,
      explanation: d.explanation,
      severity: severityOf(d.type, destination.cleartext, d.confidence, d.subject),
      key: d.key,
    }));
  } catch (err) {
    notes.push(`detection failed: ${messageOf(err)}`);
  }
  return {
    findings,
    fields: decoded.fields,
    destination,
    severity: maxSeverity(findings.map((f) => f.severity)),
    notes,
    limitsHit: decoded.limitsHit,
  };
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
