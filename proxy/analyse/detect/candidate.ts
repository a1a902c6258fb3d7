/**
 * Why: detectors propose candidates; one place then picks the best per value (profile > key >
 * pattern) and turns them into Findings. Keeping the candidate shape small and shared is what lets
 * each detector stay a short, separate unit.
 */
import type { DecodedField, Detector, IdentifierType } from '../types';
import type { CompiledProfile } from '../profile';

/**
 * What a leak says about: the device or its owner, or its surroundings (a Wi-Fi access point's
 * BSSID is not the phone's MAC, but it pins down where the phone is).
 */
export type Subject = 'device' | 'surroundings';

export interface Candidate {
  type: IdentifierType;
  value: string;
  detector: Detector;
  confidence: number;
  field: DecodedField;
  /** The text that matched (the whole value, or a token inside it); candidates for one span compete. */
  span: string;
  /** Short evidence in words, e.g. "Luhn-valid", "as its SHA-256 hash", "with MCC 242, MNC 01". */
  evidence: string;
  subject: Subject;
  /** Path override for findings built from several fields (a lat/lon pair). */
  path?: string;
  /** Key words for the explanation when several keys made it (e.g. "lat/lon"). */
  keyLabel?: string;
}

export interface DetectContext {
  /** Fields grouped by their containing object (DecodedField.group), for sibling lookups. */
  groups: Map<string, DecodedField[]>;
  /** Country (ISO alpha-2) to read national phone numbers with, when the flow or profile gives one. */
  country?: string;
  profile?: CompiledProfile;
}

/** The nearest key that is a name, not a number (a protobuf field number or array index says nothing). */
export function keyOf(field: DecodedField): string | null {
  if (field.key !== null && !isDigits(field.key)) return field.key;
  for (let i = field.keyPath.length - 1; i >= 0; i--) {
    const k = field.keyPath[i];
    if (k !== undefined && !isDigits(k)) return k;
  }
  return field.key;
}

/** /^\d+$/ without a regex. */
export function isDigits(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

export const DETECTOR_RANK: Record<Detector, number> = { profile: 3, key: 2, pattern: 1 };
