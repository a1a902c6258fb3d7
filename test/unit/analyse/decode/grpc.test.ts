/**
 * gRPC and gRPC-Web bodies through analysis: messages unframed, decompressed per grpc-encoding,
 * read as schema-less protobuf, so an identifier inside a message is found and explained like in
 * any other body. Messages are protobuf wire format written field by field (helpers' `pb`), framed
 * as gRPC frames them (flag byte, u32 big-endian length).
 */
import * as zlib from 'node:zlib';
import { analyseFlow } from '../../../../proxy/analyse';
import { explainDecoder } from '../../../../proxy/analyse/decode';
import { grpcContentType, splitGrpcFrames } from '../../../../proxy/analyse/decode/decoders/grpc';
import { decodeBytesRelaxed, decodeFlowRelaxed, fieldAt, IDS, makeFlow, pb, prng, RELAXED } from './helpers';

/** One gRPC frame: flag (1 = compressed, 0x80 = gRPC-Web trailers), length, message. */
function grpcFrame(message: Buffer, flags = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flags;
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

/** A device registration as an app's protobuf would carry it: { 1: model, 2: { 3: imei, 4: iccid }, 5: sdk }. */
const REGISTER = pb.message(pb.field(1, 'Pixel 7'), pb.field(2, pb.message(pb.field(3, IDS.imei), pb.field(4, IDS.iccid))), pb.field(5, 34));

function grpcFlow(body: Buffer, contentType = 'application/grpc', extra: [string, string][] = []) {
  return makeFlow({ url: 'https://api.example.test/device.v1.Registry/Register', method: 'POST', headers: [['content-type', contentType], ['te', 'trailers'], ...extra], body });
}

describe('gRPC content types', () => {
  it.each([
    ['application/grpc', { web: false, text: false, messageContentType: 'application/x-protobuf' }],
    ['application/grpc+proto', { web: false, text: false, messageContentType: 'application/x-protobuf' }],
    ['application/grpc+json; charset=utf-8', { web: false, text: false, messageContentType: 'application/json' }],
    ['application/grpc-web', { web: true, text: false, messageContentType: 'application/x-protobuf' }],
    ['Application/gRPC-Web+proto', { web: true, text: false, messageContentType: 'application/x-protobuf' }],
    ['application/grpc-web-text', { web: true, text: true, messageContentType: 'application/x-protobuf' }],
    ['application/grpc-web-text+proto', { web: true, text: true, messageContentType: 'application/x-protobuf' }],
  ])('%s', (ct, expected) => {
    expect(grpcContentType(ct)).toEqual(expected);
  });
  it('other types are not gRPC', () => {
    expect(grpcContentType('application/x-protobuf')).toBeNull();
    expect(grpcContentType('application/grpcfoo')).toBeNull();
    expect(grpcContentType(undefined)).toBeNull();
  });
});

describe('gRPC bodies', () => {
  it('an IMEI in a protobuf field of a gRPC request is found by analyseFlow, with its path and explanation', () => {
    const result = analyseFlow(grpcFlow(grpcFrame(REGISTER)), { limits: RELAXED });
    const imei = result.findings.find((f) => f.type === 'imei')!;
    expect(imei).toMatchObject({ value: IDS.imei, path: 'body>grpc:0>protobuf:2.3', chain: ['grpc', 'protobuf'] });
    expect(imei.explanation).toBe(`IMEI 354…${IDS.imei.slice(-3)} (Luhn-valid, with a real TAC prefix) in protobuf field 3, inside a gRPC message body.`);
    expect(result.findings.find((f) => f.type === 'iccid')?.path).toBe('body>grpc:0>protobuf:2.4');
    expect(explainDecoder('grpc')).toMatch(/gRPC messages/);
  });

  it('a stream of messages: each is read on its own, empty ones skipped', () => {
    const body = Buffer.concat([grpcFrame(pb.field(1, 'first')), grpcFrame(Buffer.alloc(0)), grpcFrame(pb.message(pb.field(7, IDS.imsi)))]);
    const r = decodeBytesRelaxed(body, 'application/grpc+proto');
    expect(fieldAt(r, 'body>grpc:0>protobuf:1')?.value).toBe('first');
    expect(fieldAt(r, 'body>grpc:2>protobuf:7')).toMatchObject({ value: IDS.imsi, chain: ['grpc', 'protobuf'], group: 'body>grpc:2>protobuf' });
  });

  it.each([
    ['gzip', zlib.gzipSync],
    ['deflate', zlib.deflateSync],
  ])('a %s-compressed message (grpc-encoding) is unpacked; the explanation says so', (encoding, compress) => {
    const body = Buffer.concat([grpcFrame(pb.field(1, 'plain')), grpcFrame(compress(REGISTER), 1)]);
    const flow = grpcFlow(body, 'application/grpc', [['grpc-encoding', encoding], ['grpc-accept-encoding', 'identity,deflate,gzip']]);
    const decoded = decodeFlowRelaxed(flow);
    expect(decoded.fields.some((f) => f.path === 'header:grpc-encoding')).toBe(false);
    expect(fieldAt(decoded, `body>grpc:1>${encoding}>protobuf:2.3`)).toMatchObject({ value: IDS.imei, chain: ['grpc', encoding, 'protobuf'] });
    const imei = analyseFlow(flow, { limits: RELAXED }).findings.find((f) => f.type === 'imei')!;
    expect(imei.explanation).toBe(`IMEI 354…${IDS.imei.slice(-3)} (Luhn-valid, with a real TAC prefix) in protobuf field 3, inside a ${encoding}-compressed gRPC message body.`);
  });

  it('a compressed message without grpc-encoding is recognised by its magic bytes; an unknown encoding is noted', () => {
    expect(fieldAt(decodeBytesRelaxed(grpcFrame(zlib.gzipSync(REGISTER), 1), 'application/grpc'), 'body>grpc:0>gzip>protobuf:2.3')?.value).toBe(IDS.imei);
    const snappy = decodeFlowRelaxed(grpcFlow(grpcFrame(Buffer.from([0x12, 0x34, 0x56]), 1), 'application/grpc', [['grpc-encoding', 'snappy']]));
    expect(snappy.notes).toContain('gRPC message 0 at body is compressed with snappy, which phonehome cannot undo; it was not examined');
    const broken = decodeFlowRelaxed(grpcFlow(grpcFrame(Buffer.from('not gzip at all'), 1), 'application/grpc', [['grpc-encoding', 'gzip']]));
    expect(broken.notes).toContain('gRPC message 0 at body says it is gzip-compressed but is not valid gzip; it was not examined');
  });

  it('a decompression bomb in a message is cut at the ratio limit and noted', () => {
    const bomb = zlib.gzipSync(Buffer.alloc(40 * 1024 * 1024));
    const r = decodeBytesRelaxed(grpcFrame(bomb, 1), 'application/grpc', undefined, undefined);
    expect(r.limitsHit).toContain('maxRatio');
    expect(r.decodedBytes).toBeLessThanOrEqual(64 * 1024 * 100);
  });

  it('gRPC-Web: messages and the trailers frame (header lines) are fields', () => {
    const body = Buffer.concat([grpcFrame(REGISTER), grpcFrame(Buffer.from('grpc-status: 0\r\ngrpc-message: OK\r\nx-device: ' + IDS.imei + '\r\n'), 0x80)]);
    const r = decodeBytesRelaxed(body, 'application/grpc-web+proto');
    expect(fieldAt(r, 'body>grpc:0>protobuf:2.3')?.value).toBe(IDS.imei);
    expect(fieldAt(r, 'body>grpc:1>trailer:grpc-status')).toMatchObject({ value: '0', key: 'grpc-status' });
    expect(fieldAt(r, 'body>grpc:1>trailer:x-device')?.value).toBe(IDS.imei);
  });

  it('gRPC-Web text: base64 written in separately padded chunks', () => {
    const chunks = [grpcFrame(pb.field(1, 'a')), grpcFrame(REGISTER)].map((f) => f.toString('base64'));
    expect(chunks[0]).toMatch(/=$/);
    const r = decodeBytesRelaxed(Buffer.from(chunks.join('')), 'application/grpc-web-text');
    expect(fieldAt(r, 'body>base64>grpc:1>protobuf:2.3')).toMatchObject({ value: IDS.imei, chain: ['base64', 'grpc', 'protobuf'] });
  });

  it('gRPC with JSON messages (+json)', () => {
    const r = decodeBytesRelaxed(grpcFrame(Buffer.from(JSON.stringify({ imei: IDS.imei }))), 'application/grpc+json');
    expect(fieldAt(r, 'body>grpc:0>json:$.imei')?.value).toBe(IDS.imei);
  });

  it('a body cut at the capture limit: whole messages are read, the cut one is noted', () => {
    const body = Buffer.concat([grpcFrame(REGISTER), grpcFrame(pb.field(1, 'x'.repeat(1000)))]).subarray(0, REGISTER.length + 5 + 100);
    const r = decodeBytesRelaxed(body, 'application/grpc');
    expect(fieldAt(r, 'body>grpc:0>protobuf:2.3')?.value).toBe(IDS.imei);
    expect(r.notes).toContain('gRPC message 1 at body is cut: its length prefix says more than the body holds');
  });

  it('a body declared gRPC that is not framed is read as one protobuf message', () => {
    const r = decodeBytesRelaxed(REGISTER, 'application/grpc');
    expect(fieldAt(r, 'body>protobuf:2.3')?.value).toBe(IDS.imei);
  });

  it('a flood of tiny messages is bounded by the field limit', () => {
    const one = grpcFrame(pb.field(1, 7));
    const r = decodeBytesRelaxed(Buffer.concat(Array(50000).fill(one)), 'application/grpc', { maxFields: 500 });
    expect(r.fields.length).toBeLessThanOrEqual(500);
    expect(r.limitsHit).toContain('maxFields');
  });

  it('splitGrpcFrames: flags gRPC does not define end the frames (or refuse the body)', () => {
    expect(splitGrpcFrames(Buffer.from([2, 0, 0, 0, 0]), false)).toBeNull();
    expect(splitGrpcFrames(Buffer.from([0x80, 0, 0, 0, 0]), false)).toBeNull();
    expect(splitGrpcFrames(Buffer.from([0x80, 0, 0, 0, 0]), true)?.frames[0]).toMatchObject({ trailers: true });
    expect(splitGrpcFrames(Buffer.concat([grpcFrame(Buffer.from('a')), Buffer.from([9, 9, 9, 9, 9, 9])]), false)?.frames).toHaveLength(1);
  });

  it('seeded fuzz: mutated gRPC bodies of every flavour never throw', () => {
    const rand = prng(1337);
    const types = ['application/grpc', 'application/grpc-web', 'application/grpc-web-text', 'application/grpc+json'];
    const base = Buffer.concat([grpcFrame(REGISTER), grpcFrame(zlib.gzipSync(REGISTER), 1), grpcFrame(Buffer.from('grpc-status: 0\r\n'), 0x80)]);
    for (let i = 0; i < 2000; i++) {
      const ct = types[i % types.length];
      let b = Buffer.from(ct.includes('text') ? Buffer.from(base.toString('base64')) : base);
      for (let m = 0; m < 1 + Math.floor(rand() * 4); m++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
      if (rand() < 0.3) b = b.subarray(0, Math.floor(rand() * b.length));
      const r = decodeBytesRelaxed(b, ct, undefined, undefined);
      expect(Array.isArray(r.fields)).toBe(true);
      expect(r.notes.some((n) => n.startsWith('decoding stopped early'))).toBe(false);
    }
  });
});
