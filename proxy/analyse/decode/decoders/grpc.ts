/**
 * gRPC and gRPC-Web bodies: a run of length-prefixed messages (a flag byte, a 4-byte big-endian
 * length, the message). Each message is unwrapped on its own — decompressed when its flag says so,
 * per the grpc-encoding header (gzip, deflate; bounded by the same decompression limits as any
 * body) — and handed on as protobuf (or JSON for +json), so detection sees its fields at paths like
 * `body>grpc:0>protobuf:1.2`. gRPC-Web adds a trailers frame (flag 0x80) holding header lines, read
 * as fields (`body>grpc:1>trailer:grpc-status`), and a -text variant that is all base64.
 *
 * Only used when the Content-Type declares gRPC (application/grpc, +proto, +json, grpc-web,
 * grpc-web+proto, grpc-web-text…): five bytes of prefix are too weak a sign to sniff on.
 */
import type { DecodeContext } from '../context';
import { fieldsOutput, makeEntry, type Decoder, type DecoderOutput, type Entry, type Hint, type Payload } from '../registry';
import { hasGzipMagic, hasZlibMagic, noStrings } from '../text';
import { decompress, type Compression } from './compress';

export interface GrpcContentType {
  web: boolean;
  /** grpc-web-text: the body is base64. */
  text: boolean;
  /** What the messages are, for the decoders after this one. */
  messageContentType: string;
}

const GRPC_TYPE = /^\s*application\/grpc(-web(-text)?)?(?:\+([a-z0-9.-]+))?\s*(?:;|$)/i;

/** The gRPC flavour a Content-Type declares, or null. */
export function grpcContentType(contentType: string | undefined): GrpcContentType | null {
  if (!contentType) return null;
  const m = GRPC_TYPE.exec(contentType);
  if (!m) return null;
  const subtype = (m[3] ?? 'proto').toLowerCase();
  return {
    web: m[1] !== undefined,
    text: m[2] !== undefined,
    messageContentType: subtype === 'json' ? 'application/json' : subtype === 'proto' ? 'application/x-protobuf' : `application/${subtype}`,
  };
}

export interface GrpcFrame {
  compressed: boolean;
  /** gRPC-Web's trailers frame. */
  trailers: boolean;
  payload: Buffer;
  /** The length prefix said more than the body holds (a body cut at the capture limit). */
  cut: boolean;
}

/** The frames of a gRPC body, or null when it does not start like one (a flag byte gRPC does not define). */
export function splitGrpcFrames(buf: Buffer, web: boolean, maxFrames = Infinity): { frames: GrpcFrame[]; more: boolean } | null {
  const frames: GrpcFrame[] = [];
  const allowed = web ? 0x81 : 0x01;
  let i = 0;
  while (i + 5 <= buf.length) {
    const flags = buf[i];
    if ((flags & ~allowed) !== 0) return frames.length ? { frames, more: false } : null;
    if (frames.length >= maxFrames) return { frames, more: true };
    const length = buf.readUInt32BE(i + 1);
    const available = buf.length - i - 5;
    const cut = length > available;
    frames.push({ compressed: (flags & 1) !== 0, trailers: (flags & 0x80) !== 0, payload: buf.subarray(i + 5, i + 5 + Math.min(length, available)), cut });
    if (cut) return { frames, more: false };
    i += 5 + length;
  }
  /* Fewer than 5 bytes left over are a cut prefix: the frames before them still count. */
  return frames.length ? { frames, more: false } : null;
}

/** Base64 made of separately padded pieces (gRPC-Web text bodies are written in chunks), decoded; null if not base64. */
function decodeTextBody(bytes: Buffer, ctx: DecodeContext): Buffer | null {
  const text = bytes.toString('latin1').replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/=_-]*$/.test(text)) return null;
  const estimated = Math.floor((text.length * 3) / 4);
  if (estimated > ctx.decodedBytesLeft()) {
    ctx.hit('maxDecodedBytes', `gRPC-Web text body at ${ctx.at} (${text.length} characters) not decoded: the flow's decoded-bytes budget is spent`);
    return null;
  }
  const pieces = text.match(/[^=]+=*/g) ?? [];
  const out = Buffer.concat(pieces.map((p) => Buffer.from(p, 'base64')));
  ctx.spendDecoded(out.length);
  return out;
}

const ENCODINGS: Record<string, Compression> = { gzip: 'gzip', deflate: 'deflate' };

/** How a compressed message is unpacked: the declared grpc-encoding, or what its first bytes show. */
function compressionOf(payload: Buffer, grpcEncoding: string | undefined): Compression | string {
  const declared = grpcEncoding?.trim().toLowerCase();
  if (declared && declared !== 'identity') return ENCODINGS[declared] ?? declared;
  if (hasGzipMagic(payload)) return 'gzip';
  if (hasZlibMagic(payload)) return 'deflate';
  return declared ?? 'an undeclared encoding';
}

/** gRPC-Web trailer lines ("grpc-status: 0\r\n…") as entries. */
function trailerEntries(payload: Buffer, segment: string, entries: Entry[]): void {
  for (const line of payload.toString('latin1').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (value) entries.push(makeEntry(`${segment}>trailer:${name}`, segment, ['grpc'], name, [name], value));
  }
}

export const grpcDecoder: Decoder = {
  type: 'grpc',
  accepts: 'bytes',
  decode(input: Payload, ctx: DecodeContext, hint: Hint): DecoderOutput | null {
    if (typeof input === 'string') return null;
    const kind = grpcContentType(hint.contentType);
    if (kind === null) return null;
    let bytes = input;
    let prefix = '';
    let chain = ['grpc'];
    if (kind.text) {
      const decoded = decodeTextBody(input, ctx);
      if (decoded === null) return null;
      bytes = decoded;
      prefix = 'base64>';
      chain = ['base64', 'grpc'];
    }
    const split = splitGrpcFrames(bytes, kind.web, ctx.limits.maxFields);
    if (split === null) return null;
    if (split.more) ctx.hit('maxFields', `only the first ${ctx.limits.maxFields} gRPC messages at ${ctx.at || 'body'} were examined`);
    const entries: Entry[] = [];
    const keyPath = noStrings();
    split.frames.forEach((frame, i) => {
      const segment = `${prefix}grpc:${i}`;
      if (frame.cut) ctx.note(`gRPC message ${i} at ${ctx.at || 'body'} is cut: its length prefix says more than the body holds`);
      if (frame.payload.length === 0 || ctx.outOfTime(frame.payload.length)) return;
      if (frame.trailers) return trailerEntries(frame.payload, segment, entries);
      if (!frame.compressed) {
        entries.push(makeEntry(segment, `${prefix}grpc`, chain, null, keyPath, frame.payload, false, kind.messageContentType));
        return;
      }
      const how = compressionOf(frame.payload, hint.grpcEncoding);
      if (how !== 'gzip' && how !== 'deflate') {
        ctx.note(`gRPC message ${i} at ${ctx.at || 'body'} is compressed with ${how}, which phonehome cannot undo; it was not examined`);
        return;
      }
      const out = decompress(how, frame.payload, ctx, `${ctx.at || 'body'}>${segment}`);
      if (out === null) {
        ctx.note(`gRPC message ${i} at ${ctx.at || 'body'} says it is ${how}-compressed but is not valid ${how}; it was not examined`);
        return;
      }
      entries.push(makeEntry(`${segment}>${how}`, `${prefix}grpc`, [...chain, how], null, keyPath, out.bytes, false, kind.messageContentType));
    });
    return fieldsOutput(entries);
  },
  explain: () => 'gRPC messages: the body split into its length-prefixed messages (compressed ones unpacked per grpc-encoding), each read on its own',
};
