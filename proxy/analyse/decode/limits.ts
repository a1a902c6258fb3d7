/**
 * Named limits for decoding hostile payloads. Every request body is attacker-controlled text, so each
 * way decoding can blow up (nesting, expansion, field count, field size, time) has a budget here.
 */

export interface DecodeLimits {
  /** Decoding steps stacked on one value (base64 inside gzip inside a form value...). */
  maxDepth: number;
  /** Bytes all decoders together may produce for one flow (decompression, base64, hex...). */
  maxDecodedBytes: number;
  /** Output/input ratio one decompression may reach, applied to max(input, RATIO_FLOOR_INPUT_BYTES). */
  maxRatio: number;
  /** Leaf fields kept per flow. */
  maxFields: number;
  /** Characters kept of one field's value (the rest is cut, decoding still saw it). */
  maxFieldLength: number;
  /** Wall-clock budget for decoding one flow. */
  timeBudgetMs: number;
}

/** Small inputs may always expand to this many bytes × maxRatio (a 1 KB gzip may still hold a 6.4 MiB page). */
export const RATIO_FLOOR_INPUT_BYTES = 64 * 1024;

export const DEFAULT_DECODE_LIMITS: Readonly<DecodeLimits> = Object.freeze({
  maxDepth: 8,
  maxDecodedBytes: 32 * 1024 * 1024,
  maxRatio: 100,
  maxFields: 5000,
  maxFieldLength: 64 * 1024,
  timeBudgetMs: 100,
});

export type LimitName = keyof DecodeLimits;

/** A budget given as a finite number ≥ 0, or the default. */
function pick(v: number | undefined, fallback: number): number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : fallback;
}

/** The defaults with whatever valid budgets `partial` sets (called per flow: written out, no key iteration). */
export function resolveLimits(partial?: Partial<DecodeLimits>): DecodeLimits {
  const d = DEFAULT_DECODE_LIMITS;
  if (!partial) return { maxDepth: d.maxDepth, maxDecodedBytes: d.maxDecodedBytes, maxRatio: d.maxRatio, maxFields: d.maxFields, maxFieldLength: d.maxFieldLength, timeBudgetMs: d.timeBudgetMs };
  return {
    maxDepth: pick(partial.maxDepth, d.maxDepth),
    maxDecodedBytes: pick(partial.maxDecodedBytes, d.maxDecodedBytes),
    maxRatio: pick(partial.maxRatio, d.maxRatio),
    maxFields: pick(partial.maxFields, d.maxFields),
    maxFieldLength: pick(partial.maxFieldLength, d.maxFieldLength),
    timeBudgetMs: pick(partial.timeBudgetMs, d.timeBudgetMs),
  };
}
