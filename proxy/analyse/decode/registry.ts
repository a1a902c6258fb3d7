/**
 * The decoder contract. Each decoder is a small unit with a `type` (the word that appears in a
 * field's path and chain) and an `explain()` sentence the dashboard shows. A decoder that cannot
 * decode its input returns null; it never throws past `safeTry`.
 */
import type { DecodedField } from '../types';
import type { DecodeContext } from './context';

export type Payload = string | Buffer;

/** What the caller knows about a payload: the declared Content-Type, if any. */
export interface Hint {
  contentType?: string;
  /** True when the content type names this decoder's format, so plausibility checks may relax. */
  declared?: boolean;
  /** The request's grpc-encoding header: how compressed gRPC messages are compressed. */
  grpcEncoding?: string;
}

/** One value a structured decoder (JSON, form, XML, protobuf...) found. */
export interface Entry {
  /** Path segment appended after '>', e.g. `json:$.IMEI1`, `form:deviceinfo`, `url>query:imei`. */
  segment: string;
  /** Segment naming the enclosing record, e.g. `json:$.location`, `form`. */
  groupSegment: string;
  /** Decoder types this entry adds to the chain (usually just the decoder's own type). */
  chain: string[];
  key: string | null;
  /** Keys from the decoded document's root down to this value. */
  keyPath: string[];
  value: Payload;
  /** Numbers and booleans: emitted as they are, never decoded further. */
  scalar?: boolean;
  /** Content type of this entry (multipart parts). */
  contentType?: string;
}

/**
 * Every decoder makes its entries here: all properties present, in one order, so that entries of
 * every decoder share one hidden class. walkEntry reads entries of URLs, forms, protobuf, multipart...
 * and a class first met after it was optimized threw the optimized walker away.
 */
export function makeEntry(
  segment: string,
  groupSegment: string,
  chain: string[],
  key: string | null,
  keyPath: string[],
  value: Payload,
  scalar = false,
  contentType: string | undefined = undefined,
): Entry {
  return { segment, groupSegment, chain, key, keyPath, value, scalar, contentType };
}

/**
 * One value of a document a decoder read already placed (it knew the position it decoded at, from
 * DecodeContext.position): full path, group, key path and chain, so the walker joins nothing per
 * value, and a value that is a leaf becomes the field itself (no second object per leaf of a batch).
 */
export type PlacedEntry = DecodedField;

/**
 * A document's values handed out one at a time, in document order, as the walker asks for them: a
 * big body is read only as far as the walk gets before a budget ends it.
 */
export interface EntryStream {
  /** The next value, or null at the end (or when the stream itself ran out of time: then not `done`). */
  next(): Entry | null;
  /** True once every value was handed out. */
  readonly done: boolean;
  /** How far the input was read, and its length, in `unit`s ('byte' or 'character'), for the note when the walk stops early. */
  readonly offset: number;
  readonly length: number;
  readonly unit: string;
}

export type DecoderOutput =
  /** The same value, unwrapped one layer (base64 → bytes, gzip → bytes, percent → text). */
  | { kind: 'transform'; data: Payload; contentType?: string }
  /** A document split into values. */
  | { kind: 'fields'; entries: Entry[] }
  /** A document split into values, each already placed. */
  | { kind: 'placed'; entries: PlacedEntry[]; /** Per entry, what it needs (leaf-shape: AS_IS, DECLINED or WALK). */ leaves: number[] }
  /** A document read value by value while it is walked. */
  | { kind: 'stream'; stream: EntryStream };

/*
 * Decoders make their outputs with these three: every output has all properties, in one order,
 * whatever its kind, so the walker reading `out.kind` sees one hidden class; an output of a kind
 * first met after the walker was optimized threw the optimized walker away.
 */
function output(
  kind: DecoderOutput['kind'],
  data: Payload | undefined,
  contentType: string | undefined,
  entries: Entry[] | PlacedEntry[] | undefined,
  leaves: number[] | undefined,
  stream: EntryStream | undefined,
): DecoderOutput {
  return { kind, data, contentType, entries, leaves, stream } as DecoderOutput;
}

/** The same value, unwrapped one layer. */
export function transformed(data: Payload, contentType?: string): DecoderOutput {
  return output('transform', data, contentType, undefined, undefined, undefined);
}

/** A document split into values. */
export function fieldsOutput(entries: Entry[]): DecoderOutput {
  return output('fields', undefined, undefined, entries, undefined, undefined);
}

/** A document split into values, each already placed. */
export function placedOutput(entries: PlacedEntry[], leaves: number[]): DecoderOutput {
  return output('placed', undefined, undefined, entries, leaves, undefined);
}

/** A document read value by value while it is walked. */
export function streamOutput(stream: EntryStream): DecoderOutput {
  return output('stream', undefined, undefined, undefined, undefined, stream);
}

export interface Decoder {
  type: string;
  accepts: 'text' | 'bytes';
  decode(input: Payload, ctx: DecodeContext, hint: Hint): DecoderOutput | null;
  explain(): string;
}

/** Runs a decoder; any exception is a failed decode (errors are data, never a crash). */
export function safeTry(decoder: Decoder, input: Payload, ctx: DecodeContext, hint: Hint): DecoderOutput | null {
  try {
    return decoder.decode(input, ctx, hint);
  } catch {
    return null;
  }
}
