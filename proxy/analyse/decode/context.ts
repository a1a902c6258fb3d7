/**
 * Per-flow decoding state: the fields found so far, the notes, and the budgets still left. Decoders
 * ask it before spending (bytes, time, fields) so a hostile body costs no more than the limits.
 */
import type { DecodedField } from '../types';
import type { DecodeLimits, LimitName } from './limits';
import { ownCopy } from '../../own-copy';
import { noStrings } from './text';

/** Where a value sits: what the fields found under it will carry. */
export interface Position {
  path: string;
  key: string | null;
  keyPath: string[];
  /**
   * Unused by a Position: there so that a Position has the properties of a DecodedField in the same
   * order, and so its hidden class (a placed field is its own Position). Code that reads positions then
   * sees one class, not two: the second one met after optimizing threw the optimized walker away.
   */
  value: string;
  chain: string[];
  group: string;
}

/** Where every flow starts (shared: Positions are never changed, only replaced). */
const START: Position = { path: '', key: null, keyPath: noStrings(), value: '', chain: noStrings(), group: '' };

const MAX_NOTES = 50;
/** outOfTime reads the clock at least every this many calls (a power of two)... */
const CHECK_EVERY = 8;
/** ...and before any value once this many characters or bytes were announced since the last reading. */
const CHECK_WORK = 16 * 1024;

export class DecodeContext {
  readonly fields: DecodedField[] = [];
  readonly notes: string[] = [];
  readonly limitsHit: string[] = [];
  decodedBytes = 0;
  /** Path of the value being decoded now (for notes). */
  at = '';
  /** Position of the value being decoded now: decoders that place their entries build on it. */
  position: Position = START;
  /** Set once fields or time ran out: nothing more is decoded for this flow. */
  stopped = false;
  /**
   * Texts every text decoder already declined, without notes or budget effects: batches repeat
   * values (event names, ad IDs) in every record, and requests repeat them (User-Agent, app
   * names), and the answer for one text does not change. The first SHARED_PER_FLOW of a flow go
   * to a memo shared by all flows decoded with the same limits (a decoder's answer may depend on
   * them, never on anything else of the flow); the rest, a big batch's, to this flow's own.
   */
  private readonly sharedUndecodable: Set<string>;
  /** Changes whenever flows are decoded under other limits than the flows before (memos that depend on limits start over). */
  readonly generation: number;
  private ownUndecodable: Set<string> | undefined;
  private sharedAdded = 0;
  private readonly deadline: number;
  private checks = 0;
  private pendingWork = 0;

  constructor(readonly limits: DecodeLimits, private readonly clock: () => number = defaultClock) {
    this.deadline = clock() + limits.timeBudgetMs;
    this.sharedUndecodable = sharedUndecodable(limits);
    this.generation = limitsGeneration;
  }

  /** True when every text decoder already declined this text (see sharedUndecodable). */
  knownUndecodable(text: string): boolean {
    return this.sharedUndecodable.has(text) || (this.ownUndecodable !== undefined && this.ownUndecodable.has(text));
  }

  /** Remembers a text every text decoder declined (in the shared memo as a copy: the text may be a slice of a big body). */
  rememberUndecodable(text: string): void {
    if (this.sharedAdded < SHARED_PER_FLOW) {
      this.sharedAdded++;
      sharedChars += text.length;
      this.sharedUndecodable.add(ownCopy(text));
    } else (this.ownUndecodable ??= new Set()).add(text);
  }

  note(text: string): void {
    if (this.notes.length < MAX_NOTES) this.notes.push(text);
  }

  hit(limit: LimitName, text: string): void {
    if (!this.limitsHit.includes(limit)) this.limitsHit.push(limit);
    this.note(text);
  }

  /**
   * True (and decoding stops) once the time budget is spent. Cheap enough to call per value: the
   * clock is read every CHECK_EVERY calls, or sooner once the values announced (`work`, their
   * characters or bytes) since the last reading pass CHECK_WORK, so a step over a big value is
   * always preceded by a reading, and small ones are read in batches (a small flow reads it
   * about once). Work that cannot be sized (a chunk of a decompression) passes Infinity.
   */
  outOfTime(work = 0): boolean {
    if (this.stopped) return true;
    this.pendingWork += work;
    if ((++this.checks & (CHECK_EVERY - 1)) !== 0 && this.pendingWork < CHECK_WORK) return false;
    this.pendingWork = 0;
    if (this.clock() > this.deadline) {
      this.stopped = true;
      this.hit('timeBudgetMs', `decoding stopped after the time budget of ${this.limits.timeBudgetMs} ms; later fields were not examined`);
      return true;
    }
    return false;
  }

  /** Bytes a decoder may still produce: what is left of maxDecodedBytes. */
  decodedBytesLeft(): number {
    return Math.max(0, this.limits.maxDecodedBytes - this.decodedBytes);
  }

  spendDecoded(n: number): void {
    this.decodedBytes += n;
  }

  emit(pos: Position, value: string): void {
    this.emitPlaced(pos.path, pos.key, pos.keyPath, value, pos.chain, pos.group);
  }

  /** A field a decoder already built whole (a placed entry): kept as it is unless its value must be cut. */
  emitField(field: DecodedField): void {
    if (this.stopped) return;
    if (field.value.length > this.limits.maxFieldLength) {
      this.emitPlaced(field.path, field.key, field.keyPath, field.value, field.chain, field.group);
      return;
    }
    if (this.fields.length >= this.limits.maxFields) {
      this.stopped = true;
      this.hit('maxFields', `field limit of ${this.limits.maxFields} reached; later fields were not examined`);
      return;
    }
    this.fields.push(field);
  }

  /** emit() for a scalar of a placed entry, without a Position in between. */
  emitPlaced(path: string, key: string | null, keyPath: string[], value: string, chain: string[], group: string): void {
    if (this.stopped) return;
    if (this.fields.length >= this.limits.maxFields) {
      this.stopped = true;
      this.hit('maxFields', `field limit of ${this.limits.maxFields} reached; later fields were not examined`);
      return;
    }
    let text = value;
    if (text.length > this.limits.maxFieldLength) {
      text = text.slice(0, this.limits.maxFieldLength);
      this.hit('maxFieldLength', `value at ${path} cut to ${this.limits.maxFieldLength} characters (it had ${value.length})`);
    }
    this.fields.push({ path, key, keyPath, value: text, chain, group });
  }
}

/** The shared memo of undecodable texts, and the limits it was filled under. */
let sharedTexts = new Set<string>();
let sharedLimits: DecodeLimits | undefined;
let sharedChars = 0;
/** Bounds of the shared memo: it starts over when either is passed. */
const SHARED_MAX_TEXTS = 4096;
const SHARED_MAX_CHARS = 1024 * 1024;
/** Undecodable texts one flow adds to the shared memo; the rest stay the flow's own. */
const SHARED_PER_FLOW = 32;

/** Counts the changes of limits from one flow to the next (see DecodeContext.generation). */
let limitsGeneration = 0;

function sharedUndecodable(limits: DecodeLimits): Set<string> {
  const l = sharedLimits;
  const same = l !== undefined && l.maxDepth === limits.maxDepth && l.maxDecodedBytes === limits.maxDecodedBytes && l.maxRatio === limits.maxRatio
    && l.maxFields === limits.maxFields && l.maxFieldLength === limits.maxFieldLength && l.timeBudgetMs === limits.timeBudgetMs;
  if (!same) limitsGeneration++;
  if (!same || sharedTexts.size >= SHARED_MAX_TEXTS || sharedChars >= SHARED_MAX_CHARS) {
    sharedTexts = new Set();
    sharedLimits = limits;
    sharedChars = 0;
  }
  return sharedTexts;
}

function defaultClock(): number {
  return performance.now();
}
