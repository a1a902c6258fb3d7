/**
 * Forwards a phone's DNS queries to the laptop's resolvers and returns their answers. VPN mode
 * answers every DNS query the phone makes (to the tunnel's DNS address or to any resolver it
 * hard-codes), so this is where lookups leave the laptop. Each forwarded query gets a fresh random
 * ID (the phone's own ID is restored on the answer), answers are accepted only from the resolver
 * asked, and each resolver in turn gets `timeoutMs` before the next is tried.
 */
import { createSocket, type Socket } from 'node:dgram';
import { getServers } from 'node:dns';
import { connect, isIPv4, isIPv6, type Socket as TcpSocket } from 'node:net';
import { randomInt } from 'node:crypto';

export interface Upstream {
  host: string;
  port: number;
  /** As given, for records ('127.0.0.1:5353', '[::1]:53', '10.0.0.1'). */
  label: string;
}

/** 'ip', 'ip:port', '[ipv6]:port' or a bare IPv6 address (node's dns.getServers() format). */
export function parseUpstream(s: string): Upstream {
  const text = s.trim();
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracket && isIPv6(bracket[1])) return { host: bracket[1], port: Number(bracket[2] ?? 53), label: text };
  if (isIPv6(text)) return { host: text, port: 53, label: text };
  const v4 = /^([\d.]+)(?::(\d+))?$/.exec(text);
  if (v4 && isIPv4(v4[1])) return { host: v4[1], port: Number(v4[2] ?? 53), label: text };
  throw new Error(`not a resolver address: ${s} (expected IP, IP:PORT or [IPv6]:PORT)`);
}

export type ForwardResult =
  | { ok: true; answer: Buffer; upstream: Upstream }
  | { ok: false; error: string; upstream?: Upstream };

interface Pending {
  upstream: Upstream;
  originalId: number;
  resolve: (answer: Buffer) => void;
}

export interface DnsForwarderOptions {
  /** Resolver addresses; default: the laptop's (dns.getServers()). */
  upstreams?: string[];
  /** Wait per resolver before trying the next (default 2000 ms). */
  timeoutMs?: number;
}

export class DnsForwarder {
  readonly upstreams: Upstream[];
  private readonly timeoutMs: number;
  private readonly sockets = new Map<4 | 6, Promise<Socket>>();
  private readonly pending = new Map<string, Pending>();
  private readonly waits = new Set<{ timer: NodeJS.Timeout; done: (answer?: Buffer) => void }>();
  private closed = false;

  constructor(opts: DnsForwarderOptions = {}) {
    const list = opts.upstreams && opts.upstreams.length ? opts.upstreams : getServers();
    this.upstreams = list.map(parseUpstream);
    this.timeoutMs = opts.timeoutMs ?? 2000;
  }

  /** Sends the query to each resolver in turn until one answers. Never rejects. */
  forward(query: Buffer): Promise<ForwardResult> {
    return this.eachUpstream(query, (u, q) => this.ask(u, q), '');
  }

  /**
   * Like forward, over TCP (RFC 7766): for a phone that asked over TCP, typically after a truncated
   * UDP answer, when the resolver's UDP answer is truncated too. Never rejects.
   */
  forwardTcp(query: Buffer): Promise<ForwardResult> {
    return this.eachUpstream(query, (u, q) => this.askTcp(u, q), ' over TCP');
  }

  /** Asks each resolver in turn with `ask` until one answers; `via` names the transport in errors. */
  private async eachUpstream(query: Buffer, ask: (u: Upstream, q: Buffer) => Promise<Buffer | undefined>, via: string): Promise<ForwardResult> {
    if (query.length < 12) return { ok: false, error: 'query shorter than a DNS header' };
    if (this.upstreams.length === 0) return { ok: false, error: 'no DNS resolvers configured' };
    const errors: string[] = [];
    for (const upstream of this.upstreams) {
      if (this.closed) return { ok: false, error: 'phonehome is stopping' };
      try {
        const answer = await ask(upstream, query);
        if (answer) return { ok: true, answer, upstream };
        errors.push(`${upstream.label}${via}: no answer within ${this.timeoutMs} ms`);
      } catch (err) {
        errors.push(`${upstream.label}${via}: ${(err as Error).message}`);
      }
    }
    return { ok: false, error: errors.join('; '), upstream: this.upstreams[this.upstreams.length - 1] };
  }

  private askTcp(upstream: Upstream, query: Buffer): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      const sock: TcpSocket = connect({ host: upstream.host, port: upstream.port });
      let got = Buffer.alloc(0);
      const wait = {
        timer: setTimeout(() => wait.done(undefined, new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs),
        done: (answer?: Buffer, err?: Error) => {
          clearTimeout(wait.timer);
          this.waits.delete(wait);
          sock.destroy();
          if (answer) resolve(answer);
          else reject(err ?? new Error('phonehome is stopping'));
        },
      };
      this.waits.add(wait);
      sock.on('error', (e) => wait.done(undefined, e));
      sock.on('close', () => wait.done(undefined, new Error('connection closed before the answer')));
      sock.on('data', (chunk: Buffer) => {
        got = Buffer.concat([got, chunk]);
        if (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) {
          const answer = Buffer.from(got.subarray(2, 2 + got.readUInt16BE(0)));
          if (answer.length < 12 || answer.readUInt16BE(0) !== query.readUInt16BE(0)) wait.done(undefined, new Error('answer does not match the query'));
          else wait.done(answer);
        }
      });
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      sock.write(Buffer.concat([len, query]));
    });
  }

  private socket(family: 4 | 6): Promise<Socket> {
    let s = this.sockets.get(family);
    if (!s) {
      s = new Promise<Socket>((resolve, reject) => {
        const sock = createSocket(family === 4 ? 'udp4' : 'udp6');
        sock.once('error', reject);
        sock.on('message', (msg, rinfo) => this.onAnswer(msg, rinfo.address, rinfo.port));
        sock.bind(0, () => {
          sock.removeListener('error', reject);
          sock.on('error', () => { /* ICMP errors surface as timeouts of the pending query */ });
          sock.unref();
          resolve(sock);
        });
      });
      this.sockets.set(family, s);
    }
    return s;
  }

  private async ask(upstream: Upstream, query: Buffer): Promise<Buffer | undefined> {
    const sock = await this.socket(isIPv4(upstream.host) ? 4 : 6);
    let id = 0;
    let key = '';
    for (let tries = 0; tries < 20; tries++) {
      id = randomInt(0x10000);
      key = `${upstream.host}|${upstream.port}|${id}`;
      if (!this.pending.has(key)) break;
    }
    if (this.pending.has(key)) throw new Error('too many queries in flight');
    const out = Buffer.from(query);
    out.writeUInt16BE(id, 0);
    return new Promise<Buffer | undefined>((resolve) => {
      const wait: { timer: NodeJS.Timeout; done: (answer?: Buffer) => void } = {
        timer: setTimeout(() => wait.done(), this.timeoutMs),
        done: (answer?: Buffer) => {
          clearTimeout(wait.timer);
          this.waits.delete(wait);
          this.pending.delete(key);
          resolve(answer);
        },
      };
      this.waits.add(wait);
      this.pending.set(key, { upstream, originalId: query.readUInt16BE(0), resolve: (a) => wait.done(a) });
      sock.send(out, upstream.port, upstream.host, (err) => { if (err) wait.done(); });
    });
  }

  private onAnswer(msg: Buffer, address: string, port: number): void {
    if (msg.length < 12 || (msg[2] & 0x80) === 0) return;
    const host = address.startsWith('::ffff:') && !this.upstreams.some((u) => u.host === address) ? address.slice(7) : address;
    const p = this.pending.get(`${host}|${port}|${msg.readUInt16BE(0)}`);
    if (!p) return;
    const answer = Buffer.from(msg);
    answer.writeUInt16BE(p.originalId, 0);
    p.resolve(answer);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of [...this.waits]) w.done();
    const socks = await Promise.allSettled([...this.sockets.values()]);
    this.sockets.clear();
    for (const s of socks) if (s.status === 'fulfilled') s.value.close();
  }
}
