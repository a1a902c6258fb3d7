/**
 * Why: parsing the published CSV tables takes seconds (about a million rows); the proxy and
 * `phonehome analyze` must be ready in well under one. The parsed columns are written once to a
 * compact binary file in the data directory and mapped back as typed-array views on later starts
 * (one file read, no parsing). The file is named after the source files (path, size, mtime) and
 * the format version, so a new database release or format change simply builds a new one.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sortedTable, type RangeArrays, type RangeTable } from './ranges';

export const GEO_TABLE_NAMES = ['countryV4', 'asnV4', 'countryV6', 'asnV6'] as const;
export type GeoTableName = (typeof GEO_TABLE_NAMES)[number];

/** AS number → organisation name (a Map when parsed; a lazy reader over the cache's bytes when loaded). */
export interface OwnerNames {
  get(asn: number): string | undefined;
}

export interface GeoTables {
  tables: Record<GeoTableName, RangeTable | null>;
  owners: OwnerNames;
}

const MAGIC = Buffer.from('PHGEO\u0000\u0003\n', 'latin1');
const FORMAT_VERSION = 3;

interface SectionRef { offset: number; length: number; type: 'u32' | 'f64' }
interface Header {
  signature: string;
  tables: Partial<Record<GeoTableName, { starts: SectionRef; ends: SectionRef; values: SectionRef }>>;
  /** Sorted AS numbers, the end offset of each name in `names`, and the UTF-8 names back to back. */
  owners: { asns: SectionRef; ends: SectionRef; names: { offset: number; length: number } };
}

/** The version in the package.json beside a data file (the @ip-location-db release), if any. */
function packageVersionBeside(file: string): string {
  try {
    return String((JSON.parse(fs.readFileSync(path.join(path.dirname(file), 'package.json'), 'utf8')) as { version?: unknown }).version ?? '');
  } catch {
    return '';
  }
}

/**
 * A name for the cache built from these source files: their name, size and package release, so two
 * checkouts of phonehome with the same database release share one cache (the cache directory keeps
 * only the newest file; a name made from the install path made them rebuild each other's, seconds
 * and ~150 MB of memory each time). Without a package version, the modification time stands in.
 */
export function cacheFileName(sourceFiles: string[]): string {
  const h = createHash('sha256').update(`v${FORMAT_VERSION}`);
  for (const f of sourceFiles) {
    const st = fs.statSync(f);
    const release = packageVersionBeside(f) || `mtime ${Math.floor(st.mtimeMs)}`;
    h.update(`\n${path.basename(f)}:${st.size}:${release}`);
  }
  return `geo-${h.digest('hex').slice(0, 20)}.bin`;
}

/** IPv4 bounds fit 32 bits: stored as u32 (half the bytes); IPv6 48-bit keys need float64. */
function fitsU32(a: ArrayLike<number>): boolean {
  for (let i = 0; i < a.length; i++) if (a[i]! > 0xffffffff || a[i]! < 0 || !Number.isInteger(a[i]!)) return false;
  return true;
}

export function serializeGeoTables(t: GeoTables, signature: string): Buffer {
  const chunks: Buffer[] = [];
  let offset = 0;
  const add = (bytes: Buffer): { offset: number; length: number } => {
    const pad = (8 - (offset % 8)) % 8;
    if (pad) { chunks.push(Buffer.alloc(pad)); offset += pad; }
    chunks.push(bytes);
    const ref = { offset, length: bytes.length };
    offset += bytes.length;
    return ref;
  };
  const column = (a: ArrayLike<number>): SectionRef => {
    const u32 = fitsU32(a);
    const typed = u32 ? Uint32Array.from(a) : Float64Array.from(a);
    return { ...add(Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength)), type: u32 ? 'u32' : 'f64' };
  };
  const header: Header = { signature, tables: {} } as Header;
  for (const name of GEO_TABLE_NAMES) {
    const table = t.tables[name] as (RangeTable & { arrays?: RangeArrays }) | null;
    if (!table?.arrays) continue;
    header.tables[name] = { starts: column(table.arrays.starts), ends: column(table.arrays.ends), values: column(table.arrays.values) };
  }
  const owners = [...(t.owners as Map<number, string>)].sort((a, b) => a[0] - b[0]);
  const names = owners.map(([, name]) => Buffer.from(name, 'utf8'));
  let end = 0;
  const ends = names.map((n) => (end += n.length));
  header.owners = {
    asns: { ...add(Buffer.from(Uint32Array.from(owners, ([asn]) => asn).buffer)), type: 'u32' },
    ends: { ...add(Buffer.from(Uint32Array.from(ends).buffer)), type: 'u32' },
    names: add(Buffer.concat(names)),
  };
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(MAGIC.length + 4);
  MAGIC.copy(prefix);
  prefix.writeUInt32LE(headerBytes.length, MAGIC.length);
  // Sections are addressed from the 8-aligned start of the body.
  const lead = prefix.length + headerBytes.length;
  const leadPad = Buffer.alloc((8 - (lead % 8)) % 8);
  return Buffer.concat([prefix, headerBytes, leadPad, ...chunks]);
}

/** Typed-array views over the file's bytes (no copy). Throws on anything that does not check out. */
export function deserializeGeoTables(buf: Buffer, signature: string): GeoTables {
  if (buf.length < MAGIC.length + 4 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error('not a phonehome geo cache');
  const headerLength = buf.readUInt32LE(MAGIC.length);
  const headerEnd = MAGIC.length + 4 + headerLength;
  if (headerEnd > buf.length) throw new Error('geo cache header cut');
  const header = JSON.parse(buf.toString('utf8', MAGIC.length + 4, headerEnd)) as Header;
  if (header.signature !== signature) throw new Error('geo cache built from other source files');
  const bodyStart = headerEnd + ((8 - (headerEnd % 8)) % 8);
  // Views need the body 8-aligned in memory; copy once if the read buffer is not.
  const base = (buf.byteOffset + bodyStart) % 8 === 0 ? buf : Buffer.from(buf);
  const view = (ref: SectionRef): Uint32Array | Float64Array => {
    const size = ref.type === 'u32' ? 4 : 8;
    if (ref.offset % 8 || ref.length % size || bodyStart + ref.offset + ref.length > base.length) throw new Error('geo cache section out of bounds');
    const at = base.byteOffset + bodyStart + ref.offset;
    return ref.type === 'u32' ? new Uint32Array(base.buffer, at, ref.length / 4) : new Float64Array(base.buffer, at, ref.length / 8);
  };
  const tables = { countryV4: null, asnV4: null, countryV6: null, asnV6: null } as GeoTables['tables'];
  for (const name of GEO_TABLE_NAMES) {
    const refs = header.tables[name];
    if (!refs) continue;
    const arrays = { starts: view(refs.starts), ends: view(refs.ends), values: view(refs.values) };
    if (arrays.starts.length !== arrays.ends.length || arrays.starts.length !== arrays.values.length) throw new Error('geo cache columns differ in length');
    tables[name] = sortedTable(arrays);
  }
  const asns = view(header.owners.asns) as Uint32Array;
  const ends = view(header.owners.ends) as Uint32Array;
  const { offset, length } = header.owners.names;
  if (asns.length !== ends.length || bodyStart + offset + length > base.length) throw new Error('geo cache owners out of bounds');
  const namesAt = bodyStart + offset;
  // Names are decoded on first use and remembered (a phone talks to a few hundred networks, not 80 000).
  const decoded = new Map<number, string>();
  const owners: OwnerNames = {
    get(asn) {
      const known = decoded.get(asn);
      if (known !== undefined) return known;
      const name = nameOf(asn);
      if (name !== undefined && decoded.size < 100_000) decoded.set(asn, name);
      return name;
    },
  };
  const nameOf = (asn: number): string | undefined => {
      let lo = 0;
      let hi = asns.length - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >>> 1;
        if (asns[mid]! === asn) return base.toString('utf8', namesAt + (mid ? ends[mid - 1]! : 0), namesAt + Math.min(ends[mid]!, length));
        if (asns[mid]! < asn) lo = mid + 1;
        else hi = mid - 1;
      }
      return undefined;
  };
  return { tables, owners };
}

/** Reads the cache; undefined when it is missing, stale or damaged (the caller rebuilds it). */
export function readGeoCache(file: string, signature: string): GeoTables | undefined {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch {
    return undefined;
  }
  try {
    return deserializeGeoTables(buf, signature);
  } catch {
    return undefined;
  }
}

/**
 * Writes the cache atomically (temporary file, then rename) and removes caches of older sources.
 * Failure to write (read-only data dir, disk full) is not an error: the tables are in memory anyway.
 */
export function writeGeoCache(file: string, tables: GeoTables, signature: string): boolean {
  const dir = path.dirname(file);
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(tmp, serializeGeoTables(tables, signature), { mode: 0o600 });
    fs.renameSync(tmp, file);
  } catch {
    try { fs.rmSync(tmp, { force: true }); } catch { /* nothing to clean */ }
    return false;
  }
  try {
    for (const other of fs.readdirSync(dir)) {
      if (/^geo-[0-9a-f]{20}\.bin$/.test(other) && other !== path.basename(file)) fs.rmSync(path.join(dir, other), { force: true });
    }
  } catch { /* an old cache left behind is harmless */ }
  return true;
}
