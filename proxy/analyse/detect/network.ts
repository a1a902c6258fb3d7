/**
 * Why: a MAC address names the phone's radio for its whole life; a BSSID (an access point's MAC)
 * and a cell ID name the place the phone is at. Cell IDs hide under short keys (`ci`, `cid`) that
 * mean other things elsewhere, so those count only next to MCC/MNC/LAC/TAC or under a cell context.
 */
import type { DecodedField } from '../types';
import type { Candidate, DetectContext } from './candidate';
import { keyOf } from './candidate';
import type { KeyClass } from './keys';
import { CELL_CONTEXT, LAC_KEY, MCC_KEY, MNC_KEY, normalizeKey } from './keys';
import { mccCountry } from './validate';

type Emit = (c: Omit<Candidate, 'field' | 'subject'> & { subject?: Candidate['subject'] }) => void;

const MAC_PLACEHOLDERS = new Set(['02:00:00:00:00:00', '00:00:00:00:00:00', 'ff:ff:ff:ff:ff:ff']);

/** Lowercase colon form of a MAC in any common notation, or undefined. Bare 12 hex only when allowed. */
export function normalizeMac(value: string, allowBare: boolean): string | undefined {
  const v = value.trim();
  let hex: string | undefined;
  if (/^[0-9a-f]{2}([:\-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$/i.test(v)) hex = v.replace(/[:\-]/g, '');
  else if (/^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$/i.test(v)) hex = v.replace(/\./g, '');
  else if (allowBare && /^[0-9a-f]{12}$/i.test(v)) hex = v;
  if (!hex) return undefined;
  const mac = hex.toLowerCase().match(/../g)!.join(':');
  return MAC_PLACEHOLDERS.has(mac) ? undefined : mac;
}

/** A MAC listed among scanned Wi-Fi networks or access points belongs to the network, not the phone. */
const ACCESS_POINT_CONTEXT = /wifi|wlan|accesspoint|^aps?$|scan|neighbo|hotspot|router|ssid/;

function isAccessPointContext(field: DecodedField): boolean {
  return field.keyPath.slice(0, -1).some((k) => ACCESS_POINT_CONTEXT.test(normalizeKey(k)) && !/mac$/.test(normalizeKey(k)));
}

export function detectMacByKey(field: DecodedField, cls: KeyClass, emit: Emit): void {
  if (cls !== 'mac' && cls !== 'bssid') return;
  const mac = normalizeMac(field.value, true);
  if (!mac) return;
  const nearby = cls === 'bssid' || isAccessPointContext(field);
  emit({ type: 'mac', value: mac, detector: 'key', confidence: 0.9, span: field.value.trim(), evidence: '', subject: nearby ? 'surroundings' : 'device' });
}

const MAC_IN_TEXT = /(?<![0-9A-Fa-f:\-])[0-9A-Fa-f]{2}([:\-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}(?![0-9A-Fa-f:\-])/g;

/**
 * True when some ':' or '-' is followed by the same separator 3, 6, 9 and 12 characters on: the
 * skeleton of xx:xx:xx:xx:xx:xx, checked before the regex (UUIDs, dates and URLs fail it at once).
 */
function hasMacSkeleton(text: string): boolean {
  return hasSkeletonOf(text, ':') || hasSkeletonOf(text, '-');
}

/* The separators are found by the engine's search (reading a string character by character is slow in V8). */
function hasSkeletonOf(text: string, separator: ':' | '-'): boolean {
  const c = separator.charCodeAt(0);
  for (let i = text.indexOf(separator, 2); i >= 0 && i + 12 < text.length; i = text.indexOf(separator, i + 1)) {
    if (text.charCodeAt(i + 3) === c && text.charCodeAt(i + 6) === c && text.charCodeAt(i + 9) === c && text.charCodeAt(i + 12) === c) return true;
  }
  return false;
}

/** MACs written out in a value; only values of 17+ characters with a ':' or a '-' can hold one (callers ask first). */
export function detectMacByPattern(field: DecodedField, emit: Emit): void {
  if (!hasMacSkeleton(field.value)) return;
  for (const match of field.value.matchAll(MAC_IN_TEXT)) {
    const mac = normalizeMac(match[0], false);
    if (!mac) continue;
    emit({ type: 'mac', value: mac, detector: 'pattern', confidence: 0.75, span: match[0], evidence: 'MAC address notation', subject: isAccessPointContext(field) ? 'surroundings' : 'device' });
  }
}

/** Values Android and modems report when the cell is unknown. */
const CELL_PLACEHOLDERS = new Set([0, 65535, 268435455, 2147483647, 4294967295]);
const MAX_CELL_ID = 68719476735; // 36-bit NR cell identity

function cellIdOf(value: string): { id: number; form: string; tuple?: string } | undefined {
  const v = value.trim();
  let id: number | undefined;
  let form = '';
  let tuple: string | undefined;
  const compound = /^(\d{3})[-_:.,/](\d{2,3})[-_:.,/](\d+)[-_:.,/](\d+)$/.exec(v);
  if (compound && mccCountry(compound[1]!)) {
    id = Number(compound[4]);
    tuple = `MCC ${compound[1]}, MNC ${compound[2]}, LAC ${compound[3]}`;
  } else if (/^\d{1,11}$/.test(v)) id = Number(v);
  else if (/^0x[0-9a-f]{1,9}$/i.test(v) || (/^[0-9a-f]{1,9}$/i.test(v) && /[a-f]/i.test(v))) {
    id = parseInt(v.replace(/^0x/i, ''), 16);
    form = 'sent in hex';
  }
  if (id === undefined || !Number.isSafeInteger(id) || id > MAX_CELL_ID || CELL_PLACEHOLDERS.has(id)) return undefined;
  return { id, form, tuple };
}

function siblingTuple(field: DecodedField, ctx: DetectContext): string | undefined {
  const siblings = ctx.groups.get(field.group) ?? [];
  let mcc: string | undefined;
  let mnc: string | undefined;
  let lac: string | undefined;
  for (const s of siblings) {
    const k = normalizeKey(s.key);
    if (MCC_KEY.test(k) && /^\d{3}$/.test(s.value.trim())) mcc = s.value.trim();
    else if (MNC_KEY.test(k) && /^\d{1,3}$/.test(s.value.trim())) mnc = s.value.trim();
    else if (LAC_KEY.test(k) && /^(\d{1,8}|0x[0-9a-f]{1,6})$/i.test(s.value.trim())) lac = `${k === 'tac' || k === 'trackingareacode' ? 'TAC' : 'LAC'} ${s.value.trim()}`;
  }
  const parts = [mcc && `MCC ${mcc}`, mnc && `MNC ${mnc}`, lac].filter(Boolean);
  return parts.length >= 2 ? parts.join(', ') : undefined;
}

export function detectCellId(field: DecodedField, cls: KeyClass, ctx: DetectContext, emit: Emit): void {
  if (cls !== 'cell_id') return;
  const key = normalizeKey(keyOf(field));
  const cell = cellIdOf(field.value);
  if (!cell) return;
  const tuple = cell.tuple ?? siblingTuple(field, ctx);
  const ambiguousKey = key === 'ci' || key === 'cid' || key === 'cell';
  const inCellContext = field.keyPath.slice(0, -1).some((k) => CELL_CONTEXT.test(normalizeKey(k)));
  if (ambiguousKey && !tuple && !inCellContext) return;
  const evidence = [tuple && `with ${tuple}`, cell.form].filter(Boolean).join(', ');
  emit({ type: 'cell_id', value: String(cell.id), detector: 'key', confidence: tuple ? 0.95 : 0.85, span: field.value.trim(), evidence, subject: 'surroundings' });
}
