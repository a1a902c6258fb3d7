/**
 * Why: every byte of a request to the dashboard is read here, once, by code that cannot throw. A
 * hostile page or LAN client controls the target, the cookies and every header; a parser that throws
 * (new URL on `//[/ws`, decodeURIComponent on `%E0%A4%A`) inside a raw `upgrade` listener ends the
 * process. Malformed input becomes a value with a reason (answered 400 by the caller), never an
 * exception; the REST routes, the page's files and the WebSocket upgrade all start from this.
 */
import type { IncomingMessage } from 'http';

export interface RequestInput {
  method: string;
  /** The path as sent (percent-escapes kept), always one '/' then no '/' or '\': safe in a Location header. */
  pathname: string;
  /** The raw query (without '?'), '' when none. */
  rawQuery: string;
  query: URLSearchParams;
  /** Host header's host name (lower case, IPv6 in brackets), null when absent or malformed. */
  hostname: string | null;
  /** The Host header as sent (lower case), for comparing with Origin. */
  hostHeader: string | null;
  /** Origin header: undefined when absent, 'null' for opaque origins. */
  origin?: string;
  /** Fetch metadata (browsers since 2020/2023): undefined when absent. */
  fetchSite?: string;
  fetchMode?: string;
  fetchDest?: string;
  /** A token in `Authorization: Bearer …`. */
  bearer?: string;
  cookies: Map<string, string>;
  /** Whether the client says it reads HTML (a browser navigating). */
  wantsHtml: boolean;
}

export type ParsedRequest = { ok: true; input: RequestInput } | { ok: false; reason: string };

const MAX_TARGET_LENGTH = 8192;
const MAX_COOKIES = 64;
/** Origin-form only: '/' then anything printable but '\' and '#'; '//' (an authority to URL parsers) refused. */
const PATH_RE = /^\/(?![/\\])[!$&'()*+,\-./0-9:;=@A-Z_a-z~%\[\]|^`{}"<>]*$/;
const PERCENT_RE = /%(?![0-9A-Fa-f]{2})/;

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v[0] : v;
}

/** Host header: a DNS name, IPv4 or [IPv6], optional port. */
function parseHost(value: string | undefined): { hostname: string; header: string } | null {
  if (value === undefined) return null;
  const h = value.trim().toLowerCase();
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9._-]+)(?::(\d{1,5}))?$/.exec(h);
  if (!m || (m[2] !== undefined && Number(m[2]) > 65535)) return null;
  return { hostname: m[1], header: h };
}

/** A cookie value decoded when it is well formed, kept as sent when not (it then matches no token). */
function cookieText(raw: string): string {
  let v = raw.trim();
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
  if (!v.includes('%')) return v;
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(';')) {
    if (out.size >= MAX_COOKIES) break;
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    // The first of two cookies of one name wins (RFC 6265: the more specific path comes first).
    if (name && !out.has(name)) out.set(name, cookieText(part.slice(eq + 1)));
  }
  return out;
}

/** The target, headers and cookies of one request, or why they cannot be read. Never throws. */
export function parseRequestInput(req: IncomingMessage): ParsedRequest {
  const target = typeof req.url === 'string' ? req.url : '';
  if (!target || target.length > MAX_TARGET_LENGTH) return { ok: false, reason: 'request target missing or too long' };
  const q = target.indexOf('?');
  const hash = target.indexOf('#');
  if (hash >= 0) return { ok: false, reason: 'request target contains a fragment' };
  const pathname = q >= 0 ? target.slice(0, q) : target;
  const rawQuery = q >= 0 ? target.slice(q + 1) : '';
  if (!PATH_RE.test(pathname)) return { ok: false, reason: 'malformed request target (expected /path?query)' };
  if (PERCENT_RE.test(pathname)) return { ok: false, reason: 'malformed percent-escape in the path' };
  if (/[\s\\]/.test(rawQuery)) return { ok: false, reason: 'malformed query' };
  const hostHeader = header(req, 'host');
  const host = parseHost(hostHeader);
  if (hostHeader !== undefined && !host) return { ok: false, reason: 'malformed Host header' };
  const auth = header(req, 'authorization');
  const bearer = auth ? /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(auth)?.[1] : undefined;
  const accept = header(req, 'accept') ?? '';
  return {
    ok: true,
    input: {
      method: (req.method ?? 'GET').toUpperCase(),
      pathname,
      rawQuery,
      // URLSearchParams keeps a malformed escape as it is instead of throwing.
      query: new URLSearchParams(rawQuery),
      hostname: host?.hostname ?? null,
      hostHeader: host?.header ?? null,
      origin: header(req, 'origin')?.trim(),
      fetchSite: header(req, 'sec-fetch-site')?.trim().toLowerCase(),
      fetchMode: header(req, 'sec-fetch-mode')?.trim().toLowerCase(),
      fetchDest: header(req, 'sec-fetch-dest')?.trim().toLowerCase(),
      bearer,
      cookies: parseCookies(header(req, 'cookie')),
      wantsHtml: /\btext\/html\b/i.test(accept),
    },
  };
}

/** The path for log lines: never the query (it may hold the token), cut short, control bytes escaped. */
export function pathForLog(url: string | undefined): string {
  const raw = typeof url === 'string' ? url : '';
  const q = raw.indexOf('?');
  const path = q >= 0 ? raw.slice(0, q) : raw;
  const shown = path.length > 120 ? `${path.slice(0, 120)}…` : path;
  return JSON.stringify(shown).slice(1, -1) + (q >= 0 ? '?…' : '');
}
