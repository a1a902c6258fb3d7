/**
 * Decode: turn what a phone sent into leaf fields, unwrapping every encoding on the way (see
 * DESIGN.md). Pure and bounded: no I/O, never throws, and every way hostile input could make it
 * expensive is capped by a named limit in DecodeLimits.
 */
import type { Flow } from '../../flow';
import type { DecodeResult } from '../types';
import { DecodeContext, type Position } from './context';
import { DEFAULT_DECODE_LIMITS, resolveLimits, type DecodeLimits } from './limits';
import { decodeDnsName } from './dns-name';
import { decodeBody, decodeRequest } from './request';
import { ALL_DECODERS } from './walk';

export { DEFAULT_DECODE_LIMITS, RATIO_FLOOR_INPUT_BYTES } from './limits';
export type { DecodeLimits } from './limits';
export type { Decoder } from './registry';
export { ALL_DECODERS } from './walk';

function finish(ctx: DecodeContext): DecodeResult {
  return { fields: ctx.fields, notes: ctx.notes, limitsHit: ctx.limitsHit, decodedBytes: ctx.decodedBytes };
}

/**
 * An empty context from the latest flow, kept alive on purpose. V8's optimized decoding code is
 * specialised for the hidden class of DecodeContext; when no context is alive at a full GC, that
 * class is freed and every such function is deoptimized, so the flows after each full GC ran
 * unoptimized while all of it was compiled again (1-20 ms spikes, seen with --trace-deopt as
 * "weak objects"). A fresh one per flow keeps the class the current flows use (one built at load
 * did not: its class is replaced while the first flows run).
 */
const shapeKeeper: { context?: DecodeContext } = {};

/** The kept context never decodes: it needs no reading of the clock. */
const noClock = (): number => 0;
const KEEPER_RENEW_EVERY = 64;
let flowsSinceKeeper = 0;

function guarded(limits: Partial<DecodeLimits> | undefined, work: (ctx: DecodeContext) => void): DecodeResult {
  const ctx = new DecodeContext(resolveLimits(limits));
  try {
    work(ctx);
  } catch (err) {
    ctx.note(`decoding stopped early: ${err instanceof Error ? err.message : String(err)}`);
  }
  /* Renewed every KEEPER_RENEW_EVERY flows: the class settles in the first flows and stays (renewing costs a context). */
  if (++flowsSinceKeeper % KEEPER_RENEW_EVERY === 1) shapeKeeper.context = new DecodeContext(ctx.limits, noClock);
  return finish(ctx);
}

/** Fields of everything the phone sent in this flow: URL, request headers, request body. */
export function decodeFlow(flow: Flow, limits?: Partial<DecodeLimits>): DecodeResult {
  return guarded(limits, (ctx) => {
    decodeRequest(ctx, flow);
    if (flow.kind === 'dns') decodeDnsName(ctx, flow);
  });
}

/** Fields of one payload, as if it were a request body with this Content-Type (and Content-Encoding, and grpc-encoding). */
export function decodeBytes(bytes: Buffer, contentType: string | undefined, limits?: Partial<DecodeLimits>, contentEncoding?: string, grpcEncoding?: string): DecodeResult {
  return guarded(limits, (ctx) => decodeBody(ctx, bytes, contentType, contentEncoding, grpcEncoding));
}

/** The sentence the dashboard shows for a decoder type found in a field's chain. */
export function explainDecoder(type: string): string {
  const d = ALL_DECODERS.find((x) => x.type === type);
  if (d) return d.explain();
  return STRUCTURAL_WORDS[type] ?? type;
}

const STRUCTURAL_WORDS: Record<string, string> = {
  query: 'a URL query parameter',
  path: 'a segment of the URL path',
  cookie: 'a cookie',
  dns: 'a label of a DNS name the phone looked up',
  base32: 'base32 text (RFC 4648), as used to fit bytes into DNS labels',
};

export type { Position };
export const DECODE_LIMIT_NAMES = Object.keys(DEFAULT_DECODE_LIMITS) as (keyof DecodeLimits)[];
