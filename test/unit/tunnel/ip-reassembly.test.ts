/**
 * Fragments from the phone: a datagram bigger than the tunnel MTU, fragmented the way tshark
 * reassembles it (see ip-packets.test.ts), arrives in any order and is relayed whole over a real
 * loopback socket; overlapping, oversized, misaligned and abandoned fragments are counted, and
 * the number of incomplete datagrams held is bounded.
 */
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { AddressInfo } from 'node:net';
import { fragmentPacket, parseIpPacket, type IpPacket } from '../../../proxy/capture/tunnel/ip/packet';
import { Reassembler } from '../../../proxy/capture/tunnel/ip/reassembly';
import { TunnelStack } from '../../../proxy/capture/tunnel/ip/stack';
import { buildUdpPacket, parseUdp } from '../../../proxy/capture/tunnel/ip/udp';
import type { TunnelPeer } from '../../../proxy/capture/tunnel/types';
import type { Flow } from '../../../proxy/flow';

const PHONE: TunnelPeer = { publicKey: 'cmVhc3NlbWJseS10ZXN0LXBob25lLWtleS0wMDAwMDA=', name: 'p', ipv4: '10.77.0.5', ipv6: 'fd77::5' };

const ip = (b: Buffer): IpPacket => {
  const r = parseIpPacket(b);
  if (!r.ok) throw new Error(r.reason);
  return r.packet;
};

const pattern = (n: number): Buffer => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7) & 0xff;
  return b;
};

describe('TunnelStack with fragments from the phone', () => {
  it('relays a fragmented datagram whole, over IPv4 and IPv6, whatever the fragment order', async () => {
    const received: Buffer[] = [];
    const echo4 = createSocket('udp4');
    const echo6 = createSocket('udp6');
    for (const s of [echo4, echo6]) s.on('message', (m, r) => { received.push(m); s.send(m, r.port, r.address); });
    echo4.bind(0, '127.0.0.1');
    echo6.bind(0, '::1');
    await Promise.all([once(echo4, 'listening'), once(echo6, 'listening')]);
    const sent: Buffer[] = [];
    const flows: Flow[] = [];
    const stack = new TunnelStack({
      mtu: 1420, gatewayIpv4: '10.77.0.1', gatewayIpv6: 'fd77::1', dnsUpstreams: ['127.0.0.1:9'], send: (_p, b) => sent.push(b),
      recorder: { record: (f) => flows.push(f) }, udpIdleMs: 60_000, allowLoopback: true,
    });
    try {
      const payload = pattern(4000);
      const p4 = buildUdpPacket({ version: 4, src: PHONE.ipv4, dst: '127.0.0.1', srcPort: 7001, dstPort: (echo4.address() as AddressInfo).port, payload });
      const p6 = buildUdpPacket({ version: 6, src: PHONE.ipv6, dst: '::1', srcPort: 7002, dstPort: (echo6.address() as AddressInfo).port, payload });
      const f4 = fragmentPacket(p4, 1420);
      const f6 = fragmentPacket(p6, 1280);
      expect(f4.length).toBe(3);
      expect(f6.length).toBe(4);
      for (const f of [...f4].reverse()) stack.receive(PHONE, f);
      for (const f of [f6[2], f6[0], f6[3], f6[1]]) stack.receive(PHONE, f);
      const end = Date.now() + 3000;
      while (received.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
      expect(received).toEqual([payload, payload]);
      // The echoes come back fragmented to fit the tunnel MTU.
      while (sent.length < 6 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
      expect(sent.every((b) => b.length <= 1420)).toBe(true);
      const st = stack.stats();
      expect(st).toMatchObject({ fragmentsReassembled: 7, fragmentsHeld: 0, udpDatagramsOut: 2, udpDatagramsIn: 2 });
      expect(st.dropped).toEqual({});
      // And the stack's own fragments reassemble to the echoed datagram.
      const back = new Reassembler();
      const whole = sent.filter((b) => b[0] >> 4 === 4).map((b) => back.add(ip(b))).find((r) => r.kind === 'done');
      expect(whole?.kind).toBe('done');
      if (whole?.kind === 'done') {
        const u = parseUdp(ip(whole.packet));
        expect(u.ok && u.datagram.payload.equals(payload)).toBe(true);
      }
    } finally {
      await stack.close();
      echo4.close();
      echo6.close();
    }
    expect(flows.filter((f) => f.kind === 'udp').map((f) => f.requestBody.size)).toEqual([4000, 4000]);
  });
});

describe('Reassembler', () => {
  const frags = (n = 3000, id?: number): IpPacket[] => {
    const p = buildUdpPacket({ version: 4, src: PHONE.ipv4, dst: '192.0.2.1', srcPort: 1, dstPort: 2, payload: pattern(n) });
    if (id !== undefined) p.writeUInt16BE(id, 4);
    return fragmentPacket(p, 1420).map(ip);
  };

  it('drops a datagram whose fragments overlap, are misaligned, or exceed 64 KiB', () => {
    const r = new Reassembler();
    const [a, b] = frags();
    expect(r.add(a).kind).toBe('held');
    const overlapping = { ...b, fragment: { ...b.fragment!, offset: b.fragment!.offset - 8 } };
    expect(r.add(overlapping)).toEqual({ kind: 'dropped', reason: 'fragment-overlap', fragments: 2 });
    expect(r.size).toBe(0);
    const misaligned = { ...a, payload: a.payload.subarray(0, 100) };
    expect(r.add(misaligned)).toMatchObject({ kind: 'dropped', reason: 'bad-fragment' });
    const far = { ...b, fragment: { ...b.fragment!, offset: 65528 } };
    expect(r.add(far)).toMatchObject({ kind: 'dropped', reason: 'fragment-too-big' });
    const [, , last] = frags();
    const contradicting = { ...last, fragment: { ...last.fragment!, offset: last.fragment!.offset + 8 } };
    expect(r.add(last).kind).toBe('held');
    expect(r.add(contradicting)).toMatchObject({ kind: 'dropped', reason: 'bad-fragment' });
  });

  it('gives up on incomplete datagrams after the timeout and holds at most maxDatagrams', () => {
    const r = new Reassembler({ timeoutMs: 1000, maxDatagrams: 4 });
    for (let id = 0; id < 6; id++) r.add(frags(3000, id)[0], 0);
    expect(r.expire(10)).toBe(2); // the two oldest, beyond the limit
    expect(r.size).toBe(4);
    expect(r.expire(999)).toBe(0);
    expect(r.expire(1000)).toBe(4);
    expect(r.size).toBe(0);
  });
});
