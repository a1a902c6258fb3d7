/**
 * Who may use the dashboard, decided in one place for the page, the REST API and the WebSocket.
 * The dashboard shows everything every phone sent (Authorization headers included) and can change
 * profiles and re-run analysis, so on loopback too (as mitmweb and Jupyter do):
 * - the token (dashboard.token in the data dir, printed at start) on every request: `?token=` once
 *   (a browser then gets an HttpOnly, SameSite=Strict cookie), the cookie, or `Authorization: Bearer`;
 * - the Host header on a loopback bind (DNS rebinding);
 * - the Origin on every state-changing request and on the upgrade: a page on another origin —
 *   another port of 127.0.0.1 too, which is same-site, so the cookie is sent — is refused;
 * - Fetch Metadata on reads: another site's page cannot even make the browser fetch a resource.
 * Every response carries a CSP without inline scripts: captured bytes are hostile text.
 */
import * as crypto from 'crypto';
import type { RequestInput } from './request-input';

export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
export const TOKEN_COOKIE = 'phonehome_token';
export const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': CONTENT_SECURITY_POLICY,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Cross-Origin-Opener-Policy': 'same-origin',
};

export function isLoopbackAddress(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || /^::ffff:127\.\d+\.\d+\.\d+$/.test(h);
}

/** 32 random bytes, base64url: 43 characters. */
export function newToken(): string {
  return crypto.randomBytes(32).toString('base64url');
}

export interface AccessPolicy {
  /** Required on every request. */
  token: string;
  /** On a loopback bind, the Host header must name a loopback address (defeats DNS rebinding). */
  loopbackOnly: boolean;
}

export type Credential = 'query' | 'bearer' | 'cookie';
export type Decision =
  | { allowed: true; credential: Credential }
  | { allowed: false; status: 401 | 403; message: string; /** Worth a log line (an attempt, not a forgotten token). */ notable: boolean };

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function sameToken(given: string | null | undefined, token: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

function credentialOf(policy: AccessPolicy, input: RequestInput): Credential | null {
  if (sameToken(input.bearer, policy.token)) return 'bearer';
  if (sameToken(input.query.get('token'), policy.token)) return 'query';
  if (sameToken(input.cookies.get(TOKEN_COOKIE), policy.token)) return 'cookie';
  return null;
}

/** The origins this dashboard's own page has: the Host it was reached by (http, or https behind a TLS proxy). */
function isOwnOrigin(origin: string, input: RequestInput): boolean {
  if (!input.hostHeader) return false;
  const o = origin.toLowerCase();
  return o === `http://${input.hostHeader}` || o === `https://${input.hostHeader}`;
}

function refuse(status: 401 | 403, message: string, notable: boolean): Decision {
  return { allowed: false, status, message, notable };
}

/**
 * Host, token, then where the request comes from. `upgrade`: the WebSocket handshake, which a page
 * on any origin may start (no CORS) and which carries the cookie: checked like a state change.
 */
export function authorize(policy: AccessPolicy, input: RequestInput, upgrade: boolean): Decision {
  if (policy.loopbackOnly && (!input.hostname || !isLoopbackAddress(input.hostname))) {
    return refuse(403, 'unexpected Host header: this dashboard answers only on loopback', true);
  }
  const credential = credentialOf(policy, input);
  if (!credential) {
    return refuse(401, 'token required: open the dashboard link phonehome start printed (…/?token=…), or send Authorization: Bearer <token>', false);
  }
  const origin = input.origin;
  if (origin !== undefined && !isOwnOrigin(origin, input)) {
    return refuse(403, `cross-origin request refused (Origin ${origin.slice(0, 100)})`, true);
  }
  const site = input.fetchSite;
  const crossSite = site === 'cross-site' || site === 'same-site';
  if (upgrade || !SAFE_METHODS.has(input.method)) {
    if (origin === undefined) {
      // Browsers send Origin with every state change and every WebSocket; without one, the
      // request comes from a program — unless the browser's own metadata says otherwise.
      if (crossSite) return refuse(403, `cross-site request refused (Sec-Fetch-Site ${site})`, true);
      // The cookie is the one credential a browser adds by itself: alone, it must come with proof of origin.
      if (credential === 'cookie' && site !== 'same-origin') {
        return refuse(403, 'a request that changes something must come from the dashboard page (Origin header) or carry Authorization: Bearer <token>', true);
      }
    }
    return { allowed: true, credential };
  }
  // Reads: another site's page may link to the dashboard (a navigation), not load its resources.
  if (crossSite && !(input.method === 'GET' && input.fetchMode === 'navigate' && (input.fetchDest === undefined || input.fetchDest === 'document'))) {
    return refuse(403, `cross-site request refused (Sec-Fetch-Site ${site}, Sec-Fetch-Mode ${input.fetchMode ?? 'none'})`, true);
  }
  return { allowed: true, credential };
}

/** The cookie a browser keeps after opening the link with ?token= (a session cookie: gone when the browser closes). */
export function tokenCookie(token: string): string {
  return `${TOKEN_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict`;
}

/** The request without its token parameter: where a browser is sent after the cookie is set. */
export function withoutToken(input: RequestInput): string {
  const rest = new URLSearchParams(input.query);
  rest.delete('token');
  const q = rest.toString();
  return `${input.pathname}${q ? `?${q}` : ''}`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** What a browser without the token sees: where the link is. No script, no style (the CSP applies). */
export function tokenRequiredPage(input: RequestInput, tokenFile: string | undefined): string {
  const base = `http://${input.hostHeader ?? '127.0.0.1:8081'}/`;
  const file = tokenFile
    ? `<p>The token is also kept in <code>${escapeHtml(tokenFile)}</code> (readable only by its owner): open <code>${escapeHtml(base)}?token=</code> followed by it.</p>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>phonehome: token required</title></head>
<body>
<h1>This dashboard needs its token</h1>
<p>token required: open the dashboard link that <code>phonehome start</code> printed in its terminal, which looks like <code>${escapeHtml(base)}?token=…</code>.</p>
${file}
</body></html>
`;
}
