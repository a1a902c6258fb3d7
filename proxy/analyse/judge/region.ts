/**
 * Why: sending an IMEI from Norway to a server in Germany is a transfer inside one legal space;
 * sending it to China or the US is not. For a European phone the home region is the EU/EEA plus
 * the countries the European Commission recognises as giving adequate protection (GDPR art. 45);
 * for any other phone it is its own country. A destination outside the home region is
 * "cross-border", which raises the severity.
 *
 * Adequacy decisions in force (European Commission, "Adequacy decisions"): Andorra, Argentina,
 * Canada (commercial organisations), Faroe Islands, Guernsey, Israel, Isle of Man, Japan, Jersey,
 * New Zealand, Republic of Korea, Switzerland, United Kingdom, Uruguay. The United States decision
 * (EU-US Data Privacy Framework) covers only companies certified under it, which cannot be known
 * from an address, so the US counts as outside.
 */

export const EU_EEA: ReadonlySet<string> = new Set([
  'AT', 'BE', 'BG', 'HR', 'CY', 'CZ', 'DK', 'EE', 'FI', 'FR', 'DE', 'GR', 'HU', 'IE', 'IT', 'LV', 'LT', 'LU', 'MT',
  'NL', 'PL', 'PT', 'RO', 'SK', 'SI', 'ES', 'SE', // EU 27
  'IS', 'LI', 'NO', // EEA
]);

export const EU_ADEQUATE: ReadonlySet<string> = new Set(['AD', 'AR', 'CA', 'FO', 'GG', 'IL', 'IM', 'JP', 'JE', 'NZ', 'KR', 'CH', 'GB', 'UY']);

/** Phones whose home region is the EU/EEA plus adequacy countries: the EU/EEA and the European adequacy countries. */
const EUROPEAN = new Set([...EU_EEA, 'AD', 'FO', 'GG', 'IM', 'JE', 'CH', 'GB']);

export interface HomeRegion {
  /** ISO 3166-1 alpha-2 of the phone's home. */
  country: string;
  /** Countries a transfer to stays inside. */
  countries: ReadonlySet<string>;
  /** "EU/EEA and adequate countries", or the country code. */
  name: string;
}

export function isCountryCode(text: unknown): text is string {
  return typeof text === 'string' && /^[A-Z]{2}$/.test(text);
}

const EUROPEAN_REGION_COUNTRIES: ReadonlySet<string> = new Set([...EU_EEA, ...EU_ADEQUATE]);
/** Regions already made, by country (every flow with findings asks; there are at most a few hundred countries). */
const REGIONS = new Map<string, HomeRegion>();

export function homeRegionOf(country: string): HomeRegion {
  const cc = country.toUpperCase();
  let region = REGIONS.get(cc);
  if (!region) {
    region = EUROPEAN.has(cc)
      ? { country: cc, countries: EUROPEAN_REGION_COUNTRIES, name: 'EU/EEA and adequate countries' }
      : { country: cc, countries: new Set([cc]), name: cc };
    Object.freeze(region);
    if (REGIONS.size < 1024) REGIONS.set(cc, region);
  }
  return region;
}

/** Undefined when either side is unknown: no guess. */
export function isCrossBorder(region: HomeRegion | undefined, destinationCountry: string | undefined): boolean | undefined {
  if (!region || !destinationCountry) return undefined;
  return !region.countries.has(destinationCountry.toUpperCase());
}
