/**
 * Why: a phone number or email address names the owner, not just the device. Phone numbers are
 * validated by libphonenumber-js (full metadata) and reported in E.164; a national number is read
 * only when the flow or the profile says which country it belongs to. Emails are matched strictly.
 */
import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js/max';
import type { DecodedField } from '../types';
import type { Candidate, DetectContext } from './candidate';
import type { KeyClass } from './keys';

type Emit = (c: Omit<Candidate, 'field' | 'subject'> & { subject?: Candidate['subject'] }) => void;

/** E.164 form of a phone number, if it is a valid number; `country` lets national formats parse. */
export function normalizePhone(raw: string, country?: string): { e164: string; form: string } | undefined {
  let v = raw.trim().replace(/^tel:/i, '');
  if (v.length > 32 || !/^[+0-9][0-9 ()\-.\/]*$/.test(v)) return undefined;
  const digits = v.replace(/\D/g, '');
  if (digits.length < 7 || digits.length > 15 || /^(\d)\1+$/.test(digits)) return undefined;
  if (v.startsWith('00')) v = `+${digits.slice(2)}`;
  try {
    if (v.startsWith('+')) {
      const p = parsePhoneNumberFromString(v);
      return p?.isValid() ? { e164: p.number, form: 'valid number' } : undefined;
    }
    if (country) {
      const p = parsePhoneNumberFromString(v, country.toUpperCase() as CountryCode);
      if (p?.isValid()) return { e164: p.number, form: `valid ${country.toUpperCase()} number` };
    }
    if (digits.length >= 10) {
      const p = parsePhoneNumberFromString(`+${digits}`);
      if (p?.isValid()) return { e164: p.number, form: 'valid number with country code' };
    }
  } catch {
    return undefined;
  }
  return undefined;
}

export function detectPhoneByKey(field: DecodedField, cls: KeyClass, ctx: DetectContext, emit: Emit): void {
  if (cls !== 'phone') return;
  const phone = normalizePhone(field.value, ctx.country);
  if (phone) emit({ type: 'phone', value: phone.e164, detector: 'key', confidence: 0.9, span: field.value.trim(), evidence: phone.form });
}

const TEL_URI = /tel:(\+?[0-9][0-9\-. ()]{5,20}[0-9])/gi;

const EMAIL_IN_TEXT =
  /(?<![A-Za-z0-9._%+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9\-])/g;

/** Endings that make `icon@2x.png` look like an address. */
const FILE_EXTENSIONS = new Set(['png', 'jpg', 'jpeg', 'gif', 'webp', 'svg', 'ico', 'js', 'css', 'html', 'json', 'xml', 'txt', 'mp4', 'mp3', 'pdf', 'zip']);

export function detectContactsByPattern(field: DecodedField, ctx: DetectContext, emit: Emit): void {
  const value = field.value;
  if (value.includes('@')) {
    for (const m of value.matchAll(EMAIL_IN_TEXT)) {
      const email = m[0].toLowerCase();
      const local = email.slice(0, email.indexOf('@'));
      const tld = email.slice(email.lastIndexOf('.') + 1);
      if (local.endsWith('.') || local.includes('..') || FILE_EXTENSIONS.has(tld)) continue;
      emit({ type: 'email', value: email, detector: 'pattern', confidence: 0.9, span: m[0], evidence: '' });
    }
  }
  if (value.length > 8 && /tel:/i.test(value)) {
    for (const m of value.matchAll(TEL_URI)) {
      const phone = normalizePhone(m[1]!, ctx.country);
      if (phone) emit({ type: 'phone', value: phone.e164, detector: 'pattern', confidence: 0.85, span: m[0], evidence: `tel: link, ${phone.form}` });
    }
  }
}
