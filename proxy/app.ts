/**
 * The composition `phonehome start` runs: data dir, CA and leaf minter, store, proxy, the analysis
 * pipeline fed by the proxy's onFlow, and the dashboard (REST + WebSocket). Tests and benchmarks
 * start exactly what a user starts.
 */
import * as dns from 'dns';
import { CertificateAuthority } from '../certs/ca';
import { LeafMinter } from '../certs/leaf';
import { serveSetupPage } from './capture/setup-page';
import { ProxyServer, ProxyServerOptions } from './capture/proxy-server';
import type { Logger } from './capture/recording';
import { consoleLogger, FlowRecorder } from './capture/recording';
import { startVpn, VpnEndpoint, VpnOptions } from './capture/tunnel';
import { createTcpInterception } from './capture/tunnel/tcp/intercept-tcp';
import { ensureDataDir } from './data-dir';
import type { Flow } from './flow';
import { Store } from './store';
import type { DashboardOptions } from '../dashboard/server';
import { lanAddresses } from '../dashboard/server/setup-info';
import { loadOrCreateDashboardToken } from '../dashboard/server/token-file';
import type { AnalysisPipeline, PipelineOptions } from './pipeline';
import { startLive, LiveServices } from './pipeline/live';
import type { ProfileAssignments } from './pipeline/profiles';

export interface PhonehomeOptions {
  dataDir?: string;
  listenHost?: string;
  port?: number;
  /** Dashboard port (default 8081); null: no dashboard listener. */
  dashboardPort?: number | null;
  /** Default 127.0.0.1. */
  dashboardHost?: string;
  /** The token the dashboard requires; default: the data dir's dashboard.token (created at the first start). */
  dashboardToken?: string;
  /** `--profile`: a default profile and per-device ones (stored in the devices table). */
  profiles?: ProfileAssignments;
  /** false: record only, no analysis (benchmark baseline); flows stay pending for a later start. */
  analysis?: boolean;
  /** Tuning and test hooks for the pipeline and the WebSocket hub. */
  pipeline?: Partial<Omit<PipelineOptions, 'store' | 'broadcaster'>>;
  ws?: DashboardOptions['ws'];
  allowClients?: string[];
  ignoreHosts?: string[];
  bodyLimit?: number;
  upstreamInsecure?: boolean;
  /** `--allow-loopback-targets`: the proxy and VPN mode may reach this laptop's loopback (development, tests). */
  allowLoopbackTargets?: boolean;
  /** `--head-timeout` (ms here): see ProxyServerOptions.headTimeoutMs. */
  headTimeoutMs?: number;
  /** `--max-client-connections`: see ProxyServerOptions.maxConnectionsPerClient. */
  maxConnectionsPerClient?: number;
  onFlow?: (flow: Flow) => void;
  log?: Logger;
  /** Tuning and test hooks passed to the proxy as they are. */
  proxy?: Pick<ProxyServerOptions, 'idleTimeoutMs' | 'sniffTimeoutMs' | 'connectTimeoutMs' | 'maxHeaderSize' | 'upstreamCa' | 'lookup'>;
  /** VPN mode (`--wireguard`): the WireGuard endpoint on this UDP port (default 51820). */
  wireguard?: { port?: number; listenHost?: string; dnsUpstreams?: string[] } & Pick<VpnOptions, 'createIpLayer' | 'peersPollMs'>;
}

export interface Phonehome {
  proxy: ProxyServer;
  store: Store;
  ca: CertificateAuthority;
  minter: LeafMinter;
  dataDir: string;
  proxyPort: number;
  /** The dashboard's address from this machine, without the token. */
  dashboardUrl?: string;
  /** Set when the dashboard runs: every request to it must carry this token. */
  dashboardToken?: string;
  pipeline: AnalysisPipeline | null;
  live: LiveServices;
  /** Set with the `wireguard` option. */
  vpn?: VpnEndpoint;
  close(): Promise<void>;
}

export async function startPhonehome(opts: PhonehomeOptions = {}): Promise<Phonehome> {
  const log = opts.log ?? consoleLogger;
  const dataDir = ensureDataDir(opts.dataDir, (m) => log(m));
  const ca = CertificateAuthority.loadOrCreate(dataDir, { warn: (m) => log(m) });
  const minter = new LeafMinter(ca);
  await minter.warmUp();
  const store = Store.open({ dataDir, backgroundCheckpoint: true });
  let live: LiveServices | undefined;
  let dashboardUrl: string | undefined;
  const dashboardHost = opts.dashboardHost ?? '127.0.0.1';
  // Flows recorded before the pipeline is up stay pending in SQLite; its catch-up loop takes them.
  const onFlow = (flow: Flow) => {
    live?.onFlow(flow);
    opts.onFlow?.(flow);
  };
  const proxy = new ProxyServer({
    listenHost: opts.listenHost ?? '0.0.0.0',
    port: opts.port ?? 8080,
    allowClients: opts.allowClients,
    ignoreHosts: opts.ignoreHosts,
    bodyLimit: opts.bodyLimit,
    upstreamInsecure: opts.upstreamInsecure,
    allowLoopbackTargets: opts.allowLoopbackTargets,
    headTimeoutMs: opts.headTimeoutMs,
    maxConnectionsPerClient: opts.maxConnectionsPerClient,
    store,
    ca,
    minter,
    onFlow,
    log,
    setupPage: (req, res, proxyHost, proxyPort) => serveSetupPage(req, res, { ca, proxyHost, proxyPort, dashboardUrl: dashboardUrl ?? '' }),
    ...opts.proxy,
  });
  let vpn: VpnEndpoint | undefined;
  const vpnRecorder = new FlowRecorder(store, log, onFlow);
  try {
    const { port } = await proxy.listen();
    const listenHost = opts.listenHost ?? '0.0.0.0';
    const proxyHost = listenHost === '0.0.0.0' || listenHost === '::' ? (lanAddresses()[0] ?? '127.0.0.1') : listenHost;
    if (opts.wireguard) {
      const wgHost = opts.wireguard.listenHost ?? listenHost;
      vpn = await startVpn({
        dataDir,
        port: opts.wireguard.port,
        listenHost: wgHost === '::' ? '0.0.0.0' : wgHost,
        endpointHost: proxyHost,
        dnsUpstreams: opts.wireguard.dnsUpstreams?.length ? opts.wireguard.dnsUpstreams : dns.getServers(),
        recorder: vpnRecorder,
        store,
        log,
        tcp: createTcpInterception(proxy.runtime),
        createIpLayer: opts.wireguard.createIpLayer,
        peersPollMs: opts.wireguard.peersPollMs,
        guard: proxy.runtime.upstream.guard,
      });
    }
    const vpnRunning = vpn;
    const proxyBase = `http://${proxyHost.includes(':') ? `[${proxyHost}]` : proxyHost}:${port}`;
    live = await startLive({
      store,
      dashboard: opts.dashboardPort === null ? null : { host: dashboardHost, port: opts.dashboardPort ?? 8081, ...dashboardToken(dataDir, opts.dashboardToken, log), ws: opts.ws },
      profiles: opts.profiles,
      analysis: opts.analysis,
      pipeline: opts.pipeline,
      setupInfo: {
        proxyHost, proxyPort: port, setupUrl: `${proxyBase}/`, caUrl: `${proxyBase}/ca.pem`,
        wireguard: vpnRunning && {
          status: () => vpnRunning.setupView(),
          config: (name: string) => vpnRunning.configs().find((c) => c.peer.name === name)?.config ?? null,
        },
      },
      log,
    });
    if (live.dashboard) {
      proxy.runtime.upstream.guard.addOwnService('dashboard', 'tcp', live.dashboard.port);
      // Without the token: this address is also shown on the phone's setup page.
      dashboardUrl = live.dashboard.origin;
    }
    const running = live;
    return {
      proxy,
      store,
      ca,
      minter,
      dataDir,
      proxyPort: port,
      dashboardUrl,
      dashboardToken: running.dashboard?.token,
      pipeline: running.pipeline,
      live: running,
      vpn,
      async close() {
        await proxy.close();
        if (vpnRunning) await vpnRunning.close();
        vpnRecorder.flushNow();
        await running.close();
        await store.closeAsync();
      },
    };
  } catch (err) {
    await proxy.close().catch(() => undefined);
    if (vpn) await vpn.close().catch(() => undefined);
    if (live) await live.close().catch(() => undefined);
    await store.closeAsync();
    throw err;
  }
}

/** The token given, or the data dir's (with its file, named on the page a browser without it sees). */
function dashboardToken(dataDir: string, given: string | undefined, log: Logger): { token: string; tokenFile?: string } {
  if (given) return { token: given };
  const t = loadOrCreateDashboardToken(dataDir, (m) => log(`dashboard: ${m}`));
  return { token: t.token, tokenFile: t.file };
}
