/**
 * The explicit proxy a phone points its Wi-Fi settings at. Our own net.Server accepts every
 * connection and applies access control first (never an open proxy); requests are parsed by a
 * non-listening http.Server we feed sockets to, so limits (header size, timeouts) and error
 * handling are ours. CONNECT tunnels go to connect-tunnel.ts, plain requests to http-forwarder.ts.
 * One client cannot take the proxy down: its connections are capped (client-limit.ts), request
 * heads have a deadline (head-deadline.ts), pipelined requests are forwarded one at a time
 * (pipeline-gate.ts), and every listener here is contained (containment.ts).
 * http-mitm-proxy is not in this path: see the comment at the top of http-forwarder.ts.
 */
import * as http from 'http';
import * as https from 'https';
import * as net from 'net';
import type { Flow } from '../flow';
import type { Store } from '../store';
import type { CertificateAuthority } from '../../certs/ca';
import { ClientAccessList, DEFAULT_ALLOWED_CLIENTS, unmapIPv4 } from './access';
import { ClientConnectionLimit, DEFAULT_MAX_CONNECTIONS_PER_CLIENT } from './client-limit';
import { ConnectionScope, contained, inConnection, scopeEvents } from './containment';
import { HeadDeadlines } from './head-deadline';
import { handleRequest, refuse } from './http-forwarder';
import { refuseNestedConnect } from './nested-connect';
import { MAX_WAITING, PipelineGate } from './pipeline-gate';
import { consoleLogger, FlowRecorder, Logger } from './recording';
import type { ConnectionInfo, ProxyRuntime, SecureContextSource } from './runtime';
import { HostPatternList, Target } from './target';
import { handleConnect } from './connect-tunnel';
import { agentOptions, LookupFunction, UpstreamOptions } from './upstream';
import { DestinationGuard } from './destination-guard';
import { ThrottledLog } from './throttled-log';
import { handleUpgrade } from './upgrade';

export const DEFAULT_BODY_LIMIT = 1024 * 1024;
export const DEFAULT_HEAD_TIMEOUT_MS = 30_000;

export interface ProxyServerOptions {
  listenHost: string;
  port: number;
  /** CIDRs allowed to use the proxy (default: loopback, private and link-local ranges). */
  allowClients?: string[];
  /** Hosts relayed without interception: exact names or `*.example.com`. */
  ignoreHosts?: string[];
  bodyLimit?: number;
  upstreamInsecure?: boolean;
  store: Store;
  ca: CertificateAuthority;
  minter: SecureContextSource;
  /** Called after a flow is stored (flow.id set). Exceptions are caught and logged. */
  onFlow?: (flow: Flow) => void;
  /** Serves http://phonehome.setup/ (certs download page). */
  setupPage?: (req: http.IncomingMessage, res: http.ServerResponse, proxyHost: string, proxyPort: number) => void;
  log?: Logger;
  /** Idle timeout for every client and upstream socket (default 120 s). */
  idleTimeoutMs?: number;
  /** How long a tunnel waits for a partial ClientHello or request line to complete (default 1 s). */
  sniffTimeoutMs?: number;
  /**
   * A request head (or an intercepted TLS handshake) not complete this long after it began is
   * answered 408 and closed (default 30 s; 0: no deadline). Idle connections get idleTimeoutMs.
   */
  headTimeoutMs?: number;
  /** Connections one client address may hold open at once (default 512; 0: no cap). */
  maxConnectionsPerClient?: number;
  connectTimeoutMs?: number;
  /** Largest request head accepted (default 32 KiB); larger gets 431. */
  maxHeaderSize?: number;
  /** Extra roots for upstream TLS (tests); replaces Node's store when given. */
  upstreamCa?: string | string[];
  /** Name resolution override for upstream dials (tests). */
  lookup?: LookupFunction;
  /** `--allow-loopback-targets`: forward to the laptop's own loopback (development and tests only). */
  allowLoopbackTargets?: boolean;
}

export class ProxyServer {
  private readonly server: net.Server;
  private readonly httpServer: http.Server;
  private readonly access: ClientAccessList;
  private readonly rt: ProxyRuntime;
  private readonly sockets = new Set<net.Socket>();
  private readonly log: Logger;
  private readonly clientLimit: ClientConnectionLimit;
  private readonly heads: HeadDeadlines;
  private readonly slowHeads: ThrottledLog;
  private readonly pipeline: PipelineGate;
  private boundPort = 0;
  private refusedCount = 0;

  constructor(private readonly opts: ProxyServerOptions) {
    this.log = opts.log ?? consoleLogger;
    this.access = new ClientAccessList(opts.allowClients ?? DEFAULT_ALLOWED_CLIENTS);
    const idleTimeoutMs = opts.idleTimeoutMs ?? 120_000;
    const headTimeoutMs = opts.headTimeoutMs ?? DEFAULT_HEAD_TIMEOUT_MS;
    this.clientLimit = new ClientConnectionLimit(opts.maxConnectionsPerClient ?? DEFAULT_MAX_CONNECTIONS_PER_CLIENT, this.log);
    this.slowHeads = new ThrottledLog(this.log);
    this.heads = new HeadDeadlines(headTimeoutMs, (socket) => {
      const client = this.rt.connections.get(socket as net.Socket)?.clientIp ?? socket.remoteAddress ?? '?';
      this.slowHeads.note(client, `closed a connection from ${client}: request head not complete within ${headTimeoutMs} ms (--head-timeout)`);
    });
    this.pipeline = new PipelineGate((socket) => {
      const client = this.rt.connections.get(socket as net.Socket)?.clientIp ?? '?';
      this.slowHeads.note(`pipelined ${client}`, `closed a connection from ${client}: more than ${MAX_WAITING} requests pipelined behind the one in progress`);
    });
    const upstream: UpstreamOptions = {
      verify: !opts.upstreamInsecure,
      ca: opts.upstreamCa,
      lookup: opts.lookup,
      guard: new DestinationGuard({ allowLoopbackTargets: opts.allowLoopbackTargets, lookup: opts.lookup }),
      idleTimeoutMs,
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
    };
    this.httpServer = http.createServer({ maxHeaderSize: opts.maxHeaderSize ?? 32 * 1024, noDelay: true, keepAlive: true });
    this.httpServer.timeout = idleTimeoutMs;
    this.httpServer.keepAliveTimeout = idleTimeoutMs;
    this.rt = {
      bodyLimit: opts.bodyLimit ?? DEFAULT_BODY_LIMIT,
      idleTimeoutMs,
      sniffTimeoutMs: opts.sniffTimeoutMs ?? 1000,
      headTimeoutMs,
      upstream,
      recorder: new FlowRecorder(opts.store, this.log, opts.onFlow),
      log: this.log,
      httpAgent: new http.Agent(agentOptions(upstream)),
      httpsAgent: new https.Agent(agentOptions(upstream)),
      ignoreHosts: new HostPatternList(opts.ignoreHosts ?? []),
      pinnedHosts: new Set(),
      silentCloses: new Map(),
      minter: opts.minter,
      connections: new WeakMap(),
      serveHttp: (socket, info) => this.serveHttp(socket, info),
      track: (socket) => this.track(socket),
      isProxyItself: (target, localAddress) => this.isProxyItself(target, localAddress),
      serveSetup: (req, res) => this.serveSetup(req, res),
    };
    this.httpServer.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.heads.headArrived(req, res);
      this.pipeline.admit(req, res, () => contained(this.log, 'request', this.requestScope(req), () => handleRequest(req, res, this.rt), () => refuse(res, 500, 'phonehome: internal error')));
    });
    // Node's parser has let go of the socket here; what is written raw on it waits for pipelined responses.
    this.httpServer.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      this.heads.leaveHttp(socket);
      // A CONNECT read inside a tunnel is addressed to the tunnel's server, not to us: never a second upstream.
      const nested = this.rt.connections.get(socket)?.tunnel !== undefined;
      this.heads.afterResponses(socket, () => contained(this.log, 'CONNECT', this.requestScope(req), () => nested ? refuseNestedConnect(req, socket, this.rt) : handleConnect(req, socket, head, this.rt)));
    });
    this.httpServer.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
      this.heads.leaveHttp(socket);
      this.heads.afterResponses(socket, () => contained(this.log, 'upgrade', this.requestScope(req), () => handleUpgrade(req, socket, head, this.rt)));
    });
    this.httpServer.on('clientError', (err: Error & { code?: string }, socket: net.Socket) => {
      this.heads.leaveHttp(socket);
      contained(this.log, 'malformed-request handler', this.connectionScope(socket), () => this.onClientError(err, socket));
    });
    this.server = net.createServer({ noDelay: true }, (socket) => {
      const scope = { client: `${unmapIPv4(socket.remoteAddress ?? '?')}:${socket.remotePort}`, socket };
      scopeEvents(socket, scope);
      contained(this.log, 'new connection', scope, () => this.onConnection(socket));
    });
    this.server.on('error', (err) => this.log(`proxy listener error: ${err.message}`));
  }

  listen(): Promise<{ port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(this.opts.port, this.opts.listenHost, () => {
        this.server.removeListener('error', onError);
        this.boundPort = (this.server.address() as net.AddressInfo).port;
        this.rt.upstream.guard.addOwnService('proxy', 'tcp', this.boundPort);
        resolve({ port: this.boundPort });
      });
    });
  }

  get port(): number {
    return this.boundPort;
  }

  /** The interception state, shared with VPN mode's tunnelled TCP (tunnel/tcp/intercept-tcp.ts). */
  get runtime(): ProxyRuntime {
    return this.rt;
  }

  /** Sockets currently open (client and upstream): for tests and diagnostics. */
  openSocketCount(): number {
    return this.sockets.size;
  }

  /** Connections a client address holds open now (the per-client cap counts these). */
  connectionsFrom(address: string): number {
    return this.clientLimit.openFrom(address);
  }

  /** Hosts whose clients rejected our certificate during this run. */
  pinnedHosts(): string[] {
    return [...this.rt.pinnedHosts];
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    this.heads.close();
    this.clientLimit.close();
    this.slowHeads.flushAll();
    this.rt.httpAgent.destroy();
    this.rt.httpsAgent.destroy();
    this.httpServer.close();
    await closed;
    // Flows that finished as the sockets closed are stored before the store is closed.
    this.rt.recorder.flushNow();
  }

  private track(socket: net.Socket): void {
    if (this.sockets.has(socket)) return;
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private onConnection(socket: net.Socket): void {
    this.track(socket);
    socket.on('error', () => socket.destroy());
    const address = socket.remoteAddress;
    if (!this.access.allows(address)) {
      this.refusedCount++;
      if (this.refusedCount <= 20 || this.refusedCount % 1000 === 0) {
        this.log(`refused client ${address ?? '?'}: not in the allowed networks (${this.access.describe()}); use --allow-clients to change (${this.refusedCount} refused so far)`);
      }
      const text = 'phonehome: this proxy serves only clients on the local network\n';
      socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
      socket.setTimeout(5000, () => socket.destroy());
      return;
    }
    const clientIp = unmapIPv4(address ?? '');
    if (!this.clientLimit.admit(clientIp, socket)) return;
    socket.setNoDelay(true);
    this.serveHttp(socket, { clientIp, clientPort: socket.remotePort });
  }

  /** Every socket the parser reads (front door, tunnels, decrypted TLS, VPN mode) comes through here. */
  private serveHttp(socket: net.Socket, info: ConnectionInfo): void {
    this.rt.connections.set(socket, info);
    this.heads.watch(socket);
    inConnection({ client: clientOf(info), socket }, () => this.httpServer.emit('connection', socket));
  }

  private connectionScope(socket: net.Socket): ConnectionScope {
    const info = this.rt.connections.get(socket);
    return { client: info ? clientOf(info) : (socket.remoteAddress ?? '?'), socket };
  }

  private requestScope(req: http.IncomingMessage): ConnectionScope {
    return { ...this.connectionScope(req.socket), method: req.method, target: req.url };
  }

  private onClientError(err: Error & { code?: string }, socket: net.Socket): void {
    if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    const status = tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request';
    const text = `phonehome: ${tooLarge ? 'request headers too large' : `malformed request (${err.code ?? err.message})`}\n`;
    const info = this.rt.connections.get(socket);
    this.log(`${status.slice(0, 3)} to ${info?.clientIp ?? socket.remoteAddress}: ${err.code ?? err.message}`);
    socket.end(`HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
    socket.destroySoon?.();
  }

  /** This proxy's port on any address of this laptop, in any spelling (127.1, [::ffff:7f00:1], its LAN address...). */
  private isProxyItself(target: Target, localAddress?: string): boolean {
    if (target.port !== this.boundPort) return false;
    if (localAddress && unmapIPv4(localAddress) === target.host) return true;
    return this.rt.upstream.guard.isThisLaptop(target.host);
  }

  private serveSetup(req: http.IncomingMessage, res: http.ServerResponse): void {
    const local = unmapIPv4(req.socket.localAddress ?? '127.0.0.1');
    if (!this.opts.setupPage) return refuse(res, 404, 'phonehome: no setup page in this build');
    try {
      this.opts.setupPage(req, res, local, this.boundPort);
    } catch (err) {
      this.log(`setup page failed: ${(err as Error).message}`);
      refuse(res, 500, 'phonehome: setup page failed');
    }
  }
}

function clientOf(info: ConnectionInfo): string {
  return info.clientPort ? `${info.clientIp}:${info.clientPort}` : info.clientIp;
}
