/**
 * Why: one entry point that runs every detector over a flow's decoded fields and keeps, for each
 * piece of text, the best-supported reading (profile > key > pattern, then confidence), so that one
 * value never shows up as three different identifiers.
 */
import type { DecodedField, Detector, IdentifierType } from '../types';
import type { CompiledProfile } from '../profile';
import type { Candidate, DetectContext } from './candidate';
import { isDigits, keyOf } from './candidate';
import { BestPerSlot, candidateOf, type FieldProposal, findingKey, type Proposal, sameFinding, sameText, textKey } from './best';
import { COUNTRY_KEY, type KeyClass, keyInfo, type KeyInfo, LOCALE_KEY, NO_KEY_INFO, normalizeKey } from './keys';
import { detectDeviceIdsByKey, detectDeviceIdsByPattern } from './device-ids';
import { detectCellId, detectMacByKey, detectMacByPattern } from './network';
import { detectLocationInGroup, detectLocationInText } from './location';
import { detectContactsByPattern, detectPhoneByKey } from './contact';
import { detectProfileValues, type ProfileMatchCache } from './profile-match';
import { explainCandidate } from './explain';
import { AT, COLON, DIGIT_RUN, traitsOf } from './traits';
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

/** The groups of a flow without sibling-context keys: shared, never written to. */
const NO_GROUPS = new Map<string, DecodedField[]>();

/**
 * "354…437,354…445" under `imei` (dual SIM) is two values: a telling key covers each item of a short
 * list. The items as fields of their own, or undefined when the value is not such a list.
 */
function listedItems(field: DecodedField): DecodedField[] | undefined {
  if (field.value.length > 512 || !/[,;|]/.test(field.value)) return undefined;
  const parts = field.value.split(/[,;|]/).map((p) => p.trim()).filter(Boolean);
  if (parts.length < 2 || parts.length > 8) return undefined;
  return parts.map((value) => ({ ...field, value }));
}

/**
 * An empty list of fields stored the way filled ones are (V8's PACKED_ELEMENTS; a bare `[]` starts
 * as PACKED_SMI_ELEMENTS): a push optimized after the first list filled was thrown away at the next
 * one, which V8 then made of the other kind.
 */
function noFields(): DecodedField[] {
  const list: (DecodedField | null)[] = [null];
  list.length = 0;
  return list as DecodedField[];
}

/** "xx:xx:xx:xx:xx:xx": the shortest text with a MAC written out. */
const MAC_TEXT_LENGTH = 17;

/*
 * The flow being examined and its candidates. Module state rather than closures made per flow:
 * detectFields runs to the end before it is called again (nothing in it waits or calls back out),
 * and it lets go of both when it returns.
 */
let examined: DecodedField | undefined;
let best: BestPerSlot | undefined;
/** Fields under a phone number key, read last (with the country the flow revealed). */
let phones: DecodedField[] | undefined;
const emit = (p: Proposal): void => (best ??= new BestPerSlot(sameText, textKey)).offer(candidateOf(p, examined!, 'device'));
const emitSurroundings = (p: FieldProposal): void => (best ??= new BestPerSlot(sameText, textKey)).offer(candidateOf(p, p.field, 'surroundings'));

export function detectFields(fields: DecodedField[], profile?: CompiledProfile): Detection[] {
  best = undefined;
  phones = undefined;
  try {
    return candidatesOf(fields, profile) ? dedupe(best!.list) : [];
  } finally {
    examined = undefined;
    best = undefined;
    phones = undefined;
  }
}

/** Runs the detectors over the fields; true when any candidate was offered (they are in `best`). */
function candidatesOf(fields: DecodedField[], profile: CompiledProfile | undefined): boolean {
  /* Most flows have no sibling-context key: they share one empty map instead of making their own. */
  let groups = NO_GROUPS;
  const ctx: DetectContext = { groups, profile };
  const profileCache: ProfileMatchCache | undefined = profile ? new Map() : undefined;
  let telAnywhere = false;
  let contactFields: DecodedField[] | undefined;
  let lastKey: string | null | undefined;
  let lastInfo = NO_KEY_INFO;
  /*
   * Fields are examined as they are read, up to the first one under a cell ID key: that one needs
   * all its siblings (MCC, MNC, LAC), so it and the fields after it wait, in order, until all are read.
   */
  let waitFrom = -1;
  let waitingInfos: KeyInfo[] | undefined;
  let waitingTraits: number[] | undefined;
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i]!;
    /* A key names itself unless it is a number (then the nearest named key of its path does). */
    const key = field.key;
    const named = key !== null && !isDigits(key);
    /* Keys repeat field after field (a batch's items): the previous answer is reused. */
    const info = named && key === lastKey ? lastInfo : keyInfo(named ? key : keyOf(field));
    lastKey = named ? key : undefined;
    lastInfo = info;
    /* Siblings are matched on the field's own key (a numeric key is never a sibling's). */
    if (info.siblingContext && key === info.key) {
      if (groups === NO_GROUPS) groups = new Map();
      const list = groups.get(field.group);
      if (list) list.push(field);
      else groups.set(field.group, [field]);
    }
    const value = field.value;
    /*
     * A field too long to scan is only asked whether it has a tel: link (the flow's country is then
     * worked out); digit runs matter only under a key that may name an identifier (pattern detection).
     */
    const has = value.length <= MAX_SCANNED_FIELD_LENGTH ? traitsOf(value, !info.nonIdentifier) : value.indexOf(':') >= 0 ? COLON : 0;
    const tel = (has & COLON) !== 0 && TEL_SCHEME.test(value);
    if (tel) telAnywhere = true;
    if (value.length <= MAX_SCANNED_FIELD_LENGTH && (tel || (has & AT) !== 0)) (contactFields ??= noFields()).push(field);
    if (waitFrom < 0 && info.cls === 'cell_id') {
      waitFrom = i;
      waitingInfos = [];
      waitingTraits = [];
    }
    if (waitFrom >= 0) {
      waitingInfos!.push(info);
      waitingTraits!.push(has);
    } else if (mayHold(field, info, has, profile)) examine(field, info, has, ctx, profileCache);
  }
  ctx.groups = groups;
  if (waitFrom >= 0) {
    for (let i = waitFrom; i < fields.length; i++) {
      const field = fields[i]!;
      const info = waitingInfos![i - waitFrom]!;
      const has = waitingTraits![i - waitFrom]!;
      if (mayHold(field, info, has, profile)) examine(field, info, has, ctx, profileCache);
    }
  }
  if (groups !== NO_GROUPS) for (const group of groups.values()) detectLocationInGroup(group, emitSurroundings);
  const deferredPhones = phones;

  // Phone numbers last: a national number is read with the country the flow revealed (profile, IMSI, country/locale keys).
  if (deferredPhones || telAnywhere) {
    let imsiCountry: string | undefined;
    if (best) for (const c of best.list) if (c.type === 'imsi') imsiCountry ??= mccCountry(c.value.slice(0, 3));
    ctx.country = profile?.country ?? imsiCountry ?? countryFromFields(fields);
    if (deferredPhones) {
      for (const field of deferredPhones) {
        examined = field;
        detectPhoneByKey(field, 'phone', ctx, emit);
      }
    }
  }
  /* Email addresses and tel: links (a tel: link was read with the country worked out above). */
  if (contactFields) {
    for (const field of contactFields) {
      examined = field;
      detectContactsByPattern(field, ctx, emit);
    }
  }
  return best !== undefined;
}

/** Whether any detector can find something in the field: most have no telling key and nothing an identifier needs. */
function mayHold(field: DecodedField, info: KeyInfo, has: number, profile: CompiledProfile | undefined): boolean {
  return profile !== undefined || info.cls !== undefined || has !== 0 || info.latLngText || field.value.length >= MAC_TEXT_LENGTH;
}

/** Runs the detectors that apply to one field (phone numbers under a key wait in `phones`). */
function examine(field: DecodedField, info: KeyInfo, has: number, ctx: DetectContext, profileCache: ProfileMatchCache | undefined): void {
  examined = field;
  if (ctx.profile) detectProfileValues(field, ctx.profile, emit, profileCache!);
  if (field.value.length > MAX_SCANNED_FIELD_LENGTH) return;
  const cls = info.cls;
  if (cls) {
    /* The value, then each item when it is a list. */
    const items = listedItems(field);
    detectByKey(field, cls, ctx);
    if (items) for (const item of items) detectByKey(item, cls, ctx);
    if (cls === 'phone') {
      (phones ??= noFields()).push(field);
      if (items) phones.push(...items);
    }
  }
  if (has & DIGIT_RUN) detectDeviceIdsByPattern(field, info, emit);
  if (field.value.length >= MAC_TEXT_LENGTH && (has & COLON || field.value.indexOf('-') >= 0)) detectMacByPattern(field, emit);
  if (info.latLngText || has & COLON) detectLocationInText(field, info, (has & COLON) !== 0, emitSurroundings);
}

/** What the field's key says it holds, checked against its value (phone numbers come later). */
function detectByKey(field: DecodedField, cls: KeyClass, ctx: DetectContext): void {
  detectDeviceIdsByKey(field, cls, emit);
  detectMacByKey(field, cls, emit);
  detectCellId(field, cls, ctx, emit);
}

/** Same type+value+path once; the profile's reading outranks a key's, which outranks a pattern's. */
function dedupe(candidates: Candidate[]): Detection[] {
  let kept = candidates;
  if (candidates.length > 1) {
    const byFinding = new BestPerSlot(sameFinding, findingKey);
    for (const c of candidates) byFinding.offer(c);
    kept = byFinding.list;
  }
  const detections: Detection[] = [];
  for (const c of kept) {
    detections.push({
      type: c.type,
      value: c.value,
      path: c.path ?? c.field.path,
      chain: c.field.chain,
      detector: c.detector,
      confidence: c.confidence,
      explanation: explainCandidate(c),
      key: c.keyLabel ?? c.field.key,
      subject: c.subject,
    });
  }
  return detections;
}
