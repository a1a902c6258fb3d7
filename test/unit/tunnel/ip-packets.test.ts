/**
 * The tunnel's packet builders and parsers: checksums against known answers (RFC 1071 and a
 * well-known IPv4 header), every kind of packet the tunnel emits decoded by tshark with checksum
 * validation on (an independent implementation), round trips through our own parsers, and
 * truncated or corrupted packets rejected with a reason, never an exception.
 */
import { finish, sumWords } from '../../../proxy/capture/tunnel/ip/checksum';
import { formatIpv6, parseIpv6 } from '../../../proxy/capture/tunnel/ip/address';
import { buildEchoReply, buildPortUnreachable } from '../../../proxy/capture/tunnel/ip/icmp';
import { buildIpv4Packet, buildIpv6Packet, fragmentPacket, parseIpPacket, PROTO_ICMP, PROTO_ICMPV6, PROTO_UDP, type IpPacket } from '../../../proxy/capture/tunnel/ip/packet';
import { buildTcpPacket, parseTcp, resetFor } from '../../../proxy/capture/tunnel/ip/tcp';
import { buildUdpPacket, parseUdp } from '../../../proxy/capture/tunnel/ip/udp';
import { TCP_ACK, TCP_RST, TCP_SYN, type TcpSegment } from '../../../proxy/capture/tunnel/types';
import { tsharkFields } from './ip-pcap';

const ip = (b: Buffer): IpPacket => {
  const r = parseIpPacket(b);
  if (!r.ok) throw new Error(`${r.reason}: ${r.detail}`);
  return r.packet;
};

/** An echo request as ping sends it (built by hand here, not with the code under test). */
function echoRequest(version: 4 | 6, src: string, dst: string, id: number, seq: number, data: Buffer): Buffer {
  const msg = Buffer.alloc(8 + data.length);
  msg[0] = version === 4 ? 8 : 128;
  msg.writeUInt16BE(id, 4);
  msg.writeUInt16BE(seq, 6);
  data.copy(msg, 8);
  if (version === 4) {
    msg.writeUInt16BE(finish(sumWords(msg)), 2);
    return buildIpv4Packet({ src, dst, protocol: PROTO_ICMP, payload: msg });
  }
  const s = parseIpv6(src);
  const d = parseIpv6(dst);
  const pseudo = Buffer.concat([s, d, Buffer.from([0, 0, msg.length >> 8, msg.length & 0xff, 0, 0, 0, 58])]);
  msg.writeUInt16BE(finish(sumWords(Buffer.concat([pseudo, msg]))), 2);
  return buildIpv6Packet({ src, dst, protocol: PROTO_ICMPV6, payload: msg });
}

describe('checksums', () => {
  it('matches RFC 1071 section 3 and a well-known IPv4 header', () => {
    // RFC 1071 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (one's complement), checksum 220d.
    expect(finish(sumWords(Buffer.from('0001f203f4f5f6f7', 'hex')))).toBe(0x220d);
    // The IPv4 header used as the example on the Internet checksum's Wikipedia page: checksum b861.
    const header = Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex');
    expect(finish(sumWords(header))).toBe(0xb861);
    header.writeUInt16BE(0xb861, 10);
    const packet = Buffer.concat([header, Buffer.alloc(0x73 - 20)]);
    // That header claims UDP; its (zero) payload is not a valid datagram, but the header verifies.
    expect(parseIpPacket(packet)).toMatchObject({ ok: true, packet: { src: '192.168.0.1', dst: '192.168.0.199', protocol: PROTO_UDP } });
    header.writeUInt16BE(0xb862, 10);
    expect(parseIpPacket(Buffer.concat([header, Buffer.alloc(0x73 - 20)]))).toMatchObject({ ok: false, reason: 'bad-checksum' });
  });

  it('folds odd-length data with a zero pad byte', () => {
    expect(finish(sumWords(Buffer.from([0x01])))).toBe(~0x0100 & 0xffff);
  });
});

describe('packets the tunnel emits, read by tshark', () => {
  const syn4: TcpSegment = {
    ipVersion: 4, srcIp: '10.77.0.2', dstIp: '93.184.215.14', srcPort: 40123, dstPort: 443, seq: 0xfffffff0, ack: 0,
    flags: TCP_SYN, window: 65535, options: { mss: 1380, windowScale: 7, sackPermitted: true, timestamps: [123456789, 0] },
    payload: Buffer.alloc(0),
  };
  const data6: TcpSegment = {
    ipVersion: 6, srcIp: '2606:2800:220:1:248:1893:25c8:1946', dstIp: 'fd77::2', srcPort: 443, dstPort: 40123, seq: 17, ack: 0x80000001,
    flags: TCP_ACK | 0x08, window: 501, options: { timestamps: [42, 123456789] }, payload: Buffer.from('hello over IPv6'),
  };

  it('builds TCP with options, UDP and ICMP with checksums tshark accepts, for IPv4 and IPv6', () => {
    const udp4 = buildUdpPacket({ version: 4, src: '8.8.8.8', dst: '10.77.0.2', srcPort: 12345, dstPort: 40002, payload: Buffer.from('x'.repeat(33)) });
    const udp6 = buildUdpPacket({ version: 6, src: '2001:4860:4860::8888', dst: 'fd77::2', srcPort: 12345, dstPort: 40002, payload: Buffer.from('odd') });
    const req4 = ip(echoRequest(4, '10.77.0.2', '1.1.1.1', 0x1234, 7, Buffer.from('ping data 4')));
    const req6 = ip(echoRequest(6, 'fd77::2', '2606:4700::1111', 0x4321, 9, Buffer.from('ping data 6!')));
    const quic4 = ip(buildUdpPacket({ version: 4, src: '10.77.0.2', dst: '142.250.1.1', srcPort: 50000, dstPort: 443, payload: Buffer.alloc(1200, 0xc3) }));
    const quic6 = ip(buildUdpPacket({ version: 6, src: 'fd77::2', dst: '2a00:1450::1', srcPort: 50000, dstPort: 443, payload: Buffer.alloc(1200, 0xc3) }));
    const packets = [
      buildTcpPacket(syn4), buildTcpPacket(data6), udp4, udp6, buildEchoReply(req4), buildEchoReply(req6),
      buildPortUnreachable(quic4, 1420), buildPortUnreachable(quic6, 1420), buildTcpPacket(resetFor(syn4)),
    ];
    const ws = tsharkFields(packets, [
      'ip.checksum.status', 'tcp.checksum.status', 'udp.checksum.status', 'icmp.checksum.status', 'icmpv6.checksum.status',
      'tcp.options.mss_val', 'tcp.options.wscale.shift', 'tcp.options.sack_perm', 'tcp.options.timestamp.tsval', 'tcp.options.timestamp.tsecr',
      'tcp.seq_raw', 'tcp.ack_raw', 'tcp.flags', 'tcp.len', 'tcp.srcport', 'tcp.dstport', 'ip.src', 'ip.dst', 'ipv6.src', 'ipv6.dst',
      'icmp.type', 'icmp.code', 'icmp.ident', 'icmp.seq', 'icmpv6.type', 'icmpv6.code', 'icmpv6.echo.identifier', 'icmpv6.echo.sequence_number',
      'udp.srcport', 'udp.dstport', 'udp.length', '_ws.malformed', '_ws.expert',
    ]);
    expect(ws).toHaveLength(packets.length);
    for (const p of ws) expect(p['_ws.malformed']).toEqual([]);
    // Checksum status 1 = good, for every outer header and transport. Inside the ICMP errors
    // (packets 6 and 7) the quoted UDP datagram is cut, so tshark cannot verify it (status 2).
    const statuses = ws.flatMap((p, i) => ['ip', 'tcp', 'udp', 'icmp', 'icmpv6']
      .filter((l) => !(l === 'udp' && (i === 6 || i === 7)))
      .flatMap((l) => p[`${l}.checksum.status`]));
    expect(statuses.length).toBeGreaterThanOrEqual(13);
    expect(new Set(statuses)).toEqual(new Set(['1']));

    expect(ws[0]).toMatchObject({
      'ip.src': ['10.77.0.2'], 'ip.dst': ['93.184.215.14'], 'tcp.srcport': ['40123'], 'tcp.dstport': ['443'],
      'tcp.seq_raw': [String(0xfffffff0)], 'tcp.flags': ['0x0002'], 'tcp.options.mss_val': ['1380'],
      'tcp.options.wscale.shift': ['7'], 'tcp.options.timestamp.tsval': ['123456789'], 'tcp.options.timestamp.tsecr': ['0'],
    });
    expect(ws[0]['tcp.options.sack_perm']).toHaveLength(1);
    expect(ws[1]).toMatchObject({
      'ipv6.src': ['2606:2800:220:1:248:1893:25c8:1946'], 'ipv6.dst': ['fd77::2'], 'tcp.seq_raw': ['17'],
      'tcp.ack_raw': [String(0x80000001)], 'tcp.flags': ['0x0018'], 'tcp.len': [String(data6.payload.length)],
      'tcp.options.timestamp.tsval': ['42'], 'tcp.options.timestamp.tsecr': ['123456789'],
    });
    expect(ws[2]).toMatchObject({ 'udp.srcport': ['12345'], 'udp.dstport': ['40002'], 'udp.length': ['41'] });
    expect(ws[3]).toMatchObject({ 'ipv6.src': ['2001:4860:4860::8888'], 'udp.length': ['11'] });
    // Echo replies come from the address that was pinged, with id, sequence and data echoed.
    expect(ws[4]).toMatchObject({ 'ip.src': ['1.1.1.1'], 'ip.dst': ['10.77.0.2'], 'icmp.type': ['0'], 'icmp.ident': ['4660'], 'icmp.seq': ['7'] });
    expect(buildEchoReply(req4).subarray(28)).toEqual(Buffer.from('ping data 4'));
    expect(ws[5]).toMatchObject({ 'ipv6.src': ['2606:4700::1111'], 'icmpv6.type': ['129'], 'icmpv6.echo.identifier': ['0x4321'], 'icmpv6.echo.sequence_number': ['9'] });
    // Port unreachable from the destination, quoting the refused datagram (inner addresses reversed back).
    expect(ws[6]).toMatchObject({ 'ip.src': ['142.250.1.1', '10.77.0.2'], 'icmp.type': ['3'], 'icmp.code': ['3'], 'udp.dstport': ['443'] });
    expect(ws[7]).toMatchObject({ 'ipv6.src': ['2a00:1450::1', 'fd77::2'], 'icmpv6.type': ['1'], 'icmpv6.code': ['4'], 'udp.dstport': ['443'] });
    // The RST for a SYN: RST+ACK, seq 0, ack = SYN's seq + 1 (wrapping past 2^32).
    expect(ws[8]).toMatchObject({ 'ip.src': ['93.184.215.14'], 'tcp.flags': ['0x0014'], 'tcp.seq_raw': ['0'], 'tcp.ack_raw': [String(0xfffffff1)] });
  });

  it('keeps ICMP errors within the MTU (IPv4 within 576 bytes, IPv6 within 1280)', () => {
    const big4 = ip(buildUdpPacket({ version: 4, src: '10.77.0.2', dst: '1.2.3.4', srcPort: 1, dstPort: 443, payload: Buffer.alloc(1400) }));
    const big6 = ip(buildUdpPacket({ version: 6, src: 'fd77::2', dst: '2001:db8::1', srcPort: 1, dstPort: 443, payload: Buffer.alloc(1350) }));
    expect(buildPortUnreachable(big4, 1420).length).toBe(576);
    expect(buildPortUnreachable(big6, 1420).length).toBe(1280);
    expect(buildPortUnreachable(big6, 1000).length).toBe(1000);
  });

  it('fragments a packet over the MTU so that tshark reassembles the datagram with a good checksum', () => {
    const payload = Buffer.alloc(3000);
    for (let i = 0; i < payload.length; i++) payload[i] = i & 0xff;
    const big4 = buildUdpPacket({ version: 4, src: '192.0.2.9', dst: '10.77.0.2', srcPort: 7000, dstPort: 40000, payload });
    const big6 = buildUdpPacket({ version: 6, src: '2001:db8::9', dst: 'fd77::2', srcPort: 7000, dstPort: 40000, payload });
    const f4 = fragmentPacket(big4, 1420);
    const f6 = fragmentPacket(big6, 1420);
    expect(f4.length).toBe(3);
    expect(f6.length).toBe(3);
    for (const f of [...f4, ...f6]) expect(f.length).toBeLessThanOrEqual(1420);
    expect(fragmentPacket(big4.subarray(0, 100), 1420)).toHaveLength(1);
    const ws = tsharkFields([...f4, ...f6], ['udp.length', 'udp.checksum.status', 'ip.checksum.status', '_ws.malformed']);
    // tshark shows the UDP header on the packet that completes each datagram.
    const done = ws.filter((p) => p['udp.length'].length > 0);
    expect(done.map((p) => p['udp.length'])).toEqual([['3008'], ['3008']]);
    expect(done.map((p) => p['udp.checksum.status'])).toEqual([['1'], ['1']]);
    expect(ws.slice(0, 3).map((p) => p['ip.checksum.status'])).toEqual([['1'], ['1'], ['1']]);
    expect(ws.every((p) => p['_ws.malformed'].length === 0)).toBe(true);
  });

  it('round-trips segments and datagrams through our own parsers', () => {
    for (const seg of [{ ...syn4 }, { ...data6 }]) {
      const parsed = parseTcp(ip(buildTcpPacket(seg)));
      expect(parsed).toEqual({ ok: true, segment: { ...seg, payload: expect.any(Buffer) } });
      if (parsed.ok) expect(parsed.segment.payload).toEqual(seg.payload);
    }
    const u = parseUdp(ip(buildUdpPacket({ version: 6, src: 'fd77::2', dst: 'fd77::1', srcPort: 999, dstPort: 53, payload: Buffer.from('q') })));
    expect(u).toMatchObject({ ok: true, datagram: { srcPort: 999, dstPort: 53 } });
  });
});

describe('parsing untrusted packets', () => {
  const good = [
    buildTcpPacket({ ipVersion: 4, srcIp: '10.77.0.2', dstIp: '1.2.3.4', srcPort: 1, dstPort: 80, seq: 1, ack: 0, flags: TCP_SYN, window: 100, options: { mss: 1380 }, payload: Buffer.from('abc') }),
    buildTcpPacket({ ipVersion: 6, srcIp: 'fd77::2', dstIp: '2001:db8::1', srcPort: 1, dstPort: 80, seq: 1, ack: 0, flags: TCP_SYN, window: 100, options: { windowScale: 2 }, payload: Buffer.alloc(0) }),
    buildUdpPacket({ version: 4, src: '10.77.0.2', dst: '10.77.0.1', srcPort: 5, dstPort: 53, payload: Buffer.from('abcdef') }),
    buildUdpPacket({ version: 6, src: 'fd77::2', dst: 'fd77::1', srcPort: 5, dstPort: 53, payload: Buffer.from('abcdef') }),
  ];
  const transport = (p: Buffer) => {
    const r = parseIpPacket(p);
    if (!r.ok) return r;
    return r.packet.protocol === 6 ? parseTcp(r.packet) : parseUdp(r.packet);
  };

  it('rejects every truncation with a reason', () => {
    for (const p of good) {
      expect(transport(p).ok).toBe(true);
      for (let len = 0; len < p.length; len++) {
        const r = transport(p.subarray(0, len));
        expect(r.ok).toBe(false);
        if (!r.ok) expect(['truncated', 'bad-ip-version']).toContain(r.reason);
      }
    }
  });

  it('detects any single flipped bit in the checksummed parts', () => {
    for (const p of good) {
      const v4 = p[0] >> 4 === 4;
      // Skip the version nibble, the IPv4 fragment field (a different reason) and IPv6 flow label/traffic class.
      for (let byte = v4 ? 1 : 8; byte < p.length; byte++) {
        if (v4 && (byte === 6 || byte === 7 || byte === 2 || byte === 3 || byte === 0)) continue;
        if (!v4 && byte >= 0 && byte < 8) continue;
        const bad = Buffer.from(p);
        bad[byte] ^= 0x10;
        expect(transport(bad).ok).toBe(false);
      }
    }
  });

  it('marks IPv4 fragments, and rejects a missing IPv6 UDP checksum and broken TCP options with a reason', () => {
    const frag = Buffer.from(good[0]);
    frag.writeUInt16BE(0x2000, 6); // MF set
    frag.writeUInt16BE(0, 10);
    frag.writeUInt16BE(finish(sumWords(frag, 0, 20)), 10);
    expect(parseIpPacket(frag)).toMatchObject({ ok: true, packet: { fragment: { offset: 0, more: true } } });
    const noSum = Buffer.from(good[3]);
    noSum.writeUInt16BE(0, 46);
    expect(transport(noSum)).toMatchObject({ ok: false, reason: 'bad-checksum' });
    const noSum4 = Buffer.from(good[2]);
    noSum4.writeUInt16BE(0, 26);
    expect(transport(noSum4)).toMatchObject({ ok: true });
    // An MSS option claiming 40 bytes inside a 4-byte option area (checksum recomputed so only the framing is wrong).
    const badOpt = buildTcpPacket({ ipVersion: 4, srcIp: '10.77.0.2', dstIp: '1.2.3.4', srcPort: 1, dstPort: 80, seq: 1, ack: 0, flags: TCP_SYN, window: 1, options: { mss: 1 }, payload: Buffer.alloc(0) });
    badOpt[20 + 21] = 40;
    badOpt.writeUInt16BE(0, 36);
    const pseudo = Buffer.concat([badOpt.subarray(12, 20), Buffer.from([0, 6, 0, 24])]);
    badOpt.writeUInt16BE(finish(sumWords(Buffer.concat([pseudo, badOpt.subarray(20)]))), 36);
    expect(transport(badOpt)).toMatchObject({ ok: false, reason: 'bad-tcp-options' });
  });

  it('survives random bytes', () => {
    let seed = 99;
    const rand = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
    for (let i = 0; i < 5000; i++) {
      const b = Buffer.alloc(rand() % 120);
      for (let j = 0; j < b.length; j++) b[j] = rand() & 0xff;
      if (b.length) b[0] = (rand() & 1 ? 0x45 : 0x60) | (b[0] & 0x0f);
      expect(() => transport(b)).not.toThrow();
    }
  });

  it('prints IPv6 addresses as RFC 5952 asks', () => {
    const cases: [string, string][] = [
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'], ['fd77:0:0:0:0:0:0:2', 'fd77::2'], ['::', '::'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], ['::ffff:10.0.0.1', '::ffff:10.0.0.1'],
    ];
    for (const [input, want] of cases) expect(formatIpv6(parseIpv6(input))).toBe(want);
    expect(() => parseIpv6('fd77::zz')).toThrow();
  });

  it('resets a stray segment that has ACK from its acknowledgement number', () => {
    const withAck = resetFor({ ipVersion: 4, srcIp: 'a', dstIp: 'b', srcPort: 1, dstPort: 2, seq: 5, ack: 77, flags: TCP_ACK, window: 0, options: {}, payload: Buffer.from('xy') });
    expect(withAck).toMatchObject({ seq: 77, flags: TCP_RST, srcIp: 'b', dstIp: 'a' });
  });
});
