/**
 * Exchanges as Flows: real nghttp2 traffic read passively, turned into Flows with only the
 * connection's facts, stored in a real SQLite file and analysed — what an importer or the proxy
 * will do with them. Also the corner cases of URL building a hostile client can cause.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { exchangeToFlow, type H2ConnectionFacts } from '../../../../proxy/capture/http2/flow-adapter';
import { newExchange, type H2Exchange } from '../../../../proxy/capture/http2/exchange';
import { H2PassiveConnection } from '../../../../proxy/capture/http2/passive-connection';
import { analyseFlow } from '../../../../proxy/analyse';
import { Store } from '../../../../proxy/store';
import { luhnComplete } from '../../../../scripts/fixtures/random';
import { captureH2, readBody, request } from './h2-capture';

const IMEI = luhnComplete('35403109012345');

const FACTS: H2ConnectionFacts = { source: 'pcap', clientIp: '10.0.0.2', clientPort: 50000, serverIp: '10.0.0.1', serverPort: 443, tls: true, sni: 'api.example.test', tlsVersion: 'TLSv1.3', tags: ['imported-pcap', 'tls-decrypted'] };

function exchange(over: Partial<H2Exchange>): H2Exchange {
  return { ...newExchange(1, 1000), method: 'GET', scheme: 'https', authority: 'api.example.test', path: '/', ...over };
}

describe('exchangeToFlow', () => {
  it('a real stream becomes a stored, analysed flow: URL, method, headers without pseudo-headers, trailers, timings, tags', async () => {
    const { chunks, authority } = await captureH2({
      onStream: (stream) => {
        void readBody(stream).then(() => {
          stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
          stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '5', 'grpc-message': 'not found' }));
          stream.end(Buffer.from([0, 0, 0, 0, 0]));
        });
      },
      run: (client) => request(client, { ':method': 'POST', ':path': `/device.v1.Registry/Register?imei=${IMEI}`, 'content-type': 'application/grpc', 'x-device-id': IMEI }, Buffer.from([0, 0, 0, 0, 0])),
    });
    const flows: ReturnType<typeof exchangeToFlow>[] = [];
    const conn = new H2PassiveConnection({ bodyLimit: 65536, onExchange: (ex) => flows.push(exchangeToFlow(ex, { ...FACTS, tls: false, sni: undefined, serverPort: Number(authority.split(':')[1]), serverIp: '127.0.0.1' })) });
    for (const c of chunks) conn.push(c.from, c.bytes, c.ts);
    conn.end(chunks[chunks.length - 1].ts);
    expect(flows).toHaveLength(1);
    const flow = flows[0];
    expect(flow).toMatchObject({
      kind: 'http',
      source: 'pcap',
      method: 'POST',
      url: `http://${authority}/device.v1.Registry/Register?imei=${IMEI}`,
      scheme: 'http',
      host: '127.0.0.1',
      port: Number(authority.split(':')[1]),
      httpVersion: '2',
      responseStatus: 200,
      tls: false,
    });
    expect(flow.alpn).toBeUndefined();
    expect(flow.requestHeaders.some(([n]) => n.startsWith(':'))).toBe(false);
    expect(flow.requestHeaders).toContainEqual(['x-device-id', IMEI]);
    expect(flow.responseHeaders.slice(-2)).toEqual([['grpc-status', '5'], ['grpc-message', 'not found']]);
    expect(flow.tags).toEqual(['imported-pcap', 'tls-decrypted', 'h2c', 'grpc', 'grpc-error']);
    expect(flow.timings.totalMs).toBeGreaterThanOrEqual(flow.timings.firstByteMs!);
    expect(flow.endedAt! - flow.startedAt).toBe(flow.timings.totalMs);
    expect(flow.error).toBeUndefined();

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-h2-'));
    try {
      const store = Store.open({ dataDir: dir });
      const id = store.flows.insert(flow);
      const back = store.flows.get(id)!;
      store.close();
      expect(back.httpVersion).toBe('2');
      expect(back.requestHeaders).toEqual(flow.requestHeaders);
      expect(back.responseHeaders).toEqual(flow.responseHeaders);
      expect(back.tags).toEqual(flow.tags);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const found = analyseFlow(flow).findings.filter((f) => f.type === 'imei').map((f) => f.path);
    expect(found).toEqual(expect.arrayContaining(['query:imei', 'header:x-device-id']));
  });

  it('TLS facts, default ALPN, the authority\'s own port, and errors with their notes', () => {
    const f = exchangeToFlow(exchange({ authority: 'api.example.test:8443', path: '/v1?a=1', error: 'stream reset by the server (CANCEL)', reset: { by: 'server', code: 8, codeName: 'CANCEL' }, notes: ['request without :scheme or :path (malformed)'] }), FACTS);
    expect(f).toMatchObject({ url: 'https://api.example.test:8443/v1?a=1', host: 'api.example.test', port: 8443, tls: true, sni: 'api.example.test', alpn: 'h2', tlsVersion: 'TLSv1.3' });
    expect(f.error).toBe('stream reset by the server (CANCEL); request without :scheme or :path (malformed)');
    expect(f.tags).toEqual(['imported-pcap', 'tls-decrypted', 'stream-reset', 'h2-malformed']);
  });

  it('an authority without a port on a non-default port names the connection\'s port', () => {
    expect(exchangeToFlow(exchange({}), { ...FACTS, serverPort: 8443 }).url).toBe('https://api.example.test:8443/');
    expect(exchangeToFlow(exchange({}), FACTS).url).toBe('https://api.example.test/');
  });

  it('no :authority: the Host field, then the SNI, then the server address (IPv6 bracketed)', () => {
    expect(exchangeToFlow(exchange({ authority: undefined, requestHeaders: [['host', 'h.example.test']] }), FACTS).host).toBe('h.example.test');
    expect(exchangeToFlow(exchange({ authority: undefined }), FACTS).url).toBe('https://api.example.test/');
    const v6 = exchangeToFlow(exchange({ authority: undefined }), { ...FACTS, sni: undefined, serverIp: '2001:db8::1' });
    expect(v6).toMatchObject({ url: 'https://[2001:db8::1]/', host: '2001:db8::1' });
  });

  it('a hostile :authority or :path cannot make a URL for another host, or throw', () => {
    const evil = exchangeToFlow(exchange({ authority: 'good.test@evil.test', path: '/x' }), FACTS);
    expect(evil.host).toBe('10.0.0.1');
    const weird = exchangeToFlow(exchange({ authority: 'a b', path: 'no-slash' }), FACTS);
    expect(weird.url).toBe('https://10.0.0.1/no-slash');
    const star = exchangeToFlow(exchange({ method: 'OPTIONS', path: '*' }), FACTS);
    expect(star.url).toBe('https://api.example.test/');
    expect(() => exchangeToFlow(exchange({ authority: '[::1', path: '/\u0000' }), FACTS)).not.toThrow();
  });

  it('pushed, refused, cut and truncated exchanges carry their tags', () => {
    const f = exchangeToFlow(
      exchange({ pushed: true, promisedOn: 1, refused: true, captureGap: true, responseBody: { bytes: Buffer.alloc(10), size: 100, truncated: true }, error: 'capture gap: …' }),
      { ...FACTS, tags: undefined },
    );
    expect(f.tags).toEqual(['body-truncated', 'capture-gap', 'goaway-refused', 'server-push']);
  });
});
