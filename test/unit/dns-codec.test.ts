/**
 * DNS codec: messages with name compression parsed to the values Wireshark's dissector reads from
 * the same bytes; every record type VPN mode records; a real query from dig; and hostile input
 * (pointer loops, forward pointers, truncation at every length, random bytes) failing with
 * DnsParseError, never another exception or a hang.
 */
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { AddressInfo } from 'node:net';
import {
  DnsParseError, buildDnsErrorResponse, buildDnsMessage, buildDnsQuery, encodeName, parseDnsMessage, peekDnsQuestion,
} from '../../proxy/capture/dns/codec';
import { tsharkFields, udp4ForPcap } from './tunnel/ip-pcap';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+|#[^\n]*/g, ''), 'hex');

/**
 * A response for www.example.com/A as resolvers send it: the answer owner points at the question
 * (c00c), the CNAME target shares 'example.com' with it (c010), and the A records' owner points at
 * the CNAME target inside the first answer's RDATA (c02d).
 */
const compressed = hex(`
  1234 8180 0001 0003 0000 0000           # id, flags (qr rd ra), 1 question, 3 answers
  03 777777 07 6578616d706c65 03 636f6d 00  # @12 www.example.com
  0001 0001                                  # A IN
  c00c 0005 0001 0000012c 000b               # @33 www.example.com CNAME ttl 300, rdlength 11
  04 65646765 03 63646e c010                  # @45 edge.cdn + ->@16 example.com
  c02d 0001 0001 0000003c 0004 5db8d70e       # edge.cdn.example.com A 93.184.215.14 ttl 60
  c02d 0001 0001 0000003c 0004 5db8d70f       # edge.cdn.example.com A 93.184.215.15
`);

describe('parseDnsMessage', () => {
  it('follows compression pointers and agrees with tshark on every field', () => {
    const m = parseDnsMessage(compressed);
    expect(m).toMatchObject({ id: 0x1234, qr: true, rd: true, ra: true, rcodeName: 'NOERROR' });
    expect(m.questions).toEqual([{ name: 'www.example.com', type: 'A', typeCode: 1, class: 1 }]);
    expect(m.answers.map((a) => [a.name, a.type, a.ttl, a.data])).toEqual([
      ['www.example.com', 'CNAME', 300, 'edge.cdn.example.com.'],
      ['edge.cdn.example.com', 'A', 60, '93.184.215.14'],
      ['edge.cdn.example.com', 'A', 60, '93.184.215.15'],
    ]);
    const [ws] = tsharkFields([udp4ForPcap(compressed)], ['dns.qry.name', 'dns.resp.name', 'dns.cname', 'dns.a', 'dns.resp.ttl']);
    expect(ws['dns.qry.name']).toEqual([m.questions[0].name]);
    expect(ws['dns.resp.name']).toEqual(m.answers.map((a) => a.name));
    expect(ws['dns.cname']).toEqual([m.answers[0].data.replace(/\.$/, '')]);
    expect(ws['dns.a']).toEqual(m.answers.slice(1).map((a) => a.data));
    expect(ws['dns.resp.ttl']).toEqual(m.answers.map((a) => String(a.ttl)));
  });

  it('reads every record type VPN mode records, as tshark does', () => {
    const https = Buffer.concat([
      Buffer.from([0, 1, 0]), // priority 1, target '.'
      hex('0001 0006 02 6833 02 6832'), // alpn=h3,h2
      hex('0003 0002 01bb'), // port=443
      hex('0004 0008 c0000201 c0000202'), // ipv4hint
      hex('0006 0010 20010db8000000000000000000000001'), // ipv6hint
    ]);
    const msg = buildDnsMessage({
      id: 7, qr: true, rd: true, ra: true,
      questions: [{ name: 'svc.example.net', type: 'HTTPS' }],
      answers: [
        { name: 'a.example.net', type: 'A', ttl: 1, data: '192.0.2.7' },
        { name: 'a.example.net', type: 'AAAA', ttl: 2, data: '2001:db8::7' },
        { name: 'example.net', type: 'MX', ttl: 3, data: '10 mail.example.net.' },
        { name: 'example.net', type: 'TXT', ttl: 4, data: '"v=spf1 -all" "second \\"part\\""' },
        { name: '7.2.0.192.in-addr.arpa', type: 'PTR', ttl: 5, data: 'a.example.net.' },
        { name: 'example.net', type: 'NS', ttl: 6, data: 'ns1.example.net.' },
        { name: 'svc.example.net', type: 'HTTPS', ttl: 7, data: https },
        { name: 'x.example.net', type: 'TYPE99', ttl: 8, data: Buffer.from('beef', 'hex') },
      ],
    });
    const m = parseDnsMessage(msg);
    expect(m.questions[0].type).toBe('HTTPS');
    expect(m.answers.map((a) => [a.type, a.data])).toEqual([
      ['A', '192.0.2.7'],
      ['AAAA', '2001:db8::7'],
      ['MX', '10 mail.example.net.'],
      ['TXT', '"v=spf1 -all" "second \\"part\\""'],
      ['PTR', 'a.example.net.'],
      ['NS', 'ns1.example.net.'],
      ['HTTPS', '1 . alpn=h3,h2 port=443 ipv4hint=192.0.2.1,192.0.2.2 ipv6hint=2001:db8::1'],
      ['TYPE99', '\\# 2 beef'],
    ]);
    const [ws] = tsharkFields([udp4ForPcap(msg)], [
      'dns.a', 'dns.aaaa', 'dns.mx.preference', 'dns.mx.mail_exchange', 'dns.txt', 'dns.ptr.domain_name', 'dns.ns',
      'dns.svcb.svcpriority', 'dns.svcb.svcparam.alpn', 'dns.svcb.svcparam.port', 'dns.svcb.svcparam.ipv4hint.ip',
      'dns.svcb.svcparam.ipv6hint.ip', 'dns.resp.type',
    ]);
    expect(ws['dns.a']).toEqual(['192.0.2.7']);
    expect(ws['dns.aaaa']).toEqual(['2001:db8::7']);
    expect(ws['dns.mx.preference']).toEqual(['10']);
    expect(ws['dns.mx.mail_exchange']).toEqual(['mail.example.net']);
    expect(ws['dns.txt']).toEqual(['v=spf1 -all', 'second "part"']);
    expect(ws['dns.ptr.domain_name']).toEqual(['a.example.net']);
    expect(ws['dns.ns']).toEqual(['ns1.example.net']);
    expect(ws['dns.svcb.svcpriority']).toEqual(['1']);
    expect(ws['dns.svcb.svcparam.alpn']).toEqual(['h3', 'h2']);
    expect(ws['dns.svcb.svcparam.port']).toEqual(['443']);
    expect(ws['dns.svcb.svcparam.ipv4hint.ip']).toEqual(['192.0.2.1', '192.0.2.2']);
    expect(ws['dns.svcb.svcparam.ipv6hint.ip']).toEqual(['2001:db8::1']);
    expect(ws['dns.resp.type']).toEqual(['1', '28', '15', '16', '12', '2', '65', '99']);
  });

  it('parses a real query from dig (EDNS OPT record and cookie included)', async () => {
    const sock = createSocket('udp4');
    sock.bind(0, '127.0.0.1');
    await once(sock, 'listening');
    const port = (sock.address() as AddressInfo).port;
    const got = once(sock, 'message');
    const dig = execFile('dig', ['-p', String(port), '@127.0.0.1', '+tries=1', '+time=1', 'TXT', '354812345678453.t.example.com']);
    try {
      const [query] = (await got) as [Buffer];
      const m = parseDnsMessage(query);
      expect(m.qr).toBe(false);
      expect(m.questions).toEqual([{ name: '354812345678453.t.example.com', type: 'TXT', typeCode: 16, class: 1 }]);
      expect(m.additionals.map((a) => a.type)).toEqual(['OPT']);
      expect(peekDnsQuestion(query).question?.name).toBe('354812345678453.t.example.com');
    } finally {
      dig.kill();
      sock.close();
    }
  });

  it('writes non-printable and dot bytes in labels as escapes, and encodeName reverses them', () => {
    const name = Buffer.concat([Buffer.from([3, 0x61, 0x2e, 0x00, 2, 0x20, 0x5c, 0]), hex('0001 0001')]);
    const msg = Buffer.concat([hex('0001 0100 0001 0000 0000 0000'), name]);
    const q = parseDnsMessage(msg).questions[0];
    expect(q.name).toBe('a\\.\\000.\\032\\\\');
    expect(encodeName(q.name)).toEqual(name.subarray(0, 8));
  });
});

describe('hostile input', () => {
  const header = (qd: number, an = 0): Buffer => {
    const h = Buffer.alloc(12);
    h.writeUInt16BE(0xbeef, 0);
    h.writeUInt16BE(qd, 4);
    h.writeUInt16BE(an, 6);
    return h;
  };

  it('rejects a pointer to itself, a forward pointer and a two-pointer loop', () => {
    const self = Buffer.concat([header(1), hex('c00c 0001 0001')]);
    const forward = Buffer.concat([header(1), hex('c00e 00 0001 0001')]);
    // Answer name at 17 is 'a' + pointer to 12, whose name is a pointer to 17: a loop.
    const loop = Buffer.concat([header(1, 1), hex('c011 0001 0001'), hex('01 61 c00c 0001 0001 00000000 0000')]);
    for (const m of [self, forward, loop]) expect(() => parseDnsMessage(m)).toThrow(DnsParseError);
  });

  it('rejects a name over 255 bytes built from a chain of backward pointers', () => {
    // An opaque TYPE99 record carries five 63-byte labels, each followed by a pointer to the
    // previous one; a second record's owner points at the last: every label is legal, the name
    // they spell is 5 * 64 + 1 bytes.
    const chain: Buffer[] = [];
    const rdataStart = 12 + 11;
    let off = rdataStart;
    let prev = -1;
    for (let i = 0; i < 5; i++) {
      const label = Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x61)]);
      const tail = prev < 0 ? Buffer.from([0]) : Buffer.from([0xc0 | (prev >> 8), prev & 0xff]);
      chain.push(label, tail);
      prev = off;
      off += label.length + tail.length;
    }
    const rdata = Buffer.concat(chain);
    const rec1 = Buffer.concat([hex('00 0063 0001 00000000'), Buffer.from([rdata.length >> 8, rdata.length & 0xff]), rdata]);
    const rec2 = Buffer.concat([Buffer.from([0xc0 | (prev >> 8), prev & 0xff]), hex('0010 0001 00000000 0000')]);
    const msg = Buffer.concat([header(0, 2), rec1, rec2]);
    expect(() => parseDnsMessage(msg)).toThrow(/longer than 255/);
    // Four labels (257 bytes) are already too long; three (193) are fine.
    const ok = Buffer.concat([header(0, 1), rec1]);
    expect(parseDnsMessage(ok).answers[0].type).toBe('TYPE99');
  });

  it('fails cleanly at every truncation of a valid message', () => {
    for (let len = 0; len < compressed.length; len++) {
      expect(() => parseDnsMessage(compressed.subarray(0, len))).toThrow(DnsParseError);
    }
  });

  it('survives random and bit-flipped input with DnsParseError only', () => {
    let seed = 12345;
    const rand = (): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed; };
    const inputs: Buffer[] = [];
    for (let i = 0; i < 3000; i++) {
      const b = Buffer.alloc(rand() % 80);
      for (let j = 0; j < b.length; j++) b[j] = rand() & 0xff;
      inputs.push(b);
      const flipped = Buffer.from(compressed);
      flipped[rand() % flipped.length] ^= 1 << (rand() % 8);
      inputs.push(flipped);
    }
    for (const b of inputs) {
      try {
        parseDnsMessage(b);
      } catch (e) {
        expect(e).toBeInstanceOf(DnsParseError);
      }
      expect(() => buildDnsErrorResponse(b, 'SERVFAIL')).not.toThrow();
    }
  });

  it('rejects counts that cannot fit before looping over them', () => {
    const h = header(0xffff, 0xffff);
    expect(() => parseDnsMessage(Buffer.concat([h, Buffer.alloc(20)]))).toThrow(/do not fit/);
  });

  it('rejects record data whose length disagrees with its type', () => {
    const bad = Buffer.concat([header(0, 1), hex('00 0001 0001 00000000 0003 010203')]);
    expect(() => parseDnsMessage(bad)).toThrow(/A record of 3 bytes/);
  });
});

describe('building', () => {
  it('answers a query with SERVFAIL or REFUSED, echoing id, RD and the question', () => {
    const query = buildDnsQuery(0x4242, 'zzhc.vnet.cn', 'AAAA');
    for (const rcode of ['SERVFAIL', 'REFUSED'] as const) {
      const answer = buildDnsErrorResponse(query, rcode)!;
      const m = parseDnsMessage(answer);
      expect(m).toMatchObject({ id: 0x4242, qr: true, rd: true, rcodeName: rcode, answers: [] });
      expect(m.questions).toEqual([{ name: 'zzhc.vnet.cn', type: 'AAAA', typeCode: 28, class: 1 }]);
      const [ws] = tsharkFields([udp4ForPcap(answer)], ['dns.flags.rcode', 'dns.qry.name', 'dns.id', 'dns.flags.response']);
      expect(ws['dns.flags.rcode']).toEqual([rcode === 'SERVFAIL' ? '2' : '5']);
      expect(ws['dns.qry.name']).toEqual(['zzhc.vnet.cn']);
      expect(ws['dns.id']).toEqual(['0x4242']);
      expect(ws['dns.flags.response']).toEqual(['1']);
    }
  });

  it('answers a query with a broken question with a bare header, and ignores non-queries', () => {
    const broken = Buffer.concat([buildDnsQuery(9, 'x.example').subarray(0, 12), hex('c00c 0001 0001')]);
    const m = parseDnsMessage(buildDnsErrorResponse(broken, 'FORMERR')!);
    expect(m).toMatchObject({ id: 9, rcodeName: 'FORMERR', questions: [] });
    expect(buildDnsErrorResponse(Buffer.alloc(5), 'SERVFAIL')).toBeUndefined();
    expect(buildDnsErrorResponse(compressed, 'SERVFAIL')).toBeUndefined();
  });

  it('round-trips a built message and refuses names that cannot exist', () => {
    const q = buildDnsQuery(1, 'example.org.', 'MX');
    expect(parseDnsMessage(q).questions[0]).toMatchObject({ name: 'example.org', type: 'MX' });
    expect(() => encodeName(`${'a'.repeat(64)}.com`)).toThrow(/63/);
    expect(() => encodeName(Array(60).fill('abcd').join('.'))).toThrow(/255/);
    expect(() => encodeName('a..b')).toThrow(/empty label/);
  });
});
