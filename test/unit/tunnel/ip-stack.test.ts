/**
 * TunnelStack with real parts: a DNS resolver and UDP echo servers on loopback sockets, a real
 * SQLite store in a temp data dir behind the proxy's FlowRecorder, packets built as a phone sends
 * them and everything the stack sends back checked by our parsers and, at the end, by tshark.
 */
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDnsMessage, buildDnsQuery, parseDnsMessage } from '../../../proxy/capture/dns/codec';
import { FlowRecorder } from '../../../proxy/capture/recording';
import { finish, sumWords, transportChecksum } from '../../../proxy/capture/tunnel/ip/checksum';
import { parseIpv6 } from '../../../proxy/capture/tunnel/ip/address';
import { buildIpv4Packet, buildIpv6Packet, parseIpPacket, PROTO_ICMP, PROTO_ICMPV6, type IpPacket } from '../../../proxy/capture/tunnel/ip/packet';
import { TunnelStack, type TunnelStats } from '../../../proxy/capture/tunnel/ip/stack';
import { buildTcpPacket, parseTcp } from '../../../proxy/capture/tunnel/ip/tcp';
import { buildUdpPacket, parseUdp } from '../../../proxy/capture/tunnel/ip/udp';
import { TCP_ACK, TCP_RST, TCP_SYN, type TcpSegment, type TunnelPeer } from '../../../proxy/capture/tunnel/types';
import type { Flow } from '../../../proxy/flow';
import { Store } from '../../../proxy/store';
import { tsharkFields } from './ip-pcap';

const PHONE: TunnelPeer = { publicKey: 'cGhvbmUtcHVibGljLWtleS1mb3ItdGVzdHMtb25seQ==', name: 'phone', ipv4: '10.77.0.2', ipv6: 'fd77::2' };
const MTU = 1420;

async function waitFor<T>(what: string, get: () => T | undefined, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = get();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const parsed = (b: Buffer): IpPacket => {
  const r = parseIpPacket(b);
  if (!r.ok) throw new Error(`stack sent an unparsable packet: ${r.reason}`);
  return r.packet;
};

function icmpEcho(version: 4 | 6, src: string, dst: string, seq: number, size = 16): Buffer {
  const msg = Buffer.alloc(8 + size, 0x61);
  msg[0] = version === 4 ? 8 : 128;
  msg[1] = 0;
  msg.writeUInt16BE(0x77, 4);
  msg.writeUInt16BE(seq, 6);
  msg.writeUInt16BE(0, 2);
  if (version === 4) {
    msg.writeUInt16BE(finish(sumWords(msg)), 2);
    return buildIpv4Packet({ src, dst, protocol: PROTO_ICMP, payload: msg });
  }
  msg.writeUInt16BE(transportChecksum(parseIpv6(src), parseIpv6(dst), PROTO_ICMPV6, msg), 2);
  return buildIpv6Packet({ src, dst, protocol: PROTO_ICMPV6, payload: msg });
}

const syn = (version: 4 | 6, dst: string, port = 443): TcpSegment => ({
  ipVersion: version, srcIp: version === 4 ? PHONE.ipv4 : PHONE.ipv6, dstIp: dst, srcPort: 41000, dstPort: port, seq: 1000, ack: 0,
  flags: TCP_SYN, window: 64240, options: { mss: 1380, sackPermitted: true, windowScale: 7 }, payload: Buffer.alloc(0),
});

const udpFromPhone = (version: 4 | 6, dst: string, srcPort: number, dstPort: number, payload: Buffer): Buffer =>
  buildUdpPacket({ version, src: version === 4 ? PHONE.ipv4 : PHONE.ipv6, dst, srcPort, dstPort, payload });

/** A small authoritative-style resolver for the tests: answers from a table, stays silent for 'slow.', big TXT for 'big.'. */
async function startResolver(family: 'udp4' | 'udp6'): Promise<{ sock: Socket; port: number; queries: string[] }> {
  const sock = createSocket(family);
  const queries: string[] = [];
  sock.on('message', (msg, rinfo) => {
    const q = parseDnsMessage(msg);
    const { name, type } = q.questions[0];
    queries.push(`${name}/${type}`);
    if (name.startsWith('slow.')) return;
    const base = { id: q.id, qr: true, rd: q.rd, ra: true, questions: [{ name, type }] };
    let answer: Buffer;
    if (name.startsWith('nx.')) answer = buildDnsMessage({ ...base, rcode: 3 });
    else if (name.startsWith('big.')) {
      answer = buildDnsMessage({ ...base, answers: Array.from({ length: 12 }, (_, i) => ({ name, type: 'TXT', ttl: 60, data: `"${String(i % 10).repeat(200)}"` })) });
    } else if (type === 'AAAA') answer = buildDnsMessage({ ...base, answers: [{ name, type: 'AAAA', ttl: 30, data: '2001:db8::53' }] });
    else answer = buildDnsMessage({ ...base, answers: [{ name, type: 'CNAME', ttl: 300, data: 'edge.example.net.' }, { name: 'edge.example.net', type: 'A', ttl: 60, data: '192.0.2.53' }] });
    sock.send(answer, rinfo.port, rinfo.address);
  });
  sock.bind(0, family === 'udp4' ? '127.0.0.1' : '::1');
  await once(sock, 'listening');
  return { sock, port: (sock.address() as AddressInfo).port, queries };
}

async function startEcho(family: 'udp4' | 'udp6'): Promise<{ sock: Socket; port: number }> {
  const sock = createSocket(family);
  sock.on('message', (msg, rinfo) => sock.send(Buffer.concat([Buffer.from('echo:'), msg]), rinfo.port, rinfo.address));
  sock.bind(0, family === 'udp4' ? '127.0.0.1' : '::1');
  await once(sock, 'listening');
  return { sock, port: (sock.address() as AddressInfo).port };
}

/** A closed loopback UDP port: bound, then released. */
async function closedPort(): Promise<number> {
  const s = createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  s.close();
  return port;
}

describe('TunnelStack', () => {
  let dir: string;
  let store: Store;
  let sent: Buffer[];
  let flows: Flow[];
  let stack: TunnelStack;
  let resolver4: Awaited<ReturnType<typeof startResolver>>;
  let resolver6: Awaited<ReturnType<typeof startResolver>>;
  const sockets: Socket[] = [];
  const allSent: Buffer[] = [];

  const make = (extra: Partial<ConstructorParameters<typeof TunnelStack>[0]> = {}): TunnelStack => new TunnelStack({
    mtu: MTU, gatewayIpv4: '10.77.0.1', gatewayIpv6: 'fd77::1', dnsUpstreams: [`127.0.0.1:${resolver4.port}`],
    send: (peer, packet) => { expect(peer).toBe(PHONE); sent.push(packet); allSent.push(packet); },
    recorder: new FlowRecorder(store, () => undefined, (f) => flows.push(f)), store, udpIdleMs: 300, dnsTimeoutMs: 300, allowLoopback: true, ...extra,
  });

  beforeAll(async () => {
    resolver4 = await startResolver('udp4');
    resolver6 = await startResolver('udp6');
    sockets.push(resolver4.sock, resolver6.sock);
  });
  afterAll(() => {
    for (const s of sockets) s.close();
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'phonehome-stack-'));
    store = Store.open({ dataDir: dir });
    sent = [];
    flows = [];
    stack = make();
  });
  afterEach(async () => {
    await stack.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers ping to any address, from that address, over IPv4 and IPv6', () => {
    stack.receive(PHONE, icmpEcho(4, PHONE.ipv4, '203.0.113.9', 1));
    stack.receive(PHONE, icmpEcho(6, PHONE.ipv6, '2001:db8::9', 2));
    expect(sent).toHaveLength(2);
    const [r4, r6] = sent.map(parsed);
    expect(r4).toMatchObject({ src: '203.0.113.9', dst: PHONE.ipv4, protocol: PROTO_ICMP });
    expect(r4.payload[0]).toBe(0);
    expect(r4.payload.readUInt16BE(6)).toBe(1);
    expect(r6).toMatchObject({ src: '2001:db8::9', dst: PHONE.ipv6, protocol: PROTO_ICMPV6 });
    expect(r6.payload[0]).toBe(129);
    expect(stack.stats().icmpEchoReplies).toBe(2);
  });

  it('resets TCP without a TCP layer, and hands segments to one when set', () => {
    stack.receive(PHONE, buildTcpPacket(syn(4, '93.184.215.14')));
    stack.receive(PHONE, buildTcpPacket(syn(6, '2606:2800:220:1::1')));
    expect(sent).toHaveLength(2);
    for (const [i, p] of sent.map(parsed).entries()) {
      const t = parseTcp(p);
      expect(t.ok).toBe(true);
      if (!t.ok) continue;
      expect(t.segment).toMatchObject({ flags: TCP_RST | TCP_ACK, seq: 0, ack: 1001, srcPort: 443, dstPort: 41000, dstIp: i === 0 ? PHONE.ipv4 : PHONE.ipv6 });
    }
    // A RST for no connection is not answered.
    stack.receive(PHONE, buildTcpPacket({ ...syn(4, '93.184.215.14'), flags: TCP_RST }));
    expect(sent).toHaveLength(2);

    const seen: TcpSegment[] = [];
    stack.setTcpHandler({
      onSegment: (peer, seg, send) => {
        seen.push(seg);
        send({ ...seg, srcIp: seg.dstIp, dstIp: seg.srcIp, srcPort: seg.dstPort, dstPort: seg.srcPort, flags: TCP_SYN | TCP_ACK, ack: seg.seq + 1, seq: 5 });
      },
      close: () => undefined,
    });
    stack.receive(PHONE, buildTcpPacket(syn(4, '93.184.215.14', 80)));
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ dstIp: '93.184.215.14', dstPort: 80, options: { mss: 1380, windowScale: 7, sackPermitted: true } });
    const synAck = parseTcp(parsed(sent[2]));
    expect(synAck.ok && synAck.segment.flags).toBe(TCP_SYN | TCP_ACK);
    expect(stack.stats()).toMatchObject({ tcpResetsSent: 2, tcpSegmentsToHandler: 1, dropped: { 'tcp-rst-no-connection': 1 } });
  });

  it('refuses QUIC with port unreachable quoting the datagram, over IPv4 and IPv6', () => {
    stack.receive(PHONE, udpFromPhone(4, '142.250.74.3', 50123, 443, Buffer.alloc(1200, 0xc0)));
    stack.receive(PHONE, udpFromPhone(6, '2a00:1450:4001::3', 50124, 443, Buffer.alloc(1200, 0xc0)));
    const [u4, u6] = sent.map(parsed);
    expect(u4).toMatchObject({ src: '142.250.74.3', protocol: PROTO_ICMP });
    expect([u4.payload[0], u4.payload[1]]).toEqual([3, 3]);
    expect(u6).toMatchObject({ src: '2a00:1450:4001::3', protocol: PROTO_ICMPV6 });
    expect([u6.payload[0], u6.payload[1]]).toEqual([1, 4]);
    expect(sent.every((p) => p.length <= MTU)).toBe(true);
    expect(stack.stats()).toMatchObject({ quicRefused: 2, portUnreachableSent: 2, udpSessionsTotal: 0 });
  });

  it('forwards DNS to the resolvers, answers from the address asked, and records a flow and a dns row', async () => {
    stack.receive(PHONE, udpFromPhone(4, '10.77.0.1', 33333, 53, buildDnsQuery(0xabc, 'zzhc.vnet.cn', 'A')));
    stack.receive(PHONE, udpFromPhone(4, '8.8.8.8', 33334, 53, buildDnsQuery(0xabd, 'hardcoded.example.org', 'A')));
    stack.receive(PHONE, udpFromPhone(6, 'fd77::1', 33335, 53, buildDnsQuery(0xabe, 'v6.example.org', 'AAAA')));
    await waitFor('three DNS answers', () => sent.length >= 3 && flows.length >= 3);
    const answers = sent.map(parsed).map((p) => {
      const u = parseUdp(p);
      if (!u.ok) throw new Error(u.reason);
      return { src: p.src, dst: p.dst, srcPort: u.datagram.srcPort, dstPort: u.datagram.dstPort, msg: parseDnsMessage(u.datagram.payload) };
    }).sort((a, b) => a.msg.id - b.msg.id);
    expect(answers.map((a) => [a.src, a.dst, a.srcPort, a.dstPort, a.msg.id])).toEqual([
      ['10.77.0.1', PHONE.ipv4, 53, 33333, 0xabc], ['8.8.8.8', PHONE.ipv4, 53, 33334, 0xabd], ['fd77::1', PHONE.ipv6, 53, 33335, 0xabe],
    ]);
    expect(answers[0].msg.answers.map((a) => a.data)).toEqual(['edge.example.net.', '192.0.2.53']);
    expect(answers[2].msg.answers.map((a) => a.data)).toEqual(['2001:db8::53']);

    const rows = store.dns.recent(10).sort((a, b) => a.name.localeCompare(b.name));
    expect(rows.map((r) => [r.name, r.type, r.rcode, r.resolver, r.clientIp, r.source])).toEqual([
      ['hardcoded.example.org', 'A', 'NOERROR', '8.8.8.8', PHONE.ipv4, 'vpn'],
      ['v6.example.org', 'AAAA', 'NOERROR', 'fd77::1', PHONE.ipv4, 'vpn'],
      ['zzhc.vnet.cn', 'A', 'NOERROR', '10.77.0.1', PHONE.ipv4, 'vpn'],
    ]);
    const zz = rows.find((r) => r.name === 'zzhc.vnet.cn')!;
    expect(zz.answers).toEqual([{ type: 'CNAME', data: 'edge.example.net.', ttl: 300 }, { type: 'A', data: '192.0.2.53', ttl: 60 }]);
    const flow = store.flows.get(zz.flowId!)!;
    expect(flow).toMatchObject({ kind: 'dns', source: 'vpn', scheme: 'dns', host: 'zzhc.vnet.cn', url: 'dns://zzhc.vnet.cn/?type=A', port: 53, clientIp: PHONE.ipv4, clientPort: 33333, serverIp: '127.0.0.1' });
    expect(flow.error).toBeUndefined();
    expect(flows.map((f) => f.id).sort()).toEqual(rows.map((r) => r.flowId).sort());
    expect(resolver4.queries).toEqual(expect.arrayContaining(['zzhc.vnet.cn/A', 'hardcoded.example.org/A', 'v6.example.org/AAAA']));
    expect(stack.stats()).toMatchObject({ dnsQueries: 3, dnsAnswers: 3, dnsFailures: 0 });
  });

  it('tries the next resolver, and answers SERVFAIL (recorded with the error) when none answers', async () => {
    await stack.close();
    stack = make({ dnsUpstreams: [`127.0.0.1:${await closedPort()}`, `[::1]:${resolver6.port}`] });
    stack.receive(PHONE, udpFromPhone(4, '10.77.0.1', 1111, 53, buildDnsQuery(1, 'second.example.com', 'A')));
    stack.receive(PHONE, udpFromPhone(4, '10.77.0.1', 1112, 53, buildDnsQuery(2, 'slow.example.com', 'A')));
    stack.receive(PHONE, udpFromPhone(4, '10.77.0.1', 1113, 53, buildDnsQuery(3, 'nx.example.com', 'A')));
    await waitFor('three DNS answers', () => sent.length >= 3 && flows.length >= 3, 5000);
    const byId = new Map(sent.map(parsed).map((p) => { const u = parseUdp(p); if (!u.ok) throw new Error(); const m = parseDnsMessage(u.datagram.payload); return [m.id, m]; }));
    expect(byId.get(1)?.rcodeName).toBe('NOERROR');
    expect(byId.get(2)?.rcodeName).toBe('SERVFAIL');
    expect(byId.get(2)?.questions[0].name).toBe('slow.example.com');
    expect(byId.get(3)?.rcodeName).toBe('NXDOMAIN');
    const slow = store.dns.recent(1, 'slow.example.com')[0];
    expect(slow.rcode).toBeNull();
    expect(store.flows.get(slow.flowId!)?.error).toMatch(/no answer within 300 ms/);
    expect(store.dns.recent(1, 'second.example.com')[0]).toMatchObject({ rcode: 'NOERROR' });
    expect(store.flows.get(store.dns.recent(1, 'second.example.com')[0].flowId!)?.serverIp).toBe('::1');
    expect(store.dns.recent(1, 'nx.example.com')[0]).toMatchObject({ rcode: 'NXDOMAIN', answers: [] });
    expect(stack.stats()).toMatchObject({ dnsQueries: 3, dnsAnswers: 2, dnsFailures: 1 });
  });

  it('sends an answer too big for the MTU truncated (TC) but records it whole; answers a broken query FORMERR', async () => {
    stack.receive(PHONE, udpFromPhone(4, '10.77.0.1', 2222, 53, buildDnsQuery(7, 'big.example.com', 'TXT')));
    const broken = Buffer.concat([buildDnsQuery(8, 'x.example').subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]);
    stack.receive(PHONE, udpFromPhone(4, '10.77.0.1', 2223, 53, broken));
    await waitFor('two answers', () => sent.length >= 2 && flows.length >= 2);
    expect(sent.every((p) => p.length <= MTU)).toBe(true);
    const msgs = sent.map(parsed).map((p) => { const u = parseUdp(p); if (!u.ok) throw new Error(); return parseDnsMessage(u.datagram.payload); });
    const big = msgs.find((m) => m.id === 7)!;
    expect(big).toMatchObject({ tc: true, rcodeName: 'NOERROR', answers: [] });
    expect(msgs.find((m) => m.id === 8)).toMatchObject({ rcodeName: 'FORMERR' });
    expect(store.dns.recent(1, 'big.example.com')[0].answers).toHaveLength(12);
    const bad = flows.find((f) => f.error?.startsWith('malformed DNS query'));
    expect(bad).toMatchObject({ kind: 'dns', host: '10.77.0.1' });
    expect(stack.stats()).toMatchObject({ dnsTruncated: 1, dnsFailures: 1 });
  });

  it('relays other UDP both ways over IPv4 and IPv6 and records each conversation when it goes idle', async () => {
    const echo4 = await startEcho('udp4');
    const echo6 = await startEcho('udp6');
    sockets.push(echo4.sock, echo6.sock);
    stack.receive(PHONE, udpFromPhone(4, '127.0.0.1', 5000, echo4.port, Buffer.from('imei=490154203237518')));
    stack.receive(PHONE, udpFromPhone(4, '127.0.0.1', 5000, echo4.port, Buffer.from('second')));
    stack.receive(PHONE, udpFromPhone(6, '::1', 5001, echo6.port, Buffer.from('over six')));
    await waitFor('three echoes', () => sent.length >= 3 || undefined);
    const replies = sent.map(parsed).map((p) => { const u = parseUdp(p); if (!u.ok) throw new Error(u.reason); return { p, u: u.datagram }; });
    expect(replies.map((r) => r.u.payload.toString()).sort()).toEqual(['echo:imei=490154203237518', 'echo:over six', 'echo:second']);
    const r6 = replies.find((r) => r.p.version === 6)!;
    expect(r6).toMatchObject({ p: { src: '::1', dst: PHONE.ipv6 }, u: { srcPort: echo6.port, dstPort: 5001 } });
    expect(stack.stats()).toMatchObject({ udpSessionsOpen: 2, udpDatagramsOut: 3, udpDatagramsIn: 3 });
    await waitFor('idle expiry', () => flows.filter((f) => f.kind === 'udp').length === 2 || undefined, 3000);
    expect(stack.stats().udpSessionsOpen).toBe(0);
    const f4 = flows.find((f) => f.kind === 'udp' && f.port === echo4.port)!;
    expect(f4).toMatchObject({ scheme: 'udp', host: '127.0.0.1', url: `udp://127.0.0.1:${echo4.port}`, clientIp: PHONE.ipv4, clientPort: 5000 });
    expect(f4.requestBody.bytes.toString()).toBe('imei=490154203237518second');
    expect(f4.responseBody.bytes.toString()).toBe('echo:imei=490154203237518echo:second');
    expect(store.flows.get(f4.id!)?.kind).toBe('udp');
    expect(flows.find((f) => f.kind === 'udp' && f.port === echo6.port)?.url).toBe(`udp://[::1]:${echo6.port}`);
  });

  it('fragments relayed replies bigger than the MTU instead of dropping them', async () => {
    const echo = await startEcho('udp4');
    sockets.push(echo.sock);
    stack.receive(PHONE, udpFromPhone(4, '127.0.0.1', 5002, echo.port, Buffer.alloc(MTU - 28, 0x42)));
    await waitFor('fragments', () => sent.length >= 2 || undefined);
    expect(sent.every((p) => p.length <= MTU)).toBe(true);
    expect(stack.stats()).toMatchObject({ udpDatagramsIn: 1, fragmentsSent: 2 });
    expect(stack.stats().dropped['over-mtu']).toBeUndefined();
  });

  it('refuses UDP to the laptop\'s loopback unless allowed: ICMP administratively prohibited, one flow per destination', async () => {
    const echo = await startEcho('udp4');
    sockets.push(echo.sock);
    let reached = 0;
    echo.sock.on('message', () => reached++);
    await stack.close();
    stack = make({ allowLoopback: undefined });
    stack.receive(PHONE, udpFromPhone(4, '127.0.0.1', 5003, echo.port, Buffer.from('reach the laptop?')));
    stack.receive(PHONE, udpFromPhone(4, '127.0.0.1', 5004, echo.port, Buffer.from('again, from another port')));
    stack.receive(PHONE, udpFromPhone(4, '127.9.9.9', 5003, echo.port, Buffer.from('any of 127/8')));
    stack.receive(PHONE, udpFromPhone(6, '::1', 5003, echo.port, Buffer.from('reach the laptop?')));
    stack.receive(PHONE, udpFromPhone(6, '::ffff:127.0.0.1', 5003, echo.port, Buffer.from('mapped')));
    await waitFor('five ICMP errors', () => sent.length >= 5 || undefined);
    const icmp = sent.map(parsed).map((p) => ({ version: p.version, src: p.src, type: p.payload[0], code: p.payload[1] }));
    expect(icmp).toEqual([
      { version: 4, src: '127.0.0.1', type: 3, code: 13 },
      { version: 4, src: '127.0.0.1', type: 3, code: 13 },
      { version: 4, src: '127.9.9.9', type: 3, code: 13 },
      { version: 6, src: '::1', type: 1, code: 1 },
      { version: 6, src: '::ffff:127.0.0.1', type: 1, code: 1 },
    ]);
    await waitFor('four flows', () => flows.length >= 4 || undefined);
    expect(flows.map((f) => [f.kind, f.url, f.tags, f.requestBody.bytes.toString()])).toEqual([
      ['udp', `udp://127.0.0.1:${echo.port}`, ['udp', 'loopback-refused'], 'reach the laptop?'],
      ['udp', `udp://127.9.9.9:${echo.port}`, ['udp', 'loopback-refused'], 'any of 127/8'],
      ['udp', `udp://[::1]:${echo.port}`, ['udp', 'loopback-refused'], 'reach the laptop?'],
      ['udp', `udp://[::ffff:127.0.0.1]:${echo.port}`, ['udp', 'loopback-refused'], 'mapped'],
    ]);
    expect(flows[0].error).toMatch(/127\.0\.0\.1 is this laptop's own loopback address.*the phone got ICMP administratively prohibited/);
    expect(flows[3].error).toMatch(/::ffff:127\.0\.0\.1 \(127\.0\.0\.1\) is this laptop's own loopback/);
    expect(stack.stats()).toMatchObject({ dropped: { 'destination-refused': 5 }, prohibitedSent: 5, udpSessionsTotal: 0 });
    await new Promise((r) => setTimeout(r, 100));
    expect(reached).toBe(0);
  });

  it('relays UDP to loopback when allowed (the refusal above can fail)', async () => {
    const echo = await startEcho('udp4');
    sockets.push(echo.sock);
    stack.receive(PHONE, udpFromPhone(4, '127.0.0.1', 5005, echo.port, Buffer.from('dev server')));
    const reply = parsed(await waitFor('echo', () => sent[0]));
    expect(parseUdp(reply)).toMatchObject({ ok: true, datagram: { payload: Buffer.from('echo:dev server') } });
  });

  it('tells the phone port unreachable when the relayed destination refuses', async () => {
    const port = await closedPort();
    stack.receive(PHONE, udpFromPhone(4, '127.0.0.1', 6000, port, Buffer.from('anyone?')));
    const p = parsed(await waitFor('ICMP', () => sent[0]));
    expect(p).toMatchObject({ src: '127.0.0.1', dst: PHONE.ipv4, protocol: PROTO_ICMP });
    expect([p.payload[0], p.payload[1]]).toEqual([3, 3]);
    // The quoted datagram is the phone's.
    const inner = parseIpPacket(p.payload.subarray(8));
    expect(inner.ok && [inner.packet.src, inner.packet.dst]).toEqual([PHONE.ipv4, '127.0.0.1']);
  });

  it('counts every packet it cannot handle, by reason, and emits nothing over the MTU', () => {
    const before = stack.stats();
    const wrongSource = buildUdpPacket({ version: 4, src: '10.77.0.3', dst: '10.77.0.1', srcPort: 1, dstPort: 53, payload: buildDnsQuery(1, 'a.b') });
    const wrongSource6 = icmpEcho(6, 'fd77::3', 'fd77::1', 1);
    const badSum = Buffer.from(udpFromPhone(4, '192.0.2.1', 1, 9999, Buffer.from('x')));
    badSum[badSum.length - 1] ^= 0xff;
    const gre = buildIpv4Packet({ src: PHONE.ipv4, dst: '192.0.2.1', protocol: 47, payload: Buffer.alloc(8) });
    const frag = Buffer.from(udpFromPhone(4, '192.0.2.1', 1, 9999, Buffer.alloc(96)));
    frag.writeUInt16BE(0x2000, 6);
    frag.writeUInt16BE(0, 10);
    frag.writeUInt16BE(finish(sumWords(frag, 0, 20)), 10);
    const ns = Buffer.alloc(24);
    ns[0] = 135;
    ns.writeUInt16BE(transportChecksum(parseIpv6(PHONE.ipv6), parseIpv6('ff02::1:ff00:1'), PROTO_ICMPV6, ns), 2);
    const neighbour = buildIpv6Packet({ src: PHONE.ipv6, dst: 'ff02::1:ff00:1', protocol: PROTO_ICMPV6, payload: ns, ttl: 255 });
    const rs = Buffer.alloc(8);
    rs[0] = 133;
    rs.writeUInt16BE(transportChecksum(parseIpv6('fe80::1234'), parseIpv6('ff02::2'), PROTO_ICMPV6, rs), 2);
    const routerSolicitation = buildIpv6Packet({ src: 'fe80::1234', dst: 'ff02::2', protocol: PROTO_ICMPV6, payload: rs, ttl: 255 });
    const mdns = udpFromPhone(4, '224.0.0.251', 5353, 5353, Buffer.from('q'));
    const bigPing = icmpEcho(4, PHONE.ipv4, '192.0.2.1', 1, 1450);
    const garbage = Buffer.from([0x12, 0x34]);
    const toGateway = udpFromPhone(4, '10.77.0.1', 1, 9999, Buffer.from('x'));
    const packets = [wrongSource, wrongSource6, badSum, gre, frag, neighbour, routerSolicitation, mdns, bigPing, garbage, toGateway, Buffer.alloc(0)];
    for (const p of packets) stack.receive(PHONE, p);
    const s: TunnelStats = stack.stats();
    expect(s.dropped).toEqual({
      'wrong-source': 2, 'bad-checksum': 1, 'unsupported-protocol': 1, 'icmpv6-nd-ignored': 2,
      multicast: 1, 'over-mtu': 1, 'bad-ip-version': 1, truncated: 1,
    });
    expect(s.packetsIn - before.packetsIn).toBe(packets.length);
    // Everything is accounted for: one drop each, except the gateway datagram (port unreachable) and
    // the big ping (handled, but its reply was over the MTU: counted as over-mtu, not sent).
    expect(s.portUnreachableSent).toBe(1);
    // The lone first fragment waits for the rest of its datagram.
    expect(s.fragmentsHeld).toBe(1);
    expect(sent.every((p) => p.length <= MTU)).toBe(true);
    expect(sent).toHaveLength(1);
  });

  it('survives hostile packets: random bytes, garbage DNS, random TCP flags and ICMP types', async () => {
    await stack.close();
    stack = make({ dnsUpstreams: [`127.0.0.1:${await closedPort()}`], dnsTimeoutMs: 50, allowLoopback: false });
    let seed = 4242;
    const rand = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
    const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => rand(256)));
    const N = 3000;
    for (let i = 0; i < N; i++) {
      const v: 4 | 6 = rand(2) ? 4 : 6;
      const src = v === 4 ? PHONE.ipv4 : PHONE.ipv6;
      const dst = v === 4 ? `198.51.100.${rand(256)}` : `2001:db8::${rand(65536).toString(16)}`;
      switch (rand(5)) {
        case 0: { const b = bytes(rand(100)); if (b.length) b[0] = (v === 4 ? 0x45 : 0x60) | (b[0] & 0x0f); stack.receive(PHONE, b); break; }
        case 1: stack.receive(PHONE, udpFromPhone(v, dst, 1 + rand(65535), 53, bytes(rand(80)))); break;
        case 2: stack.receive(PHONE, buildTcpPacket({ ...syn(v, dst, 1 + rand(65535)), flags: rand(256), seq: rand(2 ** 31), ack: rand(2 ** 31), payload: bytes(rand(40)) })); break;
        case 3: {
          const msg = bytes(8 + rand(40));
          msg.writeUInt16BE(0, 2);
          if (v === 4) msg.writeUInt16BE(finish(sumWords(msg)), 2);
          else msg.writeUInt16BE(transportChecksum(parseIpv6(src), parseIpv6(dst), PROTO_ICMPV6, msg), 2);
          stack.receive(PHONE, v === 4 ? buildIpv4Packet({ src, dst, protocol: PROTO_ICMP, payload: msg }) : buildIpv6Packet({ src, dst, protocol: PROTO_ICMPV6, payload: msg }));
          break;
        }
        default: stack.receive(PHONE, udpFromPhone(v, v === 4 ? '10.77.0.1' : 'fd77::1', 1 + rand(65535), rand(2) ? 443 : 1 + rand(65535), bytes(rand(60))));
      }
    }
    await waitFor('DNS lookups to finish', () => stack.stats().dnsInFlight === 0 || undefined, 10_000);
    const st = stack.stats();
    expect(st.packetsIn).toBe(N);
    expect(st.dropped['internal-error']).toBeUndefined();
    expect(st.udpSessionsTotal).toBe(0);
    expect(sent.every((p) => p.length <= MTU && parseIpPacket(p).ok)).toBe(true);
    // Every DNS query, however broken, was answered and recorded.
    expect(st.dnsQueries).toBe(st.dnsAnswers + st.dnsFailures);
    // (rows are written when their flows are stored, at the end of the event-loop turn)
    await waitFor('dns rows', () => store.dns.recent(10_000).length >= st.dnsQueries || undefined, 5_000);
    expect(store.dns.recent(10_000).length).toBe(st.dnsQueries);
  });

  it('records lookups still in flight and open UDP conversations when closed', async () => {
    const echo = await startEcho('udp4');
    sockets.push(echo.sock);
    await stack.close();
    stack = make({ udpIdleMs: 60_000, dnsTimeoutMs: 10_000 });
    stack.receive(PHONE, udpFromPhone(4, '10.77.0.1', 3000, 53, buildDnsQuery(9, 'slow.pending.example', 'A')));
    stack.receive(PHONE, udpFromPhone(4, '127.0.0.1', 3001, echo.port, Buffer.from('open conversation')));
    await waitFor('echo', () => sent.length >= 1 || undefined);
    const t0 = Date.now();
    await stack.close();
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(flows.map((f) => f.kind).sort()).toEqual(['dns', 'udp']);
    expect(store.dns.recent(1, 'slow.pending.example')[0]).toMatchObject({ rcode: null });
    expect(flows.find((f) => f.kind === 'dns')?.error).toMatch(/stopping|no answer/);
    // After close, packets are counted, not handled.
    stack.receive(PHONE, icmpEcho(4, PHONE.ipv4, '1.1.1.1', 1));
    expect(stack.stats().dropped.closed).toBe(1);
  });

  afterAll(() => {
    // Every packet the stack sent in these tests, read by tshark: no malformed packet, no bad checksum.
    const ws = tsharkFields(allSent, ['_ws.malformed', 'ip.checksum.status', 'udp.checksum.status', 'tcp.checksum.status', 'icmp.checksum.status', 'icmpv6.checksum.status', 'dns.flags.response']);
    expect(ws).toHaveLength(allSent.length);
    expect(ws.filter((p) => p['_ws.malformed'].length > 0)).toEqual([]);
    const outer = ws.map((p) => [...p['ip.checksum.status'].slice(0, 1), ...p['tcp.checksum.status'], ...p['icmp.checksum.status'], ...p['icmpv6.checksum.status'], ...p['udp.checksum.status'].slice(0, 1)]);
    expect(outer.flat().filter((s) => s === '0')).toEqual([]);
    // tshark sees a DNS response in exactly the packets we sent as DNS answers (from port 53).
    const fromPort53 = allSent.map((b) => { const r = parseIpPacket(b); const u = r.ok && r.packet.protocol === 17 ? parseUdp(r.packet) : undefined; return !!u && u.ok && u.datagram.srcPort === 53; });
    expect(ws.map((p) => p['dns.flags.response'].length === 1 && p['icmp.checksum.status'].length + p['icmpv6.checksum.status'].length === 0)).toEqual(fromPort53);
  });
});
