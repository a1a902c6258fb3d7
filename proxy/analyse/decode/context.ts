/**
 * Per-flow decoding state: the fields found so far, the notes, and the budgets still left. Decoders
 * ask it before spending (bytes, time, fields) so a hostile body costs no more than the limits.
 */
import type { DecodedField } from '../types';
import type { DecodeLimits, LimitName } from './limits';

/** Where a value sits: what the fields found under it will carry. */
export interface Position {
  path: string;
  key: string | null;
  keyPath: string[];
  chain: string[];
  group: string;
}

const MAX_NOTES = 50;

export class DecodeContext {
  readonly fields: DecodedField[] = [];
  readonly notes: string[] = [];
  readonly limitsHit: string[] = [];
  decodedBytes = 0;
  /** Path of the value being decoded now (for notes). */
  at = '';
  /** Position of the value being decoded now: decoders that place their entries build on it. */
  position: Position = { path: '', key: null, keyPath: [], chain: [], group: '' };
  /** Set once fields or time ran out: nothing more is decoded for this flow. */
  stopped = false;
  /**
   * Texts every text decoder already declined, without notes or budget effects: batches repeat
   * values (event names, ad IDs) in every record, and the answer for one text does not change.
   */
  readonly undecodableTexts = new Set<string>();
  private readonly deadline: number;
  private checks = 0;

  constructor(readonly limits: DecodeLimits, private readonly clock: () => number = defaultClock) {
    this.deadline = clock() + limits.timeBudgetMs;
  }

  note(text: string): void {
    if (this.notes.length < MAX_NOTES) this.notes.push(text);
  }

  hit(limit: LimitName, text: string): void {
    if (!this.limitsHit.includes(limit)) this.limitsHit.push(limit);
    this.note(text);
  }

  /** True (and decoding stops) once the time budget is spent. Cheap enough to call per value. */
  outOfTime(): boolean {
    if (this.stopped) return true;
    if ((++this.checks & 7) !== 0 && this.checks > 8) return false;
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

function defaultClock(): number {
  return performance.now();
}
