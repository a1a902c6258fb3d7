/**
 * gzip, deflate (zlib-wrapped or raw) and brotli, always bounded: the output may not exceed the
 * ratio limit nor what is left of the per-flow decoded-bytes budget. A decompression bomb is cut
 * at the limit (keeping what came before the cut) and noted; it never costs more than the limit.
 */
import * as zlib from 'node:zlib';
import type { DecodeContext } from '../context';
import { RATIO_FLOOR_INPUT_BYTES } from '../limits';
import type { Decoder, DecoderOutput, Payload } from '../registry';
import { hasGzipMagic, hasZlibMagic } from '../text';

export type Compression = 'gzip' | 'deflate' | 'br';

/** Input fed per step when re-decompressing a payload that overflowed, so the cut keeps its prefix. */
const STEP_INPUT_BYTES = 1024;

interface SyncEngine {
  _processChunk(chunk: Buffer, flushFlag: number): Buffer;
  close(): void;
}

function makeEngine(kind: Compression, rawDeflate: boolean, maxOutputLength: number): zlib.Gunzip | zlib.Inflate | zlib.InflateRaw | zlib.BrotliDecompress {
  const opts = { maxOutputLength: Math.max(1, maxOutputLength) };
  if (kind === 'gzip') return zlib.createGunzip({ ...opts, finishFlush: zlib.constants.Z_SYNC_FLUSH });
  if (kind === 'br') return zlib.createBrotliDecompress({ ...opts, finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH });
  if (rawDeflate) return zlib.createInflateRaw({ ...opts, finishFlush: zlib.constants.Z_SYNC_FLUSH });
  return zlib.createInflate({ ...opts, finishFlush: zlib.constants.Z_SYNC_FLUSH });
}

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

/**
 * Decompresses the prefix that fits in `max` bytes, feeding the input in small steps so that the
 * output produced before the limit is kept. Each step produces at most `max` bytes.
 */
function boundedPrefix(kind: Compression, rawDeflate: boolean, input: Buffer, max: number): Buffer {
  const parts: Buffer[] = [];
  let total = 0;
  const engine = makeEngine(kind, rawDeflate, max) as unknown as SyncEngine;
  const flush = kind === 'br' ? zlib.constants.BROTLI_OPERATION_FLUSH : zlib.constants.Z_SYNC_FLUSH;
  try {
    for (let off = 0; off < input.length && total < max; off += STEP_INPUT_BYTES) {
      let out: Buffer;
      try {
        out = engine._processChunk(input.subarray(off, off + STEP_INPUT_BYTES), flush);
      } catch {
        break;
      }
      if (total + out.length > max) out = out.subarray(0, max - total);
      parts.push(out);
      total += out.length;
    }
  } finally {
    try {
      engine.close();
    } catch {
      /* already closed by zlib after an error */
    }
  }
  return Buffer.concat(parts, total);
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
  let bytes: Buffer;
  let cut = false;
  try {
    bytes = oneShot(kind, rawDeflate, input, max);
  } catch (err) {
    if (!isTooLarge(err)) return null;
    bytes = boundedPrefix(kind, rawDeflate, input, max);
    cut = true;
  }
  if (bytes.length === 0 && input.length > 0 && kind !== 'br') return null;
  ctx.spendDecoded(bytes.length);
  if (!cut) return { bytes };
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
