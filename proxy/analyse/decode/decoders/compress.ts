/**
 * gzip, deflate (zlib-wrapped or raw) and brotli, always bounded: the output may not exceed the
 * ratio limit nor what is left of the per-flow decoded-bytes budget. A decompression bomb is cut
 * at the limit (keeping what came before the cut) and noted; it never costs more than the limit,
 * and large expansions also stop when the flow's time budget is spent.
 */
import * as zlib from 'node:zlib';
import type { DecodeContext } from '../context';
import { RATIO_FLOOR_INPUT_BYTES } from '../limits';
import type { Decoder, DecoderOutput, Payload } from '../registry';
import { hasGzipMagic, hasZlibMagic } from '../text';

export type Compression = 'gzip' | 'deflate' | 'br';

function oneShot(kind: Compression, rawDeflate: boolean, input: Buffer, max: number): Buffer {
  const opts = { maxOutputLength: Math.max(1, max) };
  if (kind === 'gzip') return zlib.gunzipSync(input, { ...opts, finishFlush: zlib.constants.Z_SYNC_FLUSH });
  if (kind === 'br') return zlib.brotliDecompressSync(input, { ...opts, finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH });
  if (rawDeflate) return zlib.inflateRawSync(input, { ...opts, finishFlush: zlib.constants.Z_SYNC_FLUSH });
  return zlib.inflateSync(input, { ...opts, finishFlush: zlib.constants.Z_SYNC_FLUSH });
}

function isTooLarge(err: unknown): boolean {
  return !!err && typeof err === 'object' && ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError);
}

/** Allowances up to this size are decompressed in one native call (bounded by maxOutputLength); larger ones incrementally, watching the clock. */
const ONE_SHOT_MAX_OUTPUT = 8 * 1024 * 1024;
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
  close(): void;
}

function makeEngine(kind: Compression, rawDeflate: boolean): EngineInternals {
  if (kind === 'gzip') return zlib.createGunzip() as unknown as EngineInternals;
  if (kind === 'br') return zlib.createBrotliDecompress() as unknown as EngineInternals;
  return (rawDeflate ? zlib.createInflateRaw() : zlib.createInflate()) as unknown as EngineInternals;
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
 * Decompresses until `max` bytes are out, keeping them: the same loop Node runs in zlib.*Sync,
 * but stopping at the allowance (or when `stop()` says the time is up) instead of throwing the
 * output away. Costs at most `max` plus one output window. Falls back to the largest input prefix
 * that fits if Node's internals ever change.
 */
function inflateIncrementally(kind: Compression, rawDeflate: boolean, input: Buffer, max: number, stop: () => boolean): Inflated {
  const engine = makeEngine(kind, rawDeflate);
  engine.on('error', () => undefined);
  const handle = engine._handle;
  const state = engine._writeState;
  if (!handle || typeof handle.writeSync !== 'function' || !ArrayBuffer.isView(state) || state.length < 2) {
    engine.close();
    const bytes = prefixFallback(kind, rawDeflate, input, max);
    return { bytes, overflow: true, interrupted: false, failed: bytes.length === 0 };
  }
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
      const availOutAfter = state[0];
      const availInAfter = state[1];
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
  } finally {
    if (!engine.destroyed) engine.close();
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
    try {
      const bytes = oneShot(kind, rawDeflate, input, max);
      inflated = { bytes, overflow: false, interrupted: false, failed: false };
    } catch (err) {
      if (!isTooLarge(err)) return null;
    }
  }
  inflated ??= inflateIncrementally(kind, rawDeflate, input, max, () => ctx.outOfTime());
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
      return out ? { kind: 'transform', data: out.bytes } : null;
    },
    explain: () => words,
  };
}

export const gzipDecoder = compressionDecoder('gzip', hasGzipMagic, 'gzip-compressed data, unpacked');
export const deflateDecoder = compressionDecoder('deflate', hasZlibMagic, 'zlib/deflate-compressed data, unpacked');
export const brotliDecoder = compressionDecoder('br', () => false, 'brotli-compressed data (declared by Content-Encoding), unpacked');
