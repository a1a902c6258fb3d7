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

/** What the destination's host and server address alone decide (everything but cleartext). */
interface HostFacts {
  domain?: string;
  serverIp?: string;
  local?: boolean;
  country?: string;
  asn?: number;
  org?: string;
  tracker?: Destination['tracker'];
}

/**
 * A capture or a live session talks to a few hundred destinations thousands of times: their facts
 * (public-suffix lookup, address parsing, geo lookup, tracker match) are kept per host and server
 * address for the geo lookup and tracker list they came from. Bounded: cleared when full.
 */
const FACTS_CACHE_SIZE = 4096;
/** Host → server address (undefined: none given) → facts. */
let factsCache = new Map<string, Map<string | undefined, HostFacts>>();
let cachedFacts = 0;
let cachedGeo: GeoLookup | undefined;
let cachedTrackers: TrackerList | undefined;

function hostFacts(host: string, serverIpIn: string | undefined, geo: GeoLookup | undefined, trackers: TrackerList | undefined): HostFacts {
  if (geo !== cachedGeo || trackers !== cachedTrackers || cachedFacts >= FACTS_CACHE_SIZE) {
    factsCache = new Map();
    cachedFacts = 0;
    cachedGeo = geo;
    cachedTrackers = trackers;
  }
  let byServer = factsCache.get(host);
  if (!byServer) factsCache.set(host, (byServer = new Map()));
  let facts = byServer.get(serverIpIn);
  if (!facts) {
    facts = computeFacts(host, serverIpIn, geo, trackers);
    byServer.set(serverIpIn, facts);
    cachedFacts++;
  }
  return facts;
}

function computeFacts(host: string, serverIpIn: string | undefined, geo: GeoLookup | undefined, trackers: TrackerList | undefined): HostFacts {
  const hostIp = isIpLiteral(host) ? stripBrackets(host) : undefined;
  const serverIp = serverIpIn ?? hostIp;
  const facts: HostFacts = {};
  const domain = registrableDomain(host);
  if (domain) facts.domain = domain;
  if (serverIp) facts.serverIp = serverIp;
  if (serverIp && isLocalAddress(serverIp)) facts.local = true;
  else if (serverIp && geo) {
    let found: ReturnType<GeoLookup['lookup']>;
    try {
      found = geo.lookup(serverIp);
    } catch {
      found = undefined;
    }
    if (found?.country) facts.country = found.country;
    if (found?.asn !== undefined) facts.asn = found.asn;
    if (found?.org) facts.org = found.org;
  }
  const tracker = hostIp ? undefined : trackers?.match(host);
  if (tracker) facts.tracker = { company: tracker.company, category: tracker.category, domain: tracker.domain };
  return facts;
}

export function judgeDestination(flow: Flow, geo?: GeoLookup, trackers?: TrackerList): Destination {
  const host = flow.host;
  const cleartext = !flow.tls && flow.scheme !== 'https' && flow.scheme !== 'tls';
  const f = hostFacts(host, flow.serverIp, geo, trackers);
  /* A fresh object each time, properties in the same order as always: callers add to it. */
  const destination: Destination = { host, cleartext };
  if (f.domain) destination.domain = f.domain;
  if (f.serverIp) destination.serverIp = f.serverIp;
  if (f.local) destination.local = true;
  if (f.country) destination.country = f.country;
  if (f.asn !== undefined) destination.asn = f.asn;
  if (f.org) destination.org = f.org;
  if (f.tracker) destination.tracker = { ...f.tracker };
  return destination;
}
