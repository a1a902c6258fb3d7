/**
 * The DNS forwarder against real UDP resolvers on loopback: answers only from the resolver asked
 * and only for the ID it sent (a spoofed answer from another port or with another ID is ignored),
 * the phone's ID restored, resolver addresses in every format node's dns.getServers() uses.
 */
import { createSocket, type Socket } from 'node:dgram';
import { getServers } from 'node:dns';
import { once } from 'node:events';
import { AddressInfo } from 'node:net';
import { buildDnsMessage, buildDnsQuery, parseDnsMessage } from '../../proxy/capture/dns/codec';
import { DnsForwarder, parseUpstream } from '../../proxy/capture/dns/forwarder';

describe('parseUpstream', () => {
  it('reads IP, IP:PORT, [IPv6]:PORT and bare IPv6', () => {
    expect(parseUpstream('10.255.255.53')).toMatchObject({ host: '10.255.255.53', port: 53 });
    expect(parseUpstream('127.0.0.1:5353')).toMatchObject({ host: '127.0.0.1', port: 5353 });
    expect(parseUpstream('[::1]:5300')).toMatchObject({ host: '::1', port: 5300 });
    expect(parseUpstream('2001:4860:4860::8888')).toMatchObject({ host: '2001:4860:4860::8888', port: 53 });
    expect(() => parseUpstream('dns.google')).toThrow(/not a resolver address/);
  });

  it('defaults to the laptop resolvers', () => {
    expect(new DnsForwarder({ upstreams: [] }).upstreams.map((u) => u.label)).toEqual(getServers());
  });
});

describe('DnsForwarder', () => {
  const socks: Socket[] = [];
  const bound = async (): Promise<{ sock: Socket; port: number }> => {
    const sock = createSocket('udp4');
    socks.push(sock);
    sock.bind(0, '127.0.0.1');
    await once(sock, 'listening');
    return { sock, port: (sock.address() as AddressInfo).port };
  };
  afterAll(() => socks.forEach((s) => s.close()));

  it('ignores spoofed answers and restores the phone\'s ID', async () => {
    const resolver = await bound();
    const spoofer = await bound();
    const seenIds: number[] = [];
    resolver.sock.on('message', (msg, rinfo) => {
      const q = parseDnsMessage(msg);
      seenIds.push(q.id);
      const answer = (id: number, addr: string) => buildDnsMessage({ id, qr: true, ra: true, questions: [{ name: q.questions[0].name, type: 'A' }], answers: [{ name: q.questions[0].name, type: 'A', ttl: 5, data: addr }] });
      // Wrong source port with the right ID, then the right source with a wrong ID, then the real answer.
      spoofer.sock.send(answer(q.id, '6.6.6.6'), rinfo.port, rinfo.address);
      resolver.sock.send(answer((q.id + 1) & 0xffff, '6.6.6.7'), rinfo.port, rinfo.address);
      setTimeout(() => resolver.sock.send(answer(q.id, '192.0.2.1'), rinfo.port, rinfo.address), 30);
    });
    const fwd = new DnsForwarder({ upstreams: [`127.0.0.1:${resolver.port}`], timeoutMs: 2000 });
    try {
      const results = await Promise.all([1, 1, 1, 1, 1].map((id) => fwd.forward(buildDnsQuery(id, 'spoof.example', 'A'))));
      for (const r of results) {
        expect(r.ok).toBe(true);
        if (!r.ok) continue;
        const m = parseDnsMessage(r.answer);
        expect(m.id).toBe(1);
        expect(m.answers.map((a) => a.data)).toEqual(['192.0.2.1']);
      }
      // Five queries with the same phone ID went out with fresh random IDs.
      expect(new Set(seenIds).size).toBeGreaterThan(1);
    } finally {
      await fwd.close();
    }
  });

  it('reports every resolver that failed, and stops at once when closed', async () => {
    const silent = await bound();
    const fwd = new DnsForwarder({ upstreams: [`127.0.0.1:${silent.port}`, `127.0.0.1:${silent.port}`], timeoutMs: 100 });
    const r = await fwd.forward(buildDnsQuery(5, 'x.example'));
    expect(r).toMatchObject({ ok: false, error: expect.stringMatching(/no answer within 100 ms; .*no answer within 100 ms/) });
    const slow = new DnsForwarder({ upstreams: [`127.0.0.1:${silent.port}`], timeoutMs: 10_000 });
    const pending = slow.forward(buildDnsQuery(6, 'y.example'));
    await new Promise((res) => setTimeout(res, 50));
    const t0 = Date.now();
    await slow.close();
    expect(await pending).toMatchObject({ ok: false });
    expect(Date.now() - t0).toBeLessThan(1000);
    await fwd.close();
  });
});
