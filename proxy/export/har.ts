/**
 * Why: a finding is evidence, and evidence gets handed on — to a regulator, a phone maker, a
 * colleague using mitmproxy, HTTP Toolkit or a browser's devtools. HAR 1.2 is what all of them
 * open. This turns stored HTTP flows into HAR entries: the requests and responses as recorded
 * (bodies as text when they are UTF-8, else base64), the server address, and phonehome's own
 * judgement in `_phonehome` (custom fields start with "_", as HAR allows): findings with their
 * decoding path and explanation, severity, the alert sentence. phonehome's HAR import reads the
 * file back (client address in `_clientAddress`, base64 request bodies in `_encoding`).
 */
import { headerValue, type Body, type Flow, type Header } from '../flow';
import type { FindingRow } from '../store/findings';

/** A finding as the HAR carries it: the stored row's own facts, not the flow's (those are in the entry). */
export type ExportedFinding = Pick<FindingRow, 'type' | 'value' | 'path' | 'chain' | 'detector' | 'confidence' | 'explanation' | 'severity'>;

/** What the store knows about a flow beyond the Flow itself. */
export interface FlowVerdict {
  device: string | null;
  severity: string | null;
  sentence: string | null;
  country: string | null;
  org: string | null;
  findings: ExportedFinding[];
}

interface HarNameValue {
  name: string;
  value: string;
}

/** Body text for HAR: as UTF-8 when it decodes cleanly (and has no NUL), else base64. */
function bodyText(body: Body): { text: string; encoding?: 'base64' } {
  const bytes = body.bytes;
  if (bytes.length === 0) return { text: '' };
  const text = bytes.toString('utf8');
  const clean = !text.includes('\ufffd') && !text.includes('\u0000') && Buffer.byteLength(text) === bytes.length;
  return clean ? { text } : { text: bytes.toString('base64'), encoding: 'base64' };
}

function harHeaders(headers: Header[]): HarNameValue[] {
  return headers.map(([name, value]) => ({ name, value }));
}

function queryString(url: string | undefined): HarNameValue[] {
  if (!url) return [];
  try {
    return [...new URL(url).searchParams].map(([name, value]) => ({ name, value }));
  } catch {
    return [];
  }
}

function cookies(header: string | undefined): HarNameValue[] {
  if (!header) return [];
  return header.split(';').map((p) => p.trim()).filter(Boolean).map((p) => {
    const eq = p.indexOf('=');
    return eq < 0 ? { name: p, value: '' } : { name: p.slice(0, eq), value: p.slice(eq + 1) };
  });
}

function httpVersion(v: string | undefined): string {
  return `HTTP/${v ?? '1.1'}`;
}

/** One HAR 1.2 entry for a stored HTTP flow. */
export function harEntry(flow: Flow, verdict: FlowVerdict): Record<string, unknown> {
  const total = flow.timings.totalMs ?? (flow.endedAt !== undefined ? Math.max(0, flow.endedAt - flow.startedAt) : 0);
  const connect = flow.timings.connectMs ?? -1;
  const firstByte = flow.timings.firstByteMs;
  const wait = firstByte !== undefined ? Math.max(0, firstByte - Math.max(0, connect)) : total;
  const receive = firstByte !== undefined ? Math.max(0, total - firstByte) : 0;
  const reqBody = bodyText(flow.requestBody);
  const resBody = bodyText(flow.responseBody);
  const requestType = headerValue(flow.requestHeaders, 'content-type') ?? '';
  const request: Record<string, unknown> = {
    method: flow.method ?? 'GET',
    url: flow.url ?? `${flow.scheme}://${flow.host}:${flow.port}/`,
    httpVersion: httpVersion(flow.httpVersion),
    cookies: cookies(headerValue(flow.requestHeaders, 'cookie')),
    headers: harHeaders(flow.requestHeaders),
    queryString: queryString(flow.url),
    headersSize: -1,
    bodySize: flow.requestBody.size,
  };
  if (flow.requestBody.size > 0 || flow.requestBody.bytes.length > 0) {
    request.postData = { mimeType: requestType, text: reqBody.text, ...(reqBody.encoding ? { _encoding: reqBody.encoding } : {}) };
  }
  const response = {
    status: flow.responseStatus ?? 0,
    statusText: '',
    httpVersion: httpVersion(flow.httpVersion),
    cookies: [],
    headers: harHeaders(flow.responseHeaders),
    content: {
      size: flow.responseBody.size,
      mimeType: headerValue(flow.responseHeaders, 'content-type') ?? '',
      text: resBody.text,
      ...(resBody.encoding ? { encoding: resBody.encoding } : {}),
    },
    redirectURL: headerValue(flow.responseHeaders, 'location') ?? '',
    headersSize: -1,
    bodySize: flow.responseBody.size,
  };
  return {
    startedDateTime: new Date(flow.startedAt).toISOString(),
    time: total,
    request,
    response,
    cache: {},
    timings: { blocked: -1, dns: -1, connect, ssl: -1, send: 0, wait, receive },
    ...(flow.serverIp ? { serverIPAddress: flow.serverIp } : {}),
    _clientAddress: flow.clientIp,
    ...(flow.error ? { _error: flow.error } : {}),
    _phonehome: {
      flowId: flow.id,
      source: flow.source,
      device: verdict.device,
      tls: flow.tls,
      sni: flow.sni ?? null,
      tags: flow.tags,
      requestBodyTruncated: flow.requestBody.truncated,
      responseBodyTruncated: flow.responseBody.truncated,
      severity: verdict.severity,
      sentence: verdict.sentence,
      country: verdict.country,
      org: verdict.org,
      findings: verdict.findings,
    },
  };
}

/** The opening of a HAR file, up to the entries array; entries follow, comma-separated, then HAR_CLOSE. */
export function harOpening(version: string): string {
  const creator = JSON.stringify({ name: 'phonehome', version, comment: "the identifiers phonehome found are in each entry's _phonehome" });
  return `{"log":{"version":"1.2","creator":${creator},"pages":[],"entries":[\n`;
}

export const HAR_CLOSE = '\n]}}\n';
