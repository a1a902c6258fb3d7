/**
 * Why: the strongest evidence is the phone's own values. Apps hash, reformat and truncate them, so a
 * profile is compiled once into every variant an app might send — separators, case, with/without
 * the IMEI check digit, each phone format, and MD5/SHA-1/SHA-256 of each (hex and base64) — and
 * matching a candidate string is then one Map lookup, however many variants there are.
 */
import { createHash } from 'node:crypto';
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import type { DeviceProfile, IdentifierType } from './types';
import { IDENTIFIER_TYPES } from './types';
import { luhnCheckDigit } from './detect/validate';
import { normalizeMac } from './detect/network';
import { normalizePhone } from './detect/contact';

export interface ProfileMatch {
  type: IdentifierType;
  /** Normalized value of the profile entry that matched. */
  value: string;
  /** How the value was sent, in words: "without separators", "as its SHA-256 hash". */
  variant: string;
}

export interface CompiledProfile {
  name?: string;
  /** Country of the profile's phone number: lets national numbers elsewhere be read. */
  country?: string;
  /** The profile's `country` (ISO 3166 alpha-2, upper case): the phone's home, for cross-border transfers. */
  homeCountry?: string;
  /** Normalized values per type, as the profile gave them. */
  values: Array<{ type: IdentifierType; value: string }>;
  /** Variant text (case-insensitive variants stored lowercase) → what it is. */
  variants: Map<string, ProfileMatch>;
  minVariantLength: number;
  maxVariantLength: number;
}

export class ProfileValueError extends Error {
  constructor(readonly type: string, readonly value: string, readonly reason: string) {
    super(value === '' ? `profile: ${reason}` : `profile ${type} "${value}": ${reason}`);
  }
}

const PROFILE_KEYS = new Set<string>(['name', 'country', ...IDENTIFIER_TYPES]);

/** Normalize one profile value for its type (DESIGN.md normalized values); throws ProfileValueError. */
export function normalizeProfileValue(type: IdentifierType, raw: string): string {
  const v = raw.trim();
  const bad = (reason: string): never => {
    throw new ProfileValueError(type, raw, reason);
  };
  const digits = v.replace(/[\s\-.]/g, '');
  switch (type) {
    case 'imei': {
      if (!/^\d{14,16}$/.test(digits)) bad('an IMEI has 15 digits (14 without the check digit, 16 as IMEISV)');
      const body = digits.slice(0, 14);
      const full = body + luhnCheckDigit(body);
      if (digits.length === 15 && digits !== full) bad(`Luhn check digit should be ${full.slice(-1)}`);
      return full;
    }
    case 'meid':
      if (!/^[0-9a-f]{14}$/i.test(digits)) bad('a MEID has 14 hex digits');
      return digits.toUpperCase();
    case 'imsi':
      if (!/^\d{14,15}$/.test(digits)) bad('an IMSI has 14 or 15 digits');
      return digits;
    case 'iccid': {
      const d = digits.replace(/[fF]$/, '');
      if (!/^89\d{16,18}$/.test(d)) bad('an ICCID has 18-20 digits starting with 89');
      return d;
    }
    case 'phone': {
      const p = normalizePhone(v);
      if (!p) bad('not a valid phone number in international format (+country code...)');
      return p!.e164;
    }
    case 'mac': {
      const mac = normalizeMac(v, true);
      if (!mac) bad('a MAC address looks like aa:bb:cc:dd:ee:ff');
      return mac!;
    }
    case 'android_id':
      if (!/^[0-9a-f]{13,16}$/i.test(v)) bad('an Android ID has 16 hex digits');
      return v.toLowerCase();
    case 'ad_id':
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v)) bad('an advertising ID is a UUID');
      return v.toLowerCase();
    case 'cell_id':
      if (!/^\d{1,11}$/.test(v)) bad('a cell ID is a decimal number');
      return String(Number(v));
    case 'location': {
      const m = /^\s*(-?\d{1,2}(?:\.\d+)?)\s*,\s*(-?\d{1,3}(?:\.\d+)?)\s*$/.exec(v);
      if (!m || Math.abs(Number(m[1])) > 90 || Math.abs(Number(m[2])) > 180) bad('a location is "lat,lon" in decimal degrees');
      return `${Number(m![1])},${Number(m![2])}`;
    }
    case 'serial':
      if (v.length < 4 || v.length > 64) bad('a serial number has 4-64 characters');
      return v;
    case 'email':
      if (!/^[^\s@]+@[^\s@]+\.[A-Za-z]{2,}$/.test(v)) bad('not an email address');
      return v.toLowerCase();
  }
}

/** Text forms an app may send for a value, each with its description. */
function textVariants(type: IdentifierType, value: string): Array<[string, string]> {
  const out: Array<[string, string]> = [[value, '']];
  switch (type) {
    case 'imei': {
      out.push([value.slice(0, 14), 'without its check digit']);
      out.push([`${value.slice(0, 2)}-${value.slice(2, 8)}-${value.slice(8, 14)}-${value.slice(14)}`, 'with dashes']);
      for (let svn = 0; svn < 100; svn++) out.push([value.slice(0, 14) + String(svn).padStart(2, '0'), 'as IMEISV']);
      break;
    }
    case 'iccid':
      out.push([`${value}F`, 'with F padding']);
      out.push([value.slice(0, -1), 'without its check digit']);
      break;
    case 'android_id': {
      // Google check-in and some SDKs send the Android ID as the 64-bit integer it is (signed).
      const unsigned = BigInt(`0x${value}`);
      out.push([unsigned.toString(), 'as a decimal number']);
      if (unsigned >= 2n ** 63n) out.push([(unsigned - 2n ** 64n).toString(), 'as a decimal number']);
      break;
    }
    case 'phone': {
      const p = parsePhoneNumberFromString(value);
      if (p) {
        out.push([value.slice(1), 'without +']);
        out.push([`00${value.slice(1)}`, 'with 00 prefix']);
        out.push([p.nationalNumber, 'in national format']);
        out.push([p.formatNational(), 'in national format']);
        out.push([p.formatNational().replace(/\D/g, ''), 'in national format']);
        out.push([p.formatInternational(), 'in international format']);
      }
      break;
    }
    case 'mac': {
      const bare = value.replace(/:/g, '');
      out.push([value.replace(/:/g, '-'), 'with dashes']);
      out.push([bare, 'without separators']);
      out.push([bare.match(/.{4}/g)!.join('.'), 'in dotted form']);
      break;
    }
    case 'ad_id':
      out.push([value.replace(/-/g, ''), 'without dashes']);
      break;
    default:
      break;
  }
  return out;
}

const HASHES: Array<[string, string]> = [['md5', 'MD5'], ['sha1', 'SHA-1'], ['sha256', 'SHA-256']];

/** Precompute every variant of every profile value. Throws ProfileValueError on an invalid value. */
export function compileProfile(profile: DeviceProfile): CompiledProfile {
  const variants = new Map<string, ProfileMatch>();
  const values: CompiledProfile['values'] = [];
  let country: string | undefined;
  const add = (text: string, match: ProfileMatch, caseInsensitive: boolean): void => {
    const k = caseInsensitive ? text.toLowerCase() : text;
    if (k.length >= 4 && !variants.has(k)) variants.set(k, match);
  };
  for (const key of Object.keys(profile)) {
    if (!PROFILE_KEYS.has(key)) throw new ProfileValueError(key, '', `unknown key "${key}" (known: ${[...PROFILE_KEYS].join(', ')})`);
  }
  for (const type of IDENTIFIER_TYPES) {
    const entry = profile[type];
    if (entry === undefined) continue;
    for (const raw of Array.isArray(entry) ? entry : [entry]) {
      if (typeof raw !== 'string') throw new ProfileValueError(type, String(raw), 'values must be strings');
      const value = normalizeProfileValue(type, raw);
      values.push({ type, value });
      if (type === 'phone') country ??= parsePhoneNumberFromString(value)?.country;
      for (const [text, how] of textVariants(type, value)) {
        const forms = new Set([text, text.toLowerCase(), text.toUpperCase()]);
        add(text, { type, value, variant: how }, true);
        for (const form of forms) {
          for (const [algorithm, label] of HASHES) {
            const digest = createHash(algorithm).update(form).digest();
            const variant = [how, `as its ${label} hash`].filter(Boolean).join(', ');
            add(digest.toString('hex'), { type, value, variant }, true);
            add(digest.toString('base64'), { type, value, variant }, false);
            add(digest.toString('base64url'), { type, value, variant }, false);
          }
        }
      }
    }
  }
  const homeCountry = profile.country;
  if (homeCountry !== undefined && (typeof homeCountry !== 'string' || !/^[A-Za-z]{2}$/.test(homeCountry))) {
    throw new ProfileValueError('country', String(homeCountry), 'a country is a two-letter ISO 3166 code such as "NO"');
  }
  let minVariantLength = Infinity;
  let maxVariantLength = 0;
  for (const k of variants.keys()) {
    minVariantLength = Math.min(minVariantLength, k.length);
    maxVariantLength = Math.max(maxVariantLength, k.length);
  }
  return { name: profile.name, country, ...(homeCountry ? { homeCountry: homeCountry.toUpperCase() } : {}), values, variants, minVariantLength, maxVariantLength };
}

/** One Map lookup (two when the text has upper case). */
export function matchProfileText(profile: CompiledProfile, text: string): ProfileMatch | undefined {
  if (text.length < profile.minVariantLength || text.length > profile.maxVariantLength) return undefined;
  return profile.variants.get(text) ?? profile.variants.get(text.toLowerCase());
}
