/**
 * Why: the same IMEI means more when it travels in cleartext to a network abroad. This names the
 * destination: host, server address, country and network owner (from an offline lookup passed in,
 * so analysis stays pure), and whether the request was readable on the way.
 */
import type { Flow } from '../../flow';
import type { Destination } from '../types';

/** Offline IP → country/network owner lookup (implemented in proxy/geo/, file I/O lives there). */
export interface GeoLookup {
  lookup(ip: string): { country?: string; asn?: number; org?: string } | undefined;
}

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** An IP literal (v4 dotted quad or v6), without importing net: analyse/ stays free of socket modules. */
function isIpLiteral(host: string): boolean {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) return host.split('.').every((o) => Number(o) <= 255);
  return host.includes(':') && /^[0-9a-f:.]+$/i.test(host);
}

export function judgeDestination(flow: Flow, geo?: GeoLookup): Destination {
  const host = flow.host;
  const hostIp = isIpLiteral(stripBrackets(host)) ? stripBrackets(host) : undefined;
  const serverIp = flow.serverIp ?? hostIp;
  const cleartext = !flow.tls && flow.scheme !== 'https' && flow.scheme !== 'tls';
  const destination: Destination = { host, cleartext };
  if (serverIp) destination.serverIp = serverIp;
  if (serverIp && geo) {
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
  return destination;
}
