/**
 * One HTTP/2 stream as a request/response exchange: the shape the passive connection
 * (passive-connection.ts) produces and the flow adapter (flow-adapter.ts) turns into a Flow. Kept
 * as plain data so a live integration (Node's http2 module) can fill one from its own events and
 * share the adapter. Also here: how a decoded header list is split into pseudo-headers and fields,
 * with what RFC 9113 §8.2–8.3 would call malformed noted (not refused: we record what was sent).
 */
import type { Body, Header } from '../../flow';

export interface H2StreamTimings {
  /** Capture time of the stream's first frame (its request HEADERS, or the PUSH_PROMISE). */
  firstFrameTs: number;
  /** Capture time of the last frame seen for it. */
  lastFrameTs: number;
  /** The client's END_STREAM (the request was complete). */
  requestEndTs: number | undefined;
  /** The final (non-1xx) response HEADERS. */
  responseHeadersTs: number | undefined;
  /** The server's END_STREAM. */
  responseEndTs: number | undefined;
}

export interface H2Reset {
  by: 'client' | 'server';
  code: number;
  codeName: string;
}

export interface H2Informational {
  status: number;
  headers: Header[];
}

export interface H2Exchange {
  streamId: number;
  /** Made by a server push: `promisedOn` is the stream whose PUSH_PROMISE announced it. */
  pushed: boolean;
  promisedOn: number | undefined;
  method: string | undefined;
  scheme: string | undefined;
  authority: string | undefined;
  path: string | undefined;
  /** Extended CONNECT's :protocol (RFC 8441), e.g. 'websocket'. */
  protocol: string | undefined;
  /** Pseudo-headers as sent, in order (':method', ':path'…). */
  requestPseudoHeaders: Header[];
  /** The other request fields as sent, in order (repeats allowed). */
  requestHeaders: Header[];
  requestBody: Body;
  requestTrailers: Header[];
  /** Final status (1xx ones are in `informational`). */
  status: number | undefined;
  informational: H2Informational[];
  responsePseudoHeaders: Header[];
  responseHeaders: Header[];
  responseBody: Body;
  /** E.g. grpc-status and grpc-message. */
  responseTrailers: Header[];
  /** END_STREAM seen from the client, from the server. */
  requestComplete: boolean;
  responseComplete: boolean;
  timings: H2StreamTimings;
  /** Why the exchange is not a complete request and response (reset, refused, connection ended, gap…). */
  error: string | undefined;
  reset: H2Reset | undefined;
  /** A GOAWAY said the server never processed it (safe to retry: the request had no effect). */
  refused: boolean;
  /** Reading stopped at bytes missing from the capture. */
  captureGap: boolean;
  /** Protocol problems that did not end the stream: malformed headers, stream errors, truncated header lists. */
  notes: string[];
}

/** Pseudo-headers a request may carry (RFC 9113 §8.3.1, RFC 8441 §4). */
const REQUEST_PSEUDO = new Set([':method', ':scheme', ':authority', ':path', ':protocol']);
/** Fields that belong to a connection, which HTTP/2 does not allow (RFC 9113 §8.2.2). */
const CONNECTION_SPECIFIC = new Set(['connection', 'proxy-connection', 'keep-alive', 'transfer-encoding', 'upgrade']);

export interface SplitHeaders {
  pseudo: Header[];
  fields: Header[];
}

/**
 * A decoded list split into pseudo-headers and fields. `kind` says which rules apply; problems go
 * to `notes` (and the list is still recorded as sent).
 */
export function splitHeaders(list: Header[], kind: 'request' | 'response' | 'trailers', notes: string[]): SplitHeaders {
  const pseudo: Header[] = [];
  const fields: Header[] = [];
  let upper = false;
  for (const h of list) {
    const name = h[0];
    if (name.charCodeAt(0) === 58 /* ':' */) {
      if (fields.length) addNote(notes, `pseudo-header ${name} after regular fields in the ${kind} (malformed, RFC 9113 §8.3)`);
      if (kind === 'trailers') addNote(notes, `pseudo-header ${name} in trailers (malformed)`);
      else if (kind === 'request' ? !REQUEST_PSEUDO.has(name) : name !== ':status') addNote(notes, `unknown pseudo-header ${name} in the ${kind} (malformed)`);
      else if (pseudo.some((p) => p[0] === name)) addNote(notes, `pseudo-header ${name} repeated in the ${kind} (malformed)`);
      pseudo.push(h);
      continue;
    }
    if (!upper && name !== name.toLowerCase()) {
      upper = true;
      addNote(notes, `field name ${name} in the ${kind} has upper-case letters (malformed, RFC 9113 §8.2.1)`);
    }
    const lower = name.toLowerCase();
    if (CONNECTION_SPECIFIC.has(lower) || (lower === 'te' && h[1].trim().toLowerCase() !== 'trailers')) {
      addNote(notes, `connection-specific field ${name} in the ${kind} (malformed, RFC 9113 §8.2.2)`);
    }
    fields.push(h);
  }
  return { pseudo, fields };
}

export function pseudoValue(pseudo: Header[], name: string): string | undefined {
  for (const h of pseudo) if (h[0] === name) return h[1];
  return undefined;
}

/** At most this many notes per exchange (a hostile peer could otherwise add one per frame). */
export const MAX_NOTES = 20;

export function addNote(notes: string[], text: string): void {
  if (notes.length < MAX_NOTES && !notes.includes(text)) notes.push(text);
}

/** Bytes held for open streams, shared by the streams of one connection (H2Limits.maxHeldBytes). */
export class HeldBytes {
  held = 0;
  constructor(readonly max: number) {}
  get over(): boolean {
    return this.held > this.max;
  }
}

/** A body's bytes up to the body limit, with its true size; what it keeps counts in the connection's HeldBytes. */
export class BodyPieces {
  private parts: Buffer[] = [];
  kept = 0;
  size = 0;
  constructor(private readonly limit: number, private readonly held: HeldBytes) {}

  /** Keeps a copy of what fits of `piece` (a view that is only valid during the call). */
  add(piece: Buffer): void {
    this.size += piece.length;
    const room = this.limit - this.kept;
    if (room <= 0 || piece.length === 0) return;
    const n = Math.min(room, piece.length);
    this.parts.push(Buffer.from(piece.subarray(0, n)));
    this.kept += n;
    this.held.held += n;
  }

  /** The body; the bytes stop counting as held. */
  take(): Body {
    const bytes = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.kept);
    this.held.held -= this.kept;
    this.parts = [];
    return { bytes, size: this.size, truncated: this.size > bytes.length };
  }
}

export function newExchange(streamId: number, ts: number): H2Exchange {
  return {
    streamId,
    pushed: false,
    promisedOn: undefined,
    method: undefined,
    scheme: undefined,
    authority: undefined,
    path: undefined,
    protocol: undefined,
    requestPseudoHeaders: [],
    requestHeaders: [],
    requestBody: { bytes: Buffer.alloc(0), size: 0, truncated: false },
    requestTrailers: [],
    status: undefined,
    informational: [],
    responsePseudoHeaders: [],
    responseHeaders: [],
    responseBody: { bytes: Buffer.alloc(0), size: 0, truncated: false },
    responseTrailers: [],
    requestComplete: false,
    responseComplete: false,
    timings: { firstFrameTs: ts, lastFrameTs: ts, requestEndTs: undefined, responseHeadersTs: undefined, responseEndTs: undefined },
    error: undefined,
    reset: undefined,
    refused: false,
    captureGap: false,
    notes: [],
  };
}

/** Fills the request side of an exchange from its HEADERS (or a PUSH_PROMISE's) list. */
export function applyRequestHead(ex: H2Exchange, list: Header[]): void {
  const { pseudo, fields } = splitHeaders(list, 'request', ex.notes);
  ex.requestPseudoHeaders = pseudo;
  ex.requestHeaders = fields;
  ex.method = pseudoValue(pseudo, ':method');
  ex.scheme = pseudoValue(pseudo, ':scheme');
  ex.authority = pseudoValue(pseudo, ':authority');
  ex.path = pseudoValue(pseudo, ':path');
  ex.protocol = pseudoValue(pseudo, ':protocol');
  if (ex.method === undefined) addNote(ex.notes, 'request without :method (malformed)');
  else if (ex.method === 'CONNECT' && ex.protocol === undefined) {
    if (ex.authority === undefined) addNote(ex.notes, 'CONNECT request without :authority (malformed)');
  } else if (ex.scheme === undefined || ex.path === undefined) addNote(ex.notes, 'request without :scheme or :path (malformed)');
}

/**
 * A response HEADERS list: 1xx ones are informational (more follow), the first other one is the
 * final head. Returns false when the list has no usable :status.
 */
export function applyResponseHead(ex: H2Exchange, list: Header[]): boolean {
  const { pseudo, fields } = splitHeaders(list, 'response', ex.notes);
  const text = pseudoValue(pseudo, ':status');
  const status = text !== undefined && /^[1-9][0-9]{2}$/.test(text) ? Number(text) : undefined;
  if (status === undefined) {
    addNote(ex.notes, text === undefined ? 'response without :status (malformed)' : `response with :status ${JSON.stringify(text)} (malformed)`);
    ex.responsePseudoHeaders = pseudo;
    ex.responseHeaders = fields;
    return false;
  }
  if (status < 200) {
    if (status === 101) addNote(ex.notes, 'response with status 101, which HTTP/2 does not allow (malformed)');
    ex.informational.push({ status, headers: fields });
    return true;
  }
  ex.status = status;
  ex.responsePseudoHeaders = pseudo;
  ex.responseHeaders = fields;
  return true;
}
