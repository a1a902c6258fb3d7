/**
 * Real HTTP/2 bytes for the tests: Node's http2 client and server (nghttp2) talk over loopback
 * through a small TCP relay that records every chunk each side wrote, in the order it crossed, with
 * its time — what a packet capture of the connection holds, without writing one. Also a writer of
 * single frames, for the malformed input no real peer sends.
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface CapturedChunk {
  from: 'client' | 'server';
  bytes: Buffer;
  ts: number;
}

export interface CaptureSetup<T> {
  serverOptions?: http2.ServerOptions;
  clientOptions?: http2.ClientSessionOptions;
  onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, session: http2.ServerHttp2Session): void;
  /** Runs the client side; the session is closed (and the relay drained) after it resolves. */
  run(client: http2.ClientHttp2Session, authority: string): Promise<T>;
}

/** Capture times: a counter in ms steps, so timings are exact and ordered whatever the machine's load. */
let clock = 1_700_000_000_000;

export async function captureH2<T>(setup: CaptureSetup<T>): Promise<{ chunks: CapturedChunk[]; result: T; authority: string }> {
  const server = http2.createServer(setup.serverOptions ?? {});
  server.on('stream', (stream, headers) => {
    /* Resets are part of what is tested: a stream's error is expected, not a failure of the test. */
    stream.on('error', () => undefined);
    setup.onStream(stream, headers, stream.session as http2.ServerHttp2Session);
  });
  server.on('sessionError', () => undefined);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const serverPort = (server.address() as AddressInfo).port;
  const chunks: CapturedChunk[] = [];
  const sockets = new Set<net.Socket>();
  let relayDone!: () => void;
  const relayClosed = new Promise<void>((resolve) => (relayDone = resolve));
  const relay = net.createServer((down) => {
    const up = net.connect(serverPort, '127.0.0.1');
    sockets.add(down).add(up);
    let open = 2;
    const closed = () => {
      if (--open === 0) relayDone();
    };
    down.on('data', (b: Buffer) => {
      chunks.push({ from: 'client', bytes: Buffer.from(b), ts: clock++ });
      up.write(b);
    });
    up.on('data', (b: Buffer) => {
      chunks.push({ from: 'server', bytes: Buffer.from(b), ts: clock++ });
      down.write(b);
    });
    down.on('end', () => up.end());
    up.on('end', () => down.end());
    down.on('close', () => {
      up.destroy();
      closed();
    });
    up.on('close', () => {
      down.destroy();
      closed();
    });
    down.on('error', () => undefined);
    up.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  const relayPort = (relay.address() as AddressInfo).port;
  const authority = `127.0.0.1:${relayPort}`;
  const client = http2.connect(`http://${authority}`, setup.clientOptions ?? {});
  client.on('error', () => undefined);
  try {
    const result = await setup.run(client, authority);
    /* A graceful close, as a client ends a connection; bounded, so a stream the server never ends cannot hang the test. */
    await within(2000, new Promise<void>((resolve) => client.close(() => resolve())));
    await within(2000, relayClosed);
    return { chunks, result, authority };
  } finally {
    client.destroy();
    for (const s of sockets) s.destroy();
    for (const s of sessions) s.destroy();
    await new Promise<void>((resolve) => relay.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** Waits for `p`, at most `ms`. */
async function within(ms: number, p: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

export interface Response {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
  trailers: http2.IncomingHttpHeaders;
  error?: string;
}

/** One request on the session; resolves with what the client got (or the error it saw). */
export function request(client: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer | string, options: http2.ClientSessionRequestOptions = {}): Promise<Response> {
  return new Promise((resolve) => {
    const req = client.request(headers, { endStream: body === undefined && !options.waitForTrailers, ...options });
    const out: Response = { status: 0, headers: {}, body: Buffer.alloc(0), trailers: {} };
    const parts: Buffer[] = [];
    req.on('response', (h) => {
      out.headers = h;
      out.status = Number(h[':status']);
    });
    req.on('trailers', (t) => (out.trailers = t));
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('error', (e: Error) => (out.error = e.message));
    req.on('close', () => {
      out.body = Buffer.concat(parts);
      if (req.rstCode && !out.error) out.error = `rst ${req.rstCode}`;
      resolve(out);
    });
    if (body !== undefined) req.end(body);
    else if (options.waitForTrailers) req.end();
  });
}

/** Reads a server stream's request body. */
export function readBody(stream: http2.ServerHttp2Stream): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    stream.on('data', (d: Buffer) => parts.push(d));
    stream.on('end', () => resolve(Buffer.concat(parts)));
    stream.on('error', () => resolve(Buffer.concat(parts)));
    stream.on('close', () => resolve(Buffer.concat(parts)));
  });
}

/** One frame as RFC 9113 §4.1 lays it out (for malformed input no real peer sends). */
export function frame(type: number, flags: number, streamId: number, payload: Buffer | number[] = []): Buffer {
  const p = Buffer.from(payload);
  const head = Buffer.alloc(9);
  head.writeUIntBE(p.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId >>> 0, 5);
  return Buffer.concat([head, p]);
}

export function settingsPayload(pairs: [number, number][]): Buffer {
  const b = Buffer.alloc(pairs.length * 6);
  pairs.forEach(([id, v], i) => {
    b.writeUInt16BE(id, i * 6);
    b.writeUInt32BE(v >>> 0, i * 6 + 2);
  });
  return b;
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}
