/**
 * The one place that decides whether phonehome may connect somewhere for a phone. Two rules:
 * - the laptop's loopback (127.0.0.0/8, ::1, 0.0.0.0, ::, IPv4-mapped forms, `localhost`) is refused
 *   unless `--allow-loopback-targets`: the dashboard, its API (every capture, every phone's keys)
 *   and the laptop's local-only services listen there, and the proxy must not be a way in
 *   (mitmproxy's CVE-2025-23217 was this hole);
 * - phonehome's own listeners (proxy port, dashboard port, WireGuard port) on any address of this
 *   laptop are refused always: through the proxy they are a loop or a way around the dashboard's
 *   own checks.
 * A target is checked as spelled before dialling (Node skips name resolution for IP literals), and
 * the addresses a name resolves to are checked again inside the socket's own lookup, so the address
 * connected to is the address checked (no DNS rebinding between check and connect).
 */
import * as dns from 'dns';
import type * as net from 'net';
import * as os from 'os';
import type { Flow } from '../flow';
import { canonicalAddress, isLocalhostName, loopbackSpelling } from './loopback';

export const LOOPBACK_REFUSED_TAG = 'loopback-refused';
export const SELF_REFUSED_TAG = 'self-refused';

export type OwnService = 'proxy' | 'dashboard' | 'wireguard';

export interface Refusal {
  kind: 'loopback' | 'self';
  /** The flow tag: loopback-refused or self-refused. */
  tag: string;
  /** One sentence for the phone's 403 page, the flow's error and the log. */
  message: string;
}

export class DestinationRefusedError extends Error {
  readonly code = 'EPHONEHOME_REFUSED';
  constructor(readonly refusal: Refusal) {
    super(refusal.message);
  }
}

export function isDestinationRefused(err: unknown): err is DestinationRefusedError {
  return err instanceof DestinationRefusedError;
}

/** Records a refusal on a flow: status 403 (what the phone got), the sentence as its error, the tag. */
export function markRefused(flow: Flow, refusal: Refusal, status: number | undefined = 403): void {
  flow.responseStatus = status;
  flow.error = refusal.message;
  if (!flow.tags.includes(refusal.tag)) flow.tags.push(refusal.tag);
}

export interface DestinationGuardOptions {
  /** `--allow-loopback-targets`: let phones reach the laptop's loopback (development, tests). */
  allowLoopbackTargets?: boolean;
  /** Name resolution the guard wraps (default dns.lookup; tests pass their own). */
  lookup?: net.LookupFunction;
  /** This laptop's addresses (default: every address of os.networkInterfaces(), read when needed). */
  localAddresses?: () => Iterable<string>;
}

export interface CheckOptions {
  protocol?: 'tcp' | 'udp';
  /** Own services the caller may reach (VPN mode lets a phone use the Wi-Fi proxy inside the tunnel). */
  allow?: readonly OwnService[];
}

export class DestinationGuard {
  readonly allowLoopbackTargets: boolean;
  private readonly inner: net.LookupFunction;
  private readonly localAddresses: () => Iterable<string>;
  private readonly services = new Map<string, OwnService>();

  constructor(opts: DestinationGuardOptions = {}) {
    this.allowLoopbackTargets = opts.allowLoopbackTargets === true;
    this.inner = opts.lookup ?? (dns.lookup as unknown as net.LookupFunction);
    this.localAddresses = opts.localAddresses ?? interfaceAddresses;
  }

  /** Registers one of phonehome's own listeners (known once it is bound). */
  addOwnService(service: OwnService, protocol: 'tcp' | 'udp', port: number): void {
    if (port > 0) this.services.set(`${protocol}/${port}`, service);
  }

  /** Why phonehome must not connect to `host` (a name or an IP literal, as spelled) on `port`; undefined when it may. */
  check(host: string, port: number, opts: CheckOptions = {}): Refusal | undefined {
    return this.refusal(host, port, opts, (canonical) => (canonical && canonical !== host ? `${host} (${canonical})` : host));
  }

  /** True when `host` (any spelling) is one of this laptop's own addresses, loopback included. */
  isThisLaptop(host: string): boolean {
    if (isLocalhostName(host)) return true;
    const c = canonicalAddress(host);
    if (!c) return false;
    if (c.local) return true;
    for (const a of this.localAddresses()) if (canonicalAddress(a)?.address === c.address) return true;
    return false;
  }

  /**
   * A lookup for connecting to `port`: the name is checked as spelled, then every address it
   * resolves to; a refused one fails the connection with DestinationRefusedError before any
   * connection is made.
   */
  lookupFor(port: number, opts: CheckOptions = {}): net.LookupFunction {
    return (hostname, options, callback) => {
      const spelled = this.check(hostname, port, opts);
      if (spelled) return callback(new DestinationRefusedError(spelled), '', 0);
      this.inner(hostname, options, (err, address, family) => {
        if (err) return callback(err, address, family);
        const answers = typeof address === 'string' ? [address] : address.map((a) => a.address);
        for (const a of answers) {
          const refusal = this.refusal(a, port, opts, () => `${hostname} resolves to ${a}, which`);
          if (refusal) return callback(new DestinationRefusedError(refusal), '', 0);
        }
        callback(null, address, family);
      });
    };
  }

  /** `subject` names the destination in the message, given the canonical address when there is one. */
  private refusal(host: string, port: number, opts: CheckOptions, subject: (canonical?: string) => string): Refusal | undefined {
    const service = this.ownService(port, opts);
    if (service && this.isThisLaptop(host)) return selfRefusal(subject(canonicalAddress(host)?.address), port, service);
    const loopback = loopbackSpelling(host);
    if (loopback && !this.allowLoopbackTargets) return loopbackRefusal(subject(loopback.address === 'localhost' ? undefined : loopback.address));
    return undefined;
  }

  private ownService(port: number, opts: CheckOptions): OwnService | undefined {
    const service = this.services.get(`${opts.protocol ?? 'tcp'}/${port}`);
    return service && !opts.allow?.includes(service) ? service : undefined;
  }
}

function interfaceAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) out.push(a.address);
  return out;
}

const HOW_TO_ALLOW = 'start phonehome with --allow-loopback-targets to allow it (development only)';

function loopbackRefusal(subject: string): Refusal {
  return {
    kind: 'loopback',
    tag: LOOPBACK_REFUSED_TAG,
    message: `refused: ${subject} is this laptop's own loopback address; phonehome does not forward phones into the laptop itself (its dashboard and local services live there); ${HOW_TO_ALLOW}`,
  };
}

const SERVICE_NAMES: Record<OwnService, string> = {
  proxy: 'its proxy port: a connection there would loop back into phonehome',
  dashboard: 'its dashboard',
  wireguard: 'its WireGuard endpoint',
};

function selfRefusal(subject: string, port: number, service: OwnService): Refusal {
  return { kind: 'self', tag: SELF_REFUSED_TAG, message: `refused: ${subject} is phonehome itself (port ${port}, ${SERVICE_NAMES[service]})` };
}
