/**
 * The REST endpoints of dashboard/API.md. Every answer is JSON (with nosniff, set globally); bad
 * parameters get a 400 with a message, never a stack trace.
 */
import * as net from 'net';
import express, { NextFunction, Request, Response, Router } from 'express';
import { IDENTIFIER_TYPES, SEVERITIES, Severity, DeviceProfile } from '../../proxy/analyse/types';
import { compileProfile } from '../../proxy/analyse';
import { validateProfile } from '../../proxy/profile-file';
import type { Store } from '../../proxy/store';
import { DashboardQueries } from './queries';
import { qrSvg, type SetupView } from './setup-info';
import { harChunks, parseExportTime, type ExportFilter } from '../../proxy/export/har-export';
import { packageVersion } from '../../proxy/version';

export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 500;

export class BadRequest extends Error {}
class NotFound extends Error {}

/** What starting a device's re-analysis gave: started, or refused because one is running. */
export type ReanalyseAnswer = { started: true; queued: number } | { started: false; queued: number; left: number };

const PEER_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;

export interface ApiOptions {
  store: Store;
  queries: DashboardQueries;
  /** The Setup view's listing: never a private key. */
  setup(): SetupView | null | Promise<SetupView | null>;
  /** VPN mode: one phone's WireGuard config (private key included), null when unknown. */
  wireguardConfig?(peerName: string): string | null;
  stats(): unknown;
  reanalyse?(clientIp: string): ReanalyseAnswer | Promise<ReanalyseAnswer>;
  /** Logs a handler that failed (with the request), so the 500 has an explanation somewhere. */
  failed(method: string, url: string, err: unknown): void;
  /** Extra profile check (e.g. the analyser's compileProfile); throws with a message on a bad profile. */
  validateProfile?(profile: DeviceProfile): void;
  /** Called after a device's profile changed (flows analysed from now on use it). */
  onProfileChanged?(clientIp: string): void;
}

function one(req: Request, name: string): string | undefined {
  const v = req.query[name];
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string') throw new BadRequest(`${name} must be given once`);
  return v;
}

function intParam(req: Request, name: string, min: number, max: number): number | undefined {
  const v = one(req, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new BadRequest(`${name} must be a whole number from ${min} to ${max}`);
  return Number(v);
}

function severityParam(req: Request): Severity | undefined {
  const v = one(req, 'severity');
  if (v !== undefined && !SEVERITIES.includes(v as Severity)) throw new BadRequest(`severity must be one of ${SEVERITIES.join(', ')}`);
  return v as Severity | undefined;
}

function page(req: Request) {
  return { limit: intParam(req, 'limit', 1, MAX_PAGE) ?? DEFAULT_PAGE, before: intParam(req, 'before', 1, Number.MAX_SAFE_INTEGER) };
}

function listResponse<T extends { id: number }>(items: T[], limit: number) {
  return { items, nextBefore: items.length === limit ? items[items.length - 1].id : null };
}

/** Checks a device profile as users write it (DESIGN.md "Device profile"). */
export function checkProfile(p: unknown): DeviceProfile {
  if (!p || typeof p !== 'object' || Array.isArray(p)) throw new BadRequest('profile must be a JSON object');
  const out: DeviceProfile = {};
  for (const [k, v] of Object.entries(p as Record<string, unknown>)) {
    if (k === 'name') {
      if (typeof v !== 'string' || v.length > 200) throw new BadRequest('profile.name must be a string of at most 200 characters');
      out.name = v;
      continue;
    }
    if (!(IDENTIFIER_TYPES as readonly string[]).includes(k)) throw new BadRequest(`unknown identifier type '${k}' (known: ${IDENTIFIER_TYPES.join(', ')})`);
    const list = Array.isArray(v) ? v : [v];
    if (list.length > 100 || list.some((x) => typeof x !== 'string' || x.length === 0 || x.length > 256)) {
      throw new BadRequest(`profile.${k} must be a non-empty string or a list of at most 100 such strings`);
    }
    out[k] = Array.isArray(v) ? (v as string[]) : (v as string);
  }
  try {
    // The same checks as `--profile FILE` (a typo in an IMEI is an error, not a profile that never matches).
    const checked = validateProfile(out, 'profile');
    compileProfile(checked);
    return checked;
  } catch (err) {
    throw new BadRequest((err as Error).message);
  }
}

export function apiRouter(opts: ApiOptions): Router {
  const r = Router();
  const q = opts.queries;

  r.get('/flows', (req, res) => {
    const p = page(req);
    const items = q.flows({ ...p, host: one(req, 'host'), device: one(req, 'device'), type: one(req, 'type'), severity: severityParam(req), q: one(req, 'q') });
    res.json(listResponse(items, p.limit));
  });

  r.get('/flows/:id', (req, res) => {
    const id = req.params.id;
    if (!/^\d+$/.test(id)) throw new BadRequest('flow id must be a number');
    const detail = q.flowDetail(Number(id));
    if (!detail) {
      res.status(404).json({ error: `no flow ${id}` });
      return;
    }
    res.json(detail);
  });

  r.get('/findings', (req, res) => {
    const p = page(req);
    const device = one(req, 'device');
    const ips = device ? q.clientIpsFor(device) : [undefined];
    const items = opts.store.findings.list({ ...p, type: one(req, 'type'), host: one(req, 'host'), clientIp: ips[0], severity: severityParam(req) });
    res.json(listResponse(items, p.limit));
  });

  r.get('/destinations', (req, res) => {
    const device = one(req, 'device');
    res.json({ items: opts.store.findings.destinations({ clientIp: device ? q.clientIpsFor(device)[0] : undefined, type: one(req, 'type') }) });
  });

  r.get('/devices', (_req, res) => {
    res.json({ items: opts.store.devices.list() });
  });

  r.put('/devices/:clientIp', express.json({ limit: '64kb' }), (req, res) => {
    const ip = req.params.clientIp as string;
    if (!net.isIP(ip)) throw new BadRequest('clientIp must be an IP address');
    const body = req.body as { profile?: unknown } | undefined;
    if (!body || typeof body !== 'object' || !('profile' in body)) throw new BadRequest('body must be {"profile": {...}}');
    const profile = body.profile === null ? null : checkProfile(body.profile);
    if (profile) {
      try {
        opts.validateProfile?.(profile);
      } catch (err) {
        throw new BadRequest(`bad profile: ${(err as Error).message}`);
      }
    }
    const device = opts.store.devices.setProfile(ip, profile);
    opts.onProfileChanged?.(ip);
    res.json(device);
  });

  // The device's flows are analysed again with its current profile (proxy/pipeline/reanalysis.ts), one run per device at a time.
  r.post('/devices/:clientIp/reanalyse', async (req, res) => {
    const ip = req.params.clientIp as string;
    if (!net.isIP(ip)) throw new BadRequest('clientIp must be an IP address');
    if (!opts.reanalyse) {
      res.status(503).json({ error: 'analysis is not running in this phonehome' });
      return;
    }
    const answer = await opts.reanalyse(ip);
    if (!answer.started) {
      res.status(409).json({ error: `a re-check of ${ip} is already running: ${answer.left} of ${answer.queued} flows left`, queued: answer.queued, left: answer.left });
      return;
    }
    res.json({ queued: answer.queued });
  });

  r.get('/setup', async (_req, res) => {
    const s = await opts.setup();
    if (!s) {
      res.status(404).json({ error: 'no proxy is running with this dashboard' });
      return;
    }
    res.setHeader('Cache-Control', 'no-store');
    res.json(s);
  });

  // One phone's WireGuard config and its QR code: they hold the phone's private key, so they are
  // served one phone at a time to the token holder, never in a listing, never cached.
  const phoneConfig = (req: Request): { name: string; config: string } => {
    const name = req.params.peer as string;
    if (!PEER_NAME_RE.test(name)) throw new BadRequest('peer must be a phone name (letters, digits, ".", "_", "-")');
    const config = opts.wireguardConfig?.(name) ?? null;
    if (config === null) throw new NotFound(opts.wireguardConfig ? `no phone named ${name}` : 'VPN mode is not running');
    return { name, config };
  };
  r.get('/wireguard/:peer/config', (req, res) => {
    const { name, config } = phoneConfig(req);
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Content-Disposition', `attachment; filename="phonehome-${name}.conf"`);
    res.type('text/plain; charset=utf-8').send(config);
  });
  r.get('/wireguard/:peer/qr.svg', async (req, res) => {
    const { config } = phoneConfig(req);
    res.setHeader('Cache-Control', 'no-store');
    res.type('image/svg+xml').send(await qrSvg(config));
  });

  // The flows a filter selects, as a HAR file (proxy/export): streamed in pages, pausing between
  // them, so a large export never holds the proxy's event loop for long.
  r.get('/export.har', async (req, res) => {
    const type = one(req, 'type');
    if (type !== undefined && !(IDENTIFIER_TYPES as readonly string[]).includes(type)) throw new BadRequest(`type must be one of ${IDENTIFIER_TYPES.join(', ')}`);
    const time = (name: string) => {
      const t = parseExportTime(one(req, name));
      if (t === null) throw new BadRequest(`${name} must be an ISO date/time or epoch milliseconds`);
      return t;
    };
    const filter: ExportFilter = {
      device: one(req, 'device'), host: one(req, 'host'), q: one(req, 'q'), type, severity: severityParam(req), since: time('since'), until: time('until'),
      onlyFindings: one(req, 'onlyFindings') === '1', limit: intParam(req, 'limit', 1, Number.MAX_SAFE_INTEGER),
    };
    const stamp = new Date().toISOString().replace(/[:]/g, '').replace(/\..*$/, '');
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.setHeader('Content-Disposition', `attachment; filename="phonehome-${stamp}.har"`);
    let gone = false;
    res.on('close', () => (gone = true));
    let n = 0;
    try {
      for (const piece of harChunks(opts.store.db, filter, packageVersion())) {
        if (gone) return;
        if (!res.write(piece)) await new Promise((resolve) => res.once('drain', resolve).once('close', resolve));
        if (++n % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      res.end();
    } catch (err) {
      // Half sent: a cut download (the browser says so) rather than a HAR that looks whole.
      process.stderr.write(`phonehome dashboard: HAR export failed: ${(err as Error).message}\n`);
      res.destroy();
    }
  });

  r.get('/stats', (_req, res) => {
    res.json(opts.stats());
  });

  r.use((_req: Request, res: Response) => {
    res.status(404).json({ error: 'no such endpoint' });
  });

  r.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = err as { status?: number; type?: string; message?: string };
    if (res.headersSent) {
      opts.failed(req.method, req.originalUrl, err);
      res.destroy();
    } else if (err instanceof BadRequest) res.status(400).json({ error: err.message });
    else if (err instanceof NotFound) res.status(404).json({ error: err.message });
    else if (e.type === 'entity.parse.failed') res.status(400).json({ error: 'body is not valid JSON' });
    else if (e.type === 'entity.too.large') res.status(413).json({ error: 'body too large' });
    else if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) res.status(e.status).json({ error: e.message ?? 'bad request' });
    else {
      opts.failed(req.method, req.originalUrl, err);
      res.status(500).json({ error: 'internal error' });
    }
  });
  return r;
}
