/**
 * Why: VPN mode handles every packet of a phone in JavaScript. This measures the IP layer alone
 * (ip/stack.ts, no WireGuard crypto, no network namespaces), so the end-to-end figures of
 * bench-tunnel can be split into "IP layer" and "the rest": packets per second and CPU time per
 * packet for (1) ICMP echo answered in-process, (2) the parse/build work of one UDP datagram and
 * (3) UDP relayed through a real loopback socket to an echo server and back (kernel included).
 * Each figure is the median of 5 runs. Run: npm run bench:ip-stack
 */
import { createSocket } from 'dgram';
import { once } from 'events';
import { AddressInfo } from 'net';
import { performance } from 'perf_hooks';
import { finish, sumWords } from '../proxy/capture/tunnel/ip/checksum';
import { buildIpv4Packet, parseIpPacket, PROTO_ICMP } from '../proxy/capture/tunnel/ip/packet';
import { TunnelStack } from '../proxy/capture/tunnel/ip/stack';
import { buildUdpPacket, parseUdp } from '../proxy/capture/tunnel/ip/udp';
import type { TunnelPeer } from '../proxy/capture/tunnel/types';

const PHONE: TunnelPeer = { publicKey: 'YmVuY2gtcGhvbmUta2V5LTAwMDAwMDAwMDAwMDAwMDA=', name: 'bench', ipv4: '10.77.0.2', ipv6: 'fd77::2' };
const RUNS = 5;
const PAYLOAD = 1200;

interface Run { pps: number; cpuUs: number }

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function report(name: string, runs: Run[]): void {
  const pps = median(runs.map((r) => r.pps));
  const cpu = median(runs.map((r) => r.cpuUs));
  const mbit = (pps * PAYLOAD * 8) / 1e6;
  console.log(`${name.padEnd(44)} ${Math.round(pps).toString().padStart(8)} packets/s  ${mbit.toFixed(0).padStart(6)} Mbit/s of ${PAYLOAD}-byte payloads  ${cpu.toFixed(2)} µs CPU/packet`);
}

function timed(n: number, work: () => void): Run {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  work();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { pps: n / (ms / 1000), cpuUs: (cpu.user + cpu.system) / n };
}

function stackFor(send: (b: Buffer) => void): TunnelStack {
  return new TunnelStack({
    mtu: 1420, gatewayIpv4: '10.77.0.1', gatewayIpv6: 'fd77::1', dnsUpstreams: ['127.0.0.1:9'], send: (_p, b) => send(b),
    recorder: { record: () => undefined }, allowLoopback: true, udpIdleMs: 60_000,
  });
}

function echoRequest(): Buffer {
  const msg = Buffer.alloc(8 + PAYLOAD, 0x61);
  msg[0] = 8;
  msg.writeUInt16BE(finish(sumWords(msg)), 2);
  return buildIpv4Packet({ src: PHONE.ipv4, dst: '192.0.2.1', protocol: PROTO_ICMP, payload: msg });
}

async function relayRun(n: number, window: number): Promise<Run> {
  const echo = createSocket('udp4');
  echo.on('message', (m, r) => echo.send(m, r.port, r.address));
  echo.bind(0, '127.0.0.1');
  await once(echo, 'listening');
  const port = (echo.address() as AddressInfo).port;
  const packet = buildUdpPacket({ version: 4, src: PHONE.ipv4, dst: '127.0.0.1', srcPort: 40000, dstPort: port, payload: Buffer.alloc(PAYLOAD, 0x62) });
  let sent = 0;
  let back = 0;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((r) => { done = r; });
  const stack = stackFor(() => {
    back++;
    if (back === n) done();
    else if (sent < n) { sent++; stack.receive(PHONE, packet); }
  });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (; sent < window; sent++) stack.receive(PHONE, packet);
  // Datagrams lost on loopback under load would stall the window: top up every 50 ms if stuck.
  let last = -1;
  const kick = setInterval(() => { if (back === last && sent < n) { sent++; stack.receive(PHONE, packet); } last = back; }, 50);
  await Promise.race([finished, new Promise((r) => setTimeout(r, 60_000))]);
  clearInterval(kick);
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await stack.close();
  echo.close();
  return { pps: back / (ms / 1000), cpuUs: (cpu.user + cpu.system) / back };
}

async function main(): Promise<void> {
  console.log(`IP layer benchmark, ${RUNS} runs each, medians (node ${process.version})`);
  const ping = echoRequest();
  const echoRuns: Run[] = [];
  for (let i = 0; i < RUNS; i++) {
    const stack = stackFor(() => undefined);
    echoRuns.push(timed(100_000, () => { for (let k = 0; k < 100_000; k++) stack.receive(PHONE, ping); }));
    await stack.close();
  }
  report('ICMP echo answered (in-process)', echoRuns);

  const udp = buildUdpPacket({ version: 4, src: PHONE.ipv4, dst: '192.0.2.1', srcPort: 40000, dstPort: 9999, payload: Buffer.alloc(PAYLOAD, 1) });
  const parseRuns: Run[] = [];
  for (let i = 0; i < RUNS; i++) {
    parseRuns.push(timed(100_000, () => {
      for (let k = 0; k < 100_000; k++) {
        const p = parseIpPacket(udp);
        if (!p.ok) throw new Error('bench packet did not parse');
        const u = parseUdp(p.packet);
        if (!u.ok) throw new Error('bench datagram did not parse');
        buildUdpPacket({ version: 4, src: p.packet.dstBytes, dst: p.packet.srcBytes, srcPort: 9999, dstPort: 40000, payload: u.datagram.payload });
      }
    }));
  }
  report('UDP parse in + build out (no sockets)', parseRuns);

  const relayRuns: Run[] = [];
  for (let i = 0; i < RUNS; i++) relayRuns.push(await relayRun(50_000, 64));
  report('UDP relayed via loopback echo (round trips)', relayRuns);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
