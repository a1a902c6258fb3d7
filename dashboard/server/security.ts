/**
 * Who may use the dashboard. Loopback by default; bound elsewhere it needs the token printed at
 * start (query → HttpOnly cookie, cookie, or Bearer). The Host header is checked on a loopback bind
 * (DNS rebinding), the Origin on the WebSocket upgrade (cross-site WebSocket hijacking), and every
 * response carries a CSP without inline scripts: captured bytes are hostile text.
 */
import * as crypto from 'crypto';
import type { IncomingMessage } from 'http';
import type { NextFunction, Request, Response } from 'express';

export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";
export const TOKEN_COOKIE = 'phonehome_token';

export function isLoopbackAddress(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || h === '::ffff:127.0.0.1';
}

export function newToken(): string {
  return crypto.randomBytes(24).toString('base64url');
}

export interface AccessPolicy {
  /** Required on every request when set. */
  token?: string;
  /** On a loopback bind, the Host header must name a loopback address (defeats DNS rebinding). */
  loopbackOnly: boolean;
}

export type Denial = { status: 401 | 403; message: string };

function hostnameOf(hostHeader: string | undefined): string | null {
  if (!hostHeader) return null;
  const m = /^(\[[^\]]+\]|[^:]+)(?::\d+)?$/.exec(hostHeader.trim());
  return m ? m[1] : null;
}

function sameToken(given: string | undefined, token: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

/** Checks Host and token; returns the denial, or null when allowed (and whether the token came in the query). */
export function checkRequest(policy: AccessPolicy, req: IncomingMessage): { denial: Denial | null; tokenFromQuery: boolean } {
  const host = hostnameOf(req.headers.host);
  if (policy.loopbackOnly && (!host || !isLoopbackAddress(host))) {
    return { denial: { status: 403, message: 'unexpected Host header: this dashboard answers only on loopback' }, tokenFromQuery: false };
  }
  if (!policy.token) return { denial: null, tokenFromQuery: false };
  const url = new URL(req.url ?? '/', 'http://x');
  const fromQuery = url.searchParams.get('token') ?? undefined;
  if (sameToken(fromQuery, policy.token)) return { denial: null, tokenFromQuery: true };
  const auth = req.headers.authorization;
  const bearer = auth && /^Bearer\s+(.+)$/i.exec(auth)?.[1];
  if (sameToken(bearer || undefined, policy.token) || sameToken(cookieValue(req.headers.cookie, TOKEN_COOKIE), policy.token)) {
    return { denial: null, tokenFromQuery: false };
  }
  return { denial: { status: 401, message: 'token required: open the URL printed by phonehome start (…?token=…)' }, tokenFromQuery: false };
}

/** The upgrade additionally requires the Origin, when present, to be this dashboard's own. */
export function checkUpgrade(policy: AccessPolicy, req: IncomingMessage): Denial | null {
  const { denial } = checkRequest(policy, req);
  if (denial) return denial;
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `http://${req.headers.host}`) {
    return { status: 403, message: `origin ${origin} is not allowed` };
  }
  return null;
}

export function securityHeaders(_req: Request, res: Response, next: NextFunction): void {
  res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
  next();
}

export function accessGuard(policy: AccessPolicy) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const { denial, tokenFromQuery } = checkRequest(policy, req);
    if (denial) {
      res.status(denial.status).json({ error: denial.message });
      return;
    }
    if (tokenFromQuery && policy.token) {
      res.cookie(TOKEN_COOKIE, policy.token, { httpOnly: true, sameSite: 'strict', path: '/' });
    }
    next();
  };
}
