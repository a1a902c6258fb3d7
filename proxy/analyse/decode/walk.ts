/**
 * The recursion: a value (text or bytes) is offered to the decoders in a fixed order; the first
 * that accepts it unwraps it one layer, and whatever comes out is walked again. A value no decoder
 * accepts is a leaf field. Depth, fields, bytes and time are checked on the way down.
 */
import type { DecodeContext, Position } from './context';
import { base64Decoder } from './decoders/base64';
import { brotliDecoder, deflateDecoder, gzipDecoder } from './decoders/compress';
import { formBytesDecoder, formDecoder, semicolonPairsDecoder, urlDecoder } from './decoders/form';
import { evenHexDeclines, hexDecoder } from './decoders/hex';
import { jsonDecoder, jsonLinesDecoder } from './decoders/json';
import { jwtDecoder } from './decoders/jwt';
import { boundaryOf, multipartDecoder } from './decoders/multipart';
import { percentDecoder } from './decoders/percent';
import { grpcContentType, grpcDecoder } from './decoders/grpc';
import { protobufDecoder } from './decoders/protobuf';
import { xmlDecoder } from './decoders/xml';
import { Decoder, DecoderOutput, Entry, Hint, Payload, PlacedEntry, safeTry } from './registry';
import { AS_IS, DECLINED as SHAPE_DECLINED, EVEN_HEX, HEX_DECLINED, hexShapeAt, mightBeEncodedAt, NOT_HEX_SHAPED } from './leaf-shape';
import { ownCopy } from '../../own-copy';
import { firstSignificant, hasGzipMagic, hasZlibMagic, isMostlyPrintable } from './text';

/** Tried on text, in this order (cheap shape checks first, guessing encodings last). */
export const TEXT_DECODERS: Decoder[] = [jsonDecoder, jsonLinesDecoder, xmlDecoder, jwtDecoder, urlDecoder, formDecoder, semicolonPairsDecoder, percentDecoder, base64Decoder, hexDecoder];
/** Tried on bytes that are not text. */
export const BYTE_DECODERS: Decoder[] = [gzipDecoder, deflateDecoder, multipartDecoder, protobufDecoder];
/** What can read text made only of hex digits and dashes: the others need braces, '<', '=', '%', '://', 'eyJ' or letters beyond f. */
const HEX_ONLY: Decoder[] = [hexDecoder];
/** Every decoder, for the dashboard's explanations. */
export const ALL_DECODERS: Decoder[] = [...TEXT_DECODERS, gzipDecoder, deflateDecoder, brotliDecoder, multipartDecoder, protobufDecoder, grpcDecoder];

/** Decoded strings up to this length are also kept as they were sent (cheap insurance against a wrong guess). */
const KEEP_ORIGINAL_MAX = 64;
/** Binary leaves up to this size are kept as hex (raw MAC addresses, hashes); bigger ones are skipped. */
const HEX_LEAF_MAX_BYTES = 64;

/** Longer texts are not remembered as undecodable: V8 hashes long strings by length alone, so a Set of them degrades. */
const MEMO_MAX_LENGTH = 1024;

const NONE: Decoder[] = [];
const NO_HINT: Hint = Object.freeze({});

/** Decoders a Content-Type asks for, tried before sniffing. */
export function declaredDecoders(contentType: string | undefined): Decoder[] {
  if (!contentType) return [];
  /* gRPC's messages are unframed first; a body that is not framed after all is tried as one message. */
  if (grpcContentType(contentType)) return [grpcDecoder, protobufDecoder];
  const ct = contentType.toLowerCase();
  if (ct.includes('json')) return [jsonDecoder];
  if (ct.includes('x-www-form-urlencoded')) return [formBytesDecoder, formDecoder];
  if (ct.includes('multipart/')) return [multipartDecoder];
  if (ct.includes('xml')) return [xmlDecoder];
  if (ct.includes('protobuf') || ct.includes('x-protobuffer') || ct.includes('grpc')) return [protobufDecoder];
  if (ct.includes('gzip')) return [gzipDecoder];
  return [];
}

/** A Content-Type's declared decoders, split by what they read; built once per distinct Content-Type. */
interface Declared {
  text: Decoder[];
  bytes: Decoder[];
  /** The Content-Type names a multipart boundary. */
  boundary: boolean;
  /** A declared decoder reads the bytes as a stream, announcing its work to the time budget piece by piece (forms). */
  streams: boolean;
}

const NO_DECLARED: Declared = { text: NONE, bytes: NONE, boundary: false, streams: false };
const DECLARED_CACHE = new Map<string, Declared>();
const DECLARED_CACHE_MAX = 256;
/** The Content-Type last asked for: a body's bytes and then its text ask for the same string. */
let lastContentType: string | undefined;
let lastDeclared: Declared = NO_DECLARED;

function declaredFor(contentType: string | undefined): Declared {
  if (!contentType) return NO_DECLARED;
  if (contentType === lastContentType) return lastDeclared;
  let d = DECLARED_CACHE.get(contentType);
  if (d === undefined) {
    const all = declaredDecoders(contentType);
    const boundary = boundaryOf(contentType) !== null;
    d = all.length || boundary
      ? { text: all.filter((x) => x.accepts === 'text'), bytes: all.filter((x) => x.accepts === 'bytes'), boundary, streams: all.includes(formBytesDecoder) }
      : NO_DECLARED;
    if (DECLARED_CACHE.size >= DECLARED_CACHE_MAX) DECLARED_CACHE.clear();
    if (contentType.length <= 256) DECLARED_CACHE.set(ownCopy(contentType), d);
  }
  /* Kept only when short: a long one may be a slice of a big header block. */
  if (contentType.length <= 64) {
    lastContentType = ownCopy(contentType);
    lastDeclared = d;
  }
  return d;
}


/** The same hint, marked as naming the decoder's format. */
function declaredHint(hint: Hint): Hint {
  if (hint.grpcEncoding !== undefined) return { contentType: hint.contentType, declared: true, grpcEncoding: hint.grpcEncoding };
  return { contentType: hint.contentType, declared: true };
}

/** Compressed and multipart bodies are recognised by their first bytes, declared or not. */
const SNIFFED_BYTE_DECODERS: Decoder[] = [gzipDecoder, deflateDecoder, multipartDecoder];

function join(parent: string, segment: string): string {
  return parent ? `${parent}>${segment}` : segment;
}

/** `leaf`: the placed entry being walked, if any; when it is the leaf, it is emitted as it is (no copy). */
function emitLeaf(ctx: DecodeContext, value: Payload, pos: Position, leaf?: PlacedEntry): void {
  if (typeof value === 'string') {
    if (firstSignificant(value) >= 0) {
      if (leaf !== undefined && leaf.value === value) ctx.emitField(leaf);
      else ctx.emit(pos, value);
    }
    return;
  }
  if (value.length === 0) return;
  if (isMostlyPrintable(value)) ctx.emit(pos, value.toString('utf8'));
  else if (value.length <= HEX_LEAF_MAX_BYTES) ctx.emit(pos, value.toString('hex'));
}

function applyOutput(ctx: DecodeContext, decoder: Decoder, out: DecoderOutput, pos: Position): void {
  if (out.kind === 'transform') {
    const next: Position = { path: join(pos.path, decoder.type), key: pos.key, keyPath: pos.keyPath, value: '', chain: [...pos.chain, decoder.type], group: pos.group };
    walkValue(ctx, out.data, next, { contentType: out.contentType });
    return;
  }
  if (out.kind === 'placed') {
    /* Placed entries carry their whole chain: a leaf entry is the field itself. */
    const { entries, leaves } = out;
    for (let i = 0; i < entries.length; i++) {
      if (ctx.stopped) return;
      const e = entries[i]!;
      const leaf = leaves[i];
      if (leaf === AS_IS) ctx.emitField(e);
      else if (e.chain.length < ctx.limits.maxDepth && (leaf === SHAPE_DECLINED || declinedByAll(e.value, ctx))) {
        /* What walkValue would do with it, without a Position: keep it as a leaf. */
        if (ctx.outOfTime(e.value.length)) return;
        if (firstSignificant(e.value) >= 0) ctx.emitField(e);
      } else walkValue(ctx, e.value, e, NO_HINT, e); /* the entry is its own Position */
    }
    return;
  }
  /* Entries of one document share their chain and, record by record, their group: build each once. */
  const shared: SharedParts = { entryChain: null, chain: [], groupSegment: null, group: '' };
  if (out.kind === 'stream') {
    const stream = out.stream;
    while (!ctx.stopped) {
      const entry = stream.next();
      if (entry === null) break;
      walkEntry(ctx, entry, pos, shared);
    }
    if (!stream.done) ctx.note(`${decoder.type} at ${pos.path || 'body'} read up to ${stream.unit} ${stream.offset} of ${stream.length}; the rest was not read`);
    return;
  }
  for (const entry of out.entries) {
    if (ctx.stopped) return;
    walkEntry(ctx, entry, pos, shared);
  }
}

interface SharedParts {
  entryChain: string[] | null;
  chain: string[];
  groupSegment: string | null;
  group: string;
}

export function walkEntry(ctx: DecodeContext, entry: Entry, pos: Position, shared?: SharedParts): void {
  let chain: string[];
  let group: string;
  if (shared) {
    if (shared.entryChain !== entry.chain) {
      shared.entryChain = entry.chain;
      shared.chain = [...pos.chain, ...entry.chain];
    }
    if (shared.groupSegment !== entry.groupSegment) {
      shared.groupSegment = entry.groupSegment;
      shared.group = join(pos.path, entry.groupSegment);
    }
    chain = shared.chain;
    group = shared.group;
  } else {
    /* At the root (URL parts), the entry's chain is the whole chain: shared as it is (chains are never changed). */
    chain = pos.chain.length ? [...pos.chain, ...entry.chain] : entry.chain;
    group = join(pos.path, entry.groupSegment);
  }
  const path = join(pos.path, entry.segment);
  const keyPath = pos.keyPath.length ? [...pos.keyPath, ...entry.keyPath] : entry.keyPath;
  if (entry.scalar) {
    ctx.emitPlaced(path, entry.key, keyPath, typeof entry.value === 'string' ? entry.value : entry.value.toString('utf8'), chain, group);
    return;
  }
  const value = entry.value;
  if (typeof value === 'string' && !entry.contentType && chain.length < ctx.limits.maxDepth && declinedByAll(value, ctx)) {
    /* What walkValue would do with it (a leaf), without a Position. */
    if (ctx.stopped || ctx.outOfTime(value.length)) return;
    if (firstSignificant(value) >= 0) ctx.emitPlaced(path, entry.key, keyPath, value, chain, group);
    return;
  }
  const child: Position = { path, key: entry.key, keyPath, value: '', chain, group };
  const hint: Hint = entry.contentType ? { contentType: entry.contentType } : NO_HINT;
  walkValue(ctx, entry.value, child, hint);
}

function mightBeEncoded(text: string): boolean {
  return mightBeEncodedAt(text, 0, text.length);
}

/**
 * True for text every text decoder declines, decided in place: short plain tokens, UUIDs, digit
 * strings, odd-length hex, and hex that decodes to noise (hashes, random IDs).
 */
function declinedByAll(text: string, ctx: DecodeContext): boolean {
  if (!mightBeEncoded(text)) return true;
  /* Of all text decoders only hex reads text of hex digits and dashes. */
  return hexShapedDeclines(text, ctx) === HEX_DECLINED;
}

/**
 * hexShapeAt of the whole text, with HEX_DECLINED also for even hex the hex decoder declines now
 * (noise, or more bytes than the budget has left): EVEN_HEX is then hex it may read.
 */
function hexShapedDeclines(text: string, ctx: DecodeContext): number {
  const shape = hexShapeAt(text, 0, text.length);
  return shape === EVEN_HEX && evenHexDeclines(text, ctx) ? HEX_DECLINED : shape;
}

/** Decodes one value as far as it goes, emitting leaf fields into ctx. */
/** `leaf`: the placed entry whose value this is (see emitLeaf). */
export function walkValue(ctx: DecodeContext, value: Payload, pos: Position, hint: Hint = NO_HINT, leaf?: PlacedEntry): void {
  if (ctx.stopped || ctx.outOfTime(upfrontWork(value, hint))) return;
  if (pos.chain.length >= ctx.limits.maxDepth) {
    ctx.hit('maxDepth', `decoding depth limit of ${ctx.limits.maxDepth} reached at ${pos.path}; the value there is kept as it is`);
    emitLeaf(ctx, value, pos, leaf);
    return;
  }
  ctx.at = pos.path || 'body';
  ctx.position = pos;
  if (typeof value !== 'string') {
    walkBytes(ctx, value, pos, hint);
    return;
  }
  if (!hint.contentType && !mightBeEncoded(value)) {
    emitLeaf(ctx, value, pos, leaf);
    return;
  }
  const declared = declaredFor(hint.contentType).text;
  for (const decoder of declared) {
    const out = safeTry(decoder, value, ctx, declaredHint(hint));
    if (out) return applyOutput(ctx, decoder, out, pos);
  }
  /* Hashes, UUIDs and digit strings (most long values of a batch): of all text decoders only hex can read them. */
  const hexShape = hint.contentType ? NOT_HEX_SHAPED : hexShapedDeclines(value, ctx);
  if (hexShape === HEX_DECLINED) {
    emitLeaf(ctx, value, pos, leaf);
    return;
  }
  const hexShaped = hexShape === EVEN_HEX;
  const sniffers = hexShaped ? HEX_ONLY : TEXT_DECODERS;
  const memoable = !hexShaped && !hint.contentType && value.length <= MEMO_MAX_LENGTH && ctx.decodedBytesLeft() >= value.length;
  if (memoable && ctx.knownUndecodable(value)) {
    emitLeaf(ctx, value, pos, leaf);
    return;
  }
  const notesBefore = ctx.notes.length;
  const hitsBefore = ctx.limitsHit.length;
  const sniffHint: Hint = hint.contentType ? { contentType: hint.contentType } : NO_HINT;
  for (const decoder of sniffers) {
    if (declared.length && declared.includes(decoder)) continue;
    const out = safeTry(decoder, value, ctx, sniffHint);
    if (!out) continue;
    if (out.kind === 'transform' && value.length <= KEEP_ORIGINAL_MAX && (decoder === base64Decoder || decoder === hexDecoder)) {
      emitLeaf(ctx, value, pos, leaf);
    }
    return applyOutput(ctx, decoder, out, pos);
  }
  /* Remembered only when the budget could not have been the reason (decoders spend at most the text's length). */
  if (memoable && ctx.notes.length === notesBefore && ctx.limitsHit.length === hitsBefore) ctx.rememberUndecodable(value);
  emitLeaf(ctx, value, pos, leaf);
}

/**
 * Work announced to the time budget before a value is decoded: its length, except for bytes a
 * declared decoder streams (it announces them as it reads, so a big body's first values are read
 * even when reading all of it would take longer than the budget).
 */
function upfrontWork(value: Payload, hint: Hint): number {
  return typeof value === 'string' || hint.contentType === undefined || !declaredFor(hint.contentType).streams ? value.length : 0;
}

/** False when a sniffing decoder certainly declines the bytes (no magic bytes, no boundary): the common case, without a call. */
function maySniff(decoder: Decoder, bytes: Buffer, declared: Declared): boolean {
  if (decoder === gzipDecoder) return hasGzipMagic(bytes);
  if (decoder === deflateDecoder) return hasZlibMagic(bytes);
  if (decoder === multipartDecoder) return declared.boundary || (bytes.length >= 4 && bytes[0] === 0x2d && bytes[1] === 0x2d);
  return true;
}

function walkBytes(ctx: DecodeContext, bytes: Buffer, pos: Position, hint: Hint): void {
  if (bytes.length === 0) return;
  const declaredAll = declaredFor(hint.contentType);
  const declared = declaredAll.bytes;
  for (const decoder of declared) {
    const out = safeTry(decoder, bytes, ctx, declaredHint(hint));
    if (out) return applyOutput(ctx, decoder, out, pos);
  }
  /* Declined by the streaming decoder: what follows reads the whole value, so its size is announced now. */
  if (declaredAll.streams && ctx.outOfTime(bytes.length)) return;
  const sniffHint: Hint = hint.contentType ? { contentType: hint.contentType } : NO_HINT;
  for (const decoder of SNIFFED_BYTE_DECODERS) {
    if (declared.includes(decoder) || !maySniff(decoder, bytes, declaredAll)) continue;
    const out = safeTry(decoder, bytes, ctx, sniffHint);
    if (out) return applyOutput(ctx, decoder, out, pos);
  }
  if (isMostlyPrintable(bytes)) {
    /* walkValue reads only the hint's contentType: the same hint goes on. */
    walkValue(ctx, bytes.toString('utf8'), pos, hint);
    return;
  }
  if (!declared.includes(protobufDecoder)) {
    const out = safeTry(protobufDecoder, bytes, ctx, {});
    if (out) return applyOutput(ctx, protobufDecoder, out, pos);
  }
  emitLeaf(ctx, bytes, pos);
}
