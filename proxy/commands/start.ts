/**
 * `phonehome start`: runs the proxy (and the dashboard's port) until SIGINT/SIGTERM, and tells the
 * user the three things they need: the address and port to type into the phone's Wi-Fi proxy
 * setting, the setup page for the CA, and where the data is kept.
 */
import * as os from 'os';
import * as path from 'path';
import type { Command } from '../cli';
import { startPhonehome } from '../app';
import { ClientAccessList, DEFAULT_ALLOWED_CLIENTS, InvalidCidrError } from '../capture/access';
import { DEFAULT_MAX_CONNECTIONS_PER_CLIENT } from '../capture/client-limit';
import { installLastResortHandler } from '../capture/containment';
import { consoleLogger } from '../capture/recording';
import { DEFAULT_BODY_LIMIT, DEFAULT_HEAD_TIMEOUT_MS } from '../capture/proxy-server';
import { HostPatternList, InvalidTargetError } from '../capture/target';
import { DB_FILE_NAME } from '../store/db';
import { parseProfileArgs, ProfileAssignments } from '../pipeline/profiles';
import { DATA_DIR_FLAG, UsageError } from './args';
import { resolveDataDir } from '../data-dir';
import { JUDGE_FLAGS, judgeSettingsFromFlags } from './judge-flags';
import { prepareGeoCache } from '../geo';
import { terminalQr } from '../capture/tunnel/wireguard/client-config';
import { dashboardLinks } from '../../dashboard/server';
import { isLoopbackAddress } from '../../dashboard/server/security';

const DETAILS = `On the phone: Wi-Fi settings → proxy → manual → the laptop address and port printed at start,
then open http://phonehome.setup/ to install the CA certificate (see docs/phone-setup.md).
Every request is recorded in <data-dir>/${DB_FILE_NAME}; query it with sqlite3 (see README).`;

export const command: Command = {
  spec: {
    name: 'start',
    summary: 'run the capture proxy and record what the phone sends',
    usage: 'phonehome start [options]',
    flags: [
      { name: 'port', type: 'int', min: 0, max: 65535, default: 8080, placeholder: 'PORT', description: 'proxy port the phone connects to' },
      { name: 'listen-host', type: 'string', default: '0.0.0.0', placeholder: 'ADDR', description: 'address the proxy listens on' },
      { name: 'dashboard-port', type: 'int', min: 0, max: 65535, default: 8081, placeholder: 'PORT', description: 'dashboard port' },
      { name: 'dashboard-host', type: 'string', default: '127.0.0.1', placeholder: 'ADDR', description: 'dashboard address (0.0.0.0: every interface); the dashboard always requires the token printed at start' },
      { name: 'profile', type: 'list', placeholder: 'FILE|IP=FILE,...', description: "device profile: FILE for every phone without its own, IP=FILE for the phone at IP" },
      DATA_DIR_FLAG,
      { name: 'allow-clients', type: 'list', placeholder: 'CIDR,...', description: `client networks served (default ${DEFAULT_ALLOWED_CLIENTS.join(',')})` },
      { name: 'ignore-hosts', type: 'list', placeholder: 'PATTERN,...', description: 'hosts relayed without interception, e.g. *.apple.com,example.com' },
      { name: 'body-limit', type: 'int', min: 0, max: 1024 * 1024 * 1024, default: DEFAULT_BODY_LIMIT, placeholder: 'BYTES', description: 'bytes of each body stored (larger bodies stream through, marked truncated)' },
      { name: 'upstream-insecure', type: 'boolean', description: "don't verify servers' TLS certificates (like mitmproxy's ssl_insecure)" },
      { name: 'allow-loopback-targets', type: 'boolean', description: "let phones reach this laptop's own loopback (127.0.0.1, localhost...) through the proxy and VPN mode; refused by default (development and tests only)" },
      { name: 'head-timeout', type: 'int', min: 0, max: 3600, default: DEFAULT_HEAD_TIMEOUT_MS / 1000, placeholder: 'SECONDS', description: 'a request head (or TLS handshake) not complete this long after it began is answered 408 and closed; 0: never' },
      { name: 'max-client-connections', type: 'int', min: 0, max: 1_000_000, default: DEFAULT_MAX_CONNECTIONS_PER_CLIENT, placeholder: 'N', description: 'connections one client address may hold open at once (more get 429); 0: no cap' },
      ...JUDGE_FLAGS,
      { name: 'wireguard', type: 'boolean', description: 'VPN mode: also run a WireGuard endpoint the phone\'s WireGuard app connects to (prints its config and QR code)' },
      { name: 'wireguard-port', type: 'int', min: 0, max: 65535, default: 51820, placeholder: 'PORT', description: 'UDP port of the WireGuard endpoint' },
      { name: 'dns-upstream', type: 'list', placeholder: 'ADDR,...', description: "resolvers the phone's DNS queries are forwarded to in VPN mode (default: this laptop's)" },
    ],
    details: DETAILS,
  },
  async run(args) {
    const allowClients = args.flags['allow-clients'] as string[] | undefined;
    const ignoreHosts = (args.flags['ignore-hosts'] as string[] | undefined) ?? [];
    try {
      if (allowClients) new ClientAccessList(allowClients);
    } catch (err) {
      if (err instanceof InvalidCidrError) throw new UsageError(`--allow-clients: ${err.message}`);
      throw err;
    }
    try {
      new HostPatternList(ignoreHosts);
    } catch (err) {
      if (err instanceof InvalidTargetError) throw new UsageError(`--ignore-hosts: ${err.message}`);
      throw err;
    }
    if (args.positionals.length) throw new UsageError(`unexpected argument '${args.positionals[0]}'`);
    let profiles: ProfileAssignments | undefined;
    try {
      profiles = parseProfileArgs((args.flags['profile'] as string[] | undefined) ?? []);
    } catch (err) {
      throw new UsageError(`--profile: ${(err as Error).message}`);
    }
    const judge = judgeSettingsFromFlags(args, resolveDataDir(args.flags['data-dir'] as string | undefined));
    // Once per address-database release: parse it into the binary cache the analysis worker loads in ms.
    if (judge.geoCacheDir && prepareGeoCache(judge.geoCacheDir) === 'built') process.stdout.write(`phonehome: address tables cached in ${judge.geoCacheDir}\n`);

    // An exception while handling one connection closes that connection, not phonehome (containment.ts).
    installLastResortHandler(consoleLogger);
    let app;
    try {
      app = await startPhonehome({
        pipeline: { judge },
        dataDir: args.flags['data-dir'] as string | undefined,
        listenHost: args.flags['listen-host'] as string,
        port: args.flags['port'] as number,
        dashboardPort: args.flags['dashboard-port'] as number,
        dashboardHost: args.flags['dashboard-host'] as string,
        profiles,
        allowClients,
        ignoreHosts,
        bodyLimit: args.flags['body-limit'] as number,
        upstreamInsecure: args.flags['upstream-insecure'] === true,
        allowLoopbackTargets: args.flags['allow-loopback-targets'] === true,
        headTimeoutMs: (args.flags['head-timeout'] as number) * 1000,
        maxConnectionsPerClient: args.flags['max-client-connections'] as number,
        wireguard: args.flags['wireguard'] === true
          ? { port: args.flags['wireguard-port'] as number, dnsUpstreams: args.flags['dns-upstream'] as string[] | undefined }
          : undefined,
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'EADDRINUSE') {
        process.stderr.write(`phonehome start: port already in use (${e.message}); pick another with --port / --dashboard-port${args.flags['wireguard'] === true ? ' / --wireguard-port' : ''}\n`);
        return 1;
      }
      if (e.code === 'EADDRNOTAVAIL') {
        process.stderr.write(`phonehome start: --listen-host or --dashboard-host is not an address of this machine (${e.message})\n`);
        return 1;
      }
      throw err;
    }
    // Handlers before the banner: a supervisor may signal as soon as it reads the port.
    const stopped = new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        process.removeAllListeners('SIGINT');
        process.removeAllListeners('SIGTERM');
        process.stdout.write(`phonehome: ${signal}, closing\n`);
        app.close().then(resolve, (err: Error) => {
          process.stderr.write(`phonehome: error while closing: ${err.message}\n`);
          resolve();
        });
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
    const listenHost = args.flags['listen-host'] as string;
    const lines: string[] = [];
    const out = (line: string) => lines.push(line);
    out(`phonehome: proxy listening on ${listenHost}:${app.proxyPort}`);
    const lan = lanAddresses();
    const shown = listenHost === '0.0.0.0' || listenHost === '::' ? lan : [listenHost];
    if (shown.length) for (const a of shown) out(`  phone Wi-Fi proxy: ${a} port ${app.proxyPort}`);
    else out('  no LAN address found: connect this laptop to the phone\'s Wi-Fi network');
    out(`  CA setup page:     http://phonehome.setup/ (through the proxy) or http://${shown[0] ?? '127.0.0.1'}:${app.proxyPort}/`);
    const dashboard = app.live.dashboard;
    if (dashboard) {
      // The token link: opening it once lets this browser in (the cookie keeps it; the token leaves the address bar).
      const [here, ...lanLinks] = dashboardLinks(dashboard.host, dashboard.port, dashboard.token);
      out(`  dashboard:         ${here}`);
      for (const link of lanLinks) out(`    from the LAN:    ${link}`);
      if (!isLoopbackAddress(dashboard.host)) out('  (the dashboard is reachable from other machines: keep its token to yourself)');
    }
    if (profiles.defaultProfile) out(`  default profile:   ${profiles.defaultProfile.name ?? '(unnamed)'}`);
    for (const [ip, p] of profiles.devices) out(`  profile for ${ip}: ${p.name ?? '(unnamed)'}`);
    out(`  data:              ${app.dataDir} (database ${path.join(app.dataDir, DB_FILE_NAME)})`);
    if (args.flags['upstream-insecure'] === true) out('  warning: --upstream-insecure: servers\' certificates are NOT verified');
    if (args.flags['allow-loopback-targets'] === true) out('  warning: --allow-loopback-targets: phones can reach this laptop\'s loopback (the dashboard and local-only services)');
    if (app.vpn) {
      out(`  VPN (WireGuard):   UDP port ${app.vpn.port}; import a config below in the phone's WireGuard app`);
      out(`                    (more phones: phonehome wireguard add NAME; they are picked up while running)`);
      for (const c of app.vpn.configs()) {
        out(`# WireGuard config for '${c.peer.name}' (${c.peer.ipv4}, ${c.peer.ipv6})`);
        out(c.config);
        out(await terminalQr(c.config));
      }
    }
    out('Press Ctrl+C to stop.');
    process.stdout.write(lines.join('\n') + '\n');
    await stopped;

    return 0;
  },
};

function lanAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (!a.internal && a.family === 'IPv4') out.push(a.address);
  }
  return out;
}
