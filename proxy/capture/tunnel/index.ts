/**
 * VPN mode's endpoint: WireGuard (wireguard/) carries the phone's IP packets in and out, the IP
 * layer (ip/stack.ts: UDP, DNS, ICMP, and TCP via tcp/) handles them. This module wires the two,
 * keeps the phones in sync with <data-dir>/wireguard/peers.json while running, and builds each
 * phone's client config (text and QR) for the terminal and the dashboard.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Flow } from '../../flow';
import type { Store } from '../../store';
import type { DestinationGuard } from '../destination-guard';
import type { PacketSink, TcpSegmentHandler, TunnelPeer } from './types';
import { TunnelStack } from './ip/stack';
import { GATEWAY_IPV4, GATEWAY_IPV6, TUNNEL_MTU } from './wireguard/addresses';
import { clientConfig, formatEndpoint, svgQrDataUrl } from './wireguard/client-config';
import { addPeer, listPeers, loadOrCreateServerKey, peerPrivateKey, StoredPeer, watchPeers, wireguardDir } from './wireguard/keystore';
import { WireGuardCounters, WireGuardServer } from './wireguard/server';
import { writeOwnerOnlyFile } from '../../data-dir';
import type { WireGuardSetup } from '../../../dashboard/server/setup-info';

/** Counters that mean a datagram was refused (the rest count what worked). */
const DROP_COUNTERS: Array<keyof WireGuardCounters> = [
  'malformed', 'badMac1', 'badHandshake', 'unknownPeer', 'staleInitiation', 'initiationFlood', 'unexpectedType', 'unknownIndex',
  'expiredKey', 'replayed', 'badAead', 'badInnerPacket', 'wrongSource', 'sendDropped', 'handshakeRateLimited', 'badCookieReply',
];

export const DEFAULT_WIREGUARD_PORT = 51820;
const LISTEN_FILE = 'listen.json';

/** What the WireGuard side needs from the IP layer (TunnelStack in ip/stack.ts). */
export interface IpLayer {
  receive(peer: TunnelPeer, packet: Buffer): void;
  /** Where TCP segments go (tcp/: userspace TCP into the interception core); unset: RST. */
  setTcpHandler?(handler: TcpSegmentHandler | undefined): void;
  stats(): object;
  close(): Promise<void>;
}

export interface IpLayerOptions {
  mtu: number;
  gatewayIpv4: string;
  gatewayIpv6: string;
  dnsUpstreams: string[];
  send: PacketSink;
  recorder: { record(flow: Flow): void };
  store?: Store;
  log?: (s: string) => void;
  /** Destinations refused for the phones' UDP (the proxy's guard: the laptop's loopback, phonehome's ports). */
  guard?: DestinationGuard;
}

export interface VpnOptions {
  dataDir: string;
  port?: number;
  listenHost?: string;
  /** The address phones reach this laptop on (the Endpoint of their configs). */
  endpointHost: string;
  dnsUpstreams: string[];
  recorder: { record(flow: Flow): void };
  store?: Store;
  log?: (line: string) => void;
  /** Builds the IP layer; default: ip/stack.ts's TunnelStack (tests may record packets instead). */
  createIpLayer?: (opts: IpLayerOptions) => IpLayer;
  /** Terminates the phones' TCP connections (tcp/intercept-tcp.ts createTcpInterception); closed with the endpoint. */
  tcp?: TcpSegmentHandler & { stats?(): unknown };
  /** How often peers.json is polled for phones added while running (default 1 s). */
  peersPollMs?: number;
  /** The proxy's destination guard, so VPN mode refuses what the proxy refuses; learns the endpoint's port. */
  guard?: DestinationGuard;
}

export interface PhoneConfig {
  peer: StoredPeer;
  config: string;
}

export interface VpnEndpoint {
  port: number;
  publicKey: string;
  /** Every phone's client config, as of now (phones added while running included). */
  configs(): PhoneConfig[];
  /** The same, with an SVG QR code data URL each (the dashboard's setup view). */
  configQrs(): Promise<Array<PhoneConfig & { qr: string }>>;
  /** What the dashboard's setup view lists: each phone's name, addresses and connection status (no keys). */
  setupView(): Promise<WireGuardSetup>;
  stats(): { wireguard: ReturnType<WireGuardServer['stats']>; ip: object; tcp?: unknown };
  close(): Promise<void>;
}

/** The Endpoint host:port for configs: the last `start --wireguard` port, else the default port. */
export function configuredEndpoint(dataDir: string, host: string, port?: number): string {
  let p = port;
  if (p === undefined) {
    try {
      p = (JSON.parse(fs.readFileSync(path.join(dataDir, 'wireguard', LISTEN_FILE), 'utf8')) as { port: number }).port;
    } catch {
      p = DEFAULT_WIREGUARD_PORT;
    }
  }
  return formatEndpoint(host, p);
}

/** The client config of each phone whose private key is in the data dir. */
export function phoneConfigs(dataDir: string, serverPublicKey: string, endpoint: string): PhoneConfig[] {
  const out: PhoneConfig[] = [];
  for (const peer of listPeers(dataDir)) {
    const privateKey = peerPrivateKey(dataDir, peer.name);
    if (privateKey) out.push({ peer, config: clientConfig({ peer, privateKey, serverPublicKey, endpoint }) });
  }
  return out;
}

function defaultIpLayer(opts: IpLayerOptions): IpLayer {
  return new TunnelStack(opts);
}

export async function startVpn(opts: VpnOptions): Promise<VpnEndpoint> {
  const log = opts.log ?? (() => undefined);
  wireguardDir(opts.dataDir);
  const serverKey = loadOrCreateServerKey(opts.dataDir);
  if (listPeers(opts.dataDir).length === 0) addPeer(opts.dataDir, 'phone');
  let ip: IpLayer | undefined;
  const wg = new WireGuardServer({
    privateKey: serverKey,
    port: opts.port ?? DEFAULT_WIREGUARD_PORT,
    listenHost: opts.listenHost,
    peers: listPeers(opts.dataDir),
    mtu: TUNNEL_MTU,
    log,
    onPacket: (peer, packet) => ip?.receive(peer, packet),
  });
  ip = (opts.createIpLayer ?? defaultIpLayer)({
    mtu: TUNNEL_MTU,
    gatewayIpv4: GATEWAY_IPV4,
    gatewayIpv6: GATEWAY_IPV6,
    dnsUpstreams: opts.dnsUpstreams,
    send: (peer, packet) => wg.send(peer, packet),
    recorder: opts.recorder,
    store: opts.store,
    log,
    guard: opts.guard,
  });
  if (opts.tcp) ip.setTcpHandler?.(opts.tcp);
  let port: number;
  try {
    ({ port } = await wg.listen());
  } catch (err) {
    await ip.close().catch(() => undefined);
    await wg.close().catch(() => undefined);
    throw err;
  }
  opts.guard?.addOwnService('wireguard', 'udp', port);
  const listenFile = path.join(opts.dataDir, 'wireguard', LISTEN_FILE);
  writeOwnerOnlyFile(listenFile, JSON.stringify({ port }) + '\n');
  const unwatch = watchPeers(
    opts.dataDir,
    (peers) => {
      wg.setPeers(peers);
      log(`wireguard: ${peers.length} phone(s) configured`);
    },
    (err) => log(`wireguard: peers file unreadable, keeping the previous phones: ${err.message}`),
    opts.peersPollMs,
  );
  const endpoint = formatEndpoint(opts.endpointHost, port);
  const configs = () => phoneConfigs(opts.dataDir, wg.publicKey, endpoint);
  const running = ip;
  return {
    port,
    publicKey: wg.publicKey,
    configs,
    async configQrs() {
      return Promise.all(configs().map(async (c) => ({ ...c, qr: await svgQrDataUrl(c.config) })));
    },
    async setupView() {
      const stats = wg.stats();
      const byKey = new Map(stats.peers.map((p) => [p.publicKey, p]));
      // No config and no QR code here (both hold the phone's private key): the dashboard serves
      // each phone's own from configs(), on its own endpoint.
      const phones = configs().map((c) => {
        const s = byKey.get(c.peer.publicKey);
        return {
          peer: { name: c.peer.name, ipv4: c.peer.ipv4, ipv6: c.peer.ipv6 },
          status: { lastHandshakeAt: s?.lastHandshakeAt, endpoint: s?.endpoint, rxBytes: s?.rxBytes ?? 0, txBytes: s?.txBytes ?? 0 },
        };
      });
      const dropped: Record<string, number> = {};
      for (const k of DROP_COUNTERS) if (stats.counters[k]) dropped[k] = stats.counters[k];
      return { port, phones, dropped };
    },
    stats: () => ({ wireguard: wg.stats(), ip: running.stats(), tcp: opts.tcp?.stats?.() }),
    async close() {
      unwatch();
      opts.tcp?.close();
      await wg.close();
      await running.close();
    },
  };
}
