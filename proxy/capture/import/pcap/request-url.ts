/**
 * The URL of a captured request (from its target and Host header), as WHATWG URL would write it.
 * Parsing a URL object per request was a tenth of a capture's import time; the request targets phones
 * send are mostly plain ASCII paths and queries to plain host names, whose URL is the text itself.
 * Those are written directly; anything else (IP forms, IDN, dot segments, characters URL would
 * escape, absolute targets...) goes through `new URL`, so the result is the same either way.
 */
import { ownCopy } from '../../../own-copy';

export interface RequestUrl {
  /** Host name as URL parses it (no brackets), or undefined when there is no URL. */
  hostname?: string;
  /** The URL as recorded (undefined: no Host header, or unparseable). */
  href?: string;
}

/** Lower-case DNS names whose last label is not numeric (URL would read those as IPv4), no punycode, optional port. */
const PLAIN_HOST = /^((?:[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?\.)*[a-z_](?:[a-z0-9_-]*[a-z0-9_])?)(?::([1-9]\d{0,4}))?$/;
const DOTTED_QUAD = /^((?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d))(?::([1-9]\d{0,4}))?$/;
/**
 * A path of characters URL keeps as they are, then optionally a query of characters URL keeps as
 * they are (special-scheme query percent-encode set excluded): one pass over the target, no slices.
 */
const PLAIN_TARGET = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*(?:\?[!$-&(-;=?-~]*)?$/;
/** A "." or ".." segment (also spelt %2e) in the path (before the first "?"), which URL would resolve. */
const DOT_SEGMENT = /^[^?]*?\/(?:\.|%2e){1,2}(?:[/?]|$)/i;

class PlainHost {
  /** `http://host[:port]` for the port URLs were last written with (-1: none yet). */
  prefixPort = -1;
  prefix = '';
  constructor(
    readonly hostname: string,
    /** The Host header's port (80 when it names none). */
    readonly port: number,
  ) {}
}

/**
 * Host headers already read (a capture names few hosts, in every request): the header, or null when
 * it is not plain. Keys and names are own copies: a Host header is a slice of its message's head.
 */
const plainHosts = new Map<string, PlainHost | null>();
const MAX_PLAIN_HOSTS = 1024;
const MAX_KEPT_HOST = 255;

function plainHost(hostHeader: string): PlainHost | null {
  const known = plainHosts.get(hostHeader);
  if (known !== undefined) return known;
  const key = hostHeader.length <= MAX_KEPT_HOST ? ownCopy(hostHeader) : undefined;
  const h = readHost(key ?? hostHeader);
  if (key !== undefined) {
    if (plainHosts.size >= MAX_PLAIN_HOSTS) plainHosts.clear();
    plainHosts.set(key, h);
  }
  return h;
}

function readHost(hostHeader: string): PlainHost | null {
  const m = PLAIN_HOST.exec(hostHeader) ?? DOTTED_QUAD.exec(hostHeader);
  if (!m || m[1].includes('xn--')) return null;
  const port = m[2] === undefined ? 80 : Number(m[2]);
  return port <= 65535 ? new PlainHost(m[1], port) : null;
}

/** Fast path only; undefined when the slow path must decide. */
export function plainRequestUrl(hostHeader: string, target: string, connPort: number): RequestUrl | undefined {
  if (target.charCodeAt(0) !== 47 /* / */) return undefined;
  const h = plainHost(hostHeader);
  if (h === null) return undefined;
  if (!PLAIN_TARGET.test(target)) return undefined;
  /* A dot segment starts with "/." or "/%": most targets have neither, and skip the second regex. */
  if ((target.includes('/.') || target.includes('/%')) && DOT_SEGMENT.test(target)) return undefined;
  /* A Host without a port (or with the default one): the URL names the port the client connected to. */
  const port = h.port === 80 ? connPort : h.port;
  if (h.prefixPort !== port) {
    h.prefix = `http://${h.hostname}${port === 80 ? '' : ':' + port}`;
    h.prefixPort = port;
  }
  return { hostname: h.hostname, href: h.prefix + target };
}

/** The request's URL: absolute targets as given, origin-form ones against the Host header. */
export function requestUrl(hostHeader: string | undefined, target: string, connPort: number): RequestUrl {
  if (hostHeader !== undefined && hostHeader !== '') {
    const fast = plainRequestUrl(hostHeader, target, connPort);
    if (fast) return fast;
  }
  return slowRequestUrl(hostHeader, target, connPort);
}

export function slowRequestUrl(hostHeader: string | undefined, target: string, connPort: number): RequestUrl {
  const absolute = /^https?:\/\//i.test(target);
  let url: URL | undefined;
  try {
    url = absolute ? new URL(target) : hostHeader ? new URL(`http://${hostHeader}${target.startsWith('/') ? target : '/' + target}`) : undefined;
  } catch {
    url = undefined;
  }
  if (!url) return {};
  if (!url.port && connPort !== 80 && !absolute) url.port = String(connPort);
  return { hostname: url.hostname.replace(/^\[|\]$/g, ''), href: url.href };
}
