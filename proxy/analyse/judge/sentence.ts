/**
 * Why: a user acts on a sentence, not on a row of columns. One per flow with findings, built only
 * from the facts (never from captured text other than the host): what was sent, how, to whom and
 * where — "IMEI, ICCID and cell ID sent in cleartext to zzhc.vnet.cn (China Telecom, AS4134, CN) —
 * outside your home region". The host is captured text: callers render it as text, never HTML.
 */
import { IDENTIFIER_TYPES, type Destination, type IdentifierType } from '../types';

export const SHORT_LABEL: Record<IdentifierType, string> = {
  imei: 'IMEI', meid: 'MEID', imsi: 'IMSI', iccid: 'ICCID', phone: 'phone number', cell_id: 'cell ID',
  location: 'location', mac: 'MAC address', android_id: 'Android ID', ad_id: 'advertising ID',
  serial: 'serial number', email: 'email address',
};

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Each type's bit in a set of types (its position in the public type list). */
const TYPE_BIT = new Map<string, number>(IDENTIFIER_TYPES.map((t, i) => [t, 1 << i]));
/** The words for each set of types asked about, by bit set, as listed and as a sentence starts: at most 2 x 2^12 short texts. */
const LISTED = new Array<string | undefined>(1 << IDENTIFIER_TYPES.length);
const LISTED_CAPITALISED = new Array<string | undefined>(1 << IDENTIFIER_TYPES.length);

function bitsOf(types: Iterable<IdentifierType>): number {
  let bits = 0;
  for (const t of types) bits |= TYPE_BIT.get(t) ?? 0;
  return bits;
}

function listedOf(bits: number): string {
  let text = LISTED[bits];
  if (text === undefined) {
    const labels = IDENTIFIER_TYPES.filter((t, i) => bits & (1 << i)).map((t) => SHORT_LABEL[t]);
    text = labels.length <= 1 ? labels.join('') : `${labels.slice(0, -1).join(', ')} and ${labels[labels.length - 1]}`;
    LISTED[bits] = text;
  }
  return text;
}

function capitalisedOf(bits: number): string {
  return (LISTED_CAPITALISED[bits] ??= capitalise(listedOf(bits)));
}

/** "A", "A and B", "A, B and C", in the order of the public type list. */
export function listTypes(types: Iterable<IdentifierType>): string {
  return listedOf(bitsOf(types));
}

/** Who and where, in parentheses: company or network owner, AS number, country; or "local network". */
function destinationFacts(d: Destination): string {
  if (d.local) return 'local network';
  const owner = d.tracker?.company ?? d.org;
  let facts = owner ? `${owner}, ` : '';
  if (d.asn !== undefined) facts += `AS${d.asn}, `;
  return facts + (d.country ?? 'country unknown');
}

export function alertSentence(types: Iterable<IdentifierType>, d: Destination, opts: { dns?: boolean } = {}): string {
  return sentence(bitsOf(types), d, !!opts.dns);
}

/** alertSentence for a flow's findings (the types they have). */
export function alertSentenceOf(findings: ReadonlyArray<{ type: IdentifierType }>, d: Destination, dns: boolean): string {
  let bits = 0;
  for (const f of findings) bits |= TYPE_BIT.get(f.type) ?? 0;
  return sentence(bits, d, dns);
}

function sentence(bits: number, d: Destination, dns: boolean): string {
  if (bits === 0) return '';
  const what = capitalisedOf(bits);
  const how = d.cleartext ? 'in cleartext' : 'over TLS';
  let notes = '';
  if (d.crossBorder) notes = `outside your home region${d.homeCountry ? ` (${d.homeCountry})` : ''}`;
  if (d.tracker) notes += `${notes ? '; ' : ''}a known ${d.tracker.category} service`;
  const tail = notes ? ` — ${notes}` : '';
  // A DNS flow's host is the name looked up; its server address is the resolver's, so say so.
  if (dns) {
    const via = d.serverIp ? ` via resolver ${d.serverIp} (${destinationFacts(d)})` : '';
    return `${what} sent in cleartext in a DNS lookup of ${d.host}${via}${tail}`;
  }
  return `${what} sent ${how} to ${d.host} (${destinationFacts(d)})${tail}`;
}
