/**
 * Protocol Buffers without a schema: walks the wire format (varint, 64-bit, length-delimited,
 * 32-bit) and accepts a buffer only when all of it parses with plausible field numbers. Nested
 * messages are tried recursively; printable payloads become strings; the rest stays bytes.
 * Locators are field numbers (`protobuf:1.3.2`, `[n]` for repeats).
 */
import type { DecodeContext } from '../context';
import { fieldsOutput, makeEntry, type Decoder, type DecoderOutput, type Entry, type Payload } from '../registry';
import { isMostlyPrintable, isStrictlyPrintable, noStrings } from '../text';

/** Highest field number the wire format allows. */
const MAX_FIELD_NUMBER = 2 ** 29 - 1;
/** When nothing declared protobuf, larger field numbers are taken as a sign of noise. */
const MAX_SNIFFED_FIELD_NUMBER = 20000;
const MAX_PROTOBUF_NESTING = 32;

type Wire = 0 | 1 | 2 | 5;
interface RawField {
  num: number;
  wire: Wire;
  /** varint as bigint; fixed as the raw slice; length-delimited as the payload slice. */
  varint?: bigint;
  bytes?: Buffer;
}

/** Parses one message level; null unless the whole buffer is consumed by well-formed fields. */
function parseLevel(buf: Buffer, maxField: number): RawField[] | null {
  const fields: RawField[] = [];
  let i = 0;
  while (i < buf.length) {
    const key = readVarint(buf, i);
    if (!key) return null;
    i = key.next;
    const wire = Number(key.value & 7n);
    const num = Number(key.value >> 3n);
    if (num < 1 || num > maxField) return null;
    if (wire === 0) {
      const v = readVarint(buf, i);
      if (!v) return null;
      fields.push({ num, wire: 0, varint: v.value });
      i = v.next;
    } else if (wire === 1 || wire === 5) {
      const size = wire === 1 ? 8 : 4;
      if (i + size > buf.length) return null;
      fields.push({ num, wire, bytes: buf.subarray(i, i + size) });
      i += size;
    } else if (wire === 2) {
      const len = readVarint(buf, i);
      if (!len) return null;
      const n = Number(len.value);
      if (n > buf.length - len.next) return null;
      fields.push({ num, wire: 2, bytes: buf.subarray(len.next, len.next + n) });
      i = len.next + n;
    } else {
      return null;
    }
  }
  return fields.length ? fields : null;
}

function readVarint(buf: Buffer, at: number): { value: bigint; next: number } | null {
  let result = 0n;
  let shift = 0n;
  for (let i = at; i < buf.length && i < at + 10; i++) {
    const b = buf[i];
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return { value: result, next: i + 1 };
    shift += 7n;
  }
  return null;
}

/** True when the buffer parses as a message with plausible (sniffing-strict) field numbers. */
export function looksLikeProtobuf(buf: Buffer): boolean {
  try {
    return parseLevel(buf, MAX_SNIFFED_FIELD_NUMBER) !== null;
  } catch {
    return false;
  }
}

function varintText(v: bigint): string {
  return (v >= 1n << 63n ? v - (1n << 64n) : v).toString();
}

function fixedText(bytes: Buffer): string {
  if (bytes.length === 8) {
    const d = bytes.readDoubleLE(0);
    const a = Math.abs(d);
    if (Number.isFinite(d) && (d === 0 || (a > 1e-9 && a < 1e12))) return String(d);
    return bytes.readBigInt64LE(0).toString();
  }
  const f = bytes.readFloatLE(0);
  const a = Math.abs(f);
  if (Number.isFinite(f) && f !== 0 && a > 1e-6 && a < 1e9) return String(Math.fround(f));
  return bytes.readInt32LE(0).toString();
}

/** Wire format → entries, trying nested messages under every length-delimited field. */
function flatten(buf: Buffer, maxField: number, ctx: DecodeContext): Entry[] | null {
  const top = parseLevel(buf, maxField);
  if (!top) return null;
  const entries: Entry[] = [];
  const walk = (fields: RawField[], locator: string, keyPath: string[], nesting: number) => {
    const counts = new Map<number, number>();
    for (const f of fields) counts.set(f.num, (counts.get(f.num) ?? 0) + 1);
    const seen = new Map<number, number>();
    for (const f of fields) {
      if (entries.length >= ctx.limits.maxFields) return;
      const nth = seen.get(f.num) ?? 0;
      seen.set(f.num, nth + 1);
      const name = `${f.num}${counts.get(f.num)! > 1 ? `[${nth}]` : ''}`;
      const loc = locator ? `${locator}.${name}` : name;
      const key = String(f.num);
      const kp = [...keyPath, key];
      const segment = `protobuf:${loc}`;
      const groupSegment = locator ? `protobuf:${locator}` : 'protobuf';
      if (f.wire === 0) {
        entries.push(makeEntry(segment, groupSegment, ['protobuf'], key, kp, varintText(f.varint!), true));
      } else if (f.wire !== 2) {
        entries.push(makeEntry(segment, groupSegment, ['protobuf'], key, kp, fixedText(f.bytes!), true));
      } else {
        const payload = f.bytes!;
        if (payload.length === 0) continue;
        if (isStrictlyPrintable(payload)) {
          entries.push(makeEntry(segment, groupSegment, ['protobuf'], key, kp, payload.toString('utf8')));
          continue;
        }
        const nested = nesting < MAX_PROTOBUF_NESTING ? parseLevel(payload, maxField) : null;
        if (nested) walk(nested, loc, kp, nesting + 1);
        else if (isMostlyPrintable(payload)) entries.push(makeEntry(segment, groupSegment, ['protobuf'], key, kp, payload.toString('utf8')));
        else entries.push(makeEntry(segment, groupSegment, ['protobuf'], key, kp, payload));
      }
    }
  };
  walk(top, '', noStrings(), 0);
  return entries;
}

export const protobufDecoder: Decoder = {
  type: 'protobuf',
  accepts: 'bytes',
  decode(input: Payload, ctx: DecodeContext, hint): DecoderOutput | null {
    if (typeof input === 'string' || input.length < 2) return null;
    const entries = flatten(input, hint.declared ? MAX_FIELD_NUMBER : MAX_SNIFFED_FIELD_NUMBER, ctx);
    return entries ? fieldsOutput(entries) : null;
  },
  explain: () => 'Protocol Buffers (binary) read without a schema; fields are numbered as on the wire',
};
