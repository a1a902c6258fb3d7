/**
 * gRPC end to end on the capture side: a unary call as a gRPC client puts it on the wire (POST to
 * /package.Service/Method, content-type application/grpc, te: trailers, grpc-encoding gzip, a
 * 5-byte-prefixed protobuf message; grpc-status in the response trailers), sent by Node's http2
 * client to an http2 server over loopback, recorded, read back passively, turned into a Flow and
 * analysed: the IMEI inside the compressed message is found, placed and explained.
 * (@grpc/grpc-js itself is not a dependency of this branch; the bytes are nghttp2's either way.)
 */
import * as zlib from 'node:zlib';
import { analyseFlow } from '../../../../proxy/analyse';
import { exchangeToFlow } from '../../../../proxy/capture/http2/flow-adapter';
import { H2PassiveConnection } from '../../../../proxy/capture/http2/passive-connection';
import type { Flow } from '../../../../proxy/flow';
import { luhnComplete } from '../../../../scripts/fixtures/random';
import { varint } from '../../../../scripts/fixtures/values';
import { captureH2, readBody } from './h2-capture';

const IMEI = luhnComplete('35403109012345');

/** Protobuf wire format: a length-delimited field. */
function bytesField(num: number, value: Buffer | string): Buffer {
  const b = Buffer.from(value);
  return Buffer.concat([varint(BigInt((num << 3) | 2)), varint(BigInt(b.length)), b]);
}

function grpcMessage(message: Buffer, compressed: boolean): Buffer {
  const payload = compressed ? zlib.gzipSync(message) : message;
  const head = Buffer.alloc(5);
  head[0] = compressed ? 1 : 0;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

it('a gzip-compressed gRPC call read from the wire: path, grpc-status, and the IMEI found in the message', async () => {
  const request = bytesField(1, 'Pixel 7');
  const device = Buffer.concat([request, bytesField(2, bytesField(3, IMEI))]);
  const { chunks, authority } = await captureH2({
    onStream: (stream) => {
      void readBody(stream).then(() => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-encoding': 'identity' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(grpcMessage(bytesField(1, 'registered'), false));
      });
    },
    run: (client) =>
      new Promise<void>((resolve) => {
        const req = client.request({ ':method': 'POST', ':path': '/device.v1.Registry/Register', 'content-type': 'application/grpc', te: 'trailers', 'grpc-encoding': 'gzip', 'grpc-accept-encoding': 'identity,gzip', 'user-agent': 'grpc-java-okhttp/1.62.2' });
        req.resume();
        req.on('close', () => resolve());
        req.end(grpcMessage(device, true));
      }),
  });
  const flows: Flow[] = [];
  const conn = new H2PassiveConnection({ bodyLimit: 1 << 20, onExchange: (ex) => flows.push(exchangeToFlow(ex, { source: 'pcap', clientIp: '127.0.0.1', serverIp: '127.0.0.1', serverPort: Number(authority.split(':')[1]), tls: false })) });
  for (const c of chunks) conn.push(c.from, c.bytes, c.ts);
  conn.end(chunks[chunks.length - 1].ts);
  expect(flows).toHaveLength(1);
  const flow = flows[0];
  expect(new URL(flow.url!).pathname).toBe('/device.v1.Registry/Register');
  expect(flow.responseHeaders).toContainEqual(['grpc-status', '0']);
  expect(flow.tags).toEqual(['h2c', 'grpc']);
  const imei = analyseFlow(flow).findings.find((f) => f.type === 'imei');
  expect(imei).toMatchObject({ value: IMEI, path: 'body>grpc:0>gzip>protobuf:2.3', chain: ['grpc', 'gzip', 'protobuf'] });
  expect(imei!.explanation).toMatch(/in protobuf field 3, inside a gzip-compressed gRPC message body\.$/);
});
