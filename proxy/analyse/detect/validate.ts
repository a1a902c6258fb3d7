/**
 * Why: identifiers are only worth reporting when their value is the real thing. These checks
 * (Luhn, TAC reporting bodies, MCC/MNC, placeholders) are what separate an IMEI from an order number.
 */
import { isDigits } from './candidate';
import { MCC_COUNTRY, THREE_DIGIT_MNC_MCCS } from './mcc';

export function luhnValid(digits: string): boolean {
  return digits.length > 1 && checkDigitOf(digits, digits.length - 1) === digits.charCodeAt(digits.length - 1) - 48;
}

/** The check digit that makes `body` + digit Luhn-valid. */
export function luhnCheckDigit(body: string): number {
  return checkDigitOf(body, body.length);
}

/** The Luhn check digit of the text's first `end` characters (no cut-out copy of them). */
function checkDigitOf(text: string, end: number): number {
  let sum = 0;
  for (let i = end - 1, double = true; i >= 0; i--, double = !double) {
    let d = text.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return (10 - (sum % 10)) % 10;
}

/**
 * Reporting Body Identifiers: the first two digits of a Type Allocation Code name the body that
 * allocated it (GSMA TS.06). A 15-digit number outside these cannot be a real IMEI.
 */
const TAC_REPORTING_BODIES = new Set([
  '01', '10', '30', '33', '35', '44', '45', '49', '50', '51', '52', '53', '54', '86', '91', '98', '99',
]);

export function plausibleTac(digits: string): boolean {
  return inTable(PLAUSIBLE_PREFIX, digits);
}

/** A set of two-digit prefixes as a table indexed by their value (no two-character string cut per question). */
function prefixTable(prefixes: ReadonlySet<string>): Uint8Array {
  const table = new Uint8Array(100);
  for (const p of prefixes) table[Number(p)] = 1;
  return table;
}

function inTable(table: Uint8Array, digits: string): boolean {
  const a = digits.charCodeAt(0) - 48;
  const b = digits.charCodeAt(1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 && table[a * 10 + b] === 1;
}

const PLAUSIBLE_PREFIX = prefixTable(TAC_REPORTING_BODIES);

/**
 * The reporting bodies that allocate TACs to phones made today (GSMA TS.06 list): 01 PTCRB (North
 * America), 35 BABT (most of the world's phones), 86 TAF/CAICT (China), 91 MSAI (India), 99 GHA
 * (multi-mode phones, e.g. on Verizon). The others above allocated for 1990s-2000s GSM handsets or
 * for satellite and test equipment. A 15-digit number with no key to vouch for it is reported as an
 * IMEI only under one of these: 5 of 90 two-digit prefixes instead of 17, so about a third as many
 * random Luhn-valid numbers raise a false alarm (measured by npm run bench:detect).
 */
const CURRENT_TAC_REPORTING_BODIES = new Set(['01', '35', '86', '91', '99']);

const CURRENT_PREFIX = prefixTable(CURRENT_TAC_REPORTING_BODIES);

export function currentTac(digits: string): boolean {
  return inTable(CURRENT_PREFIX, digits);
}

const ASCENDING = ['01234567890123456789', '12345678901234567890'];

/**
 * All zeros, one repeated digit, or a plain ascending run: what phones report when they have nothing.
 * (/^(\d)\1*$/, a piece of 0123456789012..., or /^0+[1-9]?$/, read without regexes: twice per IMEI.)
 */
export function isPlaceholderDigits(digits: string): boolean {
  const n = digits.length;
  const first = digits.charCodeAt(0);
  let same = n > 0 && first >= 0x30 && first <= 0x39;
  /* Each digit one more than the one before (9 then 0): a necessary condition for a piece of ASCENDING. */
  let ascending = n <= ASCENDING[0]!.length;
  for (let i = 1; i < n && (same || ascending); i++) {
    const c = digits.charCodeAt(i);
    const before = digits.charCodeAt(i - 1);
    if (c !== first) same = false;
    if (c !== (before === 0x39 ? 0x30 : before + 1)) ascending = false;
  }
  if (same) return true;
  if (ascending && (ASCENDING[0]!.includes(digits) || ASCENDING[1]!.includes(digits))) return true;
  let zeros = 0;
  while (zeros < n && digits.charCodeAt(zeros) === 0x30) zeros++;
  if (zeros === 0) return false;
  if (zeros === n) return true;
  const last = digits.charCodeAt(n - 1);
  return zeros === n - 1 && last >= 0x31 && last <= 0x39;
}

/** Country (ISO 3166-1 alpha-2) of an E.212 Mobile Country Code, or undefined when the code is not allocated. */
export function mccCountry(mcc: string): string | undefined {
  return MCC_COUNTRY.get(mcc);
}

/** MCC and MNC of an IMSI whose MCC is allocated; undefined otherwise. */
export function splitImsi(digits: string): { mcc: string; mnc: string; country: string } | undefined {
  if ((digits.length !== 14 && digits.length !== 15) || !isDigits(digits)) return undefined;
  const mcc = digits.slice(0, 3);
  const country = mccCountry(mcc);
  if (!country) return undefined;
  const mncLength = THREE_DIGIT_MNC_MCCS.has(mcc) ? 3 : 2;
  return { mcc, mnc: digits.slice(3, 3 + mncLength), country };
}

export function isAllSameChar(s: string): boolean {
  return /^(.)\1*$/s.test(s);
}

const PLACEHOLDER_WORDS = new Set([
  'unknown', 'null', 'undefined', 'none', 'nil', 'n/a', 'na', 'empty', 'default', 'false', 'true', 'test', '0',
]);

export function isPlaceholderWord(value: string): boolean {
  return PLACEHOLDER_WORDS.has(value.trim().toLowerCase());
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export function isUuid(value: string): boolean {
  return UUID_RE.test(value);
}

export function isHex(value: string): boolean {
  return /^[0-9a-f]+$/i.test(value);
}
