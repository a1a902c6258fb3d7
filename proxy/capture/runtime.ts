/**
 * The state one proxy instance shares between its parts (front door, tunnels, HTTP forwarding):
 * limits, upstream settings, agents, the recorder, and what we know about each client connection.
 */
import type * as http from 'http';
import type * as https from 'https';
import type * as net from 'net';
import type * as tls from 'tls';
import type { FlowSource } from '../flow';
import type { FlowRecorder, Logger } from './recording';
import type { HostPatternList, Target } from './target';
import type { TunnelHttpAgent, TunnelHttpsAgent, UpstreamOptions } from './upstream';

/** What a tunnel learned before its first request: where it goes and how the phone spoke. */
export interface TunnelInfo {
  target: Target;
  tls: boolean;
  sni?: string;
  /** ALPN protocols the phone offered, comma-separated. */
  alpn?: string;
  tlsVersion?: string;
  serverIp?: string;
  connectMs?: number;
  agent?: TunnelHttpAgent | TunnelHttpsAgent;
}

export interface ConnectionInfo {
  /** How the phone's traffic reached us (default 'proxy'; VPN mode's tunnelled TCP sets 'vpn'). */
  source?: FlowSource;
  clientIp: string;
  clientPort?: number;
  tunnel?: TunnelInfo;
  /** Requests seen on this connection so far. */
  requests?: number;
}

/** Leaf certificates: certs/leaf.ts LeafMinter satisfies this. */
export interface SecureContextSource {
  secureContextFor(hostname: string): Promise<tls.SecureContext>;
}

export interface ProxyRuntime {
  bodyLimit: number;
  idleTimeoutMs: number;
  sniffTimeoutMs: number;
  /** Deadline for a request head, and for an intercepted TLS handshake, once begun (0: none). */
  headTimeoutMs: number;
  upstream: UpstreamOptions;
  recorder: FlowRecorder;
  log: Logger;
  httpAgent: http.Agent;
  httpsAgent: https.Agent;
  ignoreHosts: HostPatternList;
  /** Hosts whose client refused our certificate this run: relayed untouched from then on. */
  pinnedHosts: Set<string>;
  /** Per host: intercepted connections in a row that closed after the handshake without a request. */
  silentCloses: Map<string, number>;
  minter: SecureContextSource;
  connections: WeakMap<net.Socket, ConnectionInfo>;
  /** Hands a client-side socket (plain or decrypted) to the HTTP parser. */
  serveHttp(socket: net.Socket, info: ConnectionInfo): void;
  /** Counts a socket as open until it closes (close() destroys every tracked socket). */
  track(socket: net.Socket): void;
  /** True when a target names this proxy (its setup page), not a server to forward to. */
  isProxyItself(target: Target, localAddress?: string): boolean;
  serveSetup(req: http.IncomingMessage, res: http.ServerResponse): void;
}
