/**
 * The message shapes the dashboard sees (dashboard/API.md "Shapes"): a flow summary — never whole
 * bodies — and an alert per flow with findings. Built from stored rows so that a live message and a
 * REST answer about the same flow are identical.
 */
import type { Destination, Severity } from '../analyse/types';
import type { FindingRow } from '../store/findings';

export interface FlowSummary {
  id: number;
  startedAt: number;
  endedAt: number | null;
  clientIp: string;
  device: string | null;
  kind: string;
  method: string | null;
  url: string | null;
  scheme: string;
  host: string;
  port: number;
  serverIp: string | null;
  tls: boolean;
  sni: string | null;
  status: number | null;
  requestSize: number;
  responseSize: number;
  error: string | null;
  tags: string[];
  /** null while the flow waits for analysis. */
  severity: Severity | null;
  findingTypes: string[];
  findingCount: number;
  /** pending | analysed | failed (additive to API.md). */
  analysis: 'pending' | 'analysed' | 'failed';
}

export interface Alert {
  flowId: number;
  startedAt: number;
  clientIp: string;
  device: string | null;
  host: string;
  url: string | null;
  method: string | null;
  tls: boolean;
  severity: Severity;
  types: string[];
  findings: FindingRow[];
  country: string | null;
  org: string | null;
  /** Judge facts (additive): the sentence to show, and what it was built from. */
  sentence?: string;
  asn?: number | null;
  domain?: string | null;
  tracker?: string | null;
  crossBorder?: boolean | null;
}

/** What the judge adds to an alert. */
export interface AlertFacts {
  dest: Destination;
  sentence?: string;
}

/** The columns of `flows` a summary needs (no bodies). */
export const SUMMARY_COLUMNS = `id, started_at, ended_at, client_ip, kind, method, url, scheme, host, port, server_ip, tls, sni,
  response_status, request_body_size, response_body_size, error, tags, severity, finding_types, finding_count, analysis_state,
  dest_country, dest_org, dest_asn`;

export interface SummaryRow {
  id: number; started_at: number; ended_at: number | null; client_ip: string; kind: string; method: string | null;
  url: string | null; scheme: string; host: string; port: number; server_ip: string | null; tls: number; sni: string | null;
  response_status: number | null; request_body_size: number; response_body_size: number; error: string | null; tags: string;
  severity: string | null; finding_types: string | null; finding_count: number; analysis_state: number;
  dest_country: string | null; dest_org: string | null; dest_asn: number | null;
}

const ANALYSIS_STATES = ['pending', 'analysed', 'failed'] as const;

export function toFlowSummary(r: SummaryRow, device: string | null): FlowSummary {
  return {
    id: r.id,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    clientIp: r.client_ip,
    device,
    kind: r.kind,
    method: r.method,
    url: r.url,
    scheme: r.scheme,
    host: r.host,
    port: r.port,
    serverIp: r.server_ip,
    tls: r.tls === 1,
    sni: r.sni,
    status: r.response_status,
    requestSize: r.request_body_size,
    responseSize: r.response_body_size,
    error: r.error,
    tags: safeJsonArray(r.tags),
    severity: (r.severity as Severity | null) ?? null,
    findingTypes: safeJsonArray(r.finding_types),
    findingCount: r.finding_count,
    analysis: ANALYSIS_STATES[r.analysis_state] ?? 'pending',
  };
}

export function toAlert(summary: FlowSummary, findings: FindingRow[], dest: { country: string | null; org: string | null }, judged?: AlertFacts): Alert {
  const facts = judged
    ? {
      ...(judged.sentence ? { sentence: judged.sentence } : {}),
      asn: judged.dest.asn ?? null,
      domain: judged.dest.domain ?? null,
      tracker: judged.dest.tracker?.company ?? null,
      crossBorder: judged.dest.crossBorder ?? null,
    }
    : {};
  return {
    ...facts,
    flowId: summary.id,
    startedAt: summary.startedAt,
    clientIp: summary.clientIp,
    device: summary.device,
    host: summary.host,
    url: summary.url,
    method: summary.method,
    tls: summary.tls,
    severity: summary.severity ?? 'info',
    types: summary.findingTypes,
    findings,
    country: dest.country,
    org: dest.org,
  };
}

function safeJsonArray(s: string | null): string[] {
  if (!s) return [];
  try {
    const v = JSON.parse(s);
    return Array.isArray(v) ? v.map(String) : [];
  } catch {
    return [];
  }
}
