/**
 * What the phone sent, as decodable values: the URL (path segments and query), the request headers
 * (cookies split, Authorization tokens unwrapped) and the body (Content-Encoding undone, then
 * decoded by Content-Type and by sniffing).
 */
import type { Flow, Header } from '../../flow';
import type { DecodeContext, Position } from './context';
import { decompress, type Compression } from './decoders/compress';
import { urlEntries } from './decoders/form';
import { flatCopy } from './text';
import { walkEntry, walkValue } from './walk';

/** Headers that describe the transport, not the phone or its owner. */
const TRANSPORT_HEADERS = new Set([
  'host', 'content-length', 'content-type', 'content-encoding', 'transfer-encoding', 'connection', 'keep-alive',
  'accept', 'accept-encoding', 'accept-language', 'cache-control', 'pragma', 'te', 'upgrade', 'proxy-connection',
  'if-modified-since', 'if-none-match', 'expect', 'origin', 'referer', 'sec-fetch-mode', 'sec-fetch-site', 'sec-fetch-dest',
]);

const ROOT: Position = { path: '', key: null, keyPath: [], chain: [], group: '' };

export function decodeUrl(ctx: DecodeContext, url: string): void {
  for (const entry of urlEntries(url, [])) {
    if (ctx.stopped) return;
    walkEntry(ctx, entry, ROOT);
  }
}

/**
 * Header names in lower case, remembered: a phone sends the same few dozen names on every request,
 * and each is looked up three times per flow. Bounded: cleared when full.
 */
const LOWER_NAMES = new Map<string, string>();
const LOWER_NAMES_MAX = 1024;

function lowerName(name: string): string {
  let lower = LOWER_NAMES.get(name);
  if (lower === undefined) {
    lower = name.toLowerCase();
    if (LOWER_NAMES.size >= LOWER_NAMES_MAX) LOWER_NAMES.clear();
    /* Names are short (a sliced name would keep its whole header block alive: stored as a copy). */
    if (name.length <= 64) LOWER_NAMES.set(flatCopy(name), lower);
  }
  return lower;
}

/** The body's Content-Type and Content-Encoding (first of each), as decodeHeaders found them. */
interface BodyHeaders {
  contentType?: string;
  contentEncoding?: string;
}

export function decodeHeaders(ctx: DecodeContext, headers: Header[], body?: BodyHeaders): void {
  for (let i = 0; i < headers.length; i++) {
    const name = headers[i][0];
    const value = headers[i][1];
    const lower = lowerName(name);
    if (body) {
      if (lower === 'content-type') body.contentType ??= value;
      else if (lower === 'content-encoding') body.contentEncoding ??= value;
    }
    if (ctx.stopped) continue;
    if (TRANSPORT_HEADERS.has(lower) || !value) continue;
    if (lower === 'cookie') {
      decodeCookies(ctx, value);
      continue;
    }
    const pos: Position = { path: `header:${name}`, key: name, keyPath: [name], chain: [], group: 'header' };
    let text = value;
    if (lower === 'authorization' || lower === 'proxy-authorization') {
      const m = /^(Bearer|Basic|Token)\s+(\S+)$/i.exec(value.trim());
      if (m) text = m[2];
    }
    walkValue(ctx, text, pos);
  }
}

function decodeCookies(ctx: DecodeContext, header: string): void {
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (!name || !value) continue;
    walkValue(ctx, value, { path: `cookie:${name}`, key: name, keyPath: [name], chain: ['cookie'], group: 'cookie' });
  }
}

const NO_CODINGS: string[] = [];
const CODINGS: Record<string, Compression> = { gzip: 'gzip', 'x-gzip': 'gzip', deflate: 'deflate', br: 'br' };

/** Undoes Content-Encoding (last applied first), then decodes the body. */
export function decodeBody(ctx: DecodeContext, bytes: Buffer, contentType: string | undefined, contentEncoding: string | undefined): void {
  if (bytes.length === 0) return;
  let pos: Position = { path: 'body', key: null, keyPath: [], chain: [], group: 'body' };
  let data = bytes;
  const codings = contentEncoding ? contentEncoding.split(',').map((c) => c.trim().toLowerCase()).filter((c) => c && c !== 'identity') : NO_CODINGS;
  for (const coding of codings.reverse()) {
    const kind = CODINGS[coding];
    if (!kind) {
      ctx.note(`body has Content-Encoding '${coding}', which phonehome cannot undo; it was examined as sent`);
      break;
    }
    const out = decompress(kind, data, ctx, pos.path);
    if (!out) {
      ctx.note(`body says Content-Encoding ${coding} but is not valid ${coding}; it was examined as sent`);
      break;
    }
    data = out.bytes;
    pos = { ...pos, path: `${pos.path}>${kind}`, chain: [...pos.chain, kind] };
  }
  walkValue(ctx, data, pos, { contentType });
}

export function decodeRequest(ctx: DecodeContext, flow: Flow): void {
  if (flow.url) decodeUrl(ctx, flow.url);
  const found: BodyHeaders = {};
  decodeHeaders(ctx, flow.requestHeaders, found);
  const body = flow.requestBody;
  if (body && body.bytes.length) {
    if (body.truncated) ctx.note(`request body was captured only in part (${body.bytes.length} of ${body.size} bytes); the rest was not examined`);
    decodeBody(ctx, body.bytes, found.contentType, found.contentEncoding);
  }
}
