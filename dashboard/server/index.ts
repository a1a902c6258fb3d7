/**
 * The dashboard server: express for the page (dashboard/public) and the REST API, plus our own
 * upgrade handling for `/ws`. Both paths start the same way: the request is read by
 * parseRequestInput (malformed → 400 and a log line, never an exception), then authorize (token,
 * Host, Origin; security.ts) decides. A failure inside any handler is logged with the request and
 * answered 500; it never ends the process.
 */
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as path from 'path';
import type { Duplex } from 'stream';
import express from 'express';
import type { DeviceProfile } from '../../proxy/analyse/types';
import { ConnectionScope, inConnection } from '../../proxy/capture/containment';
import type { Broadcaster } from '../../proxy/pipeline/broadcaster';
import type { Store } from '../../proxy/store';
import { apiRouter, ReanalyseAnswer } from './api';
import { LimitedLog } from './log-limit';
import { DashboardQueries } from './queries';
import { parseRequestInput, pathForLog, RequestInput } from './request-input';
import { AccessPolicy, authorize, isLoopbackAddress, newToken, SECURITY_HEADERS, tokenCookie, tokenRequiredPage, withoutToken } from './security';
import { buildSetupView, lanAddresses, SetupInfo, SetupView } from './setup-info';
import { HubOptions, WsHub } from './ws-hub';

export const DEFAULT_DASHBOARD_HOST = '127.0.0.1';

export interface DashboardOptions {
  host?: string;
  /** 0 picks a free port. */
  port: number;
  store: Store;
  broadcaster: Broadcaster;
  setupInfo?: SetupInfo;
  /** The token every request must carry; `phonehome start` passes the data dir's (token-file.ts). Random when not given. */
  token?: string;
  /** Where the token is kept, named on the page a browser without the token sees. */
  tokenFile?: string;
  publicDir?: string;
  ws?: Partial<Omit<HubOptions, 'events' | 'broadcaster' | 'stats'>>;
  validateProfile?(profile: DeviceProfile): void;
  onProfileChanged?(clientIp: string): void;
  /** `POST /api/devices/:ip/reanalyse` (the pipeline's DeviceReanalysis); without it the endpoint answers 503. */
  reanalyse?(clientIp: string): ReanalyseAnswer | Promise<ReanalyseAnswer>;
  /** Refused and malformed requests, failed handlers (rate-limited). Default: stderr. */
  log?(message: string): void;
}

export interface DashboardHandle {
  /** The link that opens the dashboard: http://127.0.0.1:PORT/?token=… */
  url: string;
  /** The dashboard's own origin on loopback, without the token. */
  origin: string;
  host: string;
  port: number;
  token: string;
  hub: WsHub;
  close(): Promise<void>;
}

/** The page's files: dashboard/public next to this module's source, from either the TS or the dist tree. */
export function defaultPublicDir(): string {
  const candidates = [path.resolve(__dirname, '../public'), path.resolve(__dirname, '../../../dashboard/public')];
  return candidates.find((d) => fs.existsSync(path.join(d, 'index.html'))) ?? candidates[0];
}

/** A token always; the Host check on a loopback bind. */
export function accessPolicyFor(host: string, token: string): AccessPolicy {
  return { token, loopbackOnly: isLoopbackAddress(host) };
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** The links that open the dashboard from this machine first, then (bound beyond loopback) from others. */
export function dashboardLinks(host: string, port: number, token: string): string[] {
  const hosts = isWildcard(host) ? ['127.0.0.1', ...lanAddresses()] : [host];
  return hosts.map((h) => `http://${urlHost(h)}:${port}/?token=${token}`);
}

function sendRefusal(res: express.Response, input: RequestInput, status: number, message: string, tokenFile: string | undefined): void {
  res.setHeader('Cache-Control', 'no-store');
  if (status === 401 && input.wantsHtml && input.method === 'GET') {
    res.status(401).type('html').send(tokenRequiredPage(input, tokenFile));
    return;
  }
  res.status(status).json({ error: message });
}

export async function startDashboard(opts: DashboardOptions): Promise<DashboardHandle> {
  const host = opts.host ?? DEFAULT_DASHBOARD_HOST;
  const token = opts.token ?? newToken();
  const policy = accessPolicyFor(host, token);
  const write = opts.log ?? ((m: string) => process.stderr.write(`phonehome ${m}\n`));
  // Refusals and failures have their own budgets: a flood of refused requests never hides a failure.
  const log = new LimitedLog(write);
  const failures = new LimitedLog(write);
  const failed = (method: string | undefined, url: string | undefined, err: unknown) =>
    failures.line(`${method ?? '?'} ${pathForLog(url)} failed: ${(err as Error)?.message ?? String(err)}`);
  const queries = new DashboardQueries(opts.store);
  const stats = () => queries.stats(opts.store.events.latestSeq());
  let setup: SetupView | null = null;
  if (opts.setupInfo) setup = await buildSetupView(opts.setupInfo);
  const wireguard = opts.setupInfo?.wireguard;

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use((req: express.Request, res: express.Response, next: express.NextFunction) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
    const parsed = parseRequestInput(req);
    if (!parsed.ok) {
      log.line(`${req.method} ${pathForLog(req.url)} refused (400): ${parsed.reason}`);
      res.status(400).json({ error: parsed.reason });
      return;
    }
    const input = parsed.input;
    const decision = authorize(policy, input, false);
    if (!decision.allowed) {
      if (decision.notable) log.line(`${input.method} ${pathForLog(req.url)} refused (${decision.status}): ${decision.message}`);
      sendRefusal(res, input, decision.status, decision.message, opts.tokenFile);
      return;
    }
    if (decision.credential === 'query') {
      res.setHeader('Set-Cookie', tokenCookie(token));
      if (input.method === 'GET' && (input.wantsHtml || input.fetchMode === 'navigate')) {
        // The cookie carries the token from now on: it leaves the address bar and the history.
        res.setHeader('Cache-Control', 'no-store');
        res.redirect(303, withoutToken(input));
        return;
      }
    }
    next();
  });
  app.use(
    '/api',
    apiRouter({
      store: opts.store,
      queries,
      setup: async () => (setup && wireguard ? { ...setup, wireguard: await wireguard.status() } : setup),
      wireguardConfig: wireguard && ((peer) => wireguard.config(peer)),
      stats,
      validateProfile: opts.validateProfile,
      onProfileChanged: opts.onProfileChanged,
      reanalyse: opts.reanalyse,
      failed,
    }),
  );
  app.use(express.static(opts.publicDir ?? defaultPublicDir(), { index: 'index.html', dotfiles: 'ignore' }));
  app.use((_req: express.Request, res: express.Response) => {
    res.status(404).json({ error: 'not found' });
  });
  app.use((err: { status?: number }, req: express.Request, res: express.Response, _next: express.NextFunction) => {
    const status = err.status && err.status >= 400 && err.status < 500 ? err.status : 500;
    if (status === 500) failed(req.method, req.url, err);
    if (res.headersSent) res.destroy();
    else res.status(status).json({ error: status === 500 ? 'internal error' : 'request refused' });
  });

  const hub = new WsHub({ ...opts.ws, events: opts.store.events, broadcaster: opts.broadcaster, stats, onError: (err) => failed('GET', '/ws', err) });
  // Each request runs in a connection scope (proxy/capture/containment.ts): an exception thrown later
  // from a callback it started is then, under `phonehome start`, logged and closes that connection
  // only. The target is shown without its query (it may hold the token).
  const scopeOf = (req: http.IncomingMessage, socket: Duplex): ConnectionScope =>
    ({ client: req.socket?.remoteAddress ?? '?', method: req.method, target: `dashboard ${pathForLog(req.url)}`, socket });
  const server = http.createServer((req, res) => inConnection(scopeOf(req, req.socket), () => app(req, res)));
  // Upgraded sockets leave the server's connection tracking: closeAllConnections() does not see them.
  const upgraded = new Set<Duplex>();
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => inConnection(scopeOf(req, socket), () => {
    socket.on('error', () => socket.destroy());
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    try {
      const parsed = parseRequestInput(req);
      if (!parsed.ok) {
        log.line(`upgrade ${pathForLog(req.url)} refused (400): ${parsed.reason}`);
        return refuseUpgrade(socket, 400, parsed.reason);
      }
      const input = parsed.input;
      if (input.pathname !== '/ws') return refuseUpgrade(socket, 404, 'not found');
      const decision = authorize(policy, input, true);
      if (!decision.allowed) {
        if (decision.notable) log.line(`upgrade ${pathForLog(req.url)} refused (${decision.status}): ${decision.message}`);
        return refuseUpgrade(socket, decision.status, decision.message);
      }
      hub.handleUpgrade(req, socket, head, input.query);
    } catch (err) {
      failed(req.method, req.url, err);
      refuseUpgrade(socket, 500, 'internal error');
    }
  }));

  // A CONNECT here is a phone or tool pointed at the wrong port: say so (Node would close silently).
  server.on('connect', (_req: http.IncomingMessage, socket: Duplex) => {
    socket.on('error', () => socket.destroy());
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    refuseUpgrade(socket, 405, 'this is the phonehome dashboard, not the proxy: CONNECT is not served here');
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // After listen, an error here is an accept() that failed (EMFILE under a connection flood): logged,
  // and the server goes on accepting (without a listener it would end the process).
  server.on('error', (err) => failures.line(`listener: ${err.message}`));
  const port = (server.address() as AddressInfo).port;
  const origin = `http://${urlHost(isWildcard(host) ? '127.0.0.1' : host)}:${port}`;
  return {
    url: `${origin}/?token=${token}`,
    origin,
    host,
    port,
    token,
    hub,
    async close() {
      hub.close();
      for (const socket of upgraded) socket.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** How long a refused upgrade's client may take to close after reading the answer. */
const REFUSED_UPGRADE_GRACE_MS = 2000;

function refuseUpgrade(socket: Duplex, status: number, message: string): void {
  if (socket.destroyed) return;
  const body = JSON.stringify({ error: message });
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n${body}`,
  );
  // Whatever else the client sends is read and dropped: a paused socket never sees the client's end
  // and would stay half-open for good (a stuck shutdown, a leaked descriptor per hostile request).
  socket.resume();
  setTimeout(() => socket.destroy(), REFUSED_UPGRADE_GRACE_MS).unref();
}

export type { SetupInfo } from './setup-info';
export type { ReanalyseAnswer } from './api';
