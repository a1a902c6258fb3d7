/**
 * The dashboard server: express for the page (dashboard/public) and the REST API, plus our own
 * upgrade handling for `/ws` so that the token and Origin are checked before a WebSocket exists.
 * Binds 127.0.0.1 unless told otherwise; any other bind requires the token printed at start.
 */
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as path from 'path';
import express from 'express';
import type { DeviceProfile } from '../../proxy/analyse/types';
import type { Broadcaster } from '../../proxy/pipeline/broadcaster';
import type { Store } from '../../proxy/store';
import { apiRouter } from './api';
import { DashboardQueries } from './queries';
import { accessGuard, AccessPolicy, checkUpgrade, isLoopbackAddress, newToken, securityHeaders } from './security';
import { buildSetupView, SetupInfo, SetupView } from './setup-info';
import { HubOptions, WsHub } from './ws-hub';

export const DEFAULT_DASHBOARD_HOST = '127.0.0.1';

export interface DashboardOptions {
  host?: string;
  /** 0 picks a free port. */
  port: number;
  store: Store;
  broadcaster: Broadcaster;
  /** Pipeline counters for /api/stats (pending is read from SQLite regardless). */
  setupInfo?: SetupInfo;
  /** Required when host is not loopback; generated when not given. */
  token?: string;
  publicDir?: string;
  ws?: Partial<Omit<HubOptions, 'events' | 'broadcaster' | 'stats'>>;
  validateProfile?(profile: DeviceProfile): void;
  onProfileChanged?(clientIp: string): void;
}

export interface DashboardHandle {
  url: string;
  host: string;
  port: number;
  token?: string;
  hub: WsHub;
  close(): Promise<void>;
}

/** The page's files: dashboard/public next to this module's source, from either the TS or the dist tree. */
export function defaultPublicDir(): string {
  const candidates = [path.resolve(__dirname, '../public'), path.resolve(__dirname, '../../../dashboard/public')];
  return candidates.find((d) => fs.existsSync(path.join(d, 'index.html'))) ?? candidates[0];
}

/** Loopback: no token unless given, Host must be loopback. Anything else: a token, generated if not given. */
export function accessPolicyFor(host: string, token?: string): AccessPolicy {
  const loopback = isLoopbackAddress(host);
  return { token: token ?? (loopback ? undefined : newToken()), loopbackOnly: loopback };
}

export async function startDashboard(opts: DashboardOptions): Promise<DashboardHandle> {
  const host = opts.host ?? DEFAULT_DASHBOARD_HOST;
  const policy = accessPolicyFor(host, opts.token);
  const token = policy.token;
  const queries = new DashboardQueries(opts.store);
  const stats = () => queries.stats(opts.store.events.latestSeq());
  let setup: SetupView | null = null;
  if (opts.setupInfo) setup = await buildSetupView(opts.setupInfo);

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(securityHeaders);
  app.use(accessGuard(policy));
  app.use(
    '/api',
    apiRouter({ store: opts.store, queries, setup: async () => (setup && opts.setupInfo?.wireguard ? { ...setup, wireguard: await opts.setupInfo.wireguard() } : setup), stats, validateProfile: opts.validateProfile, onProfileChanged: opts.onProfileChanged }),
  );
  app.use(express.static(opts.publicDir ?? defaultPublicDir(), { index: 'index.html', dotfiles: 'ignore' }));
  app.use((_req: express.Request, res: express.Response) => {
    res.status(404).json({ error: 'not found' });
  });
  app.use((err: { status?: number }, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(err.status && err.status >= 400 && err.status < 500 ? err.status : 500).json({ error: 'request failed' });
  });

  const hub = new WsHub({ ...opts.ws, events: opts.store.events, broadcaster: opts.broadcaster, stats });
  const server = http.createServer(app);
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    const pathname = new URL(req.url ?? '/', 'http://x').pathname;
    if (pathname !== '/ws') return refuse(socket, 404, 'not found');
    const denial = checkUpgrade(policy, req);
    if (denial) return refuse(socket, denial.status, denial.message);
    hub.handleUpgrade(req, socket, head);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}/${token ? `?token=${token}` : ''}`,
    host,
    port,
    token,
    hub,
    async close() {
      hub.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function refuse(socket: import('stream').Duplex, status: number, message: string): void {
  const body = JSON.stringify({ error: message });
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

export type { SetupInfo } from './setup-info';
