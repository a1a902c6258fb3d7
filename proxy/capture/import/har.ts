/**
 * HAR 1.2 import (Chrome/Firefox devtools, mitmproxy, HTTP Toolkit, Charles): each entry becomes
 * the same Flow the proxy records, so `phonehome analyze` and the dashboard treat it alike. Files
 * are read as a stream, entry by entry. A broken entry is an error naming its index, and the other
 * entries are still imported; a file that breaks off is an error naming the byte offset, and the
 * entries before it are kept.
 */
import type { Body, Flow, FlowTimings, Header } from '../../flow';
import { HarSyntaxError, scanHarBytes, scanHarFile, type HarScan, type HarScanEvents } from './har-stream';

export interface HarImportError {
  /** 0-based index in log.entries, or null when the file as a whole is unusable. */
  entry: number | null;
  message: string;
}

export interface HarImport {
  flows: Flow[];
  /** HAR entry index of each flow (flows[i] came from entries[entryIndex[i]]). */
  entryIndex: number[];
  errors: HarImportError[];
}

type Json = Record<string, unknown>;

class EntryError extends Error {}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function bodyFrom(bytes: Buffer, declaredSize: unknown): Body {
  const size = typeof declaredSize === 'number' && declaredSize > bytes.length ? declaredSize : bytes.length;
  return { bytes, size, truncated: size > bytes.length };
}

const BASE64_TEXT = /^[A-Za-z0-9+/\r\n]*={0,2}\s*$/;

function textBytes(text: unknown, encoding: unknown, what: string): Buffer {
  if (text === undefined || text === null) return Buffer.alloc(0);
  if (typeof text !== 'string') throw new EntryError(`${what}.text is not a string`);
  if (typeof encoding === 'string' && encoding.toLowerCase() === 'base64') {
    if (!BASE64_TEXT.test(text)) throw new EntryError(`${what}.text says encoding "base64" but is not base64`);
    return Buffer.from(text, 'base64');
  }
  return Buffer.from(text, 'utf8');
}

function headersFrom(v: unknown, what: string): Header[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new EntryError(`${what}.headers is not a list`);
  const out: Header[] = [];
  v.forEach((h, i) => {
    if (!isObject(h) || typeof h.name !== 'string') throw new EntryError(`${what}.headers[${i}] has no name`);
    /* HTTP/2 pseudo-headers (:authority, :path) repeat the URL. */
    if (h.name.startsWith(':')) return;
    out.push([h.name, h.value === undefined || h.value === null ? '' : String(h.value)]);
  });
  return out;
}

/** postData: `text` (optionally base64 by `encoding`/`_encoding`), else rebuilt from `params`. */
function requestBody(postData: unknown): { body: Body; mimeType?: string } {
  if (postData === undefined || postData === null) return { body: bodyFrom(Buffer.alloc(0), 0) };
  if (!isObject(postData)) throw new EntryError('request.postData is not an object');
  const mimeType = typeof postData.mimeType === 'string' ? postData.mimeType : undefined;
  const encoding = postData.encoding ?? postData._encoding;
  if (typeof postData.text === 'string' && postData.text.length > 0) {
    return { body: bodyFrom(textBytes(postData.text, encoding, 'request.postData'), undefined), mimeType };
  }
  if (Array.isArray(postData.params) && postData.params.length) {
    const pairs = postData.params.map((p, i) => {
      if (!isObject(p) || typeof p.name !== 'string') throw new EntryError(`request.postData.params[${i}] has no name`);
      return `${encodeURIComponent(p.name)}=${encodeURIComponent(p.value === undefined ? '' : String(p.value))}`;
    });
    return { body: bodyFrom(Buffer.from(pairs.join('&')), undefined), mimeType: 'application/x-www-form-urlencoded' };
  }
  return { body: bodyFrom(textBytes(postData.text, encoding, 'request.postData'), undefined), mimeType };
}

function nonNegative(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

function timingsFrom(t: unknown, total: number | undefined): FlowTimings {
  const out: FlowTimings = {};
  if (total !== undefined) out.totalMs = total;
  if (!isObject(t)) return out;
  const part = (k: string) => nonNegative(t[k]) ?? 0;
  const ssl = nonNegative(t.ssl);
  const connect = nonNegative(t.connect);
  const beforeConnect = part('blocked') + part('dns');
  /* HAR counts ssl inside connect. */
  if (connect !== undefined) out.connectMs = beforeConnect + connect - (ssl ?? 0);
  if (ssl !== undefined && connect !== undefined) out.tlsMs = beforeConnect + connect;
  const send = nonNegative(t.send);
  if (send !== undefined) out.requestSentMs = beforeConnect + (connect ?? 0) + send;
  const wait = nonNegative(t.wait);
  if (wait !== undefined) out.firstByteMs = beforeConnect + (connect ?? 0) + (send ?? 0) + wait;
  return out;
}

function entryToFlow(entry: unknown): Flow {
  if (!isObject(entry)) throw new EntryError('is not an object');
  const req = entry.request;
  if (!isObject(req)) throw new EntryError('has no request');
  if (typeof req.method !== 'string' || !req.method) throw new EntryError('request.method is missing');
  if (typeof req.url !== 'string') throw new EntryError('request.url is missing');
  let url: URL;
  try {
    url = new URL(req.url);
  } catch {
    throw new EntryError(`request.url "${req.url.slice(0, 200)}" is not an absolute URL`);
  }
  const scheme = url.protocol === 'https:' ? 'https' : url.protocol === 'http:' ? 'http' : null;
  if (!scheme) throw new EntryError(`request.url has scheme "${url.protocol}", not http or https`);
  const requestHeaders = headersFrom(req.headers, 'request');
  const { body, mimeType } = requestBody(req.postData);
  if (mimeType && body.bytes.length && !requestHeaders.some(([n]) => n.toLowerCase() === 'content-type')) {
    requestHeaders.push(['Content-Type', mimeType]);
  }
  const res = isObject(entry.response) ? entry.response : undefined;
  const content = res && isObject(res.content) ? res.content : undefined;
  const responseBody = content ? bodyFrom(textBytes(content.text, content.encoding, 'response.content'), content.size) : bodyFrom(Buffer.alloc(0), 0);
  const started = typeof entry.startedDateTime === 'string' ? Date.parse(entry.startedDateTime) : NaN;
  const time = nonNegative(entry.time);
  const startedAt = Number.isFinite(started) ? started : 0;
  const status = res && typeof res.status === 'number' && res.status > 0 ? res.status : undefined;
  const serverIp = typeof entry.serverIPAddress === 'string' && entry.serverIPAddress ? entry.serverIPAddress.replace(/^\[|\]$/g, '') : undefined;
  const clientIp = [entry._clientAddress, entry.clientIPAddress, entry._clientIPAddress].find((v): v is string => typeof v === 'string' && v.length > 0);
  const tags = ['imported-har'];
  if (body.truncated) tags.push('body-truncated');
  return {
    kind: 'http',
    source: 'har',
    startedAt,
    endedAt: time !== undefined && Number.isFinite(started) ? startedAt + time : undefined,
    clientIp: clientIp ?? 'har',
    method: req.method.toUpperCase(),
    url: req.url,
    scheme,
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port ? Number(url.port) : scheme === 'https' ? 443 : 80,
    serverIp,
    tls: scheme === 'https',
    requestHeaders,
    requestBody: body,
    responseStatus: status,
    responseHeaders: res ? safeHeaders(res.headers) : [],
    responseBody,
    timings: timingsFrom(entry.timings, time),
    error: typeof entry._error === 'string' ? entry._error : undefined,
    tags,
  };
}

function safeHeaders(v: unknown): Header[] {
  try {
    return headersFrom(v, 'response');
  } catch {
    return [];
  }
}

/** Where a HAR file breaks off, and what of it was read. */
function syntaxMessage(fileName: string, err: HarSyntaxError, entries: number): string {
  const inEntry = err.entry !== undefined ? ` in entry ${err.entry}` : '';
  if (entries === 0) {
    return err.truncated
      ? `${fileName}: not a HAR file (invalid JSON: the file ends at byte ${err.offset}, ${err.reason}${inEntry})`
      : `${fileName}: not a HAR file (invalid JSON at byte ${err.offset}${inEntry}: ${err.reason})`;
  }
  const kept = `the ${entries} ${entries === 1 ? 'entry' : 'entries'} before it ${entries === 1 ? 'was' : 'were'} read`;
  return err.truncated
    ? `${fileName}: the file ends at byte ${err.offset}, ${err.reason}${inEntry} (truncated?); ${kept}`
    : `${fileName}: invalid JSON at byte ${err.offset}${inEntry} (${err.reason}); ${kept}`;
}

export interface HarReadOptions {
  /** Bytes of the file read so far, and its size. */
  onProgress?(done: number, total: number): void;
}

/** What reading one HAR file gave, besides the flows handed over one by one. */
export interface HarReadResult {
  /** Elements of log.entries seen (flows and broken entries). */
  entries: number;
  flows: number;
  /** Broken entries (with their index) and, last, what ended the file (entry null), in file order. */
  errors: HarImportError[];
  /** True when entries could be read; false when the file is no HAR at all. */
  read: boolean;
}

/**
 * Reads a HAR file as a stream (har-stream.ts), handing each entry's flow to `onFlow` as soon as it
 * is read: memory is bounded by the largest entry. A broken entry is an error naming its index; a
 * file that stops being JSON ends with an error naming the byte offset, the entries before it kept.
 */
export function readHarFile(file: string, fileName: string, onFlow: (flow: Flow, index: number) => void, opts: HarReadOptions = {}): HarReadResult {
  return readWith((events) => scanHarFile(file, events), fileName, onFlow, opts);
}

/** readHarFile over text already in memory (tests, small files); every flow collected. */
export function readHar(text: string, fileName: string): HarImport {
  const out: HarImport = { flows: [], entryIndex: [], errors: [] };
  const result = readWith((events) => scanHarBytes(Buffer.from(text, 'utf8'), events), fileName, (flow, index) => {
    out.flows.push(flow);
    out.entryIndex.push(index);
  }, {});
  out.errors = result.errors;
  return out;
}

function readWith(scan: (events: HarScanEvents) => HarScan, fileName: string, onFlow: (flow: Flow, index: number) => void, opts: HarReadOptions): HarReadResult {
  const result: HarReadResult = { entries: 0, flows: 0, errors: [], read: false };
  const entry = (bytes: Buffer, index: number, offset: number): void => {
    result.entries++;
    let flow: Flow;
    try {
      let doc: unknown;
      try {
        doc = JSON.parse(bytes.toString('utf8'));
      } catch (err) {
        throw new EntryError(`is not valid JSON (${(err as Error).message}; it starts at byte ${offset})`);
      }
      flow = entryToFlow(doc);
    } catch (err) {
      const message = err instanceof EntryError ? err.message : `could not be read (${(err as Error).message})`;
      result.errors.push({ entry: index, message: `${fileName}: entry ${index} ${message}` });
      return;
    }
    result.flows++;
    onFlow(flow, index);
  };
  let found: HarScan;
  try {
    found = scan({ entry, progress: opts.onProgress });
  } catch (err) {
    if (!(err instanceof HarSyntaxError)) throw err;
    result.read = result.entries > 0;
    result.errors.push({ entry: null, message: syntaxMessage(fileName, err, result.entries) });
    return result;
  }
  if (!found.sawEntries) {
    result.errors.push({ entry: null, message: `${fileName}: not a HAR file (no log.entries list)` });
    return result;
  }
  result.read = true;
  return result;
}
