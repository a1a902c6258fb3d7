/**
 * Why: hardware and SIM identifiers (IMEI, MEID, IMSI, ICCID, serial, Android ID, advertising ID)
 * are the persistent handles that tie traffic to one phone and one subscriber. Each is accepted
 * under a telling key when its value validates; only the strongest formats (IMEI with Luhn and a
 * real TAC prefix, ICCID with 89 and Luhn, IMSI with an allocated MCC) are reported without one.
 */
import type { DecodedField } from '../types';
import type { Candidate } from './candidate';
import { isDigits, keyOf } from './candidate';
import type { KeyClass, KeyInfo } from './keys';
import {
  currentTac, isAllSameChar, isPlaceholderDigits, isPlaceholderWord, isUuid, luhnCheckDigit, luhnValid, plausibleTac, splitImsi,
} from './validate';

type Emit = (c: Omit<Candidate, 'field' | 'subject'> & { subject?: Candidate['subject'] }) => void;

const DIGIT_SEPARATORS = /[\s\-./]/g;

function digitsOf(value: string): string | undefined {
  if (isDigits(value)) return value;
  const stripped = value.replace(DIGIT_SEPARATORS, '');
  return /^\d+$/.test(stripped) ? stripped : undefined;
}

/** IMEI from 15 digits, 14 digits (no check digit) or 16 digits (IMEISV): always the 15-digit IMEI. */
function imeiFromDigits(digits: string): { imei: string; form: string } | undefined {
  if (isPlaceholderDigits(digits)) return undefined;
  if (digits.length === 15 && luhnValid(digits)) return { imei: digits, form: 'Luhn-valid' };
  if (digits.length === 14) return { imei: digits + luhnCheckDigit(digits), form: 'sent without its check digit' };
  if (digits.length === 16 && !isPlaceholderDigits(digits.slice(0, 14))) {
    const body = digits.slice(0, 14);
    return { imei: body + luhnCheckDigit(body), form: 'sent as IMEISV' };
  }
  return undefined;
}

/** MEID: 14 hex digits, or its 18-digit decimal form (10-digit manufacturer code + 8-digit serial). */
function meidOf(value: string): { meid: string; form: string } | undefined {
  const v = value.replace(/[\s\-]/g, '');
  if (/^[0-9a-f]{14}$/i.test(v) && !isAllSameChar(v)) return { meid: v.toUpperCase(), form: '14 hex digits' };
  if (/^\d{18}$/.test(v) && !isPlaceholderDigits(v)) {
    const manufacturer = Number(v.slice(0, 10));
    const serial = Number(v.slice(10));
    if (manufacturer > 0xffffffff || serial > 0xffffff) return undefined;
    const hex = manufacturer.toString(16).padStart(8, '0') + serial.toString(16).padStart(6, '0');
    return { meid: hex.toUpperCase(), form: '18-digit decimal form' };
  }
  return undefined;
}

function iccidOf(value: string): { iccid: string; luhn: boolean } | undefined {
  const v = value.replace(/[\s\-]/g, '').replace(/[fF]$/, '');
  if (!/^89\d{16,18}$/.test(v) || isPlaceholderDigits(v.slice(2))) return undefined;
  return { iccid: v, luhn: luhnValid(v) };
}

const ANDROID_ID_PLACEHOLDERS = new Set(['9774d56d682e549c', '0000000000000000']);
const ZERO_UUID = '00000000-0000-0000-0000-000000000000';

function serialOf(value: string, strictKey: boolean): string | undefined {
  const v = value.trim();
  if (v.length < 6 || v.length > 32 || isPlaceholderWord(v) || isAllSameChar(v)) return undefined;
  if (!/^[A-Za-z0-9][A-Za-z0-9._\-]*[A-Za-z0-9]$/.test(v) || !/\d/.test(v)) return undefined;
  if (isUuid(v) || /^\d{1,7}$/.test(v)) return undefined;
  if (strictKey && (v.length < 8 || !/[A-Za-z]/.test(v))) return undefined;
  if (/^\d+\.\d+(\.\d+)*$/.test(v)) return undefined;
  return v;
}

/** Key-based detection: the key said what the value should be; accept it when the value validates. */
export function detectDeviceIdsByKey(field: DecodedField, cls: KeyClass, emit: Emit): void {
  const value = field.value.trim();
  const digits = digitsOf(value);
  switch (cls) {
    case 'imei': {
      const imei = digits ? imeiFromDigits(digits) : undefined;
      if (imei) {
        const plausible = plausibleTac(imei.imei);
        emit({ type: 'imei', value: imei.imei, detector: 'key', confidence: plausible ? 0.95 : 0.8, span: value, evidence: imei.form });
        return;
      }
      const meid = /[a-f]/i.test(value) ? meidOf(value) : undefined;
      if (meid) emit({ type: 'meid', value: meid.meid, detector: 'key', confidence: 0.8, span: value, evidence: meid.form });
      return;
    }
    case 'meid': {
      const meid = meidOf(value);
      if (meid) emit({ type: 'meid', value: meid.meid, detector: 'key', confidence: 0.9, span: value, evidence: meid.form });
      return;
    }
    case 'imsi': {
      const imsi = digits ? splitImsi(digits) : undefined;
      if (digits && imsi && !isPlaceholderDigits(digits)) {
        emit({ type: 'imsi', value: digits, detector: 'key', confidence: 0.9, span: value, evidence: `MCC ${imsi.mcc} = ${imsi.country}, MNC ${imsi.mnc}` });
      }
      return;
    }
    case 'iccid': {
      const iccid = iccidOf(value);
      if (iccid) {
        emit({ type: 'iccid', value: iccid.iccid, detector: 'key', confidence: iccid.luhn ? 0.95 : 0.8, span: value, evidence: iccid.luhn ? 'Luhn-valid' : 'SIM card number prefix 89' });
      }
      return;
    }
    case 'android_id': {
      const v = value.toLowerCase();
      if (/^[0-9a-f]{13,16}$/.test(v) && !ANDROID_ID_PLACEHOLDERS.has(v) && !isAllSameChar(v)) {
        emit({ type: 'android_id', value: v, detector: 'key', confidence: 0.9, span: value, evidence: '' });
      }
      return;
    }
    case 'device_id': {
      const v = value.toLowerCase();
      const imei = digits && digits.length === 15 ? imeiFromDigits(digits) : undefined;
      if (imei && plausibleTac(imei.imei)) {
        emit({ type: 'imei', value: imei.imei, detector: 'key', confidence: 0.9, span: value, evidence: 'Luhn-valid, used as a device ID' });
      } else if (/^[0-9a-f]{16}$/.test(v) && /[a-f]/.test(v) && !ANDROID_ID_PLACEHOLDERS.has(v) && !isAllSameChar(v)) {
        emit({ type: 'android_id', value: v, detector: 'key', confidence: 0.7, span: value, evidence: '16 hex digits, the Android ID format' });
      }
      return;
    }
    case 'ad_id': {
      const v = value.toLowerCase();
      if (isUuid(v) && v !== ZERO_UUID) {
        emit({ type: 'ad_id', value: v, detector: 'key', confidence: 0.95, span: value, evidence: 'resettable by the user' });
      } else if (/^[0-9a-f]{16,64}$/.test(v) && !isAllSameChar(v) && /^o?aid$/.test(keyOf(field)?.toLowerCase() ?? '')) {
        emit({ type: 'ad_id', value: v, detector: 'key', confidence: 0.8, span: value, evidence: 'OAID format' });
      }
      return;
    }
    case 'serial': {
      const strict = /^sn$/i.test((keyOf(field) ?? '').replace(/[^a-z]/gi, ''));
      const serial = serialOf(value, strict);
      if (serial) emit({ type: 'serial', value: serial, detector: 'key', confidence: strict ? 0.75 : 0.9, span: value, evidence: '' });
      return;
    }
    default:
      return;
  }
}

function hasNoMeaningfulKey(field: DecodedField): boolean {
  return field.key === null || /^\d+$/.test(field.key);
}

/** Digit runs not glued to letters, base64 text or a decimal point. */
const DIGIT_RUN = /(?<![A-Za-z0-9+/.])\d{14,20}(?![A-Za-z0-9+/]|\.\d)/g;

/**
 * Pattern-only detection: strong formats only, and never under a key that names something else.
 * Only values with a run of 14 or more digits (traits.ts DIGIT_RUN) can hold one: callers ask first.
 */
export function detectDeviceIdsByPattern(field: DecodedField, key: KeyInfo, emit: Emit): void {
  const value = field.value;
  if (key.nonIdentifier) return;
  /* A value that is digits only (the usual case) is DIGIT_RUN's one match when 14-20 long, and has none when longer. */
  if (isDigits(value)) {
    if (value.length <= 20) digitRun(value, value, field, emit);
    return;
  }
  const whole = value.trim();
  for (const match of value.matchAll(DIGIT_RUN)) digitRun(match[0], whole, field, emit);
}

/** One digit run of a value (`whole`: the value trimmed): an IMEI, a bare IMSI or an ICCID on its own evidence. */
function digitRun(run: string, whole: string, field: DecodedField, emit: Emit): void {
  if (isPlaceholderDigits(run)) return;
  if (run.length === 15) {
    if (luhnValid(run) && currentTac(run)) {
      emit({ type: 'imei', value: run, detector: 'pattern', confidence: 0.7, span: run, evidence: 'Luhn-valid, with a real TAC prefix' });
      return;
    }
    // An allocated MCC is true of a quarter of all 15-digit numbers: only a bare value with no key
    // (text, a protobuf field number) is worth reporting on that evidence alone.
    const imsi = run === whole && hasNoMeaningfulKey(field) ? splitImsi(run) : undefined;
    if (imsi) {
      emit({ type: 'imsi', value: run, detector: 'pattern', confidence: 0.5, span: run, evidence: `MCC ${imsi.mcc} = ${imsi.country}, MNC ${imsi.mnc}` });
    }
  } else if (run.length >= 19 && run.startsWith('89') && luhnValid(run)) {
    emit({ type: 'iccid', value: run, detector: 'pattern', confidence: 0.8, span: run, evidence: 'SIM card number prefix 89, Luhn-valid' });
  }
}

