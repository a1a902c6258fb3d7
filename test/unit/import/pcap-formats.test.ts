/**
 * The capture readers: the same HTTP conversation written in every file format variant and link
 * type the importer supports comes out as the same flows, with the capture's timestamps; pcapng
 * with several sections, interfaces and unknown blocks; IPv4 fragments and IPv6 extension headers.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { importCapture, type CapturedFlow, type CaptureImportResult } from '../../../proxy/capture/import/pcap/capture-import';
import { sniffCaptureFormat } from '../../../proxy/capture/import/pcap/file-reader';
import { ethernet, ipv4, ipv6, loopback, pcapFile, PcapngWriter, sll, sll2, tcp, tcpConversation, TCP, udp, type Frame } from './pcap-packets';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-pcap-unit-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

let n = 0;
export function runCapture(bytes: Buffer, bodyLimit?: number): { flows: CapturedFlow[]; result: CaptureImportResult } {
  const file = path.join(dir, `c${n++}.cap`);
  fs.writeFileSync(file, bytes);
  const flows: CapturedFlow[] = [];
  const result = importCapture(file, (f) => flows.push(f), { bodyLimit });
  return { flows, result };
}

const T0 = 1_700_000_000_123.456;
const client = { ip: '192.168.1.23', port: 40123 };
const server = { ip: '203.0.113.7', port: 9999 };
const REQUEST = Buffer.from('POST /reg?v=1 HTTP/1.1\r\nHost: zzhc.vnet.cn:9999\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 25\r\n\r\nimei=354031090123453&ok=1');
const RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
/** IP datagrams of one request/response, later wrapped in each link layer. */
const datagrams = tcpConversation(client, server, [{ from: 'c', data: REQUEST }, { from: 's', data: RESPONSE }], { t0: T0, mss: 40 });

/** The same packets over IPv6 (the 203.0.113.7 side becomes 2a00:1450:4010:c00::8a, the other 2001:db8::23). */
function toV6(frames: Frame[], extensionHeaders = false): Frame[] {
  const c6 = Buffer.from('20010db8000000000000000000000023', 'hex');
  const s6 = Buffer.from('2a00145040100c00000000000000008a', 'hex');
  const hop = Buffer.from([5, 2, 0, 0, 1, 0]); // router alert + PadN: 6 bytes
  const dest = Buffer.concat([Buffer.from([1, 12]), Buffer.alloc(12)]); // PadN: 14 bytes
  return frames.map((f) => {
    const b = f.data;
    const fromServer = b[12] === 203;
    const ext: Array<[number, Buffer]> = extensionHeaders ? [[0, hop], [60, dest]] : [];
    return { ts: f.ts, data: ipv6(fromServer ? s6 : c6, fromServer ? c6 : s6, b[9], b.subarray(20), ext) };
  });
}

function expectTheFlow(flows: CapturedFlow[]): void {
  const http = flows.filter((f) => f.flow.kind === 'http');
  expect(http).toHaveLength(1);
  const { flow, requestIndex } = http[0];
  expect(requestIndex).toBe(0);
  expect(flow).toMatchObject({
    source: 'pcap', method: 'POST', url: 'http://zzhc.vnet.cn:9999/reg?v=1', host: 'zzhc.vnet.cn', port: 9999,
    clientIp: client.ip, clientPort: client.port, serverIp: server.ip, tls: false, responseStatus: 200, httpVersion: '1.1',
  });
  expect(flow.requestBody.bytes.toString()).toBe('imei=354031090123453&ok=1');
  expect(flow.responseBody.bytes.toString()).toBe('ok');
  /* First request byte: 4th packet (after the handshake), 1 ms apart. */
  expect(flow.startedAt).toBeCloseTo(T0 + 4, 2);
  expect(flow.error).toBeUndefined();
}

describe('file formats', () => {
  const frames: Frame[] = datagrams.map((f) => ({ ts: f.ts, data: ethernet(f.data) }));
  test.each([
    ['pcap little-endian µs', { bigEndian: false, nano: false }],
    ['pcap big-endian µs', { bigEndian: true, nano: false }],
    ['pcap little-endian ns', { bigEndian: false, nano: true }],
    ['pcap big-endian ns', { bigEndian: true, nano: true }],
  ])('%s', (_name, o) => {
    const bytes = pcapFile(frames, { linkType: 1, ...o });
    expect(sniffCaptureFormat(bytes)).toBe('pcap');
    const { flows, result } = runCapture(bytes);
    expect(result.error).toBeUndefined();
    expect(result.format).toBe('pcap');
    expectTheFlow(flows);
  });

  test.each([
    ['little-endian, default µs', false, undefined],
    ['big-endian, ns (if_tsresol 9)', true, 9],
    ['little-endian, 2^-20 s (if_tsresol 0x94)', false, 0x94],
  ])('pcapng %s', (_name, bigEndian, tsresol) => {
    const w = new PcapngWriter().section(bigEndian).iface(1, tsresol);
    frames.forEach((f, i) => {
      if (i === 2) w.other(0x0bad, Buffer.from('a custom block the reader must skip'));
      if (i === 3) w.other(5, Buffer.alloc(12)); // interface statistics
      w.epb(0, f);
    });
    const bytes = w.bytes();
    expect(sniffCaptureFormat(bytes)).toBe('pcapng');
    const { flows, result } = runCapture(bytes);
    expect(result.error).toBeUndefined();
    expectTheFlow(flows);
  });

  test('pcapng: two sections of different byte order, two interfaces of different link types', () => {
    const other = tcpConversation({ ip: '10.0.0.2', port: 50000 }, { ip: '10.0.0.1', port: 8080 }, [
      { from: 'c', data: Buffer.from('GET /second HTTP/1.1\r\nHost: b.example\r\n\r\n') },
      { from: 's', data: Buffer.from('HTTP/1.1 204 No Content\r\n\r\n') },
    ], { t0: T0 + 10_000 });
    const w = new PcapngWriter().section(true).iface(1).iface(101, 9);
    for (const f of datagrams) w.epb(0, { ts: f.ts, data: ethernet(f.data) });
    for (const f of other) w.epb(1, f);
    /* A second section starts over: its own byte order and interface numbering. */
    w.section(false).iface(229, 6);
    const third = tcpConversation({ ip: '10.9.9.9', port: 41000 }, server, [{ from: 'c', data: Buffer.from('GET /third HTTP/1.0\r\n\r\n') }], { t0: T0 + 20_000 });
    for (const f of toV6(third)) w.epb(0, f);
    const { flows, result } = runCapture(w.bytes());
    expect(result.error).toBeUndefined();
    const http = flows.filter((f) => f.flow.kind === 'http').sort((a, b) => a.requestIndex! - b.requestIndex!);
    expect(http.map((f) => f.flow.url)).toEqual(['http://zzhc.vnet.cn:9999/reg?v=1', 'http://b.example:8080/second', 'http://[2a00:1450:4010:c00::8a]:9999/third']);
    expect(http[2].flow.startedAt).toBeCloseTo(T0 + 20_004, 2);
    expect(http[1].flow.responseStatus).toBe(204);
    expect(http[1].flow.startedAt).toBeCloseTo(T0 + 10_004, 2);
  });

  test('pcapng larger than the read window: blocks that straddle its end are read whole (was a RangeError)', () => {
    /* The reader holds 4 MiB of the file at a time; 2500 connections of ~3 KiB each cross that edge. */
    const w = new PcapngWriter().section().iface(1);
    const body = 'x'.repeat(2000);
    for (let i = 0; i < 2500; i++) {
      const conv = tcpConversation({ ip: '10.0.0.2', port: 20000 + i }, server, [
        { from: 'c', data: Buffer.from(`POST /n${i} HTTP/1.1\r\nHost: big.example\r\nContent-Length: ${body.length}\r\n\r\n${body}`) },
        { from: 's', data: RESPONSE },
      ], { t0: T0 + i * 100 });
      for (const f of conv) w.epb(0, { ts: f.ts, data: ethernet(f.data) });
    }
    const bytes = w.bytes();
    expect(bytes.length).toBeGreaterThan(5 * 1024 * 1024);
    const { flows, result } = runCapture(bytes);
    expect(result.error).toBeUndefined();
    const urls = flows.filter((f) => f.flow.kind === 'http').map((f) => f.flow.url);
    expect(urls).toHaveLength(2500);
    expect(urls[2499]).toBe('http://big.example:9999/n2499');
  });

  test('pcapng simple packet blocks (no timestamps) use interface 0', () => {
    const w = new PcapngWriter().section().iface(101);
    for (const f of datagrams) w.spb(f.data);
    const { flows, result } = runCapture(w.bytes());
    expect(result.error).toBeUndefined();
    expect(flows.filter((f) => f.flow.kind === 'http').map((f) => f.flow.url)).toEqual(['http://zzhc.vnet.cn:9999/reg?v=1']);
  });
});

describe('link types', () => {
  test.each([
    ['Ethernet', 1, (ip: Buffer) => ethernet(ip)],
    ['Ethernet 802.1Q VLAN', 1, (ip: Buffer) => ethernet(ip, [42])],
    ['Ethernet 802.1ad QinQ', 1, (ip: Buffer) => ethernet(ip, [100, 42], [0x88a8, 0x8100])],
    ['raw IP (101)', 101, (ip: Buffer) => ip],
    ['raw IPv4 (228)', 228, (ip: Buffer) => ip],
    ['Linux cooked SLL (113)', 113, sll],
    ['Linux cooked SLL2 (276)', 276, sll2],
    ['BSD null (0)', 0, (ip: Buffer) => loopback(ip, false)],
    ['OpenBSD loop (108)', 108, (ip: Buffer) => loopback(ip, true)],
  ])('%s', (_name, linkType, wrap) => {
    const { flows, result } = runCapture(pcapFile(datagrams.map((f) => ({ ts: f.ts, data: wrap(f.data) })), { linkType }));
    expect(result.error).toBeUndefined();
    expectTheFlow(flows);
  });

  test('an unsupported link type is skipped and said so', () => {
    const { flows, result } = runCapture(pcapFile(datagrams.map((f) => ({ ts: f.ts, data: f.data })), { linkType: 105 }));
    expect(flows).toEqual([]);
    expect(result.notes.join()).toMatch(/unsupported link type 105/);
  });
});

describe('IP layer', () => {
  test('IPv6 with hop-by-hop and destination-options headers (link type 229)', () => {
    const { flows } = runCapture(pcapFile(toV6(datagrams, true), { linkType: 229 }));
    const http = flows.filter((f) => f.flow.kind === 'http');
    expect(http).toHaveLength(1);
    expect(http[0].flow.clientIp).toBe('2001:db8::23');
    expect(http[0].flow.serverIp).toBe('2a00:1450:4010:c00::8a');
    expect(http[0].flow.requestBody.bytes.toString()).toBe('imei=354031090123453&ok=1');
  });

  test('IPv4 fragments, out of order and overlapping, are reassembled', () => {
    /* One TCP segment carrying the whole request, split into three IP fragments sent last-first. */
    const whole = tcpConversation(client, server, [{ from: 'c', data: REQUEST }, { from: 's', data: RESPONSE }], { t0: T0, mss: 4000 });
    const frames: Frame[] = [];
    for (const f of whole) {
      const b = f.data;
      const payload = b.subarray(20);
      if (payload.length < 100) {
        frames.push({ ts: f.ts, data: b });
        continue;
      }
      const src = `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
      const dst = `${b[16]}.${b[17]}.${b[18]}.${b[19]}`;
      const id = 777;
      frames.push({ ts: f.ts, data: ipv4(src, dst, 6, payload.subarray(96), { id, fragOffset: 96 }) });
      frames.push({ ts: f.ts, data: ipv4(src, dst, 6, payload.subarray(40, 104), { id, fragOffset: 40, more: true }) });
      frames.push({ ts: f.ts, data: ipv4(src, dst, 6, payload.subarray(0, 48), { id, fragOffset: 0, more: true }) });
    }
    const { flows, result } = runCapture(pcapFile(frames.map((f) => ({ ts: f.ts, data: ethernet(f.data) }))));
    expect(result.notes).toEqual([]);
    expectTheFlow(flows);
  });

  test('fragments that never complete are dropped and counted, not kept', () => {
    const frames: Frame[] = [];
    for (let i = 0; i < 600; i++) frames.push({ ts: T0 + i, data: ipv4('10.0.0.1', '10.0.0.2', 17, udp(1, 2, Buffer.alloc(64)), { id: i, more: true }) });
    const { result } = runCapture(pcapFile(frames, { linkType: 101 }));
    expect(result.error).toBeUndefined();
    expect(result.notes.join()).toMatch(/fragmented IP datagrams could not be reassembled/);
  });
});

describe('TLS', () => {
  test('a TLS connection is one flow with no content, named by nothing but its server address when the hello is garbage', () => {
    const frames = tcpConversation(client, { ip: server.ip, port: 443 }, [{ from: 'c', data: Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0, 0, 1, 0]) }], { t0: T0 });
    const { flows } = runCapture(pcapFile(frames, { linkType: 101 }));
    expect(flows).toHaveLength(1);
    expect(flows[0].flow).toMatchObject({ kind: 'raw', scheme: 'tls', tls: true, host: server.ip, port: 443, tags: ['imported-pcap', 'tls-not-decrypted'] });
    expect(flows[0].flow.error).toMatch(/unreadable TLS ClientHello/);
    expect(flows[0].requestIndex).toBeUndefined();
  });
});

test('SYN flags from the server side alone still give the right roles', () => {
  const frames = tcpConversation(client, server, [{ from: 'c', data: REQUEST }, { from: 's', data: RESPONSE }], { t0: T0 });
  /* Drop the client's SYN: the SYN-ACK (from the server) says who is who. */
  const { flows } = runCapture(pcapFile(frames.slice(1), { linkType: 101 }));
  expect(flows[0].flow.clientIp).toBe(client.ip);
  expect(flows[0].flow.responseStatus).toBe(200);
  void TCP;
  void tcp;
});
