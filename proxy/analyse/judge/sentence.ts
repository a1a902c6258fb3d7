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

/** "A", "A and B", "A, B and C", in the order of the public type list. */
export function listTypes(types: Iterable<IdentifierType>): string {
  const set = new Set(types);
  const labels = IDENTIFIER_TYPES.filter((t) => set.has(t)).map((t) => SHORT_LABEL[t]);
  if (labels.length <= 1) return labels.join('');
  return `${labels.slice(0, -1).join(', ')} and ${labels[labels.length - 1]}`;
}

/** Who and where, in parentheses: company or network owner, AS number, country; or "local network". */
function destinationFacts(d: Destination): string {
  if (d.local) return 'local network';
  const facts: string[] = [];
  const owner = d.tracker?.company ?? d.org;
  if (owner) facts.push(owner);
  if (d.asn !== undefined) facts.push(`AS${d.asn}`);
  facts.push(d.country ?? 'country unknown');
  return facts.join(', ');
}

export function alertSentence(types: Iterable<IdentifierType>, d: Destination, opts: { dns?: boolean } = {}): string {
  const what = listTypes(types);
  if (!what) return '';
  const how = d.cleartext ? 'in cleartext' : 'over TLS';
  const notes: string[] = [];
  if (d.crossBorder) notes.push(`outside your home region${d.homeCountry ? ` (${d.homeCountry})` : ''}`);
  if (d.tracker) notes.push(`a known ${d.tracker.category} service`);
  const tail = notes.length ? ` — ${notes.join('; ')}` : '';
  // A DNS flow's host is the name looked up; its server address is the resolver's, so say so.
  if (opts.dns) {
    const via = d.serverIp ? ` via resolver ${d.serverIp} (${destinationFacts(d)})` : '';
    return `${capitalise(what)} sent in cleartext in a DNS lookup of ${d.host}${via}${tail}`;
  }
  return `${capitalise(what)} sent ${how} to ${d.host} (${destinationFacts(d)})${tail}`;
}
