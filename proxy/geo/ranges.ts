/**
 * Why: IP → country/network owner must be quick (every flow asks) and cheap to hold. Ranges are kept
 * as sorted typed arrays and found by binary search; IPv6 ranges are keyed by their top 64 bits
 * (allocations are /64 or wider), which keeps them in a BigUint64Array instead of 128-bit BigInts.
 */

export interface RangeTable<T> {
  find(key: number | bigint): T | undefined;
  readonly size: number;
}

/** Parse one CSV line of `start,end,rest...` where the last field may be "quoted, with commas". */
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

function forEachLine(text: string, visit: (line: string) => void): void {
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end).trim();
    if (line) visit(line);
    start = end + 1;
  }
}

/** IPv4 table from `-ipv4-num.csv` text; `value` turns the fields after start,end into an entry. */
export function ipv4Table<T>(csv: string, value: (fields: string[]) => T | undefined): RangeTable<T> {
  const starts: number[] = [];
  const ends: number[] = [];
  const values: T[] = [];
  forEachLine(csv, (line) => {
    const f = splitCsvLine(line);
    const start = Number(f[0]);
    const end = Number(f[1]);
    const v = value(f.slice(2));
    if (!Number.isInteger(start) || !Number.isInteger(end) || v === undefined) return;
    starts.push(start);
    ends.push(end);
    values.push(v);
  });
  return sortedTable(Uint32Array.from(starts), Uint32Array.from(ends), values);
}

const TOP_64 = BigInt(64);

/** IPv6 table from `-ipv6-num.csv` text, keyed by the top 64 bits of each address. */
export function ipv6Table<T>(csv: string, value: (fields: string[]) => T | undefined): RangeTable<T> {
  const starts: bigint[] = [];
  const ends: bigint[] = [];
  const values: T[] = [];
  forEachLine(csv, (line) => {
    const f = splitCsvLine(line);
    if (!/^\d+$/.test(f[0] ?? '') || !/^\d+$/.test(f[1] ?? '')) return;
    const v = value(f.slice(2));
    if (v === undefined) return;
    starts.push(BigInt(f[0]!) >> TOP_64);
    ends.push(BigInt(f[1]!) >> TOP_64);
    values.push(v);
  });
  return sortedTable(BigUint64Array.from(starts), BigUint64Array.from(ends), values);
}

function sortedTable<T>(starts: Uint32Array | BigUint64Array, ends: Uint32Array | BigUint64Array, values: T[]): RangeTable<T> {
  // The published files are sorted; verify rather than trust, and sort an index if they are not.
  let sorted = true;
  for (let i = 1; i < starts.length && sorted; i++) if (starts[i]! < starts[i - 1]!) sorted = false;
  if (!sorted) {
    const order = [...starts.keys()].sort((a, b) => (starts[a]! < starts[b]! ? -1 : starts[a]! > starts[b]! ? 1 : 0));
    const s = starts.slice();
    const e = ends.slice();
    const v = values.slice();
    order.forEach((from, to) => { s[to] = starts[from]!; e[to] = ends[from]!; v[to] = values[from]!; });
    return sortedTable(s, e, v);
  }
  return {
    size: starts.length,
    find(key) {
      let lo = 0;
      let hi = starts.length - 1;
      let hit = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >>> 1;
        if (starts[mid]! <= key) { hit = mid; lo = mid + 1; }
        else hi = mid - 1;
      }
      return hit >= 0 && key <= ends[hit]! ? values[hit] : undefined;
    },
  };
}
