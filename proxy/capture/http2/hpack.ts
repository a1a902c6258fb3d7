/**
 * HPACK header block decoding (RFC 7541), for a reader that sees a connection from outside: one
 * decoder per direction, fed every header block of that direction in order (the dynamic table is
 * shared state: a block skipped would corrupt every later one).
 *
 * API:
 *   const d = new HpackDecoder({ maxHeaderListBytes, maxTableSize });
 *   d.announceSettingsTableSize(n); // the RECEIVER's SETTINGS_HEADER_TABLE_SIZE, when its SETTINGS is seen
 *   d.setSettingsTableSize(n);      // ... and when the encoder's SETTINGS ACK says it applies it
 *   const r = d.decode(block);   // { ok: true, headers, neverIndexed, listBytes, truncated } | { ok: false, error }
 * A decoding error (bad index, integer overflow, bad Huffman, table size abuse, a string past the
 * block's end) is a connection error (COMPRESSION_ERROR) for HTTP/2: the table can no longer be
 * trusted, so the decoder refuses every block after one. A list larger than maxHeaderListBytes is
 * decoded to the end (the table stays right) but only its first fields are kept (`truncated`).
 * Strings are read as latin1 (one character per byte), as Node's http2 module and our HTTP/1
 * parser read header bytes. Memory: the table is at most maxTableSize bytes (RFC measure), plus
 * the kept list.
 */
import type { Header } from '../../flow';
import { DEFAULT_HEADER_TABLE_SIZE, DEFAULT_H2_LIMITS } from './frames';
import { huffmanDecode, huffmanMaxDecodedLength } from './hpack-huffman';
import { latin1 } from '../import/pcap/http-lexing';

/** RFC 7541 Appendix A: entries 1 to 61. */
export const STATIC_TABLE: readonly Header[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''],
  ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''],
  ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''],
  ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];

/** RFC 7541 §4.1: an entry's size is its name's and value's octets plus 32. */
export const ENTRY_OVERHEAD = 32;

/** Integers above this are implementation-limit errors (RFC 7541 §5.1 allows the limit). */
const MAX_INTEGER = 2 ** 31 - 1;

export type HpackResult =
  | {
      ok: true;
      headers: Header[];
      /** Indexes in `headers` of the fields sent as never-indexed literals (RFC 7541 §6.2.3: sensitive). */
      neverIndexed: number[];
      /** The list's size, RFC 9113 §6.5.2 measure, kept or not. */
      listBytes: number;
      /** True when fields past maxHeaderListBytes were decoded but not kept. */
      truncated: boolean;
    }
  | { ok: false; error: string };

export interface HpackDecoderOptions {
  /** See H2Limits.maxHeaderListBytes. */
  maxHeaderListBytes?: number;
  /** See H2Limits.maxHeaderTableSize: no SETTINGS can make the table larger. */
  maxTableSize?: number;
}

/** The dynamic table: a ring of entries, newest at index 0 (HPACK index 62). */
class DynamicTable {
  private names: string[] = new Array(16);
  private values: string[] = new Array(16);
  private head = 0;
  count = 0;
  size = 0;
  /** The size the encoder set (initially the SETTINGS default). */
  capacity: number;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  /** Entry i (0 = newest; i < count). */
  name(i: number): string {
    return this.names[(this.head + i) & (this.names.length - 1)];
  }
  value(i: number): string {
    return this.values[(this.head + i) & (this.values.length - 1)];
  }

  add(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    if (size > this.capacity) {
      /* RFC 7541 §4.4: an entry larger than the table empties it and is not added. */
      this.count = 0;
      this.size = 0;
      return;
    }
    this.evictTo(this.capacity - size);
    if (this.count === this.names.length) this.grow();
    this.head = (this.head - 1) & (this.names.length - 1);
    this.names[this.head] = name;
    this.values[this.head] = value;
    this.count++;
    this.size += size;
  }

  resize(capacity: number): void {
    this.capacity = capacity;
    this.evictTo(capacity);
  }

  private evictTo(room: number): void {
    const mask = this.names.length - 1;
    while (this.size > room && this.count > 0) {
      const last = (this.head + this.count - 1) & mask;
      this.size -= this.names[last].length + this.values[last].length + ENTRY_OVERHEAD;
      this.names[last] = '';
      this.values[last] = '';
      this.count--;
    }
  }

  private grow(): void {
    const n = this.names.length;
    const names: string[] = new Array(n * 2);
    const values: string[] = new Array(n * 2);
    for (let i = 0; i < this.count; i++) {
      names[i] = this.names[(this.head + i) & (n - 1)];
      values[i] = this.values[(this.head + i) & (n - 1)];
    }
    this.names = names;
    this.values = values;
    this.head = 0;
  }
}

export class HpackDecoder {
  private readonly table: DynamicTable;
  private readonly maxHeaderListBytes: number;
  private readonly maxTableSize: number;
  /** The largest size a table size update may set: the receiver's SETTINGS_HEADER_TABLE_SIZE (capped). */
  private settingsTableSize: number;
  /** The largest value announced since (size updates up to it are accepted). */
  private announcedTableSize: number;
  /** Set after a decoding error: the table is no longer what the encoder's is. */
  private broken: string | null = null;
  /** Scratch space for Huffman-decoded strings. */
  private scratch = Buffer.allocUnsafe(256);

  constructor(opts: HpackDecoderOptions = {}) {
    this.maxHeaderListBytes = opts.maxHeaderListBytes ?? DEFAULT_H2_LIMITS.maxHeaderListBytes;
    this.maxTableSize = opts.maxTableSize ?? DEFAULT_H2_LIMITS.maxHeaderTableSize;
    this.settingsTableSize = Math.min(DEFAULT_HEADER_TABLE_SIZE, this.maxTableSize);
    this.announcedTableSize = this.settingsTableSize;
    this.table = new DynamicTable(this.settingsTableSize);
  }

  /**
   * The receiver's SETTINGS_HEADER_TABLE_SIZE once the encoder has acknowledged it (its SETTINGS
   * ACK): the bound on the table size updates it may send. A lower value shrinks the table at once
   * (as nghttp2 does); a higher one waits for the encoder's size update. A value above maxTableSize
   * is held to it, and the returned text says so (null otherwise).
   */
  setSettingsTableSize(size: number): string | null {
    const capped = Math.min(size, this.maxTableSize);
    this.settingsTableSize = capped;
    this.announcedTableSize = capped;
    if (this.table.capacity > capped) this.table.resize(capped);
    return size > this.maxTableSize ? tooLarge(size, this.maxTableSize) : null;
  }

  /**
   * The receiver sent SETTINGS_HEADER_TABLE_SIZE, not yet acknowledged: an encoder that already read
   * it may use it, so size updates up to it are accepted from now on.
   */
  announceSettingsTableSize(size: number): string | null {
    this.announcedTableSize = Math.max(this.announcedTableSize, Math.min(size, this.maxTableSize));
    return size > this.maxTableSize ? tooLarge(size, this.maxTableSize) : null;
  }

  /** The table's current size (RFC measure) and bound, for tests and diagnostics. */
  get tableSize(): number {
    return this.table.size;
  }
  get tableCapacity(): number {
    return this.table.capacity;
  }

  /** The dynamic table, newest first (HPACK indexes 62, 63, …). */
  entries(): Header[] {
    const out: Header[] = [];
    for (let i = 0; i < this.table.count; i++) out.push([this.table.name(i), this.table.value(i)]);
    return out;
  }

  decode(block: Buffer): HpackResult {
    if (this.broken !== null) return { ok: false, error: `an earlier header block could not be decoded (${this.broken})` };
    const result = this.decodeBlock(block);
    if (!result.ok) this.broken = result.error;
    return result;
  }

  private decodeBlock(buf: Buffer): HpackResult {
    const headers: Header[] = [];
    const neverIndexed: number[] = [];
    let listBytes = 0;
    let truncated = false;
    let fieldsSeen = false;
    let o = 0;
    const end = buf.length;
    while (o < end) {
      const b = buf[o];
      let name: string;
      let value: string;
      let sensitive = false;
      if (b & 0x80) {
        /* Indexed header field (§6.1). */
        const index = this.integer(buf, o, 7);
        if (index < 0) return fail(index, o);
        o = this.next;
        if (index === 0) return { ok: false, error: 'indexed header field with index 0' };
        if (!this.lookup(index)) return { ok: false, error: `index ${index} is not in the static or dynamic table (${this.table.count} dynamic entries)` };
        name = this.foundName;
        value = this.foundValue;
      } else if ((b & 0xe0) === 0x20) {
        /* Dynamic table size update (§6.3): only at the start of a block, never above the SETTINGS bound. */
        const size = this.integer(buf, o, 5);
        if (size < 0) return fail(size, o);
        o = this.next;
        if (fieldsSeen) return { ok: false, error: 'dynamic table size update after a header field (RFC 7541 §4.2)' };
        const bound = Math.max(this.settingsTableSize, this.announcedTableSize);
        if (size > bound) return { ok: false, error: `dynamic table size update to ${size}, above the ${bound} bytes SETTINGS_HEADER_TABLE_SIZE allows${bound === this.maxTableSize ? ' (phonehome keeps at most that much per connection)' : ''}` };
        this.table.resize(size);
        continue;
      } else {
        /* Literal (§6.2): with incremental indexing (01), without (0000), never indexed (0001). */
        const indexing = (b & 0xc0) === 0x40;
        sensitive = (b & 0xf0) === 0x10;
        const prefix = indexing ? 6 : 4;
        const index = this.integer(buf, o, prefix);
        if (index < 0) return fail(index, o);
        o = this.next;
        if (index === 0) {
          const n = this.readString(buf, o);
          if (n === null) return { ok: false, error: this.stringError };
          name = n;
          o = this.next;
        } else {
          if (!this.lookup(index)) return { ok: false, error: `name index ${index} is not in the static or dynamic table (${this.table.count} dynamic entries)` };
          name = this.foundName;
        }
        const v = this.readString(buf, o);
        if (v === null) return { ok: false, error: this.stringError };
        value = v;
        o = this.next;
        if (indexing) this.table.add(name, value);
      }
      fieldsSeen = true;
      listBytes += name.length + value.length + ENTRY_OVERHEAD;
      if (listBytes > this.maxHeaderListBytes) truncated = true;
      else {
        if (sensitive) neverIndexed.push(headers.length);
        headers.push([name, value]);
      }
    }
    return { ok: true, headers, neverIndexed, listBytes, truncated };
  }

  /** Offset after the last integer or string read (kept here: no object per read). */
  private next = 0;
  private stringError = '';

  /**
   * An integer (§5.1) with an N-bit prefix at buf[o]; `next` is left after it. Negative results are
   * errors: -1 the block ended inside it, -2 it exceeds MAX_INTEGER (or has too many zero bytes).
   */
  private integer(buf: Buffer, o: number, prefixBits: number): number {
    const max = (1 << prefixBits) - 1;
    let value = buf[o] & max;
    o++;
    if (value === max) {
      for (let shift = 0; ; shift += 7) {
        if (o >= buf.length) return -1;
        if (shift > 28) return -2;
        const b = buf[o++];
        value += (b & 0x7f) * 2 ** shift;
        if (value > MAX_INTEGER) return -2;
        if ((b & 0x80) === 0) break;
      }
    }
    this.next = o;
    return value;
  }

  /** The entry at an HPACK index into foundName / foundValue; false when there is none. */
  private lookup(index: number): boolean {
    if (index <= STATIC_TABLE.length) {
      const entry = STATIC_TABLE[index - 1];
      this.foundName = entry[0];
      this.foundValue = entry[1];
      return true;
    }
    const i = index - STATIC_TABLE.length - 1;
    if (i >= this.table.count) return false;
    this.foundName = this.table.name(i);
    this.foundValue = this.table.value(i);
    return true;
  }
  private foundName = '';
  private foundValue = '';

  /** A string literal (§5.2) at buf[o]: its text, or null (stringError says why). */
  private readString(buf: Buffer, o: number): string | null {
    if (o >= buf.length) {
      this.stringError = 'header block ends where a string was expected';
      return null;
    }
    const huffman = (buf[o] & 0x80) !== 0;
    const length = this.integer(buf, o, 7);
    if (length < 0) {
      this.stringError = integerError(length, o);
      return null;
    }
    const start = this.next;
    if (length > buf.length - start) {
      this.stringError = `string of ${length} bytes runs past the end of the header block (${buf.length - start} left)`;
      return null;
    }
    const end = start + length;
    this.next = end;
    if (length === 0) return '';
    if (!huffman) return latin1(buf, start, end);
    const max = huffmanMaxDecodedLength(length);
    if (this.scratch.length < max) this.scratch = Buffer.allocUnsafe(Math.max(max, this.scratch.length * 2));
    const n = huffmanDecode(buf, start, end, this.scratch);
    if (n < 0) {
      this.stringError = `invalid Huffman-coded string at offset ${start} (bad padding or an EOS symbol)`;
      return null;
    }
    return n === 0 ? '' : latin1(this.scratch, 0, n);
  }
}

function tooLarge(size: number, max: number): string {
  return `SETTINGS_HEADER_TABLE_SIZE of ${size} is larger than the ${max} bytes phonehome keeps per connection (maxHeaderTableSize)`;
}

function integerError(code: number, o: number): string {
  return code === -1 ? `header block ends inside an integer at offset ${o}` : `integer at offset ${o} exceeds ${MAX_INTEGER} (RFC 7541 §5.1 implementation limit)`;
}

function fail(code: number, o: number): HpackResult {
  return { ok: false, error: integerError(code, o) };
}
