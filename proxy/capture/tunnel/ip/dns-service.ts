/**
 * Why: in VPN mode phonehome is the phone's DNS server (the tunnel's DNS address, and any resolver
 * an app hard-codes): every lookup is answered here and recorded, because a lookup is itself a
 * leak (names carry identifiers) and says where the phone is about to go. Queries come over UDP
 * and over TCP (RFC 7766): a phone retries over TCP when a UDP answer did not fit in the tunnel's
 * MTU and came back truncated, so without TCP those names would not resolve at all.
 * Answers come from the laptop's resolvers (forwarder.ts), over UDP, or over TCP when the
 * resolver's own UDP answer is truncated and the phone asked over TCP; phonehome.setup is
 * answered here with the tunnel's own address (the setup page).
 */
import type { Store } from '../../../store';
import { buildDnsErrorResponse, buildDnsMessage, DnsParseError, parseDnsMessage, peekDnsQuestion, type DnsMessage } from '../../dns/codec';
import type { DnsForwarder } from '../../dns/forwarder';
import { recordDnsExchange, type DnsExchange, type FlowSink } from '../../dns/record';
import { SETUP_HOST } from '../../http-forwarder';
import type { IncomingTcpConnection } from '../tcp/handler';
import type { TunnelPeer } from '../types';

/** Lookups waiting for a resolver at once; beyond it queries get SERVFAIL (counted as dns-overload). */
export const MAX_DNS_IN_FLIGHT = 2048;
/** A DNS-over-TCP connection with no query for this long is closed (RFC 7766 suggests seconds). */
export const DNS_TCP_IDLE_MS = 10_000;

export type DnsCounter = 'dnsQueries' | 'dnsAnswers' | 'dnsFailures';

export interface TunnelDnsOptions {
  forwarder: DnsForwarder;
  recorder: FlowSink;
  store?: Store;
  gatewayIpv4: string;
  gatewayIpv6: string;
  count(counter: DnsCounter): void;
  drop(reason: 'dns-not-a-query' | 'dns-overload' | 'dns-tcp-bad-frame'): void;
  log(line: string): void;
}

/** Who asked: the phone, the resolver address it used, its source port, and over what. */
export interface DnsAsker {
  peer: TunnelPeer;
  resolver: string;
  clientPort: number;
  transport: 'udp' | 'tcp';
}

export class TunnelDns {
  private readonly inflight = new Set<Promise<unknown>>();

  constructor(private readonly opts: TunnelDnsOptions) {}

  /**
   * The reply to send for one query (whole: a UDP caller fits it to its MTU), or undefined when
   * nothing is to be sent (a response sent to port 53). Records the exchange. Never rejects.
   */
  answer(asker: DnsAsker, query: Buffer): Promise<Buffer | undefined> {
    const task = this.resolve(asker, query).catch((err: Error) => {
      this.opts.log(`DNS failed: ${err.stack ?? err.message}`);
      return buildDnsErrorResponse(query, 'SERVFAIL') ?? undefined;
    });
    this.inflight.add(task);
    void task.finally(() => this.inflight.delete(task));
    return task;
  }

  /** Serves one DNS-over-TCP connection: 2-byte length-prefixed queries, answered as they complete. */
  serveTcp(conn: IncomingTcpConnection): void {
    const stream = conn.accept();
    const asker: DnsAsker = { peer: conn.peer, resolver: conn.destination.ip, clientPort: conn.source.port, transport: 'tcp' };
    let buffered: Buffer = Buffer.alloc(0);
    let open = 0;
    let ended = false;
    const finishIfDone = () => {
      if (ended && open === 0) stream.end();
    };
    stream.setTimeout(DNS_TCP_IDLE_MS, () => stream.destroy());
    stream.on('error', () => stream.destroy());
    stream.on('end', () => {
      ended = true;
      finishIfDone();
    });
    stream.on('data', (chunk: Buffer) => {
      buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const length = buffered.readUInt16BE(0);
        const query = Buffer.from(buffered.subarray(2, 2 + length));
        buffered = buffered.subarray(2 + length);
        if (length < 12) {
          this.opts.drop('dns-tcp-bad-frame');
          stream.destroy();
          return;
        }
        open++;
        void this.answer(asker, query).then((reply) => {
          open--;
          if (reply && !stream.destroyed && reply.length <= 0xffff) {
            const frame = Buffer.alloc(2 + reply.length);
            frame.writeUInt16BE(reply.length, 0);
            reply.copy(frame, 2);
            stream.write(frame);
          }
          finishIfDone();
        });
      }
    });
  }

  /** Lookups waiting for an answer now. */
  get inFlight(): number {
    return this.inflight.size;
  }

  /** Lookups still waiting for a resolver settle (they are recorded) before this resolves. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
  }

  private async resolve(asker: DnsAsker, query: Buffer): Promise<Buffer | undefined> {
    const startedAt = Date.now();
    const base = { source: 'vpn' as const, clientIp: asker.peer.ipv4, clientPort: asker.clientPort, resolver: asker.resolver, startedAt, transport: asker.transport };
    let name: string;
    let type: string;
    try {
      const peeked = peekDnsQuestion(query);
      if (peeked.flags & 0x8000) {
        this.opts.drop('dns-not-a-query');
        return undefined;
      }
      if (!peeked.question) throw new DnsParseError('query without a question');
      ({ name, type } = peeked.question);
    } catch (err) {
      // Broken queries are recorded too (a malformed lookup is itself worth seeing) and answered FORMERR.
      this.opts.count('dnsQueries');
      this.opts.count('dnsFailures');
      this.record({ ...base, name: asker.resolver, type: 'MALFORMED', answeredAt: Date.now(), error: `malformed DNS query: ${(err as Error).message}` });
      return buildDnsErrorResponse(query, 'FORMERR') ?? undefined;
    }
    this.opts.count('dnsQueries');
    if (name.toLowerCase().replace(/\.$/, '') === SETUP_HOST) {
      // phonehome's own name: the setup page (and the CA) at its tunnel address, as through the proxy.
      const reply = this.setupHostAnswer(query, name, type);
      this.opts.count('dnsAnswers');
      this.record({ ...base, name, type, answeredAt: Date.now(), answer: parseDnsMessage(reply) });
      return reply;
    }
    if (this.inflight.size >= MAX_DNS_IN_FLIGHT) {
      // A phone flooding lookups faster than the resolvers answer: refuse the excess at once.
      this.opts.drop('dns-overload');
      return buildDnsErrorResponse(query, 'SERVFAIL') ?? undefined;
    }
    let res = await this.opts.forwarder.forward(query);
    // Asked over TCP for the whole answer, and the resolver's UDP answer is truncated too: ask it over TCP.
    if (res.ok && asker.transport === 'tcp' && res.answer.length >= 4 && res.answer[2] & 0x02) res = await this.opts.forwarder.forwardTcp(query);
    const answeredAt = Date.now();
    if (!res.ok) {
      this.opts.count('dnsFailures');
      this.record({ ...base, name, type, upstream: res.upstream?.host, answeredAt, error: res.error });
      return buildDnsErrorResponse(query, 'SERVFAIL') ?? undefined;
    }
    let answer: DnsMessage | undefined;
    let error: string | undefined;
    try {
      answer = parseDnsMessage(res.answer);
    } catch (err) {
      error = `resolver's answer could not be parsed: ${(err as Error).message}`;
    }
    this.opts.count('dnsAnswers');
    this.record({ ...base, name, type, upstream: res.upstream.host, answeredAt, answer, error });
    return res.answer;
  }

  private record(x: DnsExchange): void {
    recordDnsExchange(this.opts.recorder, this.opts.store, x, this.opts.log);
  }

  /** An authoritative answer for phonehome.setup: the gateway's address (A or AAAA), nothing for other types. */
  private setupHostAnswer(query: Buffer, name: string, type: string): Buffer {
    const rd = (query.readUInt16BE(2) & 0x0100) !== 0;
    const data = type === 'A' ? this.opts.gatewayIpv4 : type === 'AAAA' ? this.opts.gatewayIpv6 : undefined;
    return buildDnsMessage({
      id: query.readUInt16BE(0), qr: true, aa: true, rd, ra: true, questions: [{ name, type }],
      answers: data ? [{ name, type, ttl: 60, data }] : [],
    });
  }
}
