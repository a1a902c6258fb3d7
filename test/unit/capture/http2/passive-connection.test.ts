/**
 * The passive HTTP/2 connection on real traffic: Node's http2 client and server (nghttp2) on
 * loopback, their bytes recorded by a relay (h2-capture.ts) and fed back in, as a pcap import
 * would. Each test checks what a user would: every stream is one exchange with what the client
 * really sent and got, whatever the chunking; resets, GOAWAY, gaps and cut connections are
 * recorded errors; limits hold.
 */
import * as http2 from 'node:http2';
import { H2PassiveConnection, type H2ConnectionOptions } from '../../../../proxy/capture/http2/passive-connection';
import type { H2Exchange } from '../../../../proxy/capture/http2/exchange';
import { FrameReader } from '../../../../proxy/capture/http2/frame-reader';
import type { Frame } from '../../../../proxy/capture/http2/frames';
import { prng } from '../../../../scripts/fixtures/random';
import { captureH2, readBody, request, type CapturedChunk } from './h2-capture';

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_ENHANCE_YOUR_CALM, PADDING_STRATEGY_MAX } = http2.constants;

interface Replay {
  exchanges: H2Exchange[];
  conn: H2PassiveConnection;
}

/** Feeds a capture into a passive connection, each chunk cut by `split` (default: as captured). */
function replay(chunks: CapturedChunk[], opts: Partial<H2ConnectionOptions> = {}, split?: (n: number) => number[]): Replay {
  const exchanges: H2Exchange[] = [];
  const conn = new H2PassiveConnection({ bodyLimit: 1024 * 1024, ...opts, onExchange: (ex) => exchanges.push(ex) });
  for (const c of chunks) {
    if (!split) conn.push(c.from, c.bytes, c.ts);
    else {
      let o = 0;
      for (const n of split(c.bytes.length)) {
        conn.push(c.from, c.bytes, c.ts, o, o + n);
        o += n;
      }
    }
  }
  conn.end(chunks.length ? chunks[chunks.length - 1].ts + 1 : 0);
  return { exchanges, conn };
}

/** Every frame of one direction, as the reader hands them out. */
function framesOf(chunks: CapturedChunk[], from: 'client' | 'server'): Frame[] {
  const frames: Frame[] = [];
  const r = new FrameReader({ frame: (f) => frames.push(f.type === 'DATA' ? { ...f, data: Buffer.from(f.data) } : f), streamError: () => undefined, connectionError: (e) => { throw new Error(e.message); } }, { client: from === 'client' });
  for (const c of chunks) if (c.from === from) r.push(c.bytes, c.ts);
  return frames;
}

function byStream(exchanges: H2Exchange[]): Map<number, H2Exchange> {
  return new Map(exchanges.map((e) => [e.streamId, e]));
}

/** A body of n bytes, different for each i, not compressible. */
function bodyFor(i: number, n: number): Buffer {
  const rand = prng(i + 1);
  return Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
}

describe('H2PassiveConnection on real nghttp2 traffic', () => {
  it('many concurrent streams: each is one exchange with its own method, path, headers in order, bodies and status', async () => {
    const N = 300;
    const { chunks, authority, result } = await captureH2({
      onStream: (stream, headers) => {
        void readBody(stream).then((body) => {
          const i = Number(/\/item\/(\d+)/.exec(String(headers[':path']))![1]);
          stream.respond({ ':status': i % 7 === 0 ? 404 : 200, 'content-type': 'application/octet-stream', 'x-echo-size': String(body.length) });
          stream.end(bodyFor(i + 1000, (i * 37) % 3000));
        });
      },
      run: (client) =>
        Promise.all(
          Array.from({ length: N }, (_, i) =>
            request(client, { ':method': i % 2 ? 'POST' : 'PUT', ':path': `/item/${i}?q=${i}`, 'x-device': `dev-${i}`, 'x-order': 'a', 'x-ORDER-2': 'b' }, bodyFor(i, (i * 53) % 5000)),
          ),
        ),
    });
    expect(result.every((r) => !r.error)).toBe(true);
    const { exchanges, conn } = replay(chunks);
    expect(conn.error).toBeNull();
    expect(exchanges).toHaveLength(N);
    const streams = byStream(exchanges);
    /* Client streams are numbered 1, 3, 5… in the order the requests were made. */
    for (let i = 0; i < N; i++) {
      const ex = streams.get(2 * i + 1)!;
      expect(ex).toBeDefined();
      expect(ex.error).toBeUndefined();
      expect(ex.method).toBe(i % 2 ? 'POST' : 'PUT');
      expect(ex.scheme).toBe('http');
      expect(ex.authority).toBe(authority);
      expect(ex.path).toBe(`/item/${i}?q=${i}`);
      expect(ex.requestPseudoHeaders.map((h) => h[0]).sort()).toEqual([':authority', ':method', ':path', ':scheme']);
      /* Node lower-cases names; the order of the fields is kept. */
      expect(ex.requestHeaders.filter((h) => h[0].startsWith('x-'))).toEqual([['x-device', `dev-${i}`], ['x-order', 'a'], ['x-order-2', 'b']]);
      expect(ex.requestBody.bytes.equals(bodyFor(i, (i * 53) % 5000))).toBe(true);
      expect(ex.status).toBe(i % 7 === 0 ? 404 : 200);
      expect(ex.responseHeaders).toContainEqual(['x-echo-size', String((i * 53) % 5000)]);
      expect(ex.responseBody.bytes.equals(bodyFor(i + 1000, (i * 37) % 3000))).toBe(true);
      expect(ex.responseBody.size).toBe((i * 37) % 3000);
      expect(ex.requestComplete && ex.responseComplete).toBe(true);
      expect(ex.timings.firstFrameTs).toBeLessThanOrEqual(ex.timings.requestEndTs!);
      expect(ex.timings.requestEndTs!).toBeLessThanOrEqual(ex.timings.responseEndTs!);
      expect(ex.timings.lastFrameTs).toBe(ex.timings.responseEndTs);
      expect(ex.notes).toEqual([]);
    }
    /* The same capture cut into 1-byte pieces, and into random pieces, reads the same. */
    const rand = prng(42);
    const random = (n: number) => {
      const out: number[] = [];
      for (let left = n; left > 0; ) {
        const k = Math.min(left, 1 + Math.floor(rand() * 40));
        out.push(k);
        left -= k;
      }
      return out;
    };
    const strip = (list: H2Exchange[]) => list.map((e) => ({ ...e, requestBody: e.requestBody.bytes.toString('hex'), responseBody: e.responseBody.bytes.toString('hex') }));
    expect(strip(replay(chunks, {}, random).exchanges)).toEqual(strip(exchanges));
    expect(strip(replay(chunks.slice(0, 60), {}, (n) => Array(n).fill(1)).exchanges)).toEqual(strip(replay(chunks.slice(0, 60)).exchanges));
  });

  it('padding on HEADERS and DATA (PADDING_STRATEGY_MAX) is removed', async () => {
    const { chunks } = await captureH2({
      serverOptions: { paddingStrategy: PADDING_STRATEGY_MAX },
      clientOptions: { paddingStrategy: PADDING_STRATEGY_MAX },
      onStream: (stream) => {
        void readBody(stream).then((b) => {
          stream.respond({ ':status': 200 });
          stream.end(Buffer.concat([b, b]));
        });
      },
      run: (client) => Promise.all([request(client, { ':method': 'POST', ':path': '/pad' }, 'hello padded world'), request(client, { ':method': 'POST', ':path': '/pad2' }, bodyFor(9, 40000))]),
    });
    const padded = framesOf(chunks, 'client').filter((f) => f.type === 'HEADERS' && f.padLength > 0);
    expect(padded.length).toBeGreaterThan(0);
    const paddedData = framesOf(chunks, 'server').filter((f) => f.type === 'DATA' && f.first && f.last && f.frameLength > f.data.length + 1);
    expect(paddedData.length).toBeGreaterThan(0);
    const { exchanges } = replay(chunks);
    const s = byStream(exchanges);
    expect(s.get(1)!.requestBody.bytes.toString()).toBe('hello padded world');
    expect(s.get(1)!.responseBody.bytes.toString()).toBe('hello padded worldhello padded world');
    expect(s.get(3)!.responseBody.bytes.equals(Buffer.concat([bodyFor(9, 40000), bodyFor(9, 40000)]))).toBe(true);
  });

  it('a header block too big for one frame arrives as HEADERS + CONTINUATION and is joined', async () => {
    const big = bodyFor(3, 30000).toString('base64'); // 40,000 characters nghttp2 cannot compress much
    const { chunks } = await captureH2({
      serverOptions: { maxSessionMemory: 100, settings: { maxHeaderListSize: 1 << 20 } },
      clientOptions: { maxSessionMemory: 100 },
      onStream: (stream, headers) => {
        stream.respond({ ':status': 200, 'x-got': String(String(headers['x-big']).length) });
        stream.end();
      },
      run: (client) => request(client, { ':path': '/big', 'x-big': big }),
    });
    const headers = framesOf(chunks, 'client').filter((f) => f.type === 'HEADERS');
    expect(headers.some((f) => f.type === 'HEADERS' && f.continuations > 0)).toBe(true);
    const [ex] = replay(chunks).exchanges;
    expect(ex.requestHeaders).toContainEqual(['x-big', big]);
    expect(ex.responseHeaders).toContainEqual(['x-got', '40000']);
  });

  it('trailers both ways (gRPC-like grpc-status), 1xx informational responses, server push', async () => {
    const { chunks } = await captureH2({
      onStream: (stream, headers) => {
        if (headers[':path'] === '/trailers') {
          void readBody(stream).then(() => {
            stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
            stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'ok' }));
            stream.end(Buffer.from([0, 0, 0, 0, 2, 8, 1]));
          });
        } else if (headers[':path'] === '/early-hints') {
          stream.additionalHeaders({ ':status': 103, link: '</style.css>; rel=preload' });
          stream.respond({ ':status': 200 });
          stream.end('page');
        } else {
          stream.pushStream({ ':path': '/pushed.js' }, (err, push) => {
            if (err) return;
            push.respond({ ':status': 200, 'content-type': 'text/javascript' });
            push.end('pushed();');
          });
          stream.respond({ ':status': 200 });
          stream.end('index');
        }
      },
      run: async (client) => {
        client.on('stream', (pushed) => pushed.resume());
        const req = client.request({ ':method': 'POST', ':path': '/trailers', 'content-type': 'application/grpc' }, { waitForTrailers: true });
        req.on('wantTrailers', () => req.sendTrailers({ 'x-client-trailer': 'bye' }));
        req.end(Buffer.from([0, 0, 0, 0, 0]));
        req.resume();
        await new Promise((resolve) => req.on('close', resolve));
        await request(client, { ':path': '/early-hints' });
        await request(client, { ':path': '/' });
        await new Promise((resolve) => setTimeout(resolve, 50));
      },
    });
    const { exchanges } = replay(chunks);
    const s = byStream(exchanges);
    const grpc = s.get(1)!;
    expect(grpc.requestTrailers).toEqual([['x-client-trailer', 'bye']]);
    expect(grpc.responseTrailers).toEqual([['grpc-status', '0'], ['grpc-message', 'ok']]);
    expect(grpc.responseBody.bytes).toEqual(Buffer.from([0, 0, 0, 0, 2, 8, 1]));
    const hints = s.get(3)!;
    expect(hints.informational).toEqual([{ status: 103, headers: [['link', '</style.css>; rel=preload']] }]);
    expect(hints.status).toBe(200);
    expect(hints.responseBody.bytes.toString()).toBe('page');
    const pushed = exchanges.find((e) => e.pushed)!;
    expect(pushed.streamId % 2).toBe(0);
    expect(pushed.promisedOn).toBe(5);
    expect(pushed.path).toBe('/pushed.js');
    expect(pushed.status).toBe(200);
    expect(pushed.responseBody.bytes.toString()).toBe('pushed();');
    expect(exchanges.every((e) => e.error === undefined && e.notes.length === 0)).toBe(true);
  });

  it('RST_STREAM from either side is the stream\'s error, with its code name; other streams go on', async () => {
    const { chunks } = await captureH2({
      onStream: (stream, headers) => {
        if (headers[':path'] === '/server-fails') {
          /* Node resets a destroyed stream with INTERNAL_ERROR (its close(code) ends the stream first). */
          stream.respond({ ':status': 200 });
          stream.write('partial', () => setTimeout(() => stream.destroy(new Error('handler failed')), 20));
        } else if (headers[':path'] === '/calm') {
          stream.close(NGHTTP2_ENHANCE_YOUR_CALM);
        } else if (headers[':path'] === '/client-cancels') {
          stream.respond({ ':status': 200 });
          stream.write('slow...');
        } else {
          stream.respond({ ':status': 204 });
          stream.end();
        }
      },
      run: async (client) => {
        const a = request(client, { ':path': '/server-fails' });
        const b = request(client, { ':path': '/calm' });
        const req = client.request({ ':method': 'POST', ':path': '/client-cancels' });
        req.write('upload that never ends');
        req.on('response', () => setTimeout(() => req.close(NGHTTP2_CANCEL), 20));
        req.on('error', () => undefined);
        const c = new Promise((resolve) => req.on('close', resolve));
        const d = request(client, { ':path': '/fine' });
        return Promise.all([a, b, c, d]);
      },
    });
    const s = byStream(replay(chunks).exchanges);
    expect(s.get(1)!.error).toBe('stream reset by the server (INTERNAL_ERROR)');
    expect(s.get(1)!.reset).toEqual({ by: 'server', code: 2, codeName: 'INTERNAL_ERROR' });
    expect(s.get(1)!.responseBody.bytes.toString()).toBe('partial');
    expect(s.get(3)!.error).toBe('stream reset by the server (ENHANCE_YOUR_CALM)');
    expect(s.get(5)!.error).toBe('stream reset by the client (CANCEL)');
    expect(s.get(5)!.requestBody.bytes.toString()).toBe('upload that never ends');
    expect(s.get(7)!.error).toBeUndefined();
    expect(s.get(7)!.status).toBe(204);
  });

  it('GOAWAY: streams above its last stream ID are recorded as refused; the one below completes', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let seen = 0;
    const { chunks } = await captureH2({
      onStream: (stream, _headers, session) => {
        seen++;
        if (seen === 1) {
          void gate.then(() => {
            stream.respond({ ':status': 200 });
            stream.end('first');
          });
        }
        if (seen === 3) {
          session.goaway(NGHTTP2_NO_ERROR, 1, Buffer.from('shutting down'));
          release();
        }
      },
      run: (client) => Promise.all([request(client, { ':path': '/a' }), request(client, { ':path': '/b' }), request(client, { ':path': '/c' })]),
    });
    const { exchanges, conn } = replay(chunks);
    const s = byStream(exchanges);
    expect(s.get(1)!.error).toBeUndefined();
    expect(s.get(1)!.responseBody.bytes.toString()).toBe('first');
    for (const id of [3, 5]) {
      expect(s.get(id)!.refused).toBe(true);
      expect(s.get(id)!.error).toBe("refused: the server's GOAWAY (NO_ERROR: shutting down) says streams above 1 were not processed");
    }
    expect(conn.goaways[0]).toMatchObject({ from: 'server', lastStreamId: 1, codeName: 'NO_ERROR', debug: 'shutting down' });
  });

  it('a connection that ends mid-stream, and a capture gap, are recorded on the open streams', async () => {
    const { chunks } = await captureH2({
      onStream: (stream, headers) => {
        stream.respond({ ':status': 200 });
        if (headers[':path'] === '/slow') setTimeout(() => stream.end('late'), 30);
        else stream.end('quick');
      },
      run: (client) => Promise.all([request(client, { ':path': '/slow' }), request(client, { ':path': '/quick' })]),
    });
    /* The capture stops before the slow response's end. */
    const lastServer = chunks.map((c) => c.from).lastIndexOf('server');
    const cut = replay(chunks.slice(0, lastServer));
    const slow = cut.exchanges.find((e) => e.path === '/slow')!;
    expect(slow.error).toBe('the connection ended before the stream was complete');
    expect(slow.status).toBe(200);
    expect(cut.exchanges.find((e) => e.path === '/quick')!.error).toBeUndefined();

    const exchanges: H2Exchange[] = [];
    const conn = new H2PassiveConnection({ bodyLimit: 1000, onExchange: (ex) => exchanges.push(ex) });
    for (const c of chunks.slice(0, lastServer)) conn.push(c.from, c.bytes, c.ts);
    conn.gap('server', 1460, 99);
    for (const c of chunks.slice(lastServer)) conn.push(c.from, c.bytes, c.ts);
    conn.end(100);
    const gapped = exchanges.find((e) => e.path === '/slow')!;
    expect(gapped.captureGap).toBe(true);
    expect(gapped.error).toBe('capture gap: 1460 bytes the server sent are missing from the capture; HTTP/2 cannot be read past a gap');
    expect(conn.stopReason).toBe(gapped.error);
    expect(exchanges).toHaveLength(2);
  });

  it('header table sizes from SETTINGS are honoured both ways (a small and a large table)', async () => {
    const { chunks } = await captureH2({
      serverOptions: { settings: { headerTableSize: 256 } },
      clientOptions: { settings: { headerTableSize: 65536 } },
      onStream: (stream, headers) => {
        stream.respond({ ':status': 200, 'x-echo': String(headers['x-value']), 'x-long': 'y'.repeat(300) });
        stream.end();
      },
      run: async (client) => {
        const out = [];
        for (let i = 0; i < 30; i++) out.push(await request(client, { ':path': `/t/${i}`, 'x-value': `value-${i % 5}`, 'x-long': 'x'.repeat(200) }));
        return out;
      },
    });
    const { exchanges, conn } = replay(chunks);
    expect(conn.error).toBeNull();
    expect(exchanges).toHaveLength(30);
    exchanges.forEach((ex, i) => {
      expect(ex.requestHeaders).toContainEqual(['x-value', `value-${i % 5}`]);
      expect(ex.responseHeaders).toContainEqual(['x-echo', `value-${i % 5}`]);
      expect(ex.responseHeaders).toContainEqual(['x-long', 'y'.repeat(300)]);
    });
  });

  it('bodies are kept up to the body limit with their true size', async () => {
    const { chunks } = await captureH2({
      onStream: (stream) => {
        void readBody(stream).then(() => {
          stream.respond({ ':status': 200 });
          stream.end(Buffer.alloc(100000, 0x62));
        });
      },
      run: (client) => request(client, { ':method': 'POST', ':path': '/upload' }, Buffer.alloc(70000, 0x61)),
    });
    const [ex] = replay(chunks, { bodyLimit: 1000 }).exchanges;
    expect(ex.requestBody).toMatchObject({ size: 70000, truncated: true });
    expect(ex.requestBody.bytes).toEqual(Buffer.alloc(1000, 0x61));
    expect(ex.responseBody).toMatchObject({ size: 100000, truncated: true });
  });

  it('limits: maxOpenStreams and maxHeldBytes record the oldest streams unfinished instead of holding more', async () => {
    let pending: http2.ServerHttp2Stream[] = [];
    const { chunks } = await captureH2({
      onStream: (stream) => {
        pending.push(stream);
        if (pending.length === 20) {
          for (const s of pending) {
            s.respond({ ':status': 200 });
            s.end(Buffer.alloc(5000, 0x63));
          }
          pending = [];
        }
      },
      run: (client) => Promise.all(Array.from({ length: 20 }, (_, i) => request(client, { ':method': 'POST', ':path': `/${i}` }, Buffer.alloc(3000, 0x64)))),
    });
    const few = replay(chunks, { limits: { maxOpenStreams: 5 } });
    expect(few.exchanges).toHaveLength(20);
    const cut = few.exchanges.filter((e) => e.error?.includes('maxOpenStreams'));
    expect(cut.length).toBe(15);
    expect(few.conn.openStreams).toBe(0);
    const held = replay(chunks, { limits: { maxHeldBytes: 20000 } });
    expect(held.exchanges).toHaveLength(20);
    expect(held.exchanges.some((e) => e.error?.includes('maxHeldBytes'))).toBe(true);
  });

  it('seeded fuzz: mutated, truncated and spliced real captures never throw, and emit at most one exchange per stream', async () => {
    const { chunks } = await captureH2({
      onStream: (stream, headers) => {
        void readBody(stream).then(() => {
          stream.respond({ ':status': 200, 'content-type': 'text/plain' }, { waitForTrailers: true });
          stream.on('wantTrailers', () => stream.sendTrailers({ 'x-t': '1' }));
          stream.end(`reply to ${headers[':path']}`);
        });
      },
      run: (client) => Promise.all(Array.from({ length: 12 }, (_, i) => request(client, { ':method': 'POST', ':path': `/f/${i}`, cookie: `id=${i}` }, `body ${i}`))),
    });
    const rand = prng(9113);
    let errors = 0;
    for (let round = 0; round < 400; round++) {
      const mutated = chunks.map((c) => ({ ...c, bytes: Buffer.from(c.bytes) }));
      const edits = 1 + Math.floor(rand() * 6);
      for (let e = 0; e < edits; e++) {
        const c = mutated[Math.floor(rand() * mutated.length)];
        const kind = rand();
        if (kind < 0.6 && c.bytes.length) c.bytes[Math.floor(rand() * c.bytes.length)] = Math.floor(rand() * 256);
        else if (kind < 0.8) c.bytes = c.bytes.subarray(0, Math.floor(rand() * c.bytes.length));
        else c.bytes = Buffer.concat([c.bytes, Buffer.from(Array.from({ length: Math.floor(rand() * 30) }, () => Math.floor(rand() * 256)))]);
      }
      const { exchanges, conn } = replay(mutated, { limits: { maxHeaderListBytes: 4096, maxOpenStreams: 8 } });
      if (conn.error) errors++;
      const ids = exchanges.map((e) => e.streamId);
      expect(new Set(ids).size).toBe(ids.length);
      expect(conn.openStreams).toBe(0);
    }
    expect(errors).toBeGreaterThan(50);
  });
});
