/**
 * Why: "abroad" depends on where the phone is at home. In order of trust: the country written in
 * the device profile; the Mobile Country Code of the SIM's IMSI (profiled, else found in the
 * flow); the country code of the phone number (profiled, else found); the `--home-country`
 * setting. Nothing known: no cross-border verdict (never a guess). A value found in the flow counts
 * only when a key vouched for it (confidence >= LOW_CONFIDENCE): a bare 15-digit number that merely
 * parses as an IMSI must not move the phone's home to Montserrat.
 */
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import { MCC_COUNTRY } from '../detect/mcc';
import type { CompiledProfile } from '../profile';
import type { Finding } from '../types';
import { LOW_CONFIDENCE } from './severity';

export type HomeSource = 'profile' | 'imsi' | 'phone' | 'configured';

export interface HomeCountry {
  country: string;
  from: HomeSource;
}

const imsiCountry = (imsi: string): string | undefined => MCC_COUNTRY.get(imsi.slice(0, 3));
/**
 * Country of each number already asked about: with a profile, every flow with a finding asks about
 * the profile's own number, and parsing it (libphonenumber builds its metadata objects each time)
 * was per-flow work, garbage, and after each full GC a wave of recompiled library code.
 */
const phoneCountries = new Map<string, string | undefined>();
const PHONE_COUNTRIES_MAX = 1024;

const phoneCountry = (e164: string): string | undefined => {
  if (phoneCountries.has(e164)) return phoneCountries.get(e164);
  let country: string | undefined;
  try {
    country = parsePhoneNumberFromString(e164)?.country;
  } catch {
    country = undefined;
  }
  if (phoneCountries.size >= PHONE_COUNTRIES_MAX) phoneCountries.clear();
  phoneCountries.set(e164, country);
  return country;
};

export function homeCountryOf(profile: CompiledProfile | undefined, findings: readonly Finding[], configured?: string): HomeCountry | undefined {
  if (profile?.homeCountry) return { country: profile.homeCountry, from: 'profile' };
  /* The profile's values of a type first, then the flow's vouched-for findings of that type, in order. */
  const imsi = firstCountry('imsi', imsiCountry, profile, findings);
  if (imsi) return { country: imsi, from: 'imsi' };
  const phone = firstCountry('phone', phoneCountry, profile, findings);
  if (phone) return { country: phone, from: 'phone' };
  return configured ? { country: configured.toUpperCase(), from: 'configured' } : undefined;
}

function firstCountry(type: 'imsi' | 'phone', countryOf: (value: string) => string | undefined, profile: CompiledProfile | undefined, findings: readonly Finding[]): string | undefined {
  if (profile) {
    for (const v of profile.values) {
      if (v.type !== type) continue;
      const c = countryOf(v.value);
      if (c) return c;
    }
  }
  for (const f of findings) {
    if (f.type !== type || f.confidence < LOW_CONFIDENCE) continue;
    const c = countryOf(f.value);
    if (c) return c;
  }
  return undefined;
}
