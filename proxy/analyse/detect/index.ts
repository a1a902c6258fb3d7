/**
 * Why: one entry point that runs every detector over a flow's decoded fields and keeps, for each
 * piece of text, the best-supported reading (profile > key > pattern, then confidence), so that one
 * value never shows up as three different identifiers.
 */
import type { DecodedField, Detector, IdentifierType } from '../types';
import type { CompiledProfile } from '../profile';
import type { Candidate, DetectContext } from './candidate';
import { DETECTOR_RANK, isDigits, keyOf } from './candidate';
import { COUNTRY_KEY, keyInfo, type KeyInfo, LOCALE_KEY, normalizeKey } from './keys';
import { detectDeviceIdsByKey, detectDeviceIdsByPattern } from './device-ids';
import { detectCellId, detectMacByKey, detectMacByPattern } from './network';
import { detectLocationInGroup, detectLocationInText } from './location';
import { detectContactsByPattern, detectPhoneByKey } from './contact';
import { detectProfileValues, type ProfileMatchCache } from './profile-match';
import { explainCandidate } from './explain';
import { mccCountry } from './validate';

export { explainCandidate, explainFinding, TYPE_LABEL, TYPE_MEANING } from './explain';
export type { Candidate, Subject } from './candidate';

/** A finding before judging (severity is added by judge/). */
export interface Detection {
  type: IdentifierType;
  value: string;
  path: string;
  chain: string[];
  detector: Detector;
  confidence: number;
  explanation: string;
  key: string | null;
  subject: Candidate['subject'];
}

/** Fields longer than this are only matched whole against the profile (no pattern scans of big blobs). */
export const MAX_SCANNED_FIELD_LENGTH = 256 * 1024;

function countryFromFields(fields: DecodedField[]): string | undefined {
  let fromLocale: string | undefined;
  for (const f of fields) {
    const k = normalizeKey(f.key);
    const v = f.value.trim();
    if (COUNTRY_KEY.test(k) && /^[A-Za-z]{2}$/.test(v)) return v.toUpperCase();
    if (!fromLocale && LOCALE_KEY.test(k)) {
      const m = /^[a-z]{2,3}[-_]([A-Za-z]{2})\b/.exec(v);
      if (m) fromLocale = m[1]!.toUpperCase();
    }
  }
  return fromLocale;
}

const TEL_SCHEME = /tel:/i;

function hasTelScheme(value: string): boolean {
  return value.indexOf(':') >= 0 && TEL_SCHEME.test(value);
}

/** "354…437,354…445" under `imei` (dual SIM) is two values: a telling key covers each item of a short list. */
function listedValues(field: DecodedField): DecodedField[] {
  if (field.value.length > 512 || !/[,;|]/.test(field.value)) return [field];
  const parts = field.value.split(/[,;|]/).map((p) => p.trim()).filter(Boolean);
  if (parts.length < 2 || parts.length > 8) return [field];
  return [field, ...parts.map((value) => ({ ...field, value }))];
}

function better(a: Candidate, b: Candidate): boolean {
  const rank = DETECTOR_RANK[a.detector] - DETECTOR_RANK[b.detector];
  return rank !== 0 ? rank > 0 : a.confidence > b.confidence;
}

/** What the detectors need of a field's key, from the per-key cache. */
function fieldKeyInfo(field: DecodedField): KeyInfo {
  return keyInfo(field.key !== null && !isDigits(field.key) ? field.key : keyOf(field));
}

/** The groups of a flow without sibling-context keys: shared, never written to. */
const NO_GROUPS = new Map<string, DecodedField[]>();

type Proposal = Omit<Candidate, 'field' | 'subject'> & { subject?: Candidate['subject'] };

export function detectFields(fields: DecodedField[], profile?: CompiledProfile): Detection[] {
  /* One pass over the keys: each field's key facts, and the fields other detectors look up as siblings. */
  const infos: KeyInfo[] = new Array(fields.length);
  /* Most flows have no sibling-context key: they share one empty map instead of making their own. */
  let groups = NO_GROUPS;
  let telAnywhere = false;
  const contactFields: DecodedField[] = [];
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i]!;
    const info = fieldKeyInfo(field);
    infos[i] = info;
    /* Siblings are matched on the field's own key (a numeric key is never a sibling's). */
    if (info.siblingContext && field.key === info.key) {
      if (groups === NO_GROUPS) groups = new Map();
      const list = groups.get(field.group);
      if (list) list.push(field);
      else groups.set(field.group, [field]);
    }
    const value = field.value;
    const tel = hasTelScheme(value);
    if (tel) telAnywhere = true;
    if (value.length <= MAX_SCANNED_FIELD_LENGTH && (tel || value.indexOf('@') >= 0)) contactFields.push(field);
  }
  const ctx: DetectContext = { groups, profile };
  /** Best candidate per (field, matched text). */
  /* Made at the first candidate: most flows have none. */
  let best: Map<string, Candidate> | undefined;
  const offer = (c: Candidate): void => {
    const slot = `${c.field.path}\u0000${c.span}`;
    best ??= new Map();
    const current = best.get(slot);
    if (!current || better(c, current)) best.set(slot, c);
  };
  const emitterFor = (field: DecodedField) => (c: Proposal) => offer({ subject: 'device', ...c, field });
  /* The field being examined: one emitter for all fields instead of a closure per field. */
  let current: DecodedField | undefined;
  const emit = (c: Proposal): void => offer({ subject: 'device', ...c, field: current! });
  const emitSurroundings = (c: Omit<Candidate, 'subject'> & { subject?: Candidate['subject'] }): void => offer({ subject: 'surroundings', ...c });

  const profileCache: ProfileMatchCache | undefined = profile ? new Map() : undefined;
  const deferredPhones: DecodedField[] = [];
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i]!;
    current = field;
    if (profile) detectProfileValues(field, profile, emit, profileCache!);
    if (field.value.length > MAX_SCANNED_FIELD_LENGTH) continue;
    const info = infos[i]!;
    const cls = info.cls;
    if (cls) {
      for (const part of listedValues(field)) {
        detectDeviceIdsByKey(part, cls, emit);
        detectMacByKey(part, cls, emit);
        detectCellId(part, cls, ctx, emit);
        if (cls === 'phone') deferredPhones.push(part);
      }
    }
    detectDeviceIdsByPattern(field, info, emit);
    detectMacByPattern(field, emit);
    detectLocationInText(field, info, emitSurroundings);
  }
  for (const group of groups.values()) detectLocationInGroup(group, emitSurroundings);

  // Phone numbers last: a national number is read with the country the flow revealed (profile, IMSI, country/locale keys).
  let imsiCountry: string | undefined;
  if (best) for (const c of best.values()) if (c.type === 'imsi') imsiCountry ??= mccCountry(c.value.slice(0, 3));
  const needsCountry = deferredPhones.length > 0 || telAnywhere;
  ctx.country = profile?.country ?? imsiCountry ?? (needsCountry ? countryFromFields(fields) : undefined);
  for (const field of deferredPhones) detectPhoneByKey(field, 'phone', ctx, emitterFor(field));
  for (const field of contactFields) detectContactsByPattern(field, ctx, emitterFor(field));

  /* `best` is assigned in closures, so the compiler cannot see it set here: read it through a const. */
  const found = best as Map<string, Candidate> | undefined;
  return found?.size ? dedupe([...found.values()]) : [];
}

/** Same type+value+path once; the profile's reading outranks a key's, which outranks a pattern's. */
function dedupe(candidates: Candidate[]): Detection[] {
  const byIdentity = new Map<string, Candidate>();
  for (const c of candidates) {
    const id = `${c.type}\u0000${c.value}\u0000${c.path ?? c.field.path}`;
    const current = byIdentity.get(id);
    if (!current || better(c, current)) byIdentity.set(id, c);
  }
  return [...byIdentity.values()].map((c) => ({
    type: c.type,
    value: c.value,
    path: c.path ?? c.field.path,
    chain: c.field.chain,
    detector: c.detector,
    confidence: c.confidence,
    explanation: explainCandidate(c),
    key: c.keyLabel ?? c.field.key,
    subject: c.subject,
  }));
}
