/**
 * Why: V8 makes a string cut from another (slice, substring, a regex match) of 13 characters or
 * more a view of its source, so a cache that keeps such a cut keeps the whole source alive: a
 * header block, a megabyte body. Whatever a long-lived cache or memo keeps goes through ownCopy.
 */

/** Shorter strings are never views of another in V8 (they are copied when cut). */
const SLICE_MIN_LENGTH = 13;

/**
 * The text as a string of its own. Latin-1 text stays one byte per character, as V8 stores most
 * strings, so comparing and hashing the copy stays fast; other text is copied as UTF-16, so every
 * code unit (lone surrogates too) comes back as it was.
 */
export function ownCopy(text: string): string {
  if (text.length < SLICE_MIN_LENGTH) return text;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0xff) return Buffer.from(text, 'utf16le').toString('utf16le');
  return Buffer.from(text, 'latin1').toString('latin1');
}
