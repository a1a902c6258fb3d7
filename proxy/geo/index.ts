/**
 * Why: "where did it go" needs a country and a network owner for the server address, offline (no
 * queries to third parties about what the phone talks to). Data: the npm packages
 * @ip-location-db/geo-whois-asn-country (country, CC0) and @ip-location-db/asn (AS number and owner,
 * CC BY 4.0: RouteViews, DB-IP, NRO). With a cache directory the tables load at once from a compact
 * binary copy (cache.ts); without one they are parsed from CSV lazily, on first lookup.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { GeoLookup } from '../analyse/judge';
import { ipv6Hextets, ipv6Key, parsePublicAddress } from './address';
import { rangeTable, splitCsvLine, type RangeTable, type RangeTableWithArrays } from './ranges';
import { cacheFileName, GEO_TABLE_NAMES, readGeoCache, writeGeoCache, type GeoTableName, type GeoTables, type OwnerNames } from './cache';

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
  /** Where the tables came from: the binary cache, or the CSV files. */
  readonly source: 'cache' | 'csv';
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

/** Parses one CSV source into a table (owners of AS numbers are collected into `owners`). */
function parseTable(name: GeoTableName, csv: string, owners: Map<number, string>): RangeTableWithArrays {
  const asnPayload = (rest: string): number | undefined => {
    const comma = rest.indexOf(',');
    const asn = Number(comma < 0 ? rest : rest.slice(0, comma));
    if (!Number.isInteger(asn) || asn <= 0 || asn > 0xffffffff) return undefined;
    if (!owners.has(asn)) owners.set(asn, comma < 0 ? '' : splitCsvLine(rest.slice(comma + 1)).join(',').trim());
    return asn;
  };
  return rangeTable(csv, name.endsWith('V6') ? ipv6Bound : ipv4Bound, name.startsWith('asn') ? asnPayload : countryCode);
}

/** Every table of the sources, parsed now. */
export function buildGeoTables(sources: GeoSources): GeoTables {
  const owners = new Map<number, string>();
  const tables = { countryV4: null, asnV4: null, countryV6: null, asnV6: null } as GeoTables['tables'];
  for (const name of GEO_TABLE_NAMES) {
    const source = sources[name];
    if (source) tables[name] = parseTable(name, source(), owners);
  }
  return { tables, owners };
}

function lookupOver(table: (name: GeoTableName) => RangeTable | null, owners: OwnerNames): GeoLookup['lookup'] {
  return (ip) => {
    const address = parsePublicAddress(ip);
    if (!address) return undefined;
    const v4 = address.family === 4;
    const countryTable = table(v4 ? 'countryV4' : 'countryV6');
    const asnTable = table(v4 ? 'asnV4' : 'asnV6');
    const code = countryTable ? countryTable.find(address.key) : undefined;
    const asn = asnTable ? asnTable.find(address.key) : undefined;
    if (code === undefined && asn === undefined) return undefined;
    const facts: { country?: string; asn?: number; org?: string } = {};
    if (code !== undefined) facts.country = countryName(code);
    if (asn !== undefined) {
      facts.asn = asn;
      facts.org = owners.get(asn) ?? '';
    }
    return facts;
  };
}

/** A lookup over the given CSV sources; each table is parsed on first need, once. */
export function createGeoLookup(sources: GeoSources): LoadedGeoLookup {
  const owners = new Map<number, string>();
  const tables: Record<GeoTableName, RangeTable | null | undefined> = {
    countryV4: undefined, asnV4: undefined, countryV6: undefined, asnV6: undefined,
  };
  const table = (name: GeoTableName): RangeTable | null => {
    let t = tables[name];
    if (t === undefined) {
      const source = sources[name];
      t = source ? parseTable(name, source(), owners) : null;
      tables[name] = t;
    }
    return t;
  };
  return {
    source: 'csv',
    warm() {
      for (const name of GEO_TABLE_NAMES) table(name);
    },
    lookup: lookupOver(table, owners),
  };
}

/** A lookup over tables already in memory (from the cache or just built). */
export function geoLookupOver(t: GeoTables, source: LoadedGeoLookup['source']): LoadedGeoLookup {
  return { source, warm() {}, lookup: lookupOver((name) => t.tables[name], t.owners) };
}

function packageDir(name: string): string {
  return dirname(require.resolve(`${name}/package.json`));
}

/** The CSV files of the shipped offline databases. Throws only if the packages are missing. */
export function shippedGeoFiles(): Record<GeoTableName, string> {
  const countryDir = packageDir('@ip-location-db/geo-whois-asn-country');
  const asnDir = packageDir('@ip-location-db/asn');
  return {
    countryV4: join(countryDir, 'geo-whois-asn-country-ipv4-num.csv'),
    countryV6: join(countryDir, 'geo-whois-asn-country-ipv6.csv'),
    asnV4: join(asnDir, 'asn-ipv4-num.csv'),
    asnV6: join(asnDir, 'asn-ipv6.csv'),
  };
}

export interface LoadGeoOptions {
  /**
   * Where the compact binary tables are cached (e.g. `<data-dir>/cache`). With it the tables are
   * ready when this returns: read from the cache in tens of milliseconds, or parsed from the CSV
   * files once (seconds) and cached. Without it they are parsed lazily on first lookup.
   */
  cacheDir?: string;
}

/** The lookup over the shipped offline databases. Throws only if the packages are missing. */
export function loadGeoLookup(opts: LoadGeoOptions = {}): LoadedGeoLookup {
  const files = shippedGeoFiles();
  const read = (file: string) => () => readFileSync(file, 'latin1');
  const sources: GeoSources = { countryV4: read(files.countryV4), countryV6: read(files.countryV6), asnV4: read(files.asnV4), asnV6: read(files.asnV6) };
  if (!opts.cacheDir) return createGeoLookup(sources);
  const name = cacheFileName(GEO_TABLE_NAMES.map((n) => files[n]));
  const file = join(opts.cacheDir, name);
  const cached = readGeoCache(file, name);
  if (cached) return geoLookupOver(cached, 'cache');
  const built = buildGeoTables(sources);
  writeGeoCache(file, built, name);
  return geoLookupOver(built, 'csv');
}

/**
 * Makes sure the binary cache exists (builds it from the CSV files if not: seconds, once per
 * database release), so that analysis workers load in tens of milliseconds. Returns what it did.
 */
export function prepareGeoCache(cacheDir: string): 'cached' | 'built' | 'unavailable' {
  let files: Record<GeoTableName, string>;
  try {
    files = shippedGeoFiles();
  } catch {
    return 'unavailable';
  }
  const name = cacheFileName(GEO_TABLE_NAMES.map((n) => files[n]));
  if (existsSync(join(cacheDir, name))) return 'cached';
  return loadGeoLookup({ cacheDir }).source === 'cache' ? 'cached' : existsSync(join(cacheDir, name)) ? 'built' : 'unavailable';
}
