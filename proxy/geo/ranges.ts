/**
 * Why: IP → country/network owner must be quick (every flow asks) and cheap to hold. Ranges are
 * kept as sorted typed arrays of numbers (start, end, a numeric payload) and found by binary
 * search. IPv6 ranges are keyed by their top 48 bits, which fit a float64 exactly; allocations and
 * routed prefixes are /48 or wider, so nothing is lost that geolocation could tell anyway.
 */

export interface RangeTable {
  /** The payload of the range holding `key`, or undefined. */
  find(key: number): number | undefined;
  readonly size: number;
}

/** Split one CSV line; a field may be "quoted, with commas" and "" escapes a quote. */
export function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i <= line.length) {
    if (line[i] === '"') {
      let value = '';
      i++;
      while (i < line.length) {
        if (line[i] === '"' && line[i + 1] === '"') { value += '"'; i += 2; }
        else if (line[i] === '"') { i++; break; }
        else value += line[i++];
      }
      out.push(value);
      i++; // comma
    } else {
      const comma = line.indexOf(',', i);
      const end = comma < 0 ? line.length : comma;
      out.push(line.slice(i, end));
      i = end + 1;
    }
  }
  return out;
}

/** The columns of a range table: sorted starts, their ends and payloads (typed arrays, cacheable as bytes). */
export interface RangeArrays {
  starts: Float64Array | Uint32Array;
  ends: Float64Array | Uint32Array;
  values: Float64Array | Uint32Array;
}

export interface RangeTableWithArrays extends RangeTable {
  readonly arrays: RangeArrays;
}

/**
 * Build a table from CSV text whose rows are `start,end,rest`. `bound` turns a start/end field into
 * a numeric key (undefined rejects the row); `payload` turns the raw rest of the line into a number.
 */
export function rangeTable(csv: string, bound: (text: string) => number | undefined, payload: (rest: string) => number | undefined): RangeTableWithArrays {
  let starts: Float64Array = new Float64Array(1024);
  let ends: Float64Array = new Float64Array(1024);
  let values: Float64Array = new Float64Array(1024);
  let n = 0;
  let lineStart = 0;
  while (lineStart < csv.length) {
    let lineEnd = csv.indexOf('\n', lineStart);
    if (lineEnd < 0) lineEnd = csv.length;
    const c1 = csv.indexOf(',', lineStart);
    const c2 = c1 < 0 || c1 > lineEnd ? -1 : csv.indexOf(',', c1 + 1);
    const rowStart = lineStart;
    lineStart = lineEnd + 1;
    if (c2 < 0 || c2 > lineEnd) continue;
    const start = bound(csv.slice(rowStart, c1));
    const end = bound(csv.slice(c1 + 1, c2));
    const value = payload(csv.slice(c2 + 1, lineEnd).trimEnd());
    if (start === undefined || end === undefined || value === undefined || end < start) continue;
    if (n === starts.length) {
      const grow = (a: Float64Array): Float64Array => { const b = new Float64Array(a.length * 2); b.set(a); return b; };
      starts = grow(starts); ends = grow(ends); values = grow(values);
    }
    starts[n] = start; ends[n] = end; values[n] = value; n++;
  }
  return sortedTable({ starts: starts.slice(0, n), ends: ends.slice(0, n), values: values.slice(0, n) });
}

/** A table over columns that are already sorted by start (as a cache file holds them), or sorts them. */
export function sortedTable(arrays: RangeArrays): RangeTableWithArrays {
  const { starts, ends, values } = arrays;
  // The published files are sorted; verify rather than trust.
  let sorted = true;
  for (let i = 1; i < starts.length && sorted; i++) if (starts[i]! < starts[i - 1]!) sorted = false;
  if (!sorted) {
    const order = [...starts.keys()].sort((a, b) => starts[a]! - starts[b]!);
    return sortedTable({
      starts: Float64Array.from(order, (i) => starts[i]!), ends: Float64Array.from(order, (i) => ends[i]!), values: Float64Array.from(order, (i) => values[i]!),
    });
  }
  // One search function per array type keeps each call site monomorphic (typed-array element kinds differ).
  const find = starts instanceof Uint32Array && ends instanceof Uint32Array ? findIn32(starts, ends, values) : findIn64(starts, ends, values);
  return { size: starts.length, arrays, find };
}

function findIn32(starts: Uint32Array, ends: Uint32Array, values: Float64Array | Uint32Array): (key: number) => number | undefined {
  return (key) => {
    let lo = 0;
    let hi = starts.length - 1;
    let hit = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (starts[mid]! <= key) { hit = mid; lo = mid + 1; }
      else hi = mid - 1;
    }
    return hit >= 0 && key <= ends[hit]! ? values[hit] : undefined;
  };
}

function findIn64(starts: Float64Array | Uint32Array, ends: Float64Array | Uint32Array, values: Float64Array | Uint32Array): (key: number) => number | undefined {
  return (key) => {
    let lo = 0;
    let hi = starts.length - 1;
    let hit = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (starts[mid]! <= key) { hit = mid; lo = mid + 1; }
      else hi = mid - 1;
    }
    return hit >= 0 && key <= ends[hit]! ? values[hit] : undefined;
  };
}
