/**
 * gzip, deflate (zlib-wrapped or raw) and brotli, always bounded: the output may not exceed the
 * ratio limit nor what is left of the per-flow decoded-bytes budget. A decompression bomb is cut
 * at the limit (keeping what came before the cut) and noted; it never costs more than the limit,
 * and large expansions also stop when the flow's time budget is spent.
 */
import * as zlib from 'node:zlib';
import type { DecodeContext } from '../context';
import { RATIO_FLOOR_INPUT_BYTES } from '../limits';
import { transformed, type Decoder, type DecoderOutput, type Payload } from '../registry';
import { hasGzipMagic, hasZlibMagic } from '../text';

export type Compression = 'gzip' | 'deflate' | 'br';

function isTooLarge(err: unknown): boolean {
  return !!err && typeof err === 'object' && ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError);
}

/** Allowances up to this size are decompressed in one go, as zlib.*Sync would (all or nothing); larger ones incrementally, watching the clock. */
const ONE_SHOT_MAX_OUTPUT = 8 * 1024 * 1024;
/** Output window of the one-go pass: zlib's default chunk, the one zlib.*Sync writes into. */
const ONE_SHOT_OUTPUT_BYTES = 16 * 1024;
/** Output window of the incremental decompressor. */
const STEP_OUTPUT_BYTES = 64 * 1024;

/** The synchronous zlib handle Node itself drives in zlib.*Sync (node:zlib processChunkSync). */
interface ZlibHandle {
  writeSync(flush: number, input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): void;
}
interface EngineInternals {
  _handle?: ZlibHandle | null;
  _writeState?: Uint32Array;
  destroyed: boolean;
  on(event: 'error', listener: () => void): unknown;
  reset(): void;
  close(): void;
}

function makeEngine(kind: Compression, rawDeflate: boolean): EngineInternals {
  let engine: EngineInternals;
  if (kind === 'gzip') engine = zlib.createGunzip() as unknown as EngineInternals;
  else if (kind === 'br') engine = zlib.createBrotliDecompress() as unknown as EngineInternals;
  else engine = (rawDeflate ? zlib.createInflateRaw() : zlib.createInflate()) as unknown as EngineInternals;
  engine.on('error', () => undefined);
  return engine;
}

function usable(engine: EngineInternals): boolean {
  const handle = engine._handle;
  const state = engine._writeState;
  return !!handle && typeof handle.writeSync === 'function' && ArrayBuffer.isView(state) && state.length >= 2;
}

/**
 * One decompressor per kind, reset between uses: zlib.*Sync builds a stream and a native zlib
 * state (tens of KB outside the heap) for every call, which on a busy proxy is garbage and GC
 * pressure per flow. An engine that failed is destroyed by Node and replaced on next use.
 */
const pool = new Map<string, EngineInternals>();

function borrow(kind: Compression, rawDeflate: boolean): EngineInternals {
  const name = poolName(kind, rawDeflate);
  const pooled = pool.get(name);
  if (pooled && !pooled.destroyed) {
    try {
      pooled.reset();
      if (!pooled.destroyed) return pooled;
    } catch {
      /* a handle that cannot be reset is replaced */
    }
  }
  const engine = makeEngine(kind, rawDeflate);
  pool.set(name, engine);
  return engine;
}

function poolName(kind: Compression, rawDeflate: boolean): string {
  return rawDeflate ? 'deflate-raw' : kind;
}

function discard(kind: Compression, rawDeflate: boolean, engine: EngineInternals): void {
  if (!engine.destroyed) engine.close();
  if (pool.get(poolName(kind, rawDeflate)) === engine) pool.delete(poolName(kind, rawDeflate));
}

/** Pooled engines that failed are dropped (Node destroyed them); the others stay for the next flow. */
function giveBack(kind: Compression, rawDeflate: boolean, engine: EngineInternals): void {
  if (engine.destroyed) discard(kind, rawDeflate, engine);
}

interface Inflated {
  bytes: Buffer;
  /** More output was there than the allowance. */
  overflow: boolean;
  /** Stopped by the time budget. */
  interrupted: boolean;
  /** The data was invalid before anything came out. */
  failed: boolean;
}

/**
 * What zlib.*Sync with maxOutputLength does, on a reused engine: the same native calls into the
 * same 16 KB windows, so the same answer: all the output, 'too-large' once more than `max` came
 * out, or 'invalid' when the data is bad anywhere (nothing is kept then, as zlib.*Sync keeps nothing).
 */
function inflateAtOnce(kind: Compression, rawDeflate: boolean, input: Buffer, max: number): Buffer | 'too-large' | 'invalid' {
  const engine = borrow(kind, rawDeflate);
  if (!usable(engine)) {
    discard(kind, rawDeflate, engine);
    return inflateAtOnceFresh(kind, rawDeflate, input, max);
  }
  const handle = engine._handle!;
  const state = engine._writeState!;
  const flush = kind === 'br' ? zlib.constants.BROTLI_OPERATION_FLUSH : zlib.constants.Z_SYNC_FLUSH;
  const parts: Buffer[] = [];
  let total = 0;
  let inOff = 0;
  let availIn = input.length;
  /* Invalid data makes zlib build an Error nobody reads: without its stack trace (most of its cost; sniffed noise is often invalid). */
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    for (;;) {
      const window = Buffer.allocUnsafe(ONE_SHOT_OUTPUT_BYTES);
      handle.writeSync(flush, input, inOff, availIn, window, 0, ONE_SHOT_OUTPUT_BYTES);
      if (engine.destroyed) return 'invalid';
      const availOutAfter = state[0]!;
      const availInAfter = state[1]!;
      const have = ONE_SHOT_OUTPUT_BYTES - availOutAfter;
      if (have > 0) {
        parts.push(have === ONE_SHOT_OUTPUT_BYTES ? window : window.subarray(0, have));
        total += have;
        if (total > max) return 'too-large';
      }
      if (availOutAfter !== 0) break;
      inOff += availIn - availInAfter;
      availIn = availInAfter;
    }
  } catch {
    if (!engine.destroyed) engine.close();
    return 'invalid';
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
    giveBack(kind, rawDeflate, engine);
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, total);
}

/** zlib.*Sync itself, for a Node whose internals are not what inflateAtOnce expects. */
function inflateAtOnceFresh(kind: Compression, rawDeflate: boolean, input: Buffer, max: number): Buffer | 'too-large' | 'invalid' {
  try {
    return oneShot(kind, rawDeflate, input, max);
  } catch (err) {
    return isTooLarge(err) ? 'too-large' : 'invalid';
  }
}

function oneShot(kind: Compression, rawDeflate: boolean, input: Buffer, max: number): Buffer {
  const opts = { maxOutputLength: Math.max(1, max) };
  if (kind === 'gzip') return zlib.gunzipSync(input, { ...opts, finishFlush: zlib.constants.Z_SYNC_FLUSH });
  if (kind === 'br') return zlib.brotliDecompressSync(input, { ...opts, finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH });
  if (rawDeflate) return zlib.inflateRawSync(input, { ...opts, finishFlush: zlib.constants.Z_SYNC_FLUSH });
  return zlib.inflateSync(input, { ...opts, finishFlush: zlib.constants.Z_SYNC_FLUSH });
}

/**
 * Decompresses until `max` bytes are out, keeping them: the same loop Node runs in zlib.*Sync,
 * but stopping at the allowance (or when `stop()` says the time is up) instead of throwing the
 * output away. Costs at most `max` plus one output window. Falls back to the largest input prefix
 * that fits if Node's internals ever change.
 */
function inflateIncrementally(kind: Compression, rawDeflate: boolean, input: Buffer, max: number, stop: () => boolean): Inflated {
  const engine = borrow(kind, rawDeflate);
  if (!usable(engine)) {
    discard(kind, rawDeflate, engine);
    const bytes = prefixFallback(kind, rawDeflate, input, max);
    return { bytes, overflow: true, interrupted: false, failed: bytes.length === 0 };
  }
  const handle = engine._handle!;
  const state = engine._writeState!;
  const flush = kind === 'br' ? zlib.constants.BROTLI_OPERATION_FLUSH : zlib.constants.Z_SYNC_FLUSH;
  const window = Buffer.allocUnsafe(STEP_OUTPUT_BYTES);
  const parts: Buffer[] = [];
  const result = { overflow: false, interrupted: false, failed: false };
  let total = 0;
  let inOff = 0;
  let availIn = input.length;
  try {
    for (;;) {
      if (stop()) {
        result.interrupted = true;
        break;
      }
      handle.writeSync(flush, input, inOff, availIn, window, 0, window.length);
      if (engine.destroyed) {
        result.failed = total === 0;
        break;
      }
      const availOutAfter = state[0]!;
      const availInAfter = state[1]!;
      const have = window.length - availOutAfter;
      const take = Math.min(have, max - total);
      if (take > 0) {
        parts.push(Buffer.from(window.subarray(0, take)));
        total += take;
      }
      if (have > take || (availOutAfter === 0 && total >= max)) {
        result.overflow = true;
        break;
      }
      const consumed = availIn - availInAfter;
      inOff += consumed;
      availIn = availInAfter;
      if (availOutAfter === 0) continue;
      if (availIn === 0 || (have === 0 && consumed === 0)) break;
    }
  } catch {
    result.failed = total === 0;
    if (!engine.destroyed) engine.close();
  } finally {
    giveBack(kind, rawDeflate, engine);
  }
  return { bytes: Buffer.concat(parts, total), ...result };
}

/** Halves the input until its decompressed prefix fits (at most 20 tries, each bounded by `max`). */
function prefixFallback(kind: Compression, rawDeflate: boolean, input: Buffer, max: number): Buffer {
  for (let len = input.length >> 1, tries = 0; len > 0 && tries < 20; len >>= 1, tries++) {
    try {
      return oneShot(kind, rawDeflate, input.subarray(0, len), max);
    } catch {
      /* still too large, or invalid: try a shorter prefix */
    }
  }
  return Buffer.alloc(0);
}

export interface Decompressed {
  bytes: Buffer;
  /** Name of the limit that cut the output, if any. */
  cutBy?: 'maxRatio' | 'maxDecodedBytes';
}

/** Bounded decompression; null when the input is not valid for this format at all. */
export function decompress(kind: Compression, input: Buffer, ctx: DecodeContext, where: string): Decompressed | null {
  const ratioCap = Math.max(input.length, RATIO_FLOOR_INPUT_BYTES) * ctx.limits.maxRatio;
  const budget = ctx.decodedBytesLeft();
  const max = Math.min(ratioCap, budget);
  const cutBy = ratioCap <= budget ? 'maxRatio' : 'maxDecodedBytes';
  if (max <= 0) {
    ctx.hit('maxDecodedBytes', `${kind} at ${where} not expanded: the decoded-bytes budget of ${ctx.limits.maxDecodedBytes} bytes is spent`);
    return null;
  }
  const rawDeflate = kind === 'deflate' && !hasZlibMagic(input);
  let inflated: Inflated | undefined;
  if (max <= ONE_SHOT_MAX_OUTPUT) {
    const once = inflateAtOnce(kind, rawDeflate, input, max);
    if (once === 'invalid') return null;
    if (once !== 'too-large') inflated = { bytes: once, overflow: false, interrupted: false, failed: false };
  }
  inflated ??= inflateIncrementally(kind, rawDeflate, input, max, () => ctx.outOfTime(Infinity));
  const { bytes } = inflated;
  if (inflated.failed || (bytes.length === 0 && input.length > 0 && kind !== 'br')) return null;
  ctx.spendDecoded(bytes.length);
  if (!inflated.overflow) return { bytes };
  if (cutBy === 'maxRatio') {
    ctx.hit('maxRatio', `${kind} at ${where} cut at ${bytes.length} bytes: it expands more than ${ctx.limits.maxRatio}:1 (a decompression bomb?)`);
  } else {
    ctx.hit('maxDecodedBytes', `${kind} at ${where} cut at ${bytes.length} bytes: the flow's decoded-bytes budget of ${ctx.limits.maxDecodedBytes} bytes is spent`);
  }
  return { bytes, cutBy };
}

function compressionDecoder(kind: Compression, sniff: (b: Buffer) => boolean, words: string): Decoder {
  return {
    type: kind,
    accepts: 'bytes',
    decode(input: Payload, ctx: DecodeContext, hint): DecoderOutput | null {
      if (typeof input === 'string') return null;
      if (!hint.declared && !sniff(input)) return null;
      const out = decompress(kind, input, ctx, ctx.at);
      return out ? transformed(out.bytes) : null;
    },
    explain: () => words,
  };
}

export const gzipDecoder = compressionDecoder('gzip', hasGzipMagic, 'gzip-compressed data, unpacked');
export const deflateDecoder = compressionDecoder('deflate', hasZlibMagic, 'zlib/deflate-compressed data, unpacked');
export const brotliDecoder = compressionDecoder('br', () => false, 'brotli-compressed data (declared by Content-Encoding), unpacked');
