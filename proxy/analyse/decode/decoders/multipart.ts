/**
 * multipart/form-data: each part becomes a field named after its form name. Text, JSON, XML, form
 * and gzip parts (up to MAX_PART_BYTES) are decoded further; files such as images are skipped.
 */
import type { DecodeContext } from '../context';
import { fieldsOutput, makeEntry, type Decoder, type DecoderOutput, type Entry, type Payload } from '../registry';
import { hasGzipMagic, isMostlyPrintable } from '../text';

export const MAX_PART_BYTES = 1024 * 1024;

export function boundaryOf(contentType: string | undefined): string | null {
  if (!contentType) return null;
  const m = /boundary=(?:"([^"]{1,200})"|([^;\s]{1,200}))/i.exec(contentType);
  return m ? (m[1] ?? m[2]) : null;
}

function sniffBoundary(buf: Buffer): string | null {
  if (buf.length < 4 || buf[0] !== 0x2d || buf[1] !== 0x2d) return null;
  const eol = buf.indexOf('\n');
  if (eol < 3 || eol > 202) return null;
  const line = buf.subarray(2, eol).toString('latin1').replace(/\r$/, '');
  return /^[\w'()+,./:=?-]{1,200}$/.test(line) ? line : null;
}

function headerParam(headers: string, name: string): string | null {
  const m = new RegExp(`${name}="([^"]*)"`, 'i').exec(headers) ?? new RegExp(`${name}=([^;\\s]+)`, 'i').exec(headers);
  return m ? m[1] : null;
}

const DECODABLE_PART = /^(text\/|application\/(json|xml|x-www-form-urlencoded|[\w.+-]*\+json|[\w.+-]*\+xml|gzip|x-gzip|x-protobuf|protobuf))/i;

export const multipartDecoder: Decoder = {
  type: 'multipart',
  accepts: 'bytes',
  decode(input: Payload, _ctx: DecodeContext, hint): DecoderOutput | null {
    if (typeof input === 'string') return null;
    const boundary = boundaryOf(hint.contentType) ?? sniffBoundary(input);
    if (!boundary) return null;
    const delimiter = Buffer.from(`--${boundary}`, 'latin1');
    const entries: Entry[] = [];
    let at = input.indexOf(delimiter);
    let index = 0;
    while (at >= 0) {
      const start = at + delimiter.length;
      if (input[start] === 0x2d && input[start + 1] === 0x2d) break;
      const next = input.indexOf(delimiter, start);
      const end = next < 0 ? input.length : next;
      const part = input.subarray(start, end);
      at = next;
      const headerEnd = findHeaderEnd(part);
      if (headerEnd < 0) continue;
      const headers = part.subarray(0, headerEnd.valueOf()).toString('latin1');
      let body = part.subarray(headerEnd + (part[headerEnd] === 0x0d ? 4 : 2));
      if (body.length >= 2 && body[body.length - 2] === 0x0d && body[body.length - 1] === 0x0a) body = body.subarray(0, body.length - 2);
      else if (body.length >= 1 && body[body.length - 1] === 0x0a) body = body.subarray(0, body.length - 1);
      const name = headerParam(headers, 'name') ?? `part${index}`;
      const filename = headerParam(headers, 'filename');
      const partType = /content-type:\s*([^\r\n]+)/i.exec(headers)?.[1]?.trim();
      index++;
      const chain = ['multipart'];
      if (filename) entries.push(makeEntry(`multipart:${name}/filename`, 'multipart', chain, 'filename', [name, 'filename'], filename));
      if (body.length > MAX_PART_BYTES) continue;
      const decodable = partType ? DECODABLE_PART.test(partType) || hasGzipMagic(body) : !filename || isMostlyPrintable(body) || hasGzipMagic(body);
      if (!decodable) continue;
      entries.push(makeEntry(`multipart:${name}`, 'multipart', chain, name, [name], body, false, partType));
    }
    return entries.length ? fieldsOutput(entries) : null;
  },
  explain: () => 'a multipart form upload; each part was read',
};

/** Offset of the blank line ending a part's headers (CRLF CRLF or LF LF), or -1. */
function findHeaderEnd(part: Buffer): number {
  const crlf = part.indexOf('\r\n\r\n');
  const lf = part.indexOf('\n\n');
  if (crlf < 0) return lf;
  if (lf < 0) return crlf;
  return Math.min(crlf, lf);
}
