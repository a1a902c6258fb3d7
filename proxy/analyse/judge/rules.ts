/**
 * Why: the user knows things phonehome cannot: that test.example.com is their own server, that any
 * IMEI leaving the phone is unacceptable to them. Rules (`--rules FILE`, JSON) override the
 * computed severity of matching findings, or drop them:
 *
 *   {"rules": [
 *     {"type": "ad_id", "host": "test.example.com", "action": "ignore"},
 *     {"type": "imei", "action": "high"}
 *   ]}
 *
 * A rule matches on any of: `type` (a type or a list), `host` (exact, `*.example.com` for the domain
 * and its subdomains, `*` for any), `country` (ISO codes), `cleartext`, `tracker`, `cross_border`
 * (booleans). Absent keys match anything. The first matching rule wins; `action` is `ignore` or a
 * severity (info, low, medium, high, critical). Parsing validates everything and names the rule.
 */
import { IDENTIFIER_TYPES, SEVERITIES, type IdentifierType, type Severity } from '../types';

export interface Rule {
  /** 1-based position in the file, for notes ("ignored by rule 2"). */
  index: number;
  types?: ReadonlySet<IdentifierType>;
  hosts?: readonly string[];
  countries?: ReadonlySet<string>;
  cleartext?: boolean;
  tracker?: boolean;
  crossBorder?: boolean;
  action: 'ignore' | Severity;
}

export class RulesError extends Error {}

/** What a rule can see of a finding and its flow. */
export interface RuleSubject {
  type: IdentifierType;
  host: string;
  country?: string;
  cleartext: boolean;
  tracker: boolean;
  crossBorder?: boolean;
}

const KEYS = new Set(['type', 'host', 'country', 'cleartext', 'tracker', 'cross_border', 'action', 'note']);

function stringList(v: unknown): string[] | undefined {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string')) return v as string[];
  return undefined;
}

/** Validates a parsed rules document; throws RulesError listing every problem. */
export function parseRules(data: unknown, source: string): Rule[] {
  const list = Array.isArray(data) ? data : (data as { rules?: unknown } | null)?.rules;
  if (!Array.isArray(list)) throw new RulesError(`${source}: expected {"rules": [{"type": "imei", "action": "high"}, ...]}`);
  const problems: string[] = [];
  const rules: Rule[] = [];
  list.forEach((raw: unknown, i) => {
    const n = i + 1;
    const bad = (why: string) => problems.push(`rule ${n}: ${why}`);
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return bad('must be an object');
    const r = raw as Record<string, unknown>;
    for (const k of Object.keys(r)) if (!KEYS.has(k)) bad(`unknown key "${k}" (known: ${[...KEYS].join(', ')})`);
    const rule: Rule = { index: n, action: 'ignore' };
    if (r.action === 'ignore' || SEVERITIES.includes(r.action as Severity)) rule.action = r.action as Rule['action'];
    else bad(`"action" must be "ignore" or one of ${SEVERITIES.join(', ')}`);
    if (r.type !== undefined && r.type !== '*') {
      const types = stringList(r.type);
      const unknown = types?.filter((t) => !(IDENTIFIER_TYPES as readonly string[]).includes(t));
      if (!types || unknown!.length) bad(`"type" must be one of ${IDENTIFIER_TYPES.join(', ')} (or a list of them)${unknown?.length ? `; got ${unknown.join(', ')}` : ''}`);
      else rule.types = new Set(types as IdentifierType[]);
    }
    if (r.host !== undefined && r.host !== '*') {
      const hosts = stringList(r.host)?.map((h) => h.trim().toLowerCase());
      if (!hosts || hosts.some((h) => !/^(\*\.)?[a-z0-9_.:[\]-]+$/.test(h))) bad('"host" must be a host name, *.domain, or a list of them');
      else rule.hosts = hosts;
    }
    if (r.country !== undefined) {
      const cs = stringList(r.country)?.map((c) => c.toUpperCase());
      if (!cs || cs.some((c) => !/^[A-Z]{2}$/.test(c))) bad('"country" must be ISO 3166 two-letter codes such as "CN"');
      else rule.countries = new Set(cs);
    }
    for (const [key, field] of [['cleartext', 'cleartext'], ['tracker', 'tracker'], ['cross_border', 'crossBorder']] as const) {
      if (r[key] === undefined) continue;
      if (typeof r[key] !== 'boolean') bad(`"${key}" must be true or false`);
      else rule[field] = r[key] as boolean;
    }
    if (r.note !== undefined && typeof r.note !== 'string') bad('"note" must be a string');
    rules.push(rule);
  });
  if (problems.length) throw new RulesError(`${source}: ${problems.join('; ')}`);
  return rules;
}

function hostMatches(pattern: string, host: string): boolean {
  if (pattern.startsWith('*.')) {
    const domain = pattern.slice(2);
    return host === domain || host.endsWith(`.${domain}`);
  }
  return host === pattern;
}

/** The first rule matching the subject, if any. */
export function matchRule(rules: readonly Rule[], s: RuleSubject): Rule | undefined {
  const host = s.host.toLowerCase().replace(/\.$/, '');
  return rules.find((r) =>
    (!r.types || r.types.has(s.type)) &&
    (!r.hosts || r.hosts.some((p) => hostMatches(p, host))) &&
    (!r.countries || (s.country !== undefined && r.countries.has(s.country))) &&
    (r.cleartext === undefined || r.cleartext === s.cleartext) &&
    (r.tracker === undefined || r.tracker === s.tracker) &&
    (r.crossBorder === undefined || r.crossBorder === s.crossBorder));
}
