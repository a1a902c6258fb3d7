/**
 * Test helper: builds capture files byte by byte following the formats' specifications (pcap:
 * wiki.wireshark.org/Development/LibpcapFileFormat; pcapng: RFC draft-ietf-opsawg-pcapng; link
 * types: tcpdump.org/linktypes.html), so the reader is checked on every variant tcpdump alone
 * would not produce (big-endian, nanosecond, SLL2, VLAN, fragments, several interfaces...).
 */
import * as fs from 'node:fs';

export interface Frame {
  /** Epoch milliseconds. */
  ts: number;
  data: Buffer;
}

function checksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
  if (b.length % 2) sum += b[b.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function ip4Bytes(s: string): Buffer {
  return Buffer.from(s.split('.').map(Number));
}

export function ipv4(src: string, dst: string, proto: number, payload: Buffer, o: { id?: number; fragOffset?: number; more?: boolean } = {}): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + payload.length, 2);
  h.writeUInt16BE(o.id ?? 1, 4);
  h.writeUInt16BE(((o.more ? 1 : 0) << 13) | ((o.fragOffset ?? 0) / 8), 6);
  h[8] = 64;
  h[9] = proto;
  ip4Bytes(src).copy(h, 12);
  ip4Bytes(dst).copy(h, 16);
  h.writeUInt16BE(checksum(h), 10);
  return Buffer.concat([h, payload]);
}

/** IPv6 with optional extension headers ([next-header code, body of 6+8n bytes]) before the payload. */
export function ipv6(src: Buffer, dst: Buffer, proto: number, payload: Buffer, ext: Array<[number, Buffer]> = []): Buffer {
  const exts: Buffer[] = [];
  let first = proto;
  for (let i = ext.length - 1; i >= 0; i--) {
    const [code, body] = ext[i];
    const e = Buffer.concat([Buffer.from([first, (body.length + 2) / 8 - 1]), body]);
    exts.unshift(e);
    first = code;
  }
  const rest = Buffer.concat([...exts, payload]);
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(rest.length, 4);
  h[6] = first;
  h[7] = 64;
  src.copy(h, 8);
  dst.copy(h, 24);
  return Buffer.concat([h, rest]);
}

export const TCP = { FIN: 1, SYN: 2, RST: 4, PSH: 8, ACK: 16 };

export function tcp(sport: number, dport: number, seq: number, ack: number, flags: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt32BE(seq >>> 0, 4);
  h.writeUInt32BE(ack >>> 0, 8);
  h[12] = 5 << 4;
  h[13] = flags;
  h.writeUInt16BE(65535, 14);
  return Buffer.concat([h, payload]);
}

export function udp(sport: number, dport: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([h, payload]);
}

export function ethernet(ip: Buffer, vlans: number[] = [], tpids: number[] = []): Buffer {
  const parts: Buffer[] = [Buffer.from("020000000001020000000002", "hex")];
  vlans.forEach((vid, i) => {
    const t = Buffer.alloc(4);
    t.writeUInt16BE(tpids[i] ?? 0x8100, 0);
    t.writeUInt16BE(vid, 2);
    parts.push(t);
  });
  const type = Buffer.alloc(2);
  type.writeUInt16BE(ip[0] >> 4 === 6 ? 0x86dd : 0x0800, 0);
  parts.push(type, ip);
  const frame = Buffer.concat(parts);
  /* Ethernet's minimum frame: short frames are padded (the IP length tells where the datagram ends). */
  return frame.length < 60 ? Buffer.concat([frame, Buffer.alloc(60 - frame.length, 0xee)]) : frame;
}

export function sll(ip: Buffer): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt16BE(0, 0); // packet type: to us
  h.writeUInt16BE(772, 2); // ARPHRD_LOOPBACK
  h.writeUInt16BE(6, 4);
  h.writeUInt16BE(ip[0] >> 4 === 6 ? 0x86dd : 0x0800, 14);
  return Buffer.concat([h, ip]);
}

export function sll2(ip: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(ip[0] >> 4 === 6 ? 0x86dd : 0x0800, 0);
  h.writeUInt32BE(1, 4); // interface index
  h.writeUInt16BE(1, 8);
  h[11] = 6;
  return Buffer.concat([h, ip]);
}

/** BSD null (host byte order: little-endian here) or OpenBSD loop (network byte order) header. */
export function loopback(ip: Buffer, networkOrder: boolean): Buffer {
  const h = Buffer.alloc(4);
  const family = ip[0] >> 4 === 6 ? (networkOrder ? 24 : 30) : 2;
  if (networkOrder) h.writeUInt32BE(family, 0);
  else h.writeUInt32LE(family, 0);
  return Buffer.concat([h, ip]);
}

export function pcapFile(frames: Frame[], o: { linkType?: number; bigEndian?: boolean; nano?: boolean } = {}): Buffer {
  const le = !o.bigEndian;
  const w32 = (b: Buffer, v: number, off: number) => (le ? b.writeUInt32LE(v >>> 0, off) : b.writeUInt32BE(v >>> 0, off));
  const w16 = (b: Buffer, v: number, off: number) => (le ? b.writeUInt16LE(v, off) : b.writeUInt16BE(v, off));
  const h = Buffer.alloc(24);
  w32(h, o.nano ? 0xa1b23c4d : 0xa1b2c3d4, 0);
  w16(h, 2, 4);
  w16(h, 4, 6);
  w32(h, 262144, 16);
  w32(h, o.linkType ?? 1, 20);
  const parts: Buffer[] = [h];
  for (const f of frames) {
    const r = Buffer.alloc(16);
    const sec = Math.floor(f.ts / 1000);
    const frac = o.nano ? Math.round((f.ts - sec * 1000) * 1e6) : Math.round((f.ts - sec * 1000) * 1e3);
    w32(r, sec, 0);
    w32(r, frac, 4);
    w32(r, f.data.length, 8);
    w32(r, f.data.length, 12);
    parts.push(r, f.data);
  }
  return Buffer.concat(parts);
}

/** pcapng writer: sections (each with its byte order), interfaces (link type, if_tsresol), EPB/SPB and arbitrary blocks. */
export class PcapngWriter {
  private parts: Buffer[] = [];
  private le = true;
  private resolutions: number[] = [];

  private block(type: number, body: Buffer): void {
    const padded = Buffer.concat([body, Buffer.alloc((4 - (body.length % 4)) % 4)]);
    const total = 12 + padded.length;
    const b = Buffer.alloc(total);
    this.w32(b, type, 0);
    this.w32(b, total, 4);
    padded.copy(b, 8);
    this.w32(b, total, total - 4);
    this.parts.push(b);
  }

  private w32(b: Buffer, v: number, o: number): void {
    if (this.le) b.writeUInt32LE(v >>> 0, o);
    else b.writeUInt32BE(v >>> 0, o);
  }

  private w16(b: Buffer, v: number, o: number): void {
    if (this.le) b.writeUInt16LE(v, o);
    else b.writeUInt16BE(v, o);
  }

  section(bigEndian = false): this {
    this.le = !bigEndian;
    this.resolutions = [];
    const body = Buffer.alloc(16);
    this.w32(body, 0x1a2b3c4d, 0);
    this.w16(body, 1, 4);
    body.writeInt32LE(-1, 8); // section length unknown (-1 is the same in both byte orders)
    body.writeInt32LE(-1, 12);
    this.block(0x0a0d0d0a, body);
    return this;
  }

  /** tsresol: the if_tsresol byte (6 = µs, the default; 9 = ns; 0x80|n = 2^-n). */
  iface(linkType: number, tsresol?: number): this {
    const opts: Buffer[] = [];
    if (tsresol !== undefined) {
      const o = Buffer.alloc(8);
      this.w16(o, 9, 0);
      this.w16(o, 1, 2);
      o[4] = tsresol;
      opts.push(o);
    }
    const name = Buffer.from('lo');
    const n = Buffer.alloc(4 + 4);
    this.w16(n, 2, 0);
    this.w16(n, name.length, 2);
    name.copy(n, 4);
    opts.push(n, Buffer.alloc(4)); // if_name, then opt_endofopt
    const head = Buffer.alloc(8);
    this.w16(head, linkType, 0);
    this.w32(head, 262144, 4);
    this.block(1, Buffer.concat([head, ...opts]));
    this.resolutions.push(tsresol ?? 6);
    return this;
  }

  epb(ifId: number, f: Frame): this {
    const r = this.resolutions[ifId];
    const unitsPerMs = r & 0x80 ? Math.pow(2, r & 0x7f) / 1000 : Math.pow(10, r) / 1000;
    const units = BigInt(Math.round(f.ts * unitsPerMs));
    const h = Buffer.alloc(20);
    this.w32(h, ifId, 0);
    this.w32(h, Number(units >> 32n), 4);
    this.w32(h, Number(units & 0xffffffffn), 8);
    this.w32(h, f.data.length, 12);
    this.w32(h, f.data.length, 16);
    this.block(6, Buffer.concat([h, f.data]));
    return this;
  }

  spb(data: Buffer): this {
    const h = Buffer.alloc(4);
    this.w32(h, data.length, 0);
    this.block(3, Buffer.concat([h, data]));
    return this;
  }

  other(type: number, body: Buffer): this {
    this.block(type, body);
    return this;
  }

  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** A TCP conversation as packets: handshake, the messages (each split into segments of `mss`), FIN both ways. */
export function tcpConversation(
  c: { ip: string; port: number },
  s: { ip: string; port: number },
  messages: Array<{ from: 'c' | 's'; data: Buffer }>,
  o: { t0?: number; mss?: number; handshake?: boolean; isn?: [number, number] } = {},
): Frame[] {
  let ts = o.t0 ?? 1_700_000_000_000;
  const mss = o.mss ?? 1400;
  const seq = { c: o.isn?.[0] ?? 1000, s: o.isn?.[1] ?? 5000 };
  const out: Frame[] = [];
  const pkt = (from: 'c' | 's', flags: number, payload?: Buffer) => {
    const [a, b] = from === 'c' ? [c, s] : [s, c];
    const other = from === 'c' ? 's' : 'c';
    out.push({ ts: (ts += 1), data: ipv4(a.ip, b.ip, 6, tcp(a.port, b.port, seq[from], seq[other], flags, payload)) });
  };
  if (o.handshake !== false) {
    pkt('c', TCP.SYN);
    seq.c++;
    pkt('s', TCP.SYN | TCP.ACK);
    seq.s++;
    pkt('c', TCP.ACK);
  }
  for (const m of messages) {
    for (let i = 0; i < m.data.length; i += mss) {
      const part = m.data.subarray(i, i + mss);
      pkt(m.from, TCP.ACK | TCP.PSH, part);
      seq[m.from] = (seq[m.from] + part.length) >>> 0;
    }
  }
  pkt('c', TCP.FIN | TCP.ACK);
  seq.c++;
  pkt('s', TCP.FIN | TCP.ACK);
  seq.s++;
  pkt('c', TCP.ACK);
  return out;
}

/**
 * Connections that each stream `bytesEach` bytes of small HTTP requests (bodies of `bodyBytes`; or
 * TLS records of that size with `tls`) from client to server, interleaved segment by segment, with every connection's second segment held back
 * (`hole`: 'late' sends them after all the others, as a retransmission would; 'none' sends it in its
 * place, a capture with no hole). The server acknowledges only at the end, so whatever follows a hole
 * waits in the reader until then: what a one-sided capture of many downloads looks like.
 */
export function* heldBackConnections(o: { connections: number; bytesEach: number; bodyBytes: number; mss: number; hole: 'late' | 'none'; firstBody?: string; tls?: boolean }): Generator<Frame> {
  const server = { ip: '198.51.100.9', port: 9998 };
  let ts = 1_700_000_000_000;
  const streams: Buffer[] = [];
  for (let i = 0; i < o.connections; i++) {
    const parts: Buffer[] = [];
    let size = 0;
    for (let r = 0; size < o.bytesEach; r++) {
      let part: Buffer;
      if (o.tls) {
        /* A handshake record, then application data records (an upload over TLS: nothing of it is kept). */
        const type = r === 0 ? 0x16 : 0x17;
        part = Buffer.concat([Buffer.from([type, 0x03, 0x03, o.bodyBytes >> 8, o.bodyBytes & 0xff]), Buffer.alloc(o.bodyBytes, 0x5a)]);
      } else {
        const body = r === 0 && o.firstBody ? o.firstBody.padEnd(o.bodyBytes, '&') : 'x'.repeat(o.bodyBytes);
        part = Buffer.from(`POST /c${i}/r${r} HTTP/1.1\r\nHost: held.example\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      }
      parts.push(part);
      size += part.length;
    }
    streams.push(Buffer.concat(parts));
  }
  const client = (i: number) => ({ ip: '10.0.0.23', port: 40000 + i });
  const seg = (i: number, k: number) => streams[i].subarray(k * o.mss, (k + 1) * o.mss);
  const cIsn = 1000;
  const sIsn = 5000;
  const packet = (from: { ip: string; port: number }, to: { ip: string; port: number }, seq: number, ack: number, flags: number, payload?: Buffer): Frame => ({
    ts: (ts += 1),
    data: ipv4(from.ip, to.ip, 6, tcp(from.port, to.port, seq, ack, flags, payload)),
  });
  for (let i = 0; i < o.connections; i++) {
    yield packet(client(i), server, cIsn, 0, TCP.SYN);
    yield packet(server, client(i), sIsn, cIsn + 1, TCP.SYN | TCP.ACK);
    yield packet(client(i), server, cIsn + 1, sIsn + 1, TCP.ACK);
  }
  const segments = Math.max(...streams.map((s) => Math.ceil(s.length / o.mss)));
  for (let k = 0; k < segments; k++) {
    for (let i = 0; i < o.connections; i++) {
      if ((k === 1 && o.hole === 'late') || k * o.mss >= streams[i].length) continue;
      yield packet(client(i), server, cIsn + 1 + k * o.mss, sIsn + 1, TCP.ACK | TCP.PSH, seg(i, k));
    }
  }
  if (o.hole === 'late') for (let i = 0; i < o.connections; i++) yield packet(client(i), server, cIsn + 1 + o.mss, sIsn + 1, TCP.ACK | TCP.PSH, seg(i, 1));
  for (let i = 0; i < o.connections; i++) {
    const end = cIsn + 1 + streams[i].length;
    yield packet(server, client(i), sIsn + 1, end, TCP.ACK | TCP.FIN);
    yield packet(client(i), server, end, sIsn + 2, TCP.ACK | TCP.FIN);
  }
}

/** Writes frames as a raw-IPv4 pcap (link type 101) as they come, without holding the file in memory. */
export function writePcapFile(file: string, frames: Iterable<Frame>): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, pcapFile([], { linkType: 101 }));
    let chunk: Buffer[] = [];
    let size = 0;
    for (const f of frames) {
      const record = pcapFile([f], { linkType: 101 }).subarray(24);
      chunk.push(record);
      size += record.length;
      if (size >= 1 << 20) {
        fs.writeSync(fd, Buffer.concat(chunk));
        chunk = [];
        size = 0;
      }
    }
    if (chunk.length) fs.writeSync(fd, Buffer.concat(chunk));
  } finally {
    fs.closeSync(fd);
  }
}
