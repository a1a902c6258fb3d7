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

/** Writes `request` as is, half-closes, and resolves with what the server sent before closing (or `timeoutMs`). */
export function rawRequest(port: number, request: string | Buffer, timeoutMs = 5000): Promise<RawResponse> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(parseResponse(Buffer.concat(chunks).toString('latin1')));
    };
    const timer = setTimeout(finish, timeoutMs);
    socket.on('connect', () => socket.end(request));
    socket.on('data', (d) => {
      chunks.push(d);
      // A WebSocket that was accepted stays open: its 101 head is the answer.
      if (/^HTTP\/1\.1 101 /.test(Buffer.concat(chunks).toString('latin1'))) finish();
    });
    socket.on('error', finish);
    socket.on('close', finish);
  });
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
