/**
 * Options and routes beyond the basic exchange: --ignore-hosts, plain HTTP inside a CONNECT tunnel,
 * --upstream-insecure, and apps that check pinning after the handshake and just hang up.
 */
import * as tls from 'tls';
import { curl, openTunnel, requestOver } from './helpers/clients';
import { Origin, originCert, startHttpOrigin, startHttpsOrigin } from './helpers/origin';
import { eventually, startTestPhonehome, TestPhonehome } from './helpers/phonehome';

describe('proxy: modes', () => {
  let httpOrigin: Origin;
  let httpsOrigin: Origin;
  let ph: TestPhonehome;

  beforeAll(async () => {
    httpOrigin = await startHttpOrigin();
    httpsOrigin = await startHttpsOrigin();
    ph = await startTestPhonehome({ ignoreHosts: ['ignored.test', '*.skip.test'] });
  });
  afterAll(async () => {
    await ph?.stop();
    await httpOrigin?.close();
    await httpsOrigin?.close();
  });

  it('relays --ignore-hosts untouched: the client sees the real server certificate; the tunnel is recorded', async () => {
    const r = await curl(['-x', `http://127.0.0.1:${ph.proxyPort}`, '--cacert', originCert().certFile, `https://ignored.test:${httpsOrigin.port}/private`]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).url).toBe('/private');
    const f = await eventually(() => ph.flows("host = 'ignored.test'")[0]);
    expect(f).toMatchObject({ kind: 'raw', scheme: 'tls', tls: 1, sni: 'ignored.test' });
    expect(JSON.parse(f.tags)).toContain('ignored-host');
    expect(ph.flows("url LIKE '%/private'")).toHaveLength(0);
  });

  it('records plain HTTP sent inside a CONNECT tunnel', async () => {
    const { socket, status } = await openTunnel(ph.proxyPort, `origin.test:${httpOrigin.port}`);
    expect(status).toBe(200);
    const res = await requestOver(socket, 'POST /in-tunnel?imsi=242010123456789 HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 4\r\n\r\nping');
    expect(res.status).toBe(200);
    socket.destroy();
    const f = await eventually(() => ph.flows("url LIKE '%/in-tunnel%'")[0]);
    expect(f).toMatchObject({ kind: 'http', scheme: 'http', tls: 0, method: 'POST', url: 'http://origin.test/in-tunnel?imsi=242010123456789', port: httpOrigin.port });
    expect(f.request_body!.toString()).toBe('ping');
  });

  it('still intercepts a client that is slow to send its ClientHello (no server banner meanwhile)', async () => {
    const { socket } = await openTunnel(ph.proxyPort, `origin.test:${httpsOrigin.port}`);
    await new Promise((r) => setTimeout(r, 800)); // longer than the sniff wait (300 ms here)
    const t = tls.connect({ socket, servername: 'origin.test', ca: ph.ca.certPem });
    await new Promise<void>((resolve, reject) => {
      t.once('secureConnect', () => resolve());
      t.once('error', reject);
    });
    const res = await requestOver(t, 'GET /slow-hello HTTP/1.1\r\nHost: origin.test\r\n\r\n');
    expect(res.status).toBe(200);
    t.destroy();
    // Recorded as a decrypted request: it was intercepted, not relayed as a silent tunnel.
    const f = await eventually(() => ph.flows("url LIKE '%/slow-hello'")[0]);
    expect(f).toMatchObject({ kind: 'http', tls: 1, sni: 'origin.test' });
  });

  it('suspects pinning when a client hangs up right after the handshake, twice, then relays the host', async () => {
    const hangUp = async () => {
      const { socket } = await openTunnel(ph.proxyPort, `origin.test:${httpsOrigin.port}`);
      // Like OkHttp's CertificatePinner: the handshake completes, the pin check fails, the socket is closed.
      const t = tls.connect({ socket, servername: 'origin.test', ca: ph.ca.certPem });
      await new Promise<void>((resolve, reject) => {
        t.once('secureConnect', () => resolve());
        t.once('error', reject);
      });
      t.destroy();
    };
    await hangUp();
    await eventually(() => ph.flows("kind = 'tls-failure' AND sni = 'origin.test'").length === 1);
    await hangUp();
    const failures = await eventually(() => {
      const rows = ph.flows("kind = 'tls-failure' AND sni = 'origin.test'");
      return rows.length === 2 ? rows : undefined;
    });
    expect(failures.every((f) => JSON.parse(f.tags).includes('pinning-suspected'))).toBe(true);
    expect(failures[0].error).toMatch(/closed .*TLS handshake/);
    await eventually(() => ph.proxy.pinnedHosts().includes('origin.test'));
    const r = await curl(['-x', `http://127.0.0.1:${ph.proxyPort}`, '--cacert', originCert().certFile, `https://origin.test:${httpsOrigin.port}/after-pinning`]);
    expect(r.code).toBe(0);
    expect(ph.flows("url LIKE '%/after-pinning'")).toHaveLength(0);
  });
});

describe('proxy: --upstream-insecure', () => {
  it('reaches a server whose certificate is not trusted, and tags the flow', async () => {
    const origin = await startHttpsOrigin();
    // Node's own trust store, which does not trust the self-signed origin: without the flag this is a 502.
    const ph = await startTestPhonehome({ upstreamInsecure: true, proxy: { upstreamCa: undefined } });
    try {
      const r = await curl(['-x', `http://127.0.0.1:${ph.proxyPort}`, '--cacert', `${ph.dataDir}/ca.pem`, `https://origin.test:${origin.port}/insecure`]);
      expect(r.code).toBe(0);
      const f = await eventually(() => ph.flows("url LIKE '%/insecure'")[0]);
      expect(f.response_status).toBe(200);
      expect(JSON.parse(f.tags)).toContain('upstream-insecure');
    } finally {
      await ph.stop();
      await origin.close();
    }
  });
});
