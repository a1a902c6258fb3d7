/**
 * The ClientHello parser against hellos produced by a real TLS client (Node's OpenSSL), reframed
 * the ways real networks and clients deliver them, and against hostile bytes.
 */
import * as net from 'net';
import * as tls from 'tls';
import { parseClientHello } from '../../../proxy/capture/client-hello';
import { classify } from '../../../proxy/capture/sniff';

function realClientHello(opts: tls.ConnectionOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const server = net.createServer((s) => {
      s.on('data', (d) => {
        got = Buffer.concat([got, d]);
        if (got.length >= 5 && got.length >= 5 + got.readUInt16BE(3)) {
          resolve(got);
          s.destroy();
          server.close();
        }
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const c = tls.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', rejectUnauthorized: false, ...opts });
      c.on('error', () => undefined);
    });
    server.on('error', reject);
  });
}

/** The same handshake message carried in two TLS records, as some clients send large hellos. */
function splitIntoTwoRecords(hello: Buffer, at: number): Buffer {
  const body = hello.subarray(5);
  const rec = (b: Buffer) => Buffer.concat([Buffer.from([0x16, 0x03, 0x01, b.length >> 8, b.length & 0xff]), b]);
  return Buffer.concat([rec(body.subarray(0, at)), rec(body.subarray(at))]);
}

describe('capture/client-hello', () => {
  let hello: Buffer;
  beforeAll(async () => {
    hello = await realClientHello({ servername: 'zzhc.vnet.cn', ALPNProtocols: ['h2', 'http/1.1'] });
  });

  it('reads SNI, ALPN and the highest offered version from a real hello', () => {
    const r = parseClientHello(hello);
    expect(r).toEqual({ status: 'ok', hello: { sni: 'zzhc.vnet.cn', alpn: ['h2', 'http/1.1'], version: 'TLSv1.3' } });
  });

  it('asks for more bytes at every cut of the hello, then parses it whole', () => {
    for (let cut = 1; cut < hello.length; cut += 7) expect(parseClientHello(hello.subarray(0, cut)).status).toBe('need-more');
    expect(parseClientHello(hello).status).toBe('ok');
  });

  it('parses a hello carried in two records', () => {
    const r = parseClientHello(splitIntoTwoRecords(hello, 40));
    expect(r.status === 'ok' && r.hello.sni).toBe('zzhc.vnet.cn');
    expect(parseClientHello(splitIntoTwoRecords(hello, 40).subarray(0, 60)).status).toBe('need-more');
  });

  it('has no SNI when the client sent none (IP literal)', async () => {
    const noSni = await realClientHello({});
    const r = parseClientHello(noSni);
    expect(r.status).toBe('ok');
    expect(r.status === 'ok' && r.hello.sni).toBeUndefined();
  });

  it('gives a verdict, never an exception, for hostile bytes', () => {
    const corrupt = Buffer.from(hello);
    corrupt.writeUInt16BE(0xffff, 5 + 4 + 2 + 32 + 1 + corrupt[5 + 4 + 2 + 32]); // cipher list length beyond the message
    expect(parseClientHello(corrupt).status).toBe('invalid');
    expect(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])).status).toBe('invalid');
    expect(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0, 0, 0])).status).toBe('invalid');
    expect(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n')).status).toBe('not-tls');
    expect(parseClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0xff, 0xff, 0xff, 0x00])).status).toBe('invalid');
    for (let i = 0; i < 200; i++) {
      const junk = Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), Buffer.from(Array.from({ length: 300 }, (_, k) => (k * 131 + i * 17) & 0xff))]);
      expect(['need-more', 'invalid', 'ok']).toContain(parseClientHello(junk).status);
    }
  });

  it('classifies first bytes of a tunnel: TLS, HTTP, h2 preface, other, silence', () => {
    expect(classify(hello, false)?.kind).toBe('tls');
    expect(classify(hello.subarray(0, 20), false)).toBeUndefined();
    expect(classify(hello.subarray(0, 20), true)?.kind).toBe('tls-invalid');
    expect(classify(Buffer.from('POST /report HTTP/1.1\r\n'), false)?.kind).toBe('http');
    expect(classify(Buffer.from('GE'), false)).toBeUndefined();
    expect(classify(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), false)?.kind).toBe('other');
    expect(classify(Buffer.from([0x00, 0x01, 0x02]), false)?.kind).toBe('other');
    expect(classify(Buffer.from('SSH-2.0-OpenSSH_9.2\r\n'), false)?.kind).toBe('other');
    expect(classify(Buffer.alloc(0), true)?.kind).toBe('silent');
  });
});
