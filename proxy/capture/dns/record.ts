/**
 * Records one DNS exchange of a phone: a flow of kind `dns` (host = the name asked for, so the
 * analysis pipeline looks at it like any proxied request) and a row in the `dns` table pointing
 * at that flow. Shared by VPN mode and, through the same shapes, by pcap import.
 */
import type { Flow } from '../../flow';
import type { Store } from '../../store';
import type { DnsAnswer } from '../../store/dns';
import type { DnsMessage } from './codec';

/** What records a finished flow and hands it to analysis (the proxy's FlowRecorder fits). */
export interface FlowSink {
  /** then: called once the flow is stored (its id set) or could not be; the proxy's recorder stores at the end of the event-loop turn. */
  record(flow: Flow, then?: (flow: Flow, stored: boolean) => void): void;
  /** Stores what is still waiting to be stored (on close). */
  flushNow?(): void;
}

export interface DnsExchange {
  source: 'vpn' | 'pcap';
  /** Device key: the phone's tunnel IPv4 address in VPN mode. */
  clientIp: string;
  clientPort?: number;
  /** The address the phone sent the query to (the tunnel's DNS address or a resolver it chose). */
  resolver: string;
  /** Address of the resolver that actually answered (VPN mode forwards to the laptop's). */
  upstream?: string;
  name: string;
  type: string;
  startedAt: number;
  answeredAt?: number;
  answer?: DnsMessage;
  /** How the phone asked (default udp); over TCP the flow is tagged dns-over-tcp. */
  transport?: 'udp' | 'tcp';
  /** Why there is no (usable) answer: timeout, malformed query... */
  error?: string;
}

const EMPTY = (): Flow['requestBody'] => ({ bytes: Buffer.alloc(0), size: 0, truncated: false });

export function dnsFlow(x: DnsExchange): Flow {
  const name = x.name || '.';
  const tags = x.transport === 'tcp' ? ['dns', 'dns-over-tcp'] : ['dns'];
  if (x.answer) tags.push(`rcode:${x.answer.rcodeName}`);
  return {
    kind: 'dns', source: x.source, startedAt: x.startedAt, endedAt: x.answeredAt ?? Date.now(), clientIp: x.clientIp,
    clientPort: x.clientPort, method: 'QUERY', url: `dns://${name}/?type=${encodeURIComponent(x.type)}`, scheme: 'dns',
    host: name, port: 53, serverIp: x.upstream ?? x.resolver, tls: false, requestHeaders: [], requestBody: EMPTY(),
    responseHeaders: [], responseBody: EMPTY(), timings: x.answeredAt ? { totalMs: Math.max(0, x.answeredAt - x.startedAt) } : {},
    error: x.error, tags,
  };
}

export function answersOf(m: DnsMessage | undefined): DnsAnswer[] {
  return m ? m.answers.map((a) => ({ type: a.type, data: a.data, ttl: a.ttl })) : [];
}

/** Stores the flow (through the sink, which also queues it for analysis) and the dns row. */
export function recordDnsExchange(sink: FlowSink, store: Store | undefined, x: DnsExchange, log?: (s: string) => void): Flow {
  const flow = dnsFlow(x);
  sink.record(flow, (stored, ok) => {
    if (!store) return;
    try {
      store.dns.insert({
        flowId: ok ? (stored.id ?? null) : null, ts: x.startedAt, source: x.source, clientIp: x.clientIp, resolver: x.resolver,
        name: x.name, type: x.type, rcode: x.answer?.rcodeName ?? null, answers: answersOf(x.answer), answeredAt: x.answeredAt ?? null,
      });
    } catch (err) {
      log?.(`dns row for ${x.name} not stored: ${(err as Error).message}`);
    }
  });
  return flow;
}
