/**
 * DNS over UDP in a capture: each query paired with its answer (by client, resolver and id) becomes
 * a `dns` record and a flow of kind `dns` whose host is the name asked for, so the names a phone
 * looked up (zzhc.vnet.cn...) show next to its HTTP. Parsing is the shared codec (proxy/capture/dns);
 * malformed datagrams are skipped, and unanswered queries are bounded in number and age.
 */
import type { Flow } from '../../../flow';
import { emptyBody } from '../../../flow';
import type { DnsRecord } from '../../../store/dns';
import { parseDnsMessage, type DnsMessage } from '../../dns/codec';
import { addressText, ipPayload, type IpDatagram } from './network';

export interface CapturedDns {
  flow: Flow;
  dns: DnsRecord;
}

export const DNS_PORT = 53;
/** A query with no answer within this long (capture time) is recorded unanswered. */
export const DNS_ANSWER_TIMEOUT_MS = 10_000;
export const MAX_PENDING_DNS_QUERIES = 10_000;

interface PendingQuery {
  msg: DnsMessage;
  ts: number;
  client: string;
  clientPort: number;
  resolver: string;
}

export class UdpDnsReader {
  private readonly pending = new Map<string, PendingQuery>();
  malformed = 0;

  constructor(private readonly emit: (c: CapturedDns) => void) {}

  datagram(ip: IpDatagram, ts: number): void {
    const u = ipPayload(ip);
    if (u.length < 8) return;
    const sport = u.readUInt16BE(0);
    const dport = u.readUInt16BE(2);
    if (sport !== DNS_PORT && dport !== DNS_PORT) return;
    const len = u.readUInt16BE(4);
    const payload = u.subarray(8, len >= 8 && len <= u.length ? len : u.length);
    let msg: DnsMessage;
    try {
      msg = parseDnsMessage(payload);
    } catch {
      this.malformed++;
      return;
    }
    if (!msg.questions.length) return;
    const src = addressText(ip.src, ip.v6);
    const dst = addressText(ip.dst, ip.v6);
    if (!msg.qr) {
      if (this.pending.size >= MAX_PENDING_DNS_QUERIES) this.expire(Infinity, 1);
      const key = `${src} ${sport} ${dst} ${msg.id}`;
      const earlier = this.pending.get(key);
      if (earlier) this.record(earlier, undefined); // the same id reused before an answer came
      this.pending.set(key, { msg, ts, client: src, clientPort: sport, resolver: dst });
      this.expire(ts);
      return;
    }
    const key = `${dst} ${dport} ${src} ${msg.id}`;
    const query = this.pending.get(key);
    if (query) {
      this.pending.delete(key);
      this.record(query, { msg, ts });
    } else {
      /* The capture has the answer but not the question (it started in between): still a lookup. */
      this.record({ msg, ts, client: dst, clientPort: dport, resolver: src }, { msg, ts });
    }
  }

  /** End of capture: unanswered queries are recorded as such. */
  flush(): void {
    this.expire(Infinity);
  }

  private expire(now: number, atMost = Infinity): void {
    for (const [key, q] of this.pending) {
      if (atMost <= 0) break;
      if (now - q.ts <= DNS_ANSWER_TIMEOUT_MS) break; // insertion order = time order
      this.pending.delete(key);
      this.record(q, undefined);
      atMost--;
    }
  }

  private record(q: PendingQuery, answer: { msg: DnsMessage; ts: number } | undefined): void {
    const question = q.msg.questions[0];
    const name = question.name;
    const answers = answer ? answer.msg.answers.map((a) => ({ type: a.type, data: a.data, ttl: a.ttl })) : [];
    const dns: DnsRecord = {
      ts: q.ts,
      source: 'pcap',
      clientIp: q.client,
      resolver: q.resolver,
      name,
      type: question.type,
      rcode: answer ? answer.msg.rcodeName : null,
      answers,
      answeredAt: answer ? answer.ts : null,
    };
    const flow: Flow = {
      kind: 'dns',
      source: 'pcap',
      startedAt: q.ts,
      endedAt: answer?.ts,
      clientIp: q.client,
      clientPort: q.clientPort,
      method: question.type,
      url: `dns://${name}`,
      scheme: 'dns',
      host: name,
      port: DNS_PORT,
      serverIp: q.resolver,
      tls: false,
      requestHeaders: [],
      requestBody: emptyBody(),
      responseHeaders: [],
      responseBody: emptyBody(), // the answers are in the dns table, not analysed as a body
      timings: answer ? { totalMs: answer.ts - q.ts } : {},
      error: answer ? undefined : 'no answer seen in the capture',
      tags: ['imported-pcap'],
    };
    this.emit({ flow, dns });
  }
}
