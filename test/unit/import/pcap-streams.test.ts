/**
 * TCP reassembly and HTTP/1.x reading from captures: segments out of order, retransmitted,
 * overlapping; a segment the capture missed (a gap, recorded, then resync); a capture that starts
 * mid-connection; pipelining, chunked, HEAD/204/304, 100-continue, body limit; a real TLS
 * ClientHello from node's TLS client; DNS queries paired with answers.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { buildDnsMessage, buildDnsQuery } from '../../../proxy/capture/dns/codec';
import { importCapture, type CapturedFlow, type CaptureImportResult } from '../../../proxy/capture/import/pcap/capture-import';
import { headerValue } from '../../../proxy/flow';
import { ipv4, pcapFile, tcpConversation, udp, type Frame } from './pcap-packets';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-pcap-streams-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

let n = 0;
function run(frames: Frame[], bodyLimit?: number): { flows: CapturedFlow[]; http: CapturedFlow[]; result: CaptureImportResult } {
  const file = path.join(dir, `s${n++}.pcap`);
  fs.writeFileSync(file, pcapFile(frames, { linkType: 101 }));
  const flows: CapturedFlow[] = [];
  const result = importCapture(file, (f) => flows.push(f), { bodyLimit });
  const http = flows.filter((f) => f.flow.kind === 'http').sort((a, b) => a.requestIndex! - b.requestIndex!);
  return { flows, http, result };
}

const C = { ip: '10.0.0.23', port: 45678 };
const S = { ip: '198.51.100.9', port: 9998 };
const T0 = 1_700_000_000_000;
const b = (s: string) => Buffer.from(s, 'latin1');

/** Sequence number and payload length of a TCP frame built by pcap-packets (raw IPv4). */
function seqOf(f: Frame): number {
  return f.data.readUInt32BE(24);
}
function payloadLen(f: Frame): number {
  return f.data.length - 40;
}
const fromClient = (f: Frame) => f.data[12] === 10;

describe('TCP reassembly', () => {
  const body = 'imei=354031090123453&' + 'x'.repeat(300) + '&end=1';
  const req = b(`POST /up HTTP/1.1\r\nHost: a.example\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  const res = b('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfine!');

  test('out-of-order, retransmitted and overlapping segments give the exact bytes', () => {
    const frames = tcpConversation(C, S, [{ from: 'c', data: req }, { from: 's', data: res }], { t0: T0, mss: 50 });
    const data = frames.filter((f) => fromClient(f) && payloadLen(f) > 0);
    const others = frames.filter((f) => !data.includes(f));
    /* Reverse the client's segments, send two of them twice, and add one segment overlapping two others. */
    const a = data[1];
    const c2 = data[2];
    const overlapPayload = Buffer.concat([a.data.subarray(40 + 25), c2.data.subarray(40, 40 + 25)]);
    const ov = ipv4(C.ip, S.ip, 6, Buffer.concat([a.data.subarray(20, 40), overlapPayload]));
    ov.writeUInt32BE((seqOf(a) + 25) >>> 0, 24);
    const shuffled = [ov, ...[...data].reverse().map((f) => f.data), data[3].data, data[0].data];
    const handshake = others.slice(0, 3);
    const rest = others.slice(3).map((f, i) => ({ ts: T0 + 100 + i, data: f.data }));
    const { http } = run([...handshake, ...shuffled.map((d, i) => ({ ts: T0 + 10 + i, data: d })), ...rest]);
    expect(http).toHaveLength(1);
    expect(http[0].flow.requestBody.bytes.toString()).toBe(body);
    expect(http[0].flow.responseBody.bytes.toString()).toBe('fine!');
    expect(http[0].flow.error).toBeUndefined();
  });

  test('after both FINs, late retransmissions add nothing; the same ports opened again (a new SYN) are a new connection', () => {
    const one = tcpConversation(C, S, [{ from: 'c', data: b('GET /one HTTP/1.1\r\nHost: a.example\r\n\r\n') }, { from: 's', data: b('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1') }], { t0: T0 });
    const last = one[one.length - 1].ts;
    /* Within the linger time: the request, the response and a FIN sent again. */
    const late = [one[3], one[4], one[5]].map((f, i) => ({ ts: last + 1000 + i, data: f.data }));
    const two = tcpConversation(C, S, [{ from: 'c', data: b('GET /two HTTP/1.1\r\nHost: a.example\r\n\r\n') }, { from: 's', data: b('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2') }], { t0: last + 2000, isn: [90000, 190000] });
    const lateTwo = { ts: two[two.length - 1].ts + 100, data: two[3].data };
    const { flows, http } = run([...one, ...late, ...two, lateTwo]);
    expect(flows).toHaveLength(2);
    expect(http.map((f) => [f.flow.url, f.flow.responseBody.bytes.toString(), f.flow.error])).toEqual([
      ['http://a.example:9998/one', '1', undefined],
      ['http://a.example:9998/two', '2', undefined],
    ]);
  });

  test('a segment missing from the capture is a gap: that request is cut and marked, the next one on the connection is read', () => {
    const req2 = b('GET /after-the-gap?imsi=242011234567890 HTTP/1.1\r\nHost: a.example\r\n\r\n');
    const res2 = b('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo');
    const frames = tcpConversation(C, S, [{ from: 'c', data: req }, { from: 's', data: res }, { from: 'c', data: req2 }, { from: 's', data: res2 }], { t0: T0, mss: 100 });
    const lost = frames.find((f) => fromClient(f) && payloadLen(f) > 0 && f.data.includes(b('xxxxxxxxxx')) && !f.data.includes(b('imei')))!;
    const { http, result } = run(frames.filter((f) => f !== lost));
    expect(http).toHaveLength(2);
    const [first, second] = http.map((h) => h.flow);
    expect(first.tags).toContain('capture-gap');
    expect(first.error).toMatch(/capture gap: 100 bytes/);
    expect(first.requestBody.bytes.toString()).toMatch(/^imei=354031090123453&x+$/);
    expect(first.requestBody.truncated).toBe(true);
    expect(first.responseBody.bytes.toString()).toBe('fine!');
    expect(second.url).toBe('http://a.example:9998/after-the-gap?imsi=242011234567890');
    expect(second.responseBody.bytes.toString()).toBe('two');
    expect(second.error).toBeUndefined();
    expect(result.notes.join()).toMatch(/100 bytes of TCP data were missing/);
  });

  test('a capture that starts mid-connection (inside a response body) resyncs on the next request line', () => {
    const bigRes = b(`HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n${'GET / HTTP/1.1 is not a request here\n'.repeat(20)}${'z'.repeat(2000 - 37 * 20)}`);
    const req2 = b('GET /next?mac=d4:6a:6a:12:34:56 HTTP/1.1\r\nHost: b.example:9998\r\n\r\n');
    const res2 = b('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext');
    const frames = tcpConversation(C, S, [{ from: 'c', data: req }, { from: 's', data: bigRes }, { from: 'c', data: req2 }, { from: 's', data: res2 }], { t0: T0, mss: 300 });
    /* Drop the handshake, the first request and the start of the response. */
    const firstResponse = frames.findIndex((f) => !fromClient(f) && payloadLen(f) > 0);
    const { http } = run(frames.slice(firstResponse + 2));
    expect(http.map((h) => h.flow.url)).toEqual(['http://b.example:9998/next?mac=d4:6a:6a:12:34:56']);
    expect(http[0].flow.clientIp).toBe(C.ip);
    expect(http[0].flow.responseBody.bytes.toString()).toBe('next');
  });
});

describe('HTTP/1.x', () => {
  test('pipelined requests in one segment are paired in order with their responses', () => {
    const reqs = b(['GET /1 HTTP/1.1\r\nHost: p.example\r\n\r\n', 'POST /2 HTTP/1.1\r\nHost: p.example\r\nContent-Length: 3\r\n\r\nabc', 'HEAD /3 HTTP/1.1\r\nHost: p.example\r\n\r\n', 'GET /4 HTTP/1.1\r\nHost: p.example\r\n\r\n'].join(''));
    const resps = b([
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none',
      'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\nX-Trailer: yes\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n', // HEAD: no body despite the length
      'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n',
    ].join(''));
    const { http } = run(tcpConversation(C, S, [{ from: 'c', data: reqs }, { from: 's', data: resps }], { t0: T0, mss: 4000 }));
    expect(http.map((h) => [h.requestIndex, h.flow.method, h.flow.url, h.flow.responseStatus, h.flow.responseBody.bytes.toString()])).toEqual([
      [0, 'GET', 'http://p.example:9998/1', 200, 'one'],
      [1, 'POST', 'http://p.example:9998/2', 201, 'two'],
      [2, 'HEAD', 'http://p.example:9998/3', 200, ''],
      [3, 'GET', 'http://p.example:9998/4', 304, ''],
    ]);
    expect(http[1].flow.requestBody.bytes.toString()).toBe('abc');
    expect(http[1].flow.responseHeaders).toContainEqual(['X-Trailer', 'yes']);
  });

  test('heads of any length in one segment, ending in CRLF or bare LF, end at their first blank line (not one in the body)', () => {
    /* Heads shorter and longer than the text the parser decodes at once (2 KiB), many ending right at its edge. */
    const sizes = [60, 1000, 2000, 2040, 2044, 2045, 2046, 2047, 2048, 2049, 2050, 2051, 2052, 2060, 3000, 9000];
    const reqs: string[] = [];
    const expected: Array<[string, number, string]> = [];
    [...sizes, ...sizes].forEach((size, i) => {
      const eol = i < sizes.length ? '\n' : '\r\n';
      const body = `b${i}\n\nnot a head\r\n\r\n`;
      const headOf = (pad: number) => `POST /h${i} HTTP/1.1${eol}Host: h.example${eol}X-Pad: ${'p'.repeat(pad)}${eol}Content-Length: ${body.length}${eol}${eol}`;
      const pad = Math.max(0, size - headOf(0).length);
      const head = headOf(pad);
      reqs.push(head + body);
      expected.push([`http://h.example:9998/h${i}`, pad, body]);
    });
    const resps = reqs.map((_, i) => `HTTP/1.1 200 OK\r\nContent-Length: ${String(i).length}\r\n\r\n${i}`);
    /* Each message in a segment of its own (mss larger than any). */
    const { http } = run(tcpConversation(C, S, [...reqs.map((r) => ({ from: 'c' as const, data: b(r) })), { from: 's', data: b(resps.join('')) }], { t0: T0, mss: 16000 }));
    expect(http.map((h) => [h.flow.url, headerValue(h.flow.requestHeaders, 'x-pad')?.length, h.flow.requestBody.bytes.toString('latin1')])).toEqual(
      expected.map(([url, pad, body]) => [url, pad, body]),
    );
    expect(http.map((h) => h.flow.responseBody.bytes.toString())).toEqual(reqs.map((_, i) => String(i)));
  });

  test('chunked request split across segments at awkward places; 100 Continue is not the answer', () => {
    const chunked = b('POST /c HTTP/1.1\r\nHost: c.example\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n' + '5;ext=1\r\nimei=\r\nf\r\n354031090123453\r\n0\r\n\r\n');
    const res = b('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    const { http } = run(tcpConversation(C, S, [{ from: 'c', data: chunked }, { from: 's', data: res }], { t0: T0, mss: 7 }));
    expect(http).toHaveLength(1);
    expect(http[0].flow.requestBody.bytes.toString()).toBe('imei=354031090123453');
    expect(http[0].flow.responseStatus).toBe(200);
    expect(http[0].flow.responseBody.bytes.toString()).toBe('ok');
  });

  test('a response without length runs until the connection closes; bodies are cut at the limit with their true size', () => {
    const big = 'y'.repeat(5000);
    const { http } = run(tcpConversation(C, S, [
      { from: 'c', data: b(`PUT /big HTTP/1.0\r\nContent-Length: ${big.length}\r\n\r\n${big}`) },
      { from: 's', data: b(`HTTP/1.0 200 OK\r\n\r\n${big}`) },
    ], { t0: T0 }), 1000);
    const f = http[0].flow;
    expect(f.url).toBe(`http://${S.ip}:9998/big`);
    expect(f.requestBody).toMatchObject({ size: 5000, truncated: true });
    expect(f.requestBody.bytes.length).toBe(1000);
    expect(f.responseBody).toMatchObject({ size: 5000, truncated: true });
    expect(f.tags).toContain('body-truncated');
  });

  test('start lines and chunk-size lines are read to the letter of HTTP/1.1 (they are scanned by hand, not by regex)', () => {
    /* Each request is answered by the response at the same place; a line that is not a start line is lost (the parser resyncs). */
    const reqs = [
      "M-SEARCH!#$%&'*+.^_`|~ /token HTTP/1.0\r\nHost: s.example\r\n\r\n", // every token character
      'GET /ok HTTP/1.1\r\nHost: s.example\r\n\r\n',
      /* From here the parser resynchronises, on the usual methods only. */
      'GET /two  spaces HTTP/1.1\r\nHost: s.example\r\n\r\n', // three parts only: not a request line
      `${'M'.repeat(33)} /long-method HTTP/1.1\r\nHost: s.example\r\n\r\n`, // a method is at most 32 characters
      'GET /nbsp\xa0x HTTP/1.1\r\nHost: s.example\r\n\r\n', // NBSP is white space: no target
      'GET /v2 HTTP/2.0\r\nHost: s.example\r\n\r\n',
      'POST /chunks HTTP/1.1\r\nHost: s.example\r\nTransfer-Encoding: chunked\r\n\r\n00003 ;ext=1\r\nabc\r\nA\t\r\n0123456789\r\n0\r\n\r\n',
      'POST /bad-chunk HTTP/1.1\r\nHost: s.example\r\nTransfer-Encoding: chunked\r\n\r\n0000000000003\r\nabc\r\n0\r\n\r\n', // 13 hex digits
      'GET /after HTTP/1.1\r\nHost: s.example\r\n\r\n',
    ].join('');
    const resps = [
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1',
      'HTTP/1.1 201\r\nContent-Length: 1\r\n\r\n2',
      'HTTP/1.0 404 Not Found Here\r\nContent-Length: 1\r\n\r\n3',
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n4',
      'HTTP/1.1 2000 OK\r\nContent-Length: 1\r\n\r\nX\r\n', // four digits: not a status line (the parser resyncs at the next line)
      'HTTP/1.1 202 Accepted\r\nContent-Length: 1\r\n\r\n5',
    ].join('');
    const { http } = run(tcpConversation(C, S, [{ from: 'c', data: b(reqs) }, { from: 's', data: b(resps) }], { t0: T0, mss: 9 }));
    expect(http.map((h) => [h.flow.method, h.flow.url, h.flow.httpVersion, h.flow.responseStatus, h.flow.responseBody.bytes.toString()])).toEqual([
      ["M-SEARCH!#$%&'*+.^_`|~", 'http://s.example:9998/token', '1.0', 200, '1'],
      ['GET', 'http://s.example:9998/ok', '1.1', 201, '2'],
      ['POST', 'http://s.example:9998/chunks', '1.1', 404, '3'],
      ['POST', 'http://s.example:9998/bad-chunk', '1.1', 200, '4'],
      ['GET', 'http://s.example:9998/after', '1.1', 202, '5'],
    ]);
    expect(http[2].flow.requestBody.bytes.toString()).toBe('abc0123456789');
    expect(http[2].flow.error).toBeUndefined();
    expect(http[3].flow.error).toBe('malformed chunked body in this request');
  });

  test('a request never answered is still recorded, with why', () => {
    const { http } = run(tcpConversation(C, S, [{ from: 'c', data: b('GET /lonely HTTP/1.1\r\nHost: l.example\r\n\r\n') }], { t0: T0 }));
    expect(http).toHaveLength(1);
    expect(http[0].flow.error).toBe('no response seen in the capture');
  });

  test('HTTP on a port shared with other protocols: a non-HTTP connection is one raw flow with its first bytes', () => {
    const { flows } = run(tcpConversation(C, S, [{ from: 'c', data: Buffer.from([0, 1, 2, 3, 0x49, 0x4d, 0x45, 0x49]) }, { from: 's', data: b('\x00ack') }], { t0: T0 }));
    expect(flows).toHaveLength(1);
    expect(flows[0].flow).toMatchObject({ kind: 'raw', scheme: 'tcp', clientIp: C.ip, port: 9998, tags: ['imported-pcap', 'not-http'] });
    expect(flows[0].flow.requestBody.bytes).toEqual(Buffer.from([0, 1, 2, 3, 0x49, 0x4d, 0x45, 0x49]));
  });
});

describe('TLS ClientHello (from node’s TLS client)', () => {
  let hello: Buffer;
  beforeAll(async () => {
    hello = await new Promise<Buffer>((resolve, reject) => {
      const server = net.createServer((sock) => {
        const chunks: Buffer[] = [];
        sock.on('data', (d) => {
          chunks.push(d);
          const all = Buffer.concat(chunks);
          if (all.length >= 5 && all.length >= 5 + all.readUInt16BE(3)) {
            sock.destroy();
            server.close();
            resolve(all);
          }
        });
      });
      server.listen(0, '127.0.0.1', () => {
        const port = (server.address() as net.AddressInfo).port;
        const c = tls.connect({ host: '127.0.0.1', port, servername: 'api.tracker.example', ALPNProtocols: ['h2', 'http/1.1'], rejectUnauthorized: false });
        c.on('error', () => undefined);
      });
      server.on('error', reject);
    });
  });

  test('SNI, ALPN and version; the flow is the encrypted connection, not decrypted', () => {
    const { flows } = run(tcpConversation(C, { ip: S.ip, port: 443 }, [{ from: 'c', data: hello }, { from: 's', data: Buffer.from([0x16, 3, 3, 0, 1, 2]) }], { t0: T0, mss: 100 }));
    expect(flows).toHaveLength(1);
    expect(flows[0].flow).toMatchObject({
      kind: 'raw', scheme: 'tls', tls: true, host: 'api.tracker.example', sni: 'api.tracker.example', alpn: 'h2,http/1.1',
      tlsVersion: 'TLSv1.3', port: 443, serverIp: S.ip, clientIp: C.ip, url: 'tls://api.tracker.example:443', tags: ['imported-pcap', 'tls-not-decrypted'],
    });
  });
});

describe('DNS over UDP', () => {
  const dns = (from: 'c' | 's', payload: Buffer, ts: number): Frame => ({
    ts,
    data: from === 'c' ? ipv4('10.0.0.23', '10.0.0.1', 17, udp(53000, 53, payload)) : ipv4('10.0.0.1', '10.0.0.23', 17, udp(53, 53000, payload)),
  });

  test('a query and its answer: one dns record and one flow named after the host; unanswered queries too', () => {
    const q = buildDnsQuery(0x1234, 'zzhc.vnet.cn', 'A');
    const a = buildDnsMessage({ id: 0x1234, qr: true, rd: true, ra: true, questions: [{ name: 'zzhc.vnet.cn', type: 'A' }], answers: [{ name: 'zzhc.vnet.cn', type: 'A', ttl: 300, data: '42.99.140.10' }] });
    const lonely = buildDnsQuery(7, 'nobody.example', 'AAAA');
    const { flows } = run([dns('c', q, T0), dns('s', a, T0 + 12.5), dns('c', lonely, T0 + 20), dns('c', Buffer.from('not dns'), T0 + 30)]);
    expect(flows.map((f) => [f.flow.kind, f.flow.host, f.flow.method, f.flow.clientIp, f.flow.serverIp])).toEqual([
      ['dns', 'zzhc.vnet.cn', 'A', '10.0.0.23', '10.0.0.1'],
      ['dns', 'nobody.example', 'AAAA', '10.0.0.23', '10.0.0.1'],
    ]);
    expect(flows[0].dns).toMatchObject({ source: 'pcap', name: 'zzhc.vnet.cn', type: 'A', rcode: 'NOERROR', answers: [{ type: 'A', data: '42.99.140.10', ttl: 300 }], ts: T0, answeredAt: T0 + 12.5 });
    expect(flows[1].dns).toMatchObject({ answers: [], rcode: null });
    expect(flows[1].flow.error).toBe('no answer seen in the capture');
  });
});
