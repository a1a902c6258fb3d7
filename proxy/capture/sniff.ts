/**
 * Decides what a phone speaks inside a CONNECT tunnel from its first bytes: a TLS ClientHello
 * (complete, possibly over several segments), plain HTTP, a CONNECT addressed to the server (a
 * chained proxy, or CONNECTs pipelined behind the one that opened the tunnel), something else, or
 * nothing at all within the wait (a protocol where the server speaks first, like SMTP or SSH). The
 * bytes read are returned so the caller can replay them into whichever handler takes the connection.
 */
import type * as net from 'net';
import { ClientHello, looksLikeTls, parseClientHello } from './client-hello';

export type SniffVerdict =
  | { kind: 'tls'; hello: ClientHello }
  | { kind: 'tls-invalid'; reason: string }
  | { kind: 'http' }
  | { kind: 'connect' }
  | { kind: 'other' }
  | { kind: 'silent' }
  | { kind: 'closed' };

export interface SniffResult {
  data: Buffer;
  verdict: SniffVerdict;
}

const HTTP_REQUEST_START = /^[A-Z][A-Z_-]{1,19} \S/;
const HTTP_METHOD_PREFIX = /^[A-Z][A-Z_-]{0,19} ?$/;

export function classify(data: Buffer, final: boolean): SniffVerdict | undefined {
  if (data.length === 0) return final ? { kind: 'silent' } : undefined;
  if (looksLikeTls(data)) {
    const parsed = parseClientHello(data);
    if (parsed.status === 'ok') return { kind: 'tls', hello: parsed.hello };
    if (parsed.status === 'invalid') return { kind: 'tls-invalid', reason: parsed.reason };
    if (parsed.status === 'need-more') return final ? { kind: 'tls-invalid', reason: 'incomplete ClientHello' } : undefined;
  }
  const head = data.subarray(0, 24).toString('latin1');
  if (head.startsWith('PRI * HTTP/2')) return { kind: 'other' };
  if (head.startsWith('CONNECT ')) return { kind: 'connect' };
  if (HTTP_REQUEST_START.test(head)) return { kind: 'http' };
  if (!final && HTTP_METHOD_PREFIX.test(head)) return undefined;
  return { kind: 'other' };
}

/**
 * Waits for whichever side speaks first. Client bytes are classified (a partial ClientHello or
 * request line gets `waitMs` more to complete); server bytes first mean a server-speaks-first
 * protocol: verdict 'silent', and the server's bytes are put back for the relay. No timer decides
 * on silence alone: a phone slow to send its ClientHello is still intercepted.
 */
export function sniff(socket: net.Socket, initial: Buffer, waitMs: number, upstream?: net.Socket): Promise<SniffResult> {
  return new Promise((resolve) => {
    let data = initial;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const settle = (verdict: SniffVerdict) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('close', onClose);
      socket.removeListener('end', onClose);
      upstream?.removeListener('data', onServerData);
      socket.pause();
      resolve({ data, verdict });
    };
    const onData = (chunk: Buffer) => {
      data = data.length ? Buffer.concat([data, chunk]) : chunk;
      const v = classify(data, false);
      if (v) settle(v);
      else timer ??= setTimeout(() => settle(classify(data, true) ?? { kind: 'other' }), waitMs);
    };
    const onServerData = (chunk: Buffer) => {
      upstream!.pause();
      upstream!.unshift(chunk);
      settle(data.length ? (classify(data, true) ?? { kind: 'other' }) : { kind: 'silent' });
    };
    const onClose = () => settle({ kind: 'closed' });
    const early = classify(data, false);
    if (early) {
      settled = true;
      resolve({ data, verdict: early });
      return;
    }
    if (data.length) timer = setTimeout(() => settle(classify(data, true) ?? { kind: 'other' }), waitMs);
    socket.on('data', onData);
    socket.once('end', onClose);
    socket.once('close', onClose);
    upstream?.on('data', onServerData);
    socket.resume();
  });
}
