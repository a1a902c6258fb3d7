/**
 * The composition `phonehome start` runs: data dir, CA and leaf minter, store, proxy, and the
 * dashboard's port (a placeholder page until the dashboard issue replaces it). Later stages
 * (analysis pipeline, dashboard, broadcast) are added here, so tests and benchmarks start exactly
 * what a user starts.
 */
import * as http from 'http';
import type * as net from 'net';
import { CertificateAuthority } from '../certs/ca';
import { LeafMinter } from '../certs/leaf';
import { serveSetupPage } from './capture/setup-page';
import { ProxyServer, ProxyServerOptions } from './capture/proxy-server';
import type { Logger } from './capture/recording';
import { consoleLogger } from './capture/recording';
import { ensureDataDir } from './data-dir';
import type { Flow } from './flow';
import { Store } from './store';

export interface PhonehomeOptions {
  dataDir?: string;
  listenHost?: string;
  port?: number;
  /** Dashboard port on 127.0.0.1 (default 8081); null: no dashboard listener. */
  dashboardPort?: number | null;
  dashboardHost?: string;
  allowClients?: string[];
  ignoreHosts?: string[];
  bodyLimit?: number;
  upstreamInsecure?: boolean;
  onFlow?: (flow: Flow) => void;
  log?: Logger;
  /** Tuning and test hooks passed to the proxy as they are. */
  proxy?: Pick<ProxyServerOptions, 'idleTimeoutMs' | 'sniffTimeoutMs' | 'connectTimeoutMs' | 'maxHeaderSize' | 'upstreamCa' | 'lookup'>;
}

export interface Phonehome {
  proxy: ProxyServer;
  store: Store;
  ca: CertificateAuthority;
  minter: LeafMinter;
  dataDir: string;
  proxyPort: number;
  dashboardUrl?: string;
  close(): Promise<void>;
}

export async function startPhonehome(opts: PhonehomeOptions = {}): Promise<Phonehome> {
  const log = opts.log ?? consoleLogger;
  const dataDir = ensureDataDir(opts.dataDir);
  const ca = CertificateAuthority.loadOrCreate(dataDir, { warn: (m) => log(m) });
  const minter = new LeafMinter(ca);
  await minter.warmUp();
  const store = Store.open({ dataDir, backgroundCheckpoint: true });
  let dashboard: http.Server | undefined;
  let dashboardUrl: string | undefined;
  const dashboardHost = opts.dashboardHost ?? '127.0.0.1';
  const proxy = new ProxyServer({
    listenHost: opts.listenHost ?? '0.0.0.0',
    port: opts.port ?? 8080,
    allowClients: opts.allowClients,
    ignoreHosts: opts.ignoreHosts,
    bodyLimit: opts.bodyLimit,
    upstreamInsecure: opts.upstreamInsecure,
    store,
    ca,
    minter,
    onFlow: opts.onFlow,
    log,
    setupPage: (req, res, proxyHost, proxyPort) => serveSetupPage(req, res, { ca, proxyHost, proxyPort, dashboardUrl: dashboardUrl ?? '' }),
    ...opts.proxy,
  });
  try {
    const { port } = await proxy.listen();
    if (opts.dashboardPort !== null) {
      dashboard = placeholderDashboard();
      const dport = await listen(dashboard, opts.dashboardPort ?? 8081, dashboardHost);
      dashboardUrl = `http://${dashboardHost.includes(':') ? `[${dashboardHost}]` : dashboardHost}:${dport}`;
    }
    return {
      proxy,
      store,
      ca,
      minter,
      dataDir,
      proxyPort: port,
      dashboardUrl,
      async close() {
        await proxy.close();
        if (dashboard) await closeServer(dashboard);
        await store.closeAsync();
      },
    };
  } catch (err) {
    await proxy.close().catch(() => undefined);
    if (dashboard) await closeServer(dashboard).catch(() => undefined);
    await store.closeAsync();
    throw err;
  }
}

function placeholderDashboard(): http.Server {
  return http.createServer((req, res) => {
    const text = 'phonehome is recording. The live dashboard arrives in a later release; meanwhile query phonehome.db with sqlite3 (see README).\n';
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
    res.end(req.method === 'HEAD' ? undefined : text);
  });
}

function listen(server: http.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.removeListener('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

function closeServer(server: http.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}
