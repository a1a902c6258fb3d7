/**
 * The field a header's or a URL parameter's value became, remembered from the flows before. A
 * phone repeats most of its headers and many parameters verbatim on every request (User-Agent,
 * app name, SDK version): when such a value was a leaf as it stands (no decoder read it, no note,
 * no limit, no budget spent), the same value under the same name gives the same field, so the
 * remembered one is handed out again instead of walking the value. Fields are read-only downstream (detection, store, JSONL), so one object can
 * serve many flows. Bounded (names, value length), holding copies only (never a slice of a header
 * block), one value per name, and forgotten when the limits change (ctx.generation).
 */
import type { DecodedField } from '../types';
import type { DecodeContext } from './context';
import { ownCopy } from '../../own-copy';

/** Longer values are not remembered (a phone's repeated headers are short). */
const MAX_VALUE_LENGTH = 512;
/** Names remembered; when full, the memo starts over. */
const MAX_NAMES = 256;
/** Values remembered per name (several apps on one phone send their own User-Agent), the oldest replaced first. */
const VALUES_PER_NAME = 4;
/** A name whose value keeps changing (request IDs, timestamps) re-remembers only now and then: copying costs more than walking. */
const REMEMBER_AFTER_MISSES = 8;
const RETRY_EVERY_MISSES = 32;

interface Remembered {
  values: string[];
  fields: DecodedField[];
  /** Slot the next value replaces. */
  next: number;
  /** Flows in a row whose value was not remembered. */
  misses: number;
}

export class LeafMemo {
  private byName = new Map<string, Remembered>();
  private generation = -1;

  /** The field `value` under `name` became before, if remembered. */
  recall(ctx: DecodeContext, name: string, value: string): DecodedField | undefined {
    if (ctx.generation !== this.generation || value.length > MAX_VALUE_LENGTH) return undefined;
    const known = this.byName.get(name);
    if (known === undefined) return undefined;
    const values = known.values;
    for (let i = 0; i < values.length; i++) {
      if (values[i] === value) {
        known.misses = 0;
        return known.fields[i];
      }
    }
    known.misses++;
    return undefined;
  }

  /** Remembers the field a walk made of `value` under `name` (a header name, a URL segment), if it is the value itself as a leaf at `path`. */
  remember(ctx: DecodeContext, name: string, value: string, path: string, field: DecodedField): void {
    if (value.length > MAX_VALUE_LENGTH || field.value !== value || field.path !== path) return;
    if (ctx.generation !== this.generation) {
      this.byName = new Map();
      this.generation = ctx.generation;
    }
    let known = this.byName.get(name);
    if (known !== undefined && known.misses > REMEMBER_AFTER_MISSES && known.misses % RETRY_EVERY_MISSES !== 0) return;
    const key = ownCopy(name);
    if (known === undefined) {
      if (this.byName.size >= MAX_NAMES) this.byName = new Map();
      known = { values: [], fields: [], next: 0, misses: 0 };
      this.byName.set(key, known);
    }
    const own = ownCopy(value);
    const fieldKey = field.key === null ? null : ownCopy(field.key);
    const copy: DecodedField = { path: ownCopy(path), key: fieldKey, keyPath: field.keyPath.map(ownCopy), value: own, chain: field.chain, group: field.group };
    known.values[known.next] = own;
    known.fields[known.next] = copy;
    known.next = (known.next + 1) % VALUES_PER_NAME;
  }
}
