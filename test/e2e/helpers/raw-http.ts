/**
 * Requests written byte for byte on a socket, for the cases an HTTP client library refuses to send
 * (a target like `//[/ws`, a malformed cookie escape, broken heads) and to read what came back.
 */
import * as net from 'net';

export interface RawResponse {
  /** 0 when the server closed without answering. */
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Everything received. */
  raw: string;
}

/**
 * Writes `request` as is and resolves with the first response: as soon as it is complete (by its
 * Content-Length or last chunk, or a 101), else when the server closes, else after `timeoutMs`.
 * The client half-closes only after `endAfterMs`: a server may drop a request whose client has
 * already ended (Node's http server does) before an asynchronous handler answers.
 */
export function rawRequest(port: number, request: string | Buffer, timeoutMs = 5000, endAfterMs = 1000): Promise<RawResponse> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(ender);
      socket.destroy();
      resolve(parseResponse(Buffer.concat(chunks).toString('latin1')));
    };
    const timer = setTimeout(finish, timeoutMs);
    const ender = setTimeout(() => socket.end(), endAfterMs);
    socket.on('connect', () => socket.write(request));
    socket.on('data', (d) => {
      chunks.push(d);
      if (isComplete(Buffer.concat(chunks).toString('latin1'))) finish();
    });
    socket.on('error', finish);
    socket.on('close', finish);
  });
}

function isComplete(raw: string): boolean {
  const r = parseResponse(raw);
  if (!r.status || raw.indexOf('\r\n\r\n') < 0) return false;
  if (r.status === 101 || r.status === 204 || r.status === 304) return true;
  if (r.headers['transfer-encoding']?.toLowerCase() === 'chunked') return /(^|\r\n)0\r\n\r\n$/.test(r.body);
  const length = r.headers['content-length'];
  return length !== undefined && Buffer.byteLength(r.body, 'latin1') >= Number(length);
}

export function parseResponse(raw: string): RawResponse {
  const m = /^HTTP\/1\.[01] (\d{3})[^\r\n]*\r\n/.exec(raw);
  if (!m) return { status: 0, headers: {}, body: '', raw };
  const end = raw.indexOf('\r\n\r\n');
  const head = raw.slice(m[0].length, end < 0 ? raw.length : end);
  const headers: Record<string, string> = {};
  for (const line of head.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: Number(m[1]), headers, body: end < 0 ? '' : raw.slice(end + 4), raw };
}

export const WS_UPGRADE_HEADERS = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
