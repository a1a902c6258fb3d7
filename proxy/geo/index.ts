/**
 * Why: "where did it go" needs a country and a network owner for the server address, offline (no
 * queries to third parties about what the phone talks to). Data: the npm packages
 * @ip-location-db/geo-whois-asn-country (country, CC0) and @ip-location-db/asn (AS number and owner,
 * CC BY 4.0: RouteViews, DB-IP, NRO). Tables are read once, lazily on the first lookup of each
 * address family, or ahead of time with warm() (the proxy calls it before serving).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { GeoLookup } from '../analyse/judge';
import { ipv6Hextets, ipv6Key, parsePublicAddress } from './address';
import { rangeTable, splitCsvLine, type RangeTable } from './ranges';

export type { GeoLookup } from '../analyse/judge';
export { parsePublicAddress } from './address';

/** CSV texts of the tables: IPv4 with numeric bounds (`-ipv4-num.csv`), IPv6 with textual bounds (`-ipv6.csv`). */
export interface GeoSources {
  countryV4: () => string;
  asnV4: () => string;
  countryV6?: () => string;
  asnV6?: () => string;
}

export interface LoadedGeoLookup extends GeoLookup {
  /** Load every table now, so no lookup pays for it later. */
  warm(): void;
}

const ipv4Bound = (text: string): number | undefined => {
  const n = Number(text);
  return Number.isInteger(n) && n >= 0 && n <= 0xffffffff ? n : undefined;
};

/** Top-48-bit key of an IPv6 range bound; only the first three hextets are needed, so only they are parsed. */
const ipv6Bound = (text: string): number | undefined => {
  const gap = text.indexOf('::');
  const head = gap < 0 ? text : text.slice(0, gap);
  const left = head ? head.split(':') : [];
  if (left.length < 3 && gap >= 0) {
    const h = ipv6Hextets(text);
    return h ? ipv6Key(h) : undefined;
  }
  const [a, b, c] = left.map((x) => parseInt(x, 16));
  return a! >= 0 && b! >= 0 && c! >= 0 && a! < 65536 && b! < 65536 && c! < 65536 ? ipv6Key([a!, b!, c!]) : undefined;
};

const countryCode = (c: string): number | undefined =>
  /^[A-Z]{2}$/.test(c) ? c.charCodeAt(0) * 256 + c.charCodeAt(1) : undefined;

const countryName = (code: number): string => String.fromCharCode(Math.floor(code / 256), code % 256);

/** A lookup over the given CSV sources; each table is parsed on first need, once. */
export function createGeoLookup(sources: GeoSources): LoadedGeoLookup {
  const owners = new Map<number, string>();
  const asnPayload = (rest: string): number | undefined => {
    const comma = rest.indexOf(',');
    const asn = Number(comma < 0 ? rest : rest.slice(0, comma));
    if (!Number.isInteger(asn) || asn <= 0) return undefined;
    if (!owners.has(asn)) owners.set(asn, comma < 0 ? '' : splitCsvLine(rest.slice(comma + 1)).join(',').trim());
    return asn;
  };
  const tables: Record<'countryV4' | 'asnV4' | 'countryV6' | 'asnV6', RangeTable | null | undefined> = {
    countryV4: undefined, asnV4: undefined, countryV6: undefined, asnV6: undefined,
  };
  const table = (name: keyof typeof tables): RangeTable | null => {
    let t = tables[name];
    if (t === undefined) {
      const source = sources[name];
      const v6 = name.endsWith('V6');
      t = source ? rangeTable(source(), v6 ? ipv6Bound : ipv4Bound, name.startsWith('asn') ? asnPayload : countryCode) : null;
      tables[name] = t;
    }
    return t;
  };
  return {
    warm() {
      for (const name of Object.keys(tables) as Array<keyof typeof tables>) table(name);
    },
    lookup(ip) {
      const address = parsePublicAddress(ip);
      if (!address) return undefined;
      const v4 = address.family === 4;
      const countryCodeFound = table(v4 ? 'countryV4' : 'countryV6')?.find(address.key);
      const asn = table(v4 ? 'asnV4' : 'asnV6')?.find(address.key);
      if (countryCodeFound === undefined && asn === undefined) return undefined;
      return {
        ...(countryCodeFound !== undefined ? { country: countryName(countryCodeFound) } : {}),
        ...(asn !== undefined ? { asn, org: owners.get(asn) ?? '' } : {}),
      };
    },
  };
}

function packageDir(name: string): string {
  return dirname(require.resolve(`${name}/package.json`));
}

/** The lookup over the shipped offline databases. Throws only if the packages are missing. */
export function loadGeoLookup(): LoadedGeoLookup {
  const countryDir = packageDir('@ip-location-db/geo-whois-asn-country');
  const asnDir = packageDir('@ip-location-db/asn');
  const read = (dir: string, file: string) => () => readFileSync(join(dir, file), 'latin1');
  return createGeoLookup({
    countryV4: read(countryDir, 'geo-whois-asn-country-ipv4-num.csv'),
    countryV6: read(countryDir, 'geo-whois-asn-country-ipv6.csv'),
    asnV4: read(asnDir, 'asn-ipv4-num.csv'),
    asnV6: read(asnDir, 'asn-ipv6.csv'),
  });
}
