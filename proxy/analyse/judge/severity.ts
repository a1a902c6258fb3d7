/**
 * Why: not every finding is equally bad. Severity = how lasting and personal the identifier is ×
 * whether anyone on the path could read it (cleartext) × how sure we are. The table is public:
 *
 * | sensitivity class                                   | types                                   | cleartext | TLS    |
 * |-----------------------------------------------------|-----------------------------------------|-----------|--------|
 * | hardware (lifetime of the phone)                    | imei, meid, serial, mac (the phone's)    | critical  | high   |
 * | subscriber (the SIM and its owner)                  | imsi, iccid, phone                      | critical  | high   |
 * | location (where the phone is)                       | location, cell_id, mac of a Wi-Fi AP     | critical  | high   |
 * | device-scoped software ID (reset by factory reset)  | android_id                              | high      | medium |
 * | personal contact                                    | email                                   | high      | medium |
 * | resettable advertising ID                           | ad_id                                   | medium    | low    |
 *
 * A finding with confidence below 0.6 (pattern evidence only) is one step lower. Then one step
 * higher (at most critical) when the destination is outside the phone's home region (cross-border)
 * or belongs to a known tracking company (trackers.json) — one step for either or both. Local
 * destinations (LAN, loopback) are never cross-border. User rules (rules.ts) come last.
 */
import type { IdentifierType, Severity } from '../types';
import { SEVERITIES } from '../types';
import type { Subject } from '../detect/candidate';

export type SensitivityClass = 'hardware' | 'subscriber' | 'location' | 'device-software' | 'contact' | 'advertising';

export const SEVERITY_TABLE: Record<SensitivityClass, { cleartext: Severity; tls: Severity }> = {
  hardware: { cleartext: 'critical', tls: 'high' },
  subscriber: { cleartext: 'critical', tls: 'high' },
  location: { cleartext: 'critical', tls: 'high' },
  'device-software': { cleartext: 'high', tls: 'medium' },
  contact: { cleartext: 'high', tls: 'medium' },
  advertising: { cleartext: 'medium', tls: 'low' },
};

export const LOW_CONFIDENCE = 0.6;

export function sensitivityOf(type: IdentifierType, subject: Subject = 'device'): SensitivityClass {
  switch (type) {
    case 'imei':
    case 'meid':
    case 'serial':
      return 'hardware';
    case 'mac':
      return subject === 'surroundings' ? 'location' : 'hardware';
    case 'imsi':
    case 'iccid':
    case 'phone':
      return 'subscriber';
    case 'location':
    case 'cell_id':
      return 'location';
    case 'android_id':
      return 'device-software';
    case 'email':
      return 'contact';
    case 'ad_id':
      return 'advertising';
  }
}

export function severityOf(type: IdentifierType, cleartext: boolean, confidence: number, subject: Subject = 'device'): Severity {
  const row = SEVERITY_TABLE[sensitivityOf(type, subject)];
  const base = cleartext ? row.cleartext : row.tls;
  if (confidence >= LOW_CONFIDENCE) return base;
  return SEVERITIES[Math.max(1, SEVERITIES.indexOf(base) - 1)]!;
}

export function maxSeverity(severities: Iterable<Severity>): Severity {
  let best = 0;
  for (const s of severities) best = Math.max(best, SEVERITIES.indexOf(s));
  return SEVERITIES[best]!;
}

/** What raises a finding's severity beyond the table (see the module comment). */
export interface SeverityBumps {
  crossBorder?: boolean;
  tracker?: boolean;
}

export function bumpSeverity(base: Severity, bumps: SeverityBumps): Severity {
  if (!bumps.crossBorder && !bumps.tracker) return base;
  return SEVERITIES[Math.min(SEVERITIES.length - 1, SEVERITIES.indexOf(base) + 1)]!;
}
