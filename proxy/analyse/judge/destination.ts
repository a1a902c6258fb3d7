/**
 * Why: the same IMEI means more when it travels in cleartext to a network abroad. This names the
 * destination: host and its registrable domain, server address, country and network owner (from
 * an offline lookup passed in, so analysis stays pure), whether the address is local (LAN,
 * loopback: labelled, never looked up), whether the domain belongs to a known tracking company,
 * and whether the request was readable on the way.
 */
import type { Flow } from '../../flow';
import type { Destination } from '../types';
import { registrableDomain } from './domain';
import { isIpLiteral, isLocalAddress } from './local-address';
import type { TrackerList } from './trackers';

/** Offline IP → country/network owner lookup (implemented in proxy/geo/, file I/O lives there). */
export interface GeoLookup {
  lookup(ip: string): { country?: string; asn?: number; org?: string } | undefined;
}

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

export function judgeDestination(flow: Flow, geo?: GeoLookup, trackers?: TrackerList): Destination {
  const host = flow.host;
  const hostIp = isIpLiteral(host) ? stripBrackets(host) : undefined;
  const serverIp = flow.serverIp ?? hostIp;
  const cleartext = !flow.tls && flow.scheme !== 'https' && flow.scheme !== 'tls';
  const destination: Destination = { host, cleartext };
  const domain = registrableDomain(host);
  if (domain) destination.domain = domain;
  if (serverIp) destination.serverIp = serverIp;
  if (serverIp && isLocalAddress(serverIp)) destination.local = true;
  else if (serverIp && geo) {
    let facts: ReturnType<GeoLookup['lookup']>;
    try {
      facts = geo.lookup(serverIp);
    } catch {
      facts = undefined;
    }
    if (facts?.country) destination.country = facts.country;
    if (facts?.asn !== undefined) destination.asn = facts.asn;
    if (facts?.org) destination.org = facts.org;
  }
  const tracker = hostIp ? undefined : trackers?.match(host);
  if (tracker) destination.tracker = { company: tracker.company, category: tracker.category, domain: tracker.domain };
  return destination;
}
