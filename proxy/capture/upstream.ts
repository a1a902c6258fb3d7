/**
 * Connections to the servers a phone talks to. A CONNECT tunnel dials its target before answering
 * (so a refused server is a 502 the user sees, not a silent 200), and that first connection is then
 * handed to the tunnel's own keep-alive agent, so one phone connection maps to one server
 * connection, as with mitmproxy. Plain proxied HTTP shares a keep-alive pool. Every upstream socket
 * gets TCP_NODELAY (without it, a 64 KB TLS POST stalls ~40 ms on Nagle) and an idle timeout.
 */
import * as http from 'http';
import * as https from 'https';
import * as net from 'net';
import * as tls from 'tls';
import type { DestinationGuard } from './destination-guard';
import type { Target } from './target';

export type LookupFunction = net.LookupFunction;

export interface UpstreamOptions {
  /** Verify upstream certificates (default true). */
  verify: boolean;
  /** Extra trusted roots for upstream TLS; replaces Node's store when given (tests). */
  ca?: string | string[];
  /** Name resolution override (tests resolve *.test names to loopback with it). */
  lookup?: LookupFunction;
  /** Refuses the laptop's loopback and phonehome's own ports; wraps `lookup` (destination-guard.ts). */
  guard: DestinationGuard;
  idleTimeoutMs: number;
  connectTimeoutMs: number;
}

export function tuneSocket(socket: net.Socket, idleTimeoutMs: number): void {
  socket.setNoDelay(true);
  socket.setTimeout(idleTimeoutMs);
}

/** The lookup for connections to `port`: every resolved address is checked by the guard first. */
export function upstreamLookup(opts: UpstreamOptions, port: number): LookupFunction {
  return opts.guard.lookupFor(port);
}

/**
 * Dials host:port; resolves with the connected socket or rejects with the dial error (a
 * DestinationRefusedError when the name resolved to an address the guard refuses).
 */
export function dial(target: Target, opts: UpstreamOptions): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.host, port: target.port, lookup: upstreamLookup(opts, target.port), noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connect to ${target.host}:${target.port} timed out after ${opts.connectTimeoutMs} ms`));
    }, opts.connectTimeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', onError);
      resolve(socket);
    });
    const onError = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    socket.once('error', onError);
  });
}

type CreateConnectionCallback = (err: Error | null, socket: net.Socket) => void;

/** An agent for one tunnel whose first connection is the socket already dialled for the CONNECT. */
export class TunnelHttpAgent extends http.Agent {
  constructor(private preDialled: net.Socket | undefined, opts: http.AgentOptions) {
    super(opts);
  }

  override createConnection(options: net.NetConnectOpts, cb?: CreateConnectionCallback): net.Socket {
    const pre = takeUsable(this);
    if (pre) return pre;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    return (http.Agent.prototype as any).createConnection.call(this, options, cb);
  }

  /** The dialled socket if no request used it yet (so the tunnel can close it). */
  takeUnused(): net.Socket | undefined {
    const s = this.preDialled;
    this.preDialled = undefined;
    return s;
  }
}

export class TunnelHttpsAgent extends https.Agent {
  constructor(private preDialled: net.Socket | undefined, opts: https.AgentOptions) {
    super(opts);
  }

  override createConnection(options: tls.ConnectionOptions, cb?: CreateConnectionCallback): net.Socket {
    const pre = takeUsable(this);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const base = (https.Agent.prototype as any).createConnection;
    return pre ? base.call(this, { ...options, socket: pre }, cb) : base.call(this, options, cb);
  }

  takeUnused(): net.Socket | undefined {
    const s = this.preDialled;
    this.preDialled = undefined;
    return s;
  }
}

function takeUsable(agent: TunnelHttpAgent | TunnelHttpsAgent): net.Socket | undefined {
  const pre = agent.takeUnused();
  if (pre && !pre.destroyed && pre.writable) return pre;
  pre?.destroy();
  return undefined;
}

export function agentOptions(opts: UpstreamOptions): http.AgentOptions {
  return { keepAlive: true, maxSockets: 64, maxFreeSockets: 64, timeout: opts.idleTimeoutMs, scheduling: 'lifo' };
}

/** TLS options for upstream requests: verification, roots, servername and http/1.1 ALPN. */
export function upstreamTlsOptions(opts: UpstreamOptions, servername: string | undefined): https.RequestOptions {
  const o: https.RequestOptions & { servername?: string; ALPNProtocols?: string[] } = {
    rejectUnauthorized: opts.verify,
    ALPNProtocols: ['http/1.1'],
  };
  if (opts.ca) o.ca = opts.ca;
  if (servername && !net.isIP(servername)) o.servername = servername;
  return o;
}
