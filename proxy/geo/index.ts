/**
 * Why: "where did it go" needs a country and a network owner for the server address, offline (no
 * queries to third parties about what the phone talks to). Data: the npm packages
 * @ip-location-db/geo-whois-asn-country (country, CC0) and @ip-location-db/asn (AS number and owner,
 * CC BY 4.0: RouteViews, DB-IP, NRO). Tables are read once, lazily, on the first lookup of a family.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { GeoLookup } from '../analyse/judge';
import { parsePublicAddress } from './address';
import { ipv4Table, ipv6Table, type RangeTable } from './ranges';

export type { GeoLookup } from '../analyse/judge';
export { parsePublicAddress } from './address';

interface AsnEntry { asn: number; org: string }

/** CSV texts of the four tables (the `-num` files: numeric range bounds). */
export interface GeoSources {
  countryV4: () => string;
  asnV4: () => string;
  countryV6?: () => string;
  asnV6?: () => string;
}

function countryOf(fields: string[]): string | undefined {
  const c = fields[0]?.trim();
  return c && /^[A-Z]{2}$/.test(c) ? c : undefined;
}

function asnOf(orgNames: Map<string, string>) {
  return (fields: string[]): AsnEntry | undefined => {
    const asn = Number(fields[0]);
    if (!Number.isInteger(asn) || asn <= 0) return undefined;
    const raw = fields.slice(1).join(',').trim();
    let org = orgNames.get(raw);
    if (org === undefined) { org = raw; orgNames.set(raw, raw); }
    return { asn, org };
  };
}

/** A lookup over the given CSV sources; each table is parsed on first need, once. */
export function createGeoLookup(sources: GeoSources): GeoLookup {
  const orgNames = new Map<string, string>();
  let countryV4: RangeTable<string> | undefined;
  let asnV4: RangeTable<AsnEntry> | undefined;
  let countryV6: RangeTable<string> | null | undefined;
  let asnV6: RangeTable<AsnEntry> | null | undefined;
  return {
    lookup(ip) {
      const address = parsePublicAddress(ip);
      if (!address) return undefined;
      let country: string | undefined;
      let asn: AsnEntry | undefined;
      if (address.family === 4) {
        countryV4 ??= ipv4Table(sources.countryV4(), countryOf);
        asnV4 ??= ipv4Table(sources.asnV4(), asnOf(orgNames));
        country = countryV4.find(address.key);
        asn = asnV4.find(address.key);
      } else {
        if (countryV6 === undefined) countryV6 = sources.countryV6 ? ipv6Table(sources.countryV6(), countryOf) : null;
        if (asnV6 === undefined) asnV6 = sources.asnV6 ? ipv6Table(sources.asnV6(), asnOf(orgNames)) : null;
        country = countryV6?.find(address.key);
        asn = asnV6?.find(address.key);
      }
      if (!country && !asn) return undefined;
      return { ...(country ? { country } : {}), ...(asn ? { asn: asn.asn, org: asn.org } : {}) };
    },
  };
}

function packageDir(name: string): string {
  return dirname(require.resolve(`${name}/package.json`));
}

/** The lookup over the shipped offline databases. Throws only if the packages are missing. */
export function loadGeoLookup(): GeoLookup {
  const countryDir = packageDir('@ip-location-db/geo-whois-asn-country');
  const asnDir = packageDir('@ip-location-db/asn');
  const read = (dir: string, file: string) => () => readFileSync(join(dir, file), 'utf8');
  return createGeoLookup({
    countryV4: read(countryDir, 'geo-whois-asn-country-ipv4-num.csv'),
    countryV6: read(countryDir, 'geo-whois-asn-country-ipv6-num.csv'),
    asnV4: read(asnDir, 'asn-ipv4-num.csv'),
    asnV6: read(asnDir, 'asn-ipv6-num.csv'),
  });
}
