/**
 * Test helper: writes packets to a classic pcap file and reads them back with Debian's tshark, an
 * independent decoder, so the tunnel's packet builders and the DNS codec are checked against
 * Wireshark's dissectors rather than against themselves. The UDP wrapper here is deliberately
 * separate from proxy/capture/tunnel/ip (checksum 0 = none, allowed in IPv4).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** LINKTYPE_RAW: each record is one IPv4 or IPv6 packet, as carried in the tunnel. */
export const LINKTYPE_RAW = 101;

export function pcapBytes(packets: Buffer[], linktype = LINKTYPE_RAW): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(262144, 16);
  header.writeUInt32LE(linktype, 20);
  const records = packets.map((p, i) => {
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(1_700_000_000 + i, 0);
    rec.writeUInt32LE(p.length, 8);
    rec.writeUInt32LE(p.length, 12);
    return Buffer.concat([rec, p]);
  });
  return Buffer.concat([header, ...records]);
}

/** A minimal IPv4/UDP packet around a payload (IPv4 header checksum computed, UDP checksum 0). */
export function udp4ForPcap(payload: Buffer, srcPort = 53, dstPort = 40000): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 8 + payload.length, 2);
  ip[8] = 64;
  ip[9] = 17;
  Buffer.from([10, 0, 0, 1]).copy(ip, 12);
  Buffer.from([10, 0, 0, 2]).copy(ip, 16);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += ip.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  ip.writeUInt16BE(~sum & 0xffff, 10);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(srcPort, 0);
  udp.writeUInt16BE(dstPort, 2);
  udp.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([ip, udp, payload]);
}

/**
 * Runs tshark over the packets and returns, per packet, the requested fields (all occurrences,
 * as arrays). Checksum validation is switched on so a wrong checksum shows in `_ws.expert`;
 * `prefs` are further tshark preferences (name:value).
 */
export function tsharkFields(packets: Buffer[], fields: string[], linktype = LINKTYPE_RAW, prefs: string[] = []): Record<string, string[]>[] {
  const dir = mkdtempSync(join(tmpdir(), 'phonehome-pcap-'));
  try {
    const file = join(dir, 'packets.pcap');
    writeFileSync(file, pcapBytes(packets, linktype));
    const out = execFileSync('tshark', [
      '-r', file, '-n',
      '-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE',
      ...prefs.flatMap((p) => ['-o', p]),
      '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=a', '-E', 'aggregator=\x1f',
      ...fields.flatMap((f) => ['-e', f]),
    ], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return out.split('\n').filter((l) => l.length > 0).map((line) => {
      const cols = line.split('\t');
      return Object.fromEntries(fields.map((f, i) => [f, cols[i] ? cols[i].split('\x1f') : []]));
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
