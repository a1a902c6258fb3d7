/**
 * End to end on loopback: real clients (curl, a Node CONNECT+TLS client, a WebSocket client)
 * through the real proxy into real HTTP and HTTPS origins, checked by reading phonehome.db.
 */
import * as fs from 'fs';
import * as path from 'path';
import WebSocket from 'ws';
import { curl, requestOver, tlsThroughProxy } from './helpers/clients';
import { Origin, originCert, startHttpOrigin, startHttpsOrigin } from './helpers/origin';
import { eventually, startTestPhonehome, TestPhonehome } from './helpers/phonehome';

describe('proxy: capture end to end', () => {
  let ph: TestPhonehome;
  let httpOrigin: Origin;
  let httpsOrigin: Origin;
  let caFile: string;

  beforeAll(async () => {
    httpOrigin = await startHttpOrigin();
    httpsOrigin = await startHttpsOrigin();
    ph = await startTestPhonehome();
    caFile = path.join(ph.dataDir, 'ca-for-curl.pem');
    fs.writeFileSync(caFile, ph.ca.certPem);
  });
  afterAll(async () => {
    await ph?.stop();
    await httpOrigin?.close();
    await httpsOrigin?.close();
  });

  it('records a plain HTTP POST sent by curl -x: method, URL, bodies, status, no TLS', async () => {
    const body = 'IMEI=354726080000000&ICCID=89470000000000000000';
    const r = await curl(['-x', `http://127.0.0.1:${ph.proxyPort}`, '-d', body, '-H', 'Content-Type: application/x-www-form-urlencoded', `http://origin.test:${httpOrigin.port}/zzhc/report?v=1`]);
    expect(r.code).toBe(0);
    const echoed = JSON.parse(r.stdout);
    expect(echoed.method).toBe('POST');
    expect(echoed.start).toBe(body);
    const f = await eventually(() => ph.flows("url LIKE '%/zzhc/report%'")[0]);
    expect(f).toMatchObject({ kind: 'http', method: 'POST', scheme: 'http', host: 'origin.test', port: httpOrigin.port, tls: 0, response_status: 200, client_ip: '127.0.0.1', server_ip: '127.0.0.1' });
    expect(f.url).toBe(`http://origin.test:${httpOrigin.port}/zzhc/report?v=1`);
    expect(f.request_body!.toString()).toBe(body);
    expect(f.request_body_size).toBe(body.length);
    expect(f.request_body_truncated).toBe(0);
    expect(f.response_body!.toString()).toBe(r.stdout);
    expect(JSON.parse(f.request_headers)).toContainEqual(['Content-Type', 'application/x-www-form-urlencoded']);
    expect(JSON.parse(f.response_headers)).toContainEqual(['X-Origin', 'phonehome-test']);
    expect(f.http_version).toBe('1.1');
  });

  it('intercepts HTTPS for curl trusting the CA from phonehome, recording SNI, TLS and bodies', async () => {
    const r = await curl(['-x', `http://127.0.0.1:${ph.proxyPort}`, '--cacert', caFile, '--json', '{"imei":"354726080000000"}', `https://origin.test:${httpsOrigin.port}/api/v2/register`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).start).toBe('{"imei":"354726080000000"}');
    const f = (await eventually(() => ph.flows("url LIKE '%/api/v2/register'")[0]))!;
    expect(f).toMatchObject({ kind: 'http', method: 'POST', scheme: 'https', host: 'origin.test', tls: 1, sni: 'origin.test', response_status: 200 });
    expect(f.url).toBe(`https://origin.test:${httpsOrigin.port}/api/v2/register`);
    expect(f.request_body!.toString()).toBe('{"imei":"354726080000000"}');
    expect(f.tls_version).toMatch(/^TLSv1\.[23]$/);
    expect(f.alpn).toContain('http/1.1');
  });

  it('intercepts a Node client doing CONNECT + TLS by hand, keeping the connection alive for several requests', async () => {
    const socket = await tlsThroughProxy(ph.proxyPort, 'origin.test', httpsOrigin.port, ph.ca.certPem);
    expect(socket.authorized).toBe(true);
    expect(socket.getPeerCertificate().subjectaltname).toContain('DNS:origin.test');
    for (let i = 0; i < 3; i++) {
      const res = await requestOver(socket, `GET /keepalive/${i} HTTP/1.1\r\nHost: origin.test:${httpsOrigin.port}\r\nUser-Agent: node-test\r\n\r\n`);
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body.toString()).url).toBe(`/keepalive/${i}`);
    }
    socket.destroy();
    const rows = await eventually(() => {
      const r = ph.flows("url LIKE '%/keepalive/%'");
      return r.length === 3 ? r : undefined;
    });
    expect(rows.map((r) => r.method)).toEqual(['GET', 'GET', 'GET']);
    expect(rows.every((r) => r.tls === 1 && r.sni === 'origin.test' && r.client_port === rows[0].client_port)).toBe(true);
  });

  it('uses the SNI, not the CONNECT host, to name the certificate', async () => {
    const { socket, status } = await import('./helpers/clients').then((c) => c.openTunnel(ph.proxyPort, `127.0.0.1:${httpsOrigin.port}`));
    expect(status).toBe(200);
    const tls = await import('tls');
    const t = await new Promise<import('tls').TLSSocket>((resolve, reject) => {
      const s = tls.connect({ socket, servername: 'h7.test', ca: ph.ca.certPem }, () => resolve(s));
      s.once('error', reject);
    });
    expect(t.getPeerCertificate().subjectaltname).toContain('DNS:h7.test');
    const res = await requestOver(t, 'GET /sni HTTP/1.1\r\nHost: h7.test\r\n\r\n');
    expect(res.status).toBe(200);
    t.destroy();
    const f = await eventually(() => ph.flows("url LIKE '%/sni'")[0]);
    expect(f.sni).toBe('h7.test');
  });

  it('relays a secure WebSocket (wss) through a tunnel and records the handshake', async () => {
    const tunnelled = await tlsThroughProxy(ph.proxyPort, 'origin.test', httpsOrigin.port, ph.ca.certPem);
    const ws = new WebSocket(`wss://origin.test:${httpsOrigin.port}/socket`, { createConnection: () => tunnelled });
    const reply = await new Promise<string>((resolve, reject) => {
      ws.on('open', () => ws.send('hello'));
      ws.on('message', (m) => resolve(m.toString()));
      ws.on('error', reject);
    });
    expect(reply).toBe('echo:hello');
    ws.close();
    const f = await eventually(() => ph.flows("url LIKE '%/socket'")[0]);
    expect(f).toMatchObject({ method: 'GET', response_status: 101, tls: 1, sni: 'origin.test' });
    expect(JSON.parse(f.tags)).toContain('websocket');
  });

  it('serves the setup page at http://phonehome.setup/ through the proxy, with the CA download', async () => {
    const page = await curl(['-x', `http://127.0.0.1:${ph.proxyPort}`, 'http://phonehome.setup/']);
    expect(page.code).toBe(0);
    expect(page.stdout).toMatch(/<html/i);
    const direct = await curl([`http://127.0.0.1:${ph.proxyPort}/`]);
    expect(direct.stdout).toMatch(/<html/i);
    expect(originCert().certPem).not.toBe(ph.ca.certPem);
  });
});

