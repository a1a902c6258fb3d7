/**
 * tshark as the independent reference: real nghttp2 traffic (Node http2 on loopback, recorded by
 * the relay) is written as a pcap of a TCP conversation, Wireshark's HTTP/2 dissector decodes it,
 * and every stream's header lists (pseudo-headers included, in order) and DATA bytes must be what
 * the passive connection read. Many concurrent streams, Huffman and the dynamic table (nghttp2 uses
 * both), padding, CONTINUATION and trailers are in the traffic.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http2 from 'node:http2';
import { H2PassiveConnection } from '../../../../proxy/capture/http2/passive-connection';
import type { H2Exchange } from '../../../../proxy/capture/http2/exchange';
import { pcapFile, tcpConversation } from '../../import/pcap-packets';
import { captureH2, readBody, request } from './h2-capture';

const haveTshark = spawnSync('sh', ['-c', 'command -v tshark']).status === 0;
const itIfTshark = haveTshark ? it : it.skip;
const SERVER_PORT = 8080;
const CLIENT_PORT = 40000;

type Lists = Map<string, string[][]>;

/** Per stream and direction ("1 client"), tshark's header lists (as "name: value" lines) and DATA bytes (hex). */
function tsharkView(pcap: string): { headers: Lists; data: Map<string, string> } {
  const r = spawnSync('tshark', ['-r', pcap, '-d', `tcp.port==${SERVER_PORT},http2`, '-T', 'json', '--no-duplicate-keys', '-Y', 'http2'], { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`tshark failed: ${r.stderr}`);
  const headers: Lists = new Map();
  const data = new Map<string, string>();
  const list = <T>(x: T | T[] | undefined): T[] => (x === undefined ? [] : Array.isArray(x) ? x : [x]);
  for (const packet of JSON.parse(r.stdout) as { _source: { layers: Record<string, unknown> } }[]) {
    const layers = packet._source.layers;
    const from = (layers.tcp as Record<string, string>)['tcp.srcport'] === String(CLIENT_PORT) ? 'client' : 'server';
    for (const layer of list(layers.http2 as Record<string, unknown> | Record<string, unknown>[])) {
      for (const s of list(layer['http2.stream'] as Record<string, unknown> | Record<string, unknown>[])) {
        const key = `${s['http2.streamid']} ${from}`;
        const type = s['http2.type'];
        if (s['http2.header'] !== undefined && (type === '1' || type === '9')) {
          const fields = list(s['http2.header'] as Record<string, string>[]).map((h) => `${h['http2.header.name']}: ${h['http2.header.value'] ?? ''}`);
          const lists = headers.get(key) ?? [];
          /* tshark lists the fields a CONTINUATION completes under that frame: they belong to the block it continues. */
          if (type === '9' && lists.length) lists[lists.length - 1].push(...fields);
          else lists.push(fields);
          headers.set(key, lists);
        }
        if (type === '0' && s['http2.data.data'] !== undefined) {
          /*
           * tshark 4.0 shows the padding inside http2.data.data on some padded frames (those ending a
           * stream): its own length and pad_length fields say how much of it is data.
           */
          const padded = s['http2.flags_tree'] && (s['http2.flags_tree'] as Record<string, string>)['http2.flags.padded'] === '1';
          const dataBytes = padded ? Number(s['http2.length']) - 1 - Number(s['http2.pad_length']) : Number(s['http2.length']);
          data.set(key, (data.get(key) ?? '') + String(s['http2.data.data']).replace(/:/g, '').slice(0, dataBytes * 2));
        }
      }
    }
  }
  return { headers, data };
}

function ourLists(ex: H2Exchange): { client: string[][]; server: string[][] } {
  const lines = (hs: [string, string][]) => hs.map(([n, v]) => `${n}: ${v}`);
  const client = [lines([...ex.requestPseudoHeaders, ...ex.requestHeaders])];
  if (ex.requestTrailers.length) client.push(lines(ex.requestTrailers));
  const server = ex.informational.map((i) => lines([[':status', String(i.status)], ...i.headers]));
  server.push(lines([...ex.responsePseudoHeaders, ...ex.responseHeaders]));
  if (ex.responseTrailers.length) server.push(lines(ex.responseTrailers));
  return { client, server };
}

itIfTshark('every stream\'s headers and bodies match what tshark decodes from the same bytes', async () => {
  const N = 120;
  const { chunks } = await captureH2({
    serverOptions: { paddingStrategy: http2.constants.PADDING_STRATEGY_MAX, settings: { maxHeaderListSize: 1 << 20 } },
    onStream: (stream, headers) => {
      void readBody(stream).then((body) => {
        const i = Number(headers['x-i']);
        stream.respond({ ':status': 200, 'content-type': 'text/plain', 'x-len': String(body.length), 'set-cookie': `s=${i}; Path=/` }, { waitForTrailers: i % 3 === 0 });
        if (i % 3 === 0) stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': String(i % 16), 'grpc-message': `m${i}` }));
        stream.end(`reply ${i} `.repeat(1 + (i % 50)));
      });
    },
    run: (client) =>
      Promise.all(
        Array.from({ length: N }, (_, i) =>
          request(client, { ':method': 'POST', ':path': `/api/v${i % 4}/items?id=${i}&q=a,b`, 'x-i': String(i), 'user-agent': 'okhttp/4.12.0', 'x-trace': `t-${i}-${'z'.repeat(i % 40)}`, ...(i === 7 ? { 'x-big': 'B'.repeat(20000) } : {}) }, `payload ${i} `.repeat(i % 30)),
        ),
      ),
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-h2-tshark-'));
  try {
    const pcap = path.join(dir, 'h2c.pcap');
    const messages = chunks.map((c) => ({ from: c.from === 'client' ? ('c' as const) : ('s' as const), data: c.bytes }));
    fs.writeFileSync(pcap, pcapFile(tcpConversation({ ip: '10.0.0.2', port: CLIENT_PORT }, { ip: '10.0.0.1', port: SERVER_PORT }, messages), { linkType: 101 }));
    const reference = tsharkView(pcap);

    const exchanges: H2Exchange[] = [];
    const conn = new H2PassiveConnection({ bodyLimit: 1 << 20, onExchange: (ex) => exchanges.push(ex) });
    for (const c of chunks) conn.push(c.from, c.bytes, c.ts);
    conn.end(chunks[chunks.length - 1].ts + 1);
    expect(conn.error).toBeNull();
    expect(exchanges).toHaveLength(N);
    for (const ex of exchanges) {
      const ours = ourLists(ex);
      expect([ex.streamId, ours.client]).toEqual([ex.streamId, reference.headers.get(`${ex.streamId} client`)]);
      expect([ex.streamId, ours.server]).toEqual([ex.streamId, reference.headers.get(`${ex.streamId} server`)]);
      expect(ex.requestBody.bytes.toString('hex')).toBe(reference.data.get(`${ex.streamId} client`) ?? '');
      expect(ex.responseBody.bytes.toString('hex')).toBe(reference.data.get(`${ex.streamId} server`) ?? '');
    }
    expect(exchanges.find((e) => e.streamId === 15)!.requestHeaders).toContainEqual(['x-big', 'B'.repeat(20000)]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
