/**
 * Why: most values can hold no identifier at all ("app_open", "TA-1046", a hex token). Which
 * detectors can apply to a value depends on a few characters it has or lacks — a ':' (tel:, geo:,
 * a MAC), an '@', a run of 14 digits — found once per value, and cheaply: V8 reads a string
 * character by character slowly (each read asks what kind of string it is), so the engine's own
 * search finds single characters, and digit runs are looked for at every 14th character only.
 */

/** The value has a ':'. */
export const COLON = 1;
/** The value has an '@'. */
export const AT = 2;
/** The value has 14 or more digits in a row (what an IMEI, IMSI or ICCID needs). */
export const DIGIT_RUN = 4;

/** The shortest run of digits that can be an identifier. */
export const MIN_DIGIT_RUN = 14;

/** The shortest text with an email address in it: a@b.no. */
const SHORTEST_EMAIL = 6;
/**
 * The shortest text a detector that needs a ':' can match: a tel: link (tel: and 7 digits); a
 * geo: link needs 13 characters, a MAC 17. Shorter values are not searched for one.
 */
const SHORTEST_COLON_TEXT = 11;

/**
 * The value's traits, as far as they can matter: a value too short for any text that needs a
 * character is not searched for it, and digit runs are read only when asked (a value under a key
 * such as `order_id` is never reported on them).
 */
export function traitsOf(value: string, digitRuns: boolean): number {
  const length = value.length;
  if (length < SHORTEST_EMAIL) return 0;
  const at = value.indexOf('@') >= 0 ? AT : 0;
  if (length < SHORTEST_COLON_TEXT) return at;
  return at | (value.indexOf(':') >= 0 ? COLON : 0) | (digitRuns && hasDigitRun(value, MIN_DIGIT_RUN) ? DIGIT_RUN : 0);
}

function isDigitCode(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/**
 * True when the text has `n` digits in a row (what /\d{n}/ tests, without the regex). Every such run
 * covers one of the positions n-1, 2n-1, 3n-1...: only around a digit there is a run measured.
 */
export function hasDigitRun(text: string, n: number): boolean {
  const length = text.length;
  for (let i = n - 1; i < length; i += n) {
    if (!isDigitCode(text.charCodeAt(i))) continue;
    let start = i;
    while (start > 0 && isDigitCode(text.charCodeAt(start - 1))) start--;
    let end = i + 1;
    while (end < length && isDigitCode(text.charCodeAt(end))) end++;
    if (end - start >= n) return true;
  }
  return false;
}
