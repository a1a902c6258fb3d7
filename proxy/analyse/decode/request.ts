/**
 * What the phone sent, as decodable values: the URL (path segments and query), the request headers
 * (cookies split, Authorization tokens unwrapped) and the body (Content-Encoding undone, then
 * decoded by Content-Type and by sniffing).
 */
import { namedAt, type Flow, type Header } from '../../flow';
import type { DecodeContext, Position } from './context';
import { decompress, type Compression } from './decoders/compress';
import { urlEntries } from './decoders/form';
import { sharePlacesAt } from './decoders/json-places';
import { LeafMemo } from './leaf-memo';
import { walkEntry, walkValue } from './walk';
import { noStrings } from './text';

/** Headers that describe the transport, not the phone or its owner. */
const TRANSPORT_HEADERS = [
  'host', 'content-length', 'content-type', 'content-encoding', 'transfer-encoding', 'connection', 'keep-alive',
  'accept', 'accept-encoding', 'accept-language', 'cache-control', 'pragma', 'te', 'upgrade', 'proxy-connection',
  'if-modified-since', 'if-none-match', 'expect', 'origin', 'referer', 'sec-fetch-mode', 'sec-fetch-site', 'sec-fetch-dest',
];

/** What decodeHeaders does with a header, by its name. */
const OTHER = 0;
const TRANSPORT = 1;
const CONTENT_TYPE = 2;
const CONTENT_ENCODING = 3;
const COOKIE = 4;
const AUTHORIZATION = 5;
const GRPC_ENCODING = 6;

const ROLES = new Map<string, number>([
  ...TRANSPORT_HEADERS.map((n): [string, number] => [n, TRANSPORT]),
  ['content-type', CONTENT_TYPE],
  ['content-encoding', CONTENT_ENCODING],
  ['cookie', COOKIE],
  ['authorization', AUTHORIZATION],
  ['proxy-authorization', AUTHORIZATION],
  ['grpc-encoding', GRPC_ENCODING],
]);

/** The names with a role, by length: a name is compared with the few of its length, in place. */
const ROLES_BY_LENGTH: [string, number][][] = [];
for (const [name, role] of ROLES) (ROLES_BY_LENGTH[name.length] ??= []).push([name, role]);

const ROOT: Position = { path: '', key: null, keyPath: noStrings(), value: '', chain: noStrings(), group: '' };
/** Where a body starts (shared: Positions are never changed, only replaced). */
const BODY: Position = sharePlacesAt({ path: 'body', key: null, keyPath: noStrings(), value: '', chain: noStrings(), group: 'body' });

const NO_PREFIX: string[] = noStrings();
/** Values that need the decoder loop start at this length (shorter ones are judged without it). */
const URL_MEMO_MIN_LENGTH = 8;

export function decodeUrl(ctx: DecodeContext, url: string): void {
  for (const entry of urlEntries(url, NO_PREFIX)) {
    if (ctx.stopped) return;
    const value = entry.value;
    if (typeof value !== 'string' || value.length < URL_MEMO_MIN_LENGTH || entry.scalar || entry.contentType) {
      walkEntry(ctx, entry, ROOT);
      continue;
    }
    /* At the root, an entry's segment is its field's path (and names its key, chain and group). */
    const known = URL_LEAVES.recall(ctx, entry.segment, value);
    if (known !== undefined) {
      if (!ctx.outOfTime(value.length)) ctx.emitField(known);
      continue;
    }
    const before = countsOf(ctx);
    walkEntry(ctx, entry, ROOT);
    if (onlyOneLeaf(ctx, before)) URL_LEAVES.remember(ctx, entry.segment, value, entry.segment, ctx.fields[before.fields]!);
  }
}

/** URL values that were leaves as they stand, by segment (see leaf-memo). */
const URL_LEAVES = new LeafMemo();

interface Counts {
  fields: number;
  notes: number;
  hits: number;
  spent: number;
}

function countsOf(ctx: DecodeContext): Counts {
  return { fields: ctx.fields.length, notes: ctx.notes.length, hits: ctx.limitsHit.length, spent: ctx.decodedBytes };
}

/** True when a walk since `before` made one field and nothing else: no note, no limit, no budget spent, not stopped. */
function onlyOneLeaf(ctx: DecodeContext, before: Counts): boolean {
  return ctx.fields.length === before.fields + 1 && ctx.notes.length === before.notes && ctx.limitsHit.length === before.hits && ctx.decodedBytes === before.spent && !ctx.stopped;
}

/**
 * The role of a header name, as its lower-case form says. Compared character by character with the
 * names of its length (no lower-cased copy, no hashing: names are often slices of the header block,
 * which V8 compares and hashes slowly); a name with a non-ASCII character, which toLowerCase may
 * turn into ASCII (the Kelvin sign into 'k'), is lowered for real.
 */
function headerRole(name: string): number {
  const candidates = ROLES_BY_LENGTH[name.length];
  if (candidates !== undefined) {
    for (let i = 0; i < candidates.length; i++) if (namedAt(name, 0, candidates[i][0])) return candidates[i][1];
  }
  return isAscii(name) ? OTHER : ROLES.get(name.toLowerCase()) ?? OTHER;
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) >= 0x80) return false;
  return true;
}

/** The body's Content-Type, Content-Encoding and grpc-encoding (first of each), as decodeHeaders found them. */
interface BodyHeaders {
  contentType?: string;
  contentEncoding?: string;
  grpcEncoding?: string;
}

export function decodeHeaders(ctx: DecodeContext, headers: Header[], body?: BodyHeaders): void {
  for (let i = 0; i < headers.length; i++) {
    const name = headers[i][0];
    const value = headers[i][1];
    const role = headerRole(name);
    if (body) {
      if (role === CONTENT_TYPE) body.contentType ??= value;
      else if (role === CONTENT_ENCODING) body.contentEncoding ??= value;
      else if (role === GRPC_ENCODING) body.grpcEncoding ??= value;
    }
    if (ctx.stopped) continue;
    if (role === TRANSPORT || role === CONTENT_TYPE || role === CONTENT_ENCODING || role === GRPC_ENCODING || !value) continue;
    if (role === COOKIE) {
      decodeCookies(ctx, value);
      continue;
    }
    if (role === AUTHORIZATION) {
      const m = /^(Bearer|Basic|Token)\s+(\S+)$/i.exec(value.trim());
      walkValue(ctx, m ? m[2] : value, headerPosition(name));
      continue;
    }
    const known = HEADER_LEAVES.recall(ctx, name, value);
    if (known !== undefined) {
      /* What walking the value would do: read the clock as often, then emit the same leaf. */
      if (!ctx.outOfTime(value.length)) ctx.emitField(known);
      continue;
    }
    const before = countsOf(ctx);
    const pos = headerPosition(name);
    walkValue(ctx, value, pos);
    if (onlyOneLeaf(ctx, before)) HEADER_LEAVES.remember(ctx, name, value, pos.path, ctx.fields[before.fields]!);
  }
}

/** Header values that were leaves as they stand, by header name (see leaf-memo). */
const HEADER_LEAVES = new LeafMemo();

function headerPosition(name: string): Position {
  return { path: `header:${name}`, key: name, keyPath: [name], value: '', chain: noStrings(), group: 'header' };
}

function decodeCookies(ctx: DecodeContext, header: string): void {
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (!name || !value) continue;
    walkValue(ctx, value, { path: `cookie:${name}`, key: name, keyPath: [name], value: '', chain: ['cookie'], group: 'cookie' });
  }
}

const NO_CODINGS: string[] = [];
const CODINGS: Record<string, Compression> = { gzip: 'gzip', 'x-gzip': 'gzip', deflate: 'deflate', br: 'br' };

/** Undoes Content-Encoding (last applied first), then decodes the body (`grpcEncoding`: how its gRPC messages are compressed). */
export function decodeBody(ctx: DecodeContext, bytes: Buffer, contentType: string | undefined, contentEncoding: string | undefined, grpcEncoding?: string): void {
  if (bytes.length === 0) return;
  let pos: Position = BODY;
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
  walkValue(ctx, data, pos, grpcEncoding === undefined ? { contentType } : { contentType, grpcEncoding });
}

export function decodeRequest(ctx: DecodeContext, flow: Flow): void {
  if (flow.url) decodeUrl(ctx, flow.url);
  const found: BodyHeaders = {};
  decodeHeaders(ctx, flow.requestHeaders, found);
  const body = flow.requestBody;
  if (body && body.bytes.length) {
    if (body.truncated) ctx.note(`request body was captured only in part (${body.bytes.length} of ${body.size} bytes); the rest was not examined`);
    decodeBody(ctx, body.bytes, found.contentType, found.contentEncoding, found.grpcEncoding);
  }
}
