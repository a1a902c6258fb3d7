/**
 * The interception core shared by the explicit proxy's CONNECT tunnels and VPN mode's tunnelled
 * TCP connections: given the phone's stream (already answered) and the dialled server, sniff the
 * first bytes and route: TLS → intercept with a leaf minted for the SNI (or the target host);
 * plain HTTP → the HTTP parser; a CONNECT (addressed to the server: the bytes after an answered
 * CONNECT belong to the tunnel), anything else, a silent client, an ignored or pinning host, an
 * h2-only client → raw relay, recorded. A client that rejects our certificate is recorded as a
 * `tls-failure` with its SNI and its host is relayed untouched for the rest of the run. A tunnel
 * never has more than one connection to its server at a time (its agent's maxSockets is 1).
 */
import type * as net from 'net';
import { performance } from 'perf_hooks';
import * as tls from 'tls';
import { baseFlow, SETUP_HOST } from './http-forwarder';
import { relayRaw, RelayDescription } from './raw-relay';
import type { ConnectionInfo, ProxyRuntime, TunnelInfo } from './runtime';
import { sniff } from './sniff';
import type { Target } from './target';
import { agentOptions, TunnelHttpAgent, TunnelHttpsAgent } from './upstream';

/** A connection closed this soon after the handshake, with no request, looks like a pinning check. */
const SILENT_CLOSE_WINDOW_MS = 5000;
/** Browsers also open spare connections they close unused: pin only after repeated silent closes. */
const SILENT_CLOSES_BEFORE_PINNING = 2;

/** TLS alerts a client sends when it does not trust our certificate: pinned at once. */
const CERT_REJECTION_ALERT = /alert (unknown ca|bad certificate|certificate unknown|certificate expired|certificate revoked|unsupported certificate|access denied|decrypt error|handshake failure)/i;
/** A client that just goes away mid-handshake: suspicious, but counted like a silent close. */
const HANGUP = /ECONNRESET|closed during the TLS handshake|socket hang up/i;

/** What the caller learned before handing the connection over. */
export interface InterceptContext {
  info: ConnectionInfo;
  target: Target;
  tunnel: TunnelInfo;
  /** Epoch ms and performance.now() when the phone's connection started. */
  startedAt: number;
  t0: number;
  /** The target is phonehome's own setup page (no upstream). */
  toSetupPage: boolean;
}

/**
 * Takes over an answered phone connection: `head` holds bytes already read from it, `upstream` is
 * the dialled server (undefined only for the setup page).
 */
export async function interceptStream(client: net.Socket, head: Buffer, upstream: net.Socket | undefined, ctx: InterceptContext, rt: ProxyRuntime): Promise<void> {
  const { info, target, tunnel, startedAt, t0, toSetupPage } = ctx;
  const pre = upstream;
  const dropUpstream = () => pre?.destroy();
  const { data, verdict } = await sniff(client, head, rt.sniffTimeoutMs, upstream);
  const relay = (desc: RelayDescription) => {
    if (!pre) return void client.destroy();
    relayRaw(client, pre, data, info, target, startedAt, t0, desc, rt);
  };
  const hostForRules = verdict.kind === 'tls' ? (verdict.hello.sni ?? target.host) : target.host;

  if (verdict.kind === 'closed') {
    dropUpstream();
    const flow = baseFlow(info, startedAt);
    Object.assign(flow, { kind: 'raw', scheme: 'tcp', host: target.host, port: target.port, url: `tcp://${target.host}:${target.port}`, serverIp: tunnel.serverIp, endedAt: Date.now() });
    flow.requestBody = { bytes: data.subarray(0, rt.bodyLimit), size: data.length, truncated: data.length > rt.bodyLimit };
    flow.error = data.length ? 'client closed the tunnel before its protocol could be identified' : 'client closed the tunnel without sending data';
    rt.recorder.record(flow);
    client.destroy();
    return;
  }
  if (rt.ignoreHosts.matches(target.host) || rt.ignoreHosts.matches(hostForRules)) {
    return relay({ kind: 'raw', tls: verdict.kind === 'tls', sni: verdict.kind === 'tls' ? verdict.hello.sni : undefined, tags: ['ignored-host'] });
  }
  switch (verdict.kind) {
    case 'silent':
    case 'other':
      return relay({ kind: 'raw', tls: false, tags: verdict.kind === 'silent' ? ['server-speaks-first'] : [] });
    case 'connect':
      return relay({ kind: 'raw', tls: false, tags: ['nested-connect'] });
    case 'tls-invalid':
      return relay({ kind: 'raw', tls: true, error: `not a valid TLS ClientHello: ${verdict.reason}`, tags: ['tls-garbage'] });
    case 'http': {
      client.unshift(data);
      tunnel.agent = new TunnelHttpAgent(pre, oneConnection(rt));
      closeAgentWith(client, tunnel);
      rt.serveHttp(client, { ...info, tunnel });
      client.resume();
      return;
    }
    case 'tls':
      break;
  }

  const hello = verdict.hello;
  const alpn = hello.alpn.join(',') || undefined;
  const offered = { sni: hello.sni, alpn, tlsVersion: hello.version };
  if (rt.pinnedHosts.has(hostForRules)) {
    return relay({ kind: 'raw', tls: true, ...offered, tags: ['pinning-suspected', 'not-intercepted'] });
  }
  if (hello.alpn.length && !hello.alpn.includes('http/1.1')) {
    return relay({ kind: 'tls-failure', tls: true, ...offered, error: `client offered only ${alpn} (no http/1.1); relayed without interception`, tags: ['h2-only', 'not-intercepted'] });
  }
  const certName = hello.sni ?? target.host;
  let secureContext: tls.SecureContext;
  try {
    secureContext = await rt.minter.secureContextFor(toSetupPage && !hello.sni ? SETUP_HOST : certName);
  } catch (err) {
    return relay({ kind: 'tls-failure', tls: true, ...offered, error: `no certificate for '${certName.slice(0, 255)}': ${(err as Error).message}; relayed without interception`, tags: ['not-intercepted'] });
  }
  if (client.destroyed) {
    dropUpstream();
    return;
  }

  client.unshift(data);
  const tlsSocket = new tls.TLSSocket(client, { isServer: true, secureContext, ALPNProtocols: ['http/1.1'] });
  let secured = false;
  const recordFailure = (error: string, suspected: boolean) => {
    const flow = baseFlow(info, startedAt);
    Object.assign(flow, { kind: 'tls-failure', scheme: 'tls', tls: true, host: target.host, port: target.port, url: `tls://${certName}:${target.port}`, ...offered, serverIp: tunnel.serverIp, endedAt: Date.now(), error });
    if (suspected) flow.tags.push('pinning-suspected');
    rt.recorder.record(flow);
  };
  const pin = (why: string) => {
    if (rt.pinnedHosts.has(hostForRules)) return;
    rt.pinnedHosts.add(hostForRules);
    rt.log(`${info.clientIp} ${why} for ${hostForRules} (certificate pinning, or the CA is not installed); relaying ${hostForRules} untouched from now on`);
  };
  const strike = (why: string) => {
    const count = (rt.silentCloses.get(hostForRules) ?? 0) + 1;
    rt.silentCloses.set(hostForRules, count);
    if (count >= SILENT_CLOSES_BEFORE_PINNING) pin(`${why} ${count} times in a row`);
  };
  const fail = (reason: string) => {
    if (secured) return;
    secured = true;
    clearTimeout(handshakeTimer);
    dropUpstream();
    tlsSocket.destroy();
    const alert = CERT_REJECTION_ALERT.test(reason);
    const hangup = !alert && HANGUP.test(reason);
    recordFailure(`client rejected the TLS handshake: ${reason}`, alert || hangup);
    if (alert) pin('rejected our certificate');
    else if (hangup) strike('closed the connection during the TLS handshake');
  };
  // A ClientHello alone does not finish a handshake: one trickled byte by byte is closed like a slow head.
  const handshakeTimer = rt.headTimeoutMs > 0 ? setTimeout(() => {
    if (secured) return;
    secured = true;
    dropUpstream();
    tlsSocket.destroy();
    recordFailure(`TLS handshake not complete within ${rt.headTimeoutMs} ms`, false);
  }, rt.headTimeoutMs) : undefined;
  handshakeTimer?.unref();
  tlsSocket.once('error', (err) => fail(err.message));
  tlsSocket.once('close', () => fail('client closed during the TLS handshake'));
  tlsSocket.once('secure', () => {
    if (secured) return;
    secured = true;
    clearTimeout(handshakeTimer);
    tunnel.tls = true;
    tunnel.sni = hello.sni;
    tunnel.alpn = alpn;
    tunnel.tlsVersion = tlsSocket.getProtocol() ?? hello.version;
    if (pre) tunnel.agent = new TunnelHttpsAgent(pre, oneConnection(rt));
    closeAgentWith(client, tunnel);
    tlsSocket.on('error', () => tlsSocket.destroy());
    const conn: ConnectionInfo = { ...info, tunnel };
    const securedAt = performance.now();
    let timedOut = false;
    tlsSocket.on('timeout', () => (timedOut = true));
    // Pinning in apps (e.g. OkHttp's CertificatePinner) checks after the handshake and just closes.
    tlsSocket.once('close', () => {
      if ((conn.requests ?? 0) > 0 || timedOut || performance.now() - securedAt > SILENT_CLOSE_WINDOW_MS) return;
      recordFailure('client closed the connection right after the TLS handshake without sending a request', true);
      strike('closed the connection right after the TLS handshake');
    });
    rt.serveHttp(tlsSocket, conn);
  });
}

/** Pipelined requests in a tunnel wait for each other: one phone connection, one server connection. */
function oneConnection(rt: ProxyRuntime): ReturnType<typeof agentOptions> {
  return { ...agentOptions(rt.upstream), maxSockets: 1, maxFreeSockets: 1 };
}

/** A tunnel's upstream connections live as long as the phone's connection. */
function closeAgentWith(client: net.Socket, tunnel: TunnelInfo): void {
  client.once('close', () => {
    tunnel.agent?.takeUnused()?.destroy();
    tunnel.agent?.destroy();
  });
}
