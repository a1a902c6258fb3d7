/**
 * HTTP/2 reading benchmark (npm run bench:h2): how fast the passive HTTP/2 reader (frames, HPACK,
 * streams, Flows) gets through a connection's bytes, next to the pcap HTTP/1.1 reader on the same
 * requests. Both connections are made for real first: Node's http2 (nghttp2) and http client and
 * server on loopback through a relay that records each side's bytes, as a capture would hold them.
 * Then each recording is replayed through its reader on one core (and the h2 one through the frame
 * reader and HPACK alone, the codec's own cost), several passes, medians of CPU
 * time (the machine is shared) and the h2/h1 ratio per pass.
 *
 * Two mixes: "api" (2,000 small JSON POSTs with a dozen headers each, 32 streams at a time: header
 * compression matters) and "bulk" (20 uploads and downloads of 1 MB: DATA frames matter).
 *   BENCH_PASSES (default 7)
 */
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Flow } from '../proxy/flow';
import { exchangeToFlow } from '../proxy/capture/http2/flow-adapter';
import { FrameReader } from '../proxy/capture/http2/frame-reader';
import { HpackDecoder } from '../proxy/capture/http2/hpack';
import { H2PassiveConnection } from '../proxy/capture/http2/passive-connection';
import { TcpConnection } from '../proxy/capture/import/pcap/tcp-connection';
import { prng } from './fixtures/random';

const PASSES = Number(process.env.BENCH_PASSES ?? 7);

interface Chunk {
  client: boolean;
  bytes: Buffer;
}

interface Mix {
  name: string;
  requests: number;
  concurrency: number;
  requestBody(i: number): Buffer;
  responseBody(i: number): Buffer;
}

const rand = prng(2);
const TOKEN = Buffer.from(Array.from({ length: 96 }, () => Math.floor(rand() * 256))).toString('base64');

function headersFor(i: number): Record<string, string> {
  return {
    'content-type': 'application/json',
    'user-agent': 'okhttp/4.12.0 com.example.weather/5.2.1 (Linux; Android 14; Pixel 7)',
    authorization: `Bearer ${TOKEN}`,
    cookie: `sid=${TOKEN.slice(0, 32)}; ab=${i % 4}`,
    'x-request-id': `${i.toString(16).padStart(8, '0')}-6f2b-4c1e-9a0d-${(i * 7919).toString(16).padStart(12, '0')}`,
    'x-app-version': '5.2.1',
    'x-device-model': 'Pixel 7',
    'accept-language': 'nb-NO,nb;q=0.9,en;q=0.8',
    'accept-encoding': 'gzip',
    'x-session-seq': String(i),
  };
}

const MIXES: Mix[] = [
  {
    name: 'api',
    requests: 2000,
    concurrency: 32,
    requestBody: (i) => Buffer.from(JSON.stringify({ event: 'screen_view', seq: i, screen: `forecast-${i % 17}`, lat: 59.91 + i / 1e5, lon: 10.75, ts: 1700000000000 + i, pad: 'x'.repeat(300) })),
    responseBody: (i) => Buffer.from(JSON.stringify({ ok: true, seq: i, data: 'y'.repeat(900) })),
  },
  {
    name: 'bulk',
    requests: 20,
    concurrency: 4,
    requestBody: (i) => Buffer.alloc(1 << 20, i),
    responseBody: (i) => Buffer.alloc(1 << 20, 255 - i),
  },
];

/** A loopback relay in front of `port` that records what each side wrote. */
async function relayTo(port: number, chunks: Chunk[]): Promise<{ port: number; close(): Promise<void>; drained: Promise<void> }> {
  let done!: () => void;
  const drained = new Promise<void>((resolve) => (done = resolve));
  const sockets: net.Socket[] = [];
  const relay = net.createServer((down) => {
    const up = net.connect(port, '127.0.0.1');
    sockets.push(down, up);
    down.on('data', (b: Buffer) => {
      chunks.push({ client: true, bytes: Buffer.from(b) });
      up.write(b);
    });
    up.on('data', (b: Buffer) => {
      chunks.push({ client: false, bytes: Buffer.from(b) });
      down.write(b);
    });
    down.on('end', () => up.end());
    up.on('end', () => down.end());
    down.on('close', () => {
      up.destroy();
      done();
    });
    down.on('error', () => undefined);
    up.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  return {
    port: (relay.address() as AddressInfo).port,
    drained,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => relay.close(() => resolve()));
    },
  };
}

async function inBatches(mix: Mix, one: (i: number) => Promise<void>): Promise<void> {
  for (let i = 0; i < mix.requests; i += mix.concurrency) {
    const batch: Promise<void>[] = [];
    for (let j = i; j < Math.min(mix.requests, i + mix.concurrency); j++) batch.push(one(j));
    await Promise.all(batch);
  }
}

async function recordH2(mix: Mix): Promise<Chunk[]> {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    stream.resume();
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/json', 'cache-control': 'no-store', 'x-seq': String(headers['x-session-seq']) });
      stream.end(mix.responseBody(Number(headers['x-session-seq'])));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const chunks: Chunk[] = [];
  const relay = await relayTo((server.address() as AddressInfo).port, chunks);
  const client = http2.connect(`http://127.0.0.1:${relay.port}`);
  await inBatches(mix, (i) => new Promise<void>((resolve, reject) => {
    const req = client.request({ ':method': 'POST', ':path': `/v1/events?seq=${i}`, ...headersFor(i) });
    req.on('error', reject);
    req.resume();
    req.on('end', () => resolve());
    req.end(mix.requestBody(i));
  }));
  client.close();
  await relay.drained;
  await relay.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return chunks;
}

async function recordH1(mix: Mix): Promise<Chunk[]> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store', 'x-seq': String(req.headers['x-session-seq']) });
      res.end(mix.responseBody(Number(req.headers['x-session-seq'])));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const chunks: Chunk[] = [];
  const relay = await relayTo((server.address() as AddressInfo).port, chunks);
  /* One keep-alive connection: requests one after another, as one HTTP/1.1 connection carries them. */
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  await inBatches(mix, (i) => new Promise<void>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: relay.port, method: 'POST', path: `/v1/events?seq=${i}`, agent, headers: headersFor(i) }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('error', reject);
    req.end(mix.requestBody(i));
  }));
  agent.destroy();
  await relay.drained;
  await relay.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return chunks;
}

function replayH2(chunks: Chunk[]): number {
  let flows = 0;
  const conn = new H2PassiveConnection({
    bodyLimit: 1 << 20,
    onExchange: (ex) => {
      const flow: Flow = exchangeToFlow(ex, { source: 'pcap', clientIp: '10.0.0.2', clientPort: 40000, serverIp: '10.0.0.1', serverPort: 80, tls: false });
      if (flow.url) flows++;
    },
  });
  let ts = 0;
  for (const c of chunks) conn.push(c.client ? 'client' : 'server', c.bytes, ts++);
  conn.end(ts);
  return flows;
}

/** Frames and header blocks only (no streams, no Flows): the codec's own cost. */
function replayFramesOnly(chunks: Chunk[]): number {
  let fields = 0;
  const decoders = [new HpackDecoder(), new HpackDecoder()];
  const readers = [0, 1].map(
    (side) =>
      new FrameReader(
        {
          frame: (f) => {
            if (f.type === 'HEADERS') {
              const r = decoders[side].decode(f.block);
              if (r.ok) fields += r.headers.length;
            }
          },
          streamError: () => undefined,
          connectionError: (e) => {
            throw new Error(e.message);
          },
        },
        { client: side === 0 },
      ),
  );
  let ts = 0;
  for (const c of chunks) readers[c.client ? 0 : 1].push(c.bytes, ts++);
  return fields;
}

function replayH1(chunks: Chunk[]): number {
  let flows = 0;
  let index = 0;
  const conn = new TcpConnection(0x0a000002, 40000, 0x0a000001, 80, false, 0, {
    bodyLimit: 1 << 20,
    addressText: (key) => `10.0.0.${Number(key) & 255}`,
    nextRequestIndex: () => index++,
    emit: (flow) => {
      if (flow.url) flows++;
    },
  });
  conn.setClient(0);
  let ts = 0;
  for (const c of chunks) conn.data(c.client ? 0 : 1, c.bytes, 0, c.bytes.length, ts++);
  conn.close(ts);
  return flows;
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  console.log(`node ${process.version}; CPU time of this process, 1 warm-up pass then ${PASSES} passes per mix, h2 and h1 alternating; medians\n`);
  console.log('mix    capture bytes h2 / h1     flows h2 / h1    h2 frames+HPACK MB/s   h2 to Flows MB/s   h1 to Flows MB/s   h2/h1 time per request');
  for (const mix of MIXES) {
    const h2 = await recordH2(mix);
    const h1 = await recordH1(mix);
    const size = (chunks: Chunk[]) => chunks.reduce((n, c) => n + c.bytes.length, 0);
    const flows = [replayH2(h2), replayH1(h1)];
    const rates: [number[], number[], number[]] = [[], [], []];
    const ratios: number[] = [];
    replayFramesOnly(h2);
    for (let pass = 0; pass < PASSES; pass++) {
      const f0 = cpuMs();
      replayFramesOnly(h2);
      rates[2].push(size(h2) / 1048576 / ((cpuMs() - f0) / 1000));
      const t0 = cpuMs();
      replayH2(h2);
      const t1 = cpuMs();
      replayH1(h1);
      const t2 = cpuMs();
      rates[0].push(size(h2) / 1048576 / ((t1 - t0) / 1000));
      rates[1].push(size(h1) / 1048576 / ((t2 - t1) / 1000));
      ratios.push((t1 - t0) / (t2 - t1));
    }
    console.log(
      `${mix.name.padEnd(6)} ${`${size(h2)} / ${size(h1)}`.padEnd(26)} ${`${flows[0]} / ${flows[1]}`.padEnd(16)} ${median(rates[2]).toFixed(1).padStart(20)}   ${median(rates[0]).toFixed(1).padStart(16)}   ${median(rates[1]).toFixed(1).padStart(16)}   ${median(ratios).toFixed(2)}`,
    );
  }
}

void main();
