/**
 * The pairs of `name=value&...` text read one at a time, in order, the way browsers and servers
 * read application/x-www-form-urlencoded (WHATWG URL standard): split on '&', the name ends at the
 * first '=', '+' is a space, %XX escapes are bytes and a bad escape stays as written, the bytes are
 * then UTF-8 (undecodable sequences become U+FFFD). Read from text or straight from a body's bytes,
 * so a 400 MB form is never turned into one string: its first pairs are walked while the rest is
 * still unread, and a walk stopped by a budget knows how far it got.
 */
import type { DecodeContext } from '../context';
import { makeEntry, type Entry, type EntryStream } from '../registry';
import { noStrings, percentDecodeBytes, percentDecodeRange } from '../text';

/** Nameless parameters at least this long are read as values (encoded blobs), shorter ones as flags. */
export const BARE_VALUE_MIN = 8;

/** A pair longer than this announces its length to the time budget before it is decoded. */
const ANNOUNCE_PAIR_BYTES = 4096;

const AMPERSAND = 0x26;
const EQUALS = 0x3d;
const PLUS = 0x2b;
const PERCENT = 0x25;

/**
 * Pairs of text[from, to) or bytes[from, to). `#i` entries (nameless values) count every '&'-separated
 * part, empty ones included, as text.split('&') would. With a context, a long pair first asks the time
 * budget, and the stream ends early (not `done`) when it is spent.
 */
export class FormPairs implements EntryStream {
  private at: number;
  private part = 0;
  private readonly chain: string[];

  constructor(
    private readonly text: string | null,
    private readonly bytes: Buffer | null,
    from: number,
    readonly end: number,
    private readonly type: string,
    private readonly plusIsSpace: boolean,
    private readonly ctx: DecodeContext | null,
  ) {
    this.at = from;
    this.chain = [type];
  }

  static ofText(text: string, type: string, plusIsSpace = true, ctx: DecodeContext | null = null): FormPairs {
    return new FormPairs(text, null, 0, text.length, type, plusIsSpace, ctx);
  }

  static ofBytes(bytes: Buffer, from: number, to: number, ctx: DecodeContext | null): FormPairs {
    return new FormPairs(null, bytes, from, to, 'form', true, ctx);
  }

  /** Offset (characters or bytes) up to which the input was read. */
  get offset(): number {
    return Math.min(this.at, this.end);
  }

  get length(): number {
    return this.end;
  }

  get unit(): string {
    return this.text !== null ? 'character' : 'byte';
  }

  get done(): boolean {
    return this.at > this.end;
  }

  next(): Entry | null {
    const end = this.end;
    while (this.at <= end) {
      const start = this.at;
      let to = this.text !== null ? this.text.indexOf('&', start) : this.bytes!.indexOf(AMPERSAND, start);
      if (to < 0 || to > end) to = end;
      const i = this.part++;
      if (to === start) {
        this.at = to + 1;
        continue;
      }
      if (this.ctx !== null && to - start >= ANNOUNCE_PAIR_BYTES && this.ctx.outOfTime(to - start)) return null;
      this.at = to + 1;
      let eq = this.text !== null ? this.text.indexOf('=', start) : this.bytes!.indexOf(EQUALS, start);
      if (eq >= to) eq = -1;
      const type = this.type;
      if (eq < 0 && this.charCount(start, to) >= BARE_VALUE_MIN) {
        /* `?eyJpbWVpIjoi...`: a bare blob with no name is a value, not a key. */
        return makeEntry(`${type}:#${i}`, type, this.chain, null, noStrings(), this.decode(start, to));
      }
      const key = this.decode(start, eq >= 0 ? eq : to);
      return makeEntry(`${type}:${key}`, type, this.chain, key, [key], eq >= 0 ? this.decode(eq + 1, to) : '');
    }
    return null;
  }

  private decode(from: number, to: number): string {
    return this.text !== null ? percentDecodeRange(this.text, from, to, this.plusIsSpace) : formBytesToText(this.bytes!, from, to);
  }

  /** Length of [from, to) as text: characters, or for bytes the UTF-16 length of their UTF-8. */
  private charCount(from: number, to: number): number {
    if (this.text !== null) return to - from;
    const b = this.bytes!;
    let n = 0;
    for (let i = from; i < to; i++) {
      const c = b[i];
      if (c < 0x80 || c >= 0xc0) n += c >= 0xf0 ? 2 : 1;
    }
    return n;
  }
}

/**
 * Every pair of `text` at once (URL queries): what FormPairs.ofText hands out, in one loop without
 * the stream object (every request's URL goes through here).
 */
export function splitPairs(text: string, type: string, plusIsSpace = true): Entry[] {
  const entries: Entry[] = [];
  const chain = [type];
  /* What text.split('&') gives, part by part, without the array or the parts (keys and values are cut from the text). */
  for (let i = 0, from = 0; from <= text.length; i++) {
    let to = text.indexOf('&', from);
    if (to < 0) to = text.length;
    const start = from;
    from = to + 1;
    if (to === start) continue;
    let eq = text.indexOf('=', start);
    if (eq >= to) eq = -1;
    if (eq < 0 && to - start >= BARE_VALUE_MIN) {
      entries.push(makeEntry(`${type}:#${i}`, type, chain, null, noStrings(), percentDecodeRange(text, start, to, plusIsSpace)));
      continue;
    }
    const key = percentDecodeRange(text, start, eq >= 0 ? eq : to, plusIsSpace);
    entries.push(makeEntry(`${type}:${key}`, type, chain, key, [key], eq >= 0 ? percentDecodeRange(text, eq + 1, to, plusIsSpace) : ''));
  }
  return entries;
}

/** bytes[from, to) of a form as text: '+' as space, %XX as bytes, bad escapes as written, then UTF-8. */
export function formBytesToText(bytes: Buffer, from: number, to: number): string {
  let ascii = true;
  for (let i = from; i < to; i++) {
    const c = bytes[i];
    if (c === PERCENT || c === PLUS) return percentDecodeBytes(bytes, from, to, true);
    if (c >= 0x80) ascii = false;
  }
  return bytes.toString(ascii ? 'latin1' : 'utf8', from, to);
}
