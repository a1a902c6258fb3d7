/**
 * Streams the packets out of a pcap or pcapng file (tcpdump, Wireshark, PCAPdroid) without ever
 * holding the whole file: a fixed window of the file is read at a time and each packet is handed
 * out as a view into it. A corrupt or truncated file stops with a CaptureError naming the byte
 * offset; every packet before it has already been delivered.
 */
import * as fs from 'node:fs';

export type CaptureFormat = 'pcap' | 'pcapng';

export interface Packet {
  /** Capture time, epoch milliseconds (fractional). */
  ts: number;
  /** LINKTYPE_* of the interface it was captured on. */
  linkType: number;
  /** The captured bytes: a view valid only until the next packet is read (copy what you keep). */
  readonly data: Buffer;
  /** The same bytes as buf[start, end), without making a view (valid until the next packet). */
  buf: Buffer;
  start: number;
  end: number;
  /** Byte offset of the packet record in the file. */
  offset: number;
}

export class CaptureError extends Error {
  constructor(readonly offset: number, message: string) {
    super(`${message} at byte offset ${offset}`);
  }
}

/** Larger packet records than this are treated as corruption, not allocated. */
export const MAX_PACKET_BYTES = 1024 * 1024;
const WINDOW_BYTES = 4 * 1024 * 1024;
const FIRST_READ_BYTES = 16 * 1024;

const PCAP_MICRO = 0xa1b2c3d4;
const PCAP_NANO = 0xa1b23c4d;
const PCAPNG_SHB = 0x0a0d0d0a;
const PCAPNG_BYTE_ORDER = 0x1a2b3c4d;

/** The format from a file's first four bytes (magic number), or null when it is neither. */
export function sniffCaptureFormat(head: Buffer): CaptureFormat | null {
  if (head.length < 4) return null;
  const be = head.readUInt32BE(0);
  const le = head.readUInt32LE(0);
  if (be === PCAP_MICRO || le === PCAP_MICRO || be === PCAP_NANO || le === PCAP_NANO) return 'pcap';
  if (be === PCAPNG_SHB) return 'pcapng';
  return null;
}

/** A sliding window over a file descriptor: `ensure(n)` makes n bytes from `pos` available. */
class Window {
  buf = Buffer.allocUnsafe(WINDOW_BYTES);
  /** File offset of buf[0]. */
  base = 0;
  len = 0;
  pos = 0;
  private eof = false;

  constructor(private readonly fd: number) {}

  get offset(): number {
    return this.base + this.pos;
  }

  /** False when the file ends before n more bytes. */
  ensure(n: number): boolean {
    if (this.pos + n <= this.len) return true;
    if (this.eof) return false;
    if (this.pos > 0) {
      this.buf.copy(this.buf, 0, this.pos, this.len);
      this.base += this.pos;
      this.len -= this.pos;
      this.pos = 0;
    }
    if (n > this.buf.length) {
      const bigger = Buffer.allocUnsafe(n + 65536);
      this.buf.copy(bigger, 0, 0, this.len);
      this.buf = bigger;
    }
    while (this.len < n && !this.eof) {
      /*
       * The first read is small: the reader's refill path then runs within the first packets, before
       * the packet loop is optimised, instead of deoptimising it (and its recompilation) 4 MB in.
       */
      const room = this.buf.length - this.len;
      const got = fs.readSync(this.fd, this.buf, this.len, this.base === 0 && this.len === 0 ? Math.min(room, FIRST_READ_BYTES) : room, this.base + this.len);
      if (got === 0) this.eof = true;
      this.len += got;
    }
    return this.len >= n;
  }

  /** Bytes left in the file from pos (after ensure has hit the end). */
  available(): number {
    return this.len - this.pos;
  }
}

/**
 * Reads the packets of an open capture file, calling onPacket for each. Throws CaptureError on a
 * corrupt or truncated file (after delivering every packet before it); onBytes reports progress.
 */
export function readPackets(fd: number, onPacket: (p: Packet) => void, onBytes?: (offset: number) => void): CaptureFormat {
  const w = new Window(fd);
  if (!w.ensure(4)) throw new CaptureError(0, 'file too short to be a capture');
  const format = sniffCaptureFormat(w.buf.subarray(0, 4));
  if (format === 'pcap') readPcap(w, onPacket, onBytes);
  else if (format === 'pcapng') readPcapng(w, onPacket, onBytes);
  else throw new CaptureError(0, 'not a pcap or pcapng file (unknown magic number)');
  return format;
}

/** A packet as a place in the read window; `data` makes a view only when asked. */
class PacketView implements Packet {
  constructor(
    public linkType: number,
    public ts = 0,
    public buf: Buffer = EMPTY,
    public start = 0,
    public end = 0,
    public offset = 0,
  ) {}
  get data(): Buffer {
    return this.buf.subarray(this.start, this.end);
  }
}

const EMPTY = Buffer.alloc(0);

function truncated(w: Window, what: string, start: number, need: number): CaptureError {
  return new CaptureError(start, `capture truncated: ${what} needs ${need} bytes but the file ends ${w.available()} bytes later`);
}

function readPcap(w: Window, onPacket: (p: Packet) => void, onBytes?: (offset: number) => void): void {
  if (!w.ensure(24)) throw truncated(w, 'pcap file header', 0, 24);
  const magicLe = w.buf.readUInt32LE(0);
  const le = magicLe === PCAP_MICRO || magicLe === PCAP_NANO;
  const nano = magicLe === PCAP_NANO || w.buf.readUInt32BE(0) === PCAP_NANO;
  const u32 = le ? (o: number) => w.buf.readUInt32LE(o) : (o: number) => w.buf.readUInt32BE(o);
  /* The upper bits of the link-type field carry FCS flags (pcap spec, "LinkType and additional information"). */
  const linkType = u32(20) & 0x0fffffff;
  const fracToMs = nano ? 1e-6 : 1e-3;
  const packet = new PacketView(linkType);
  const fracLimit = nano ? 1e9 : 1e6;
  w.pos = 24;
  let packets = 0;
  while (w.pos < w.len || w.ensure(1)) {
    const start = w.offset;
    if (w.pos + 16 > w.len && !w.ensure(16)) throw truncated(w, 'packet record header', start, 16);
    const p = w.pos;
    const b = w.buf;
    /* The record header read in place (Buffer's readUInt32 checks its arguments on every call). */
    const sec = le ? (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0 : u32(p);
    const frac = le ? (b[p + 4] | (b[p + 5] << 8) | (b[p + 6] << 16) | (b[p + 7] << 24)) >>> 0 : u32(p + 4);
    const incl = le ? (b[p + 8] | (b[p + 9] << 8) | (b[p + 10] << 16) | (b[p + 11] << 24)) >>> 0 : u32(p + 8);
    if (incl > MAX_PACKET_BYTES) throw new CaptureError(start, `corrupt packet record: captured length ${incl} is implausible`);
    if (frac >= fracLimit) throw new CaptureError(start, `corrupt packet record: sub-second timestamp ${frac} out of range`);
    if (w.pos + 16 + incl > w.len && !w.ensure(16 + incl)) throw truncated(w, 'packet data', start, 16 + incl);
    const q = w.pos + 16;
    w.pos = q + incl;
    /* One Packet object reused for every record: the callee must not keep it (nor its data view). */
    packet.ts = sec * 1000 + frac * fracToMs;
    packet.buf = w.buf;
    packet.start = q;
    packet.end = q + incl;
    packet.offset = start;
    onPacket(packet);
    if (onBytes && (++packets & 1023) === 0) onBytes(w.offset);
  }
}

interface Interface {
  linkType: number;
  /** Multiplier from timestamp units to milliseconds. */
  unitMs: number;
  offsetMs: number;
}

function readPcapng(w: Window, onPacket: (p: Packet) => void, onBytes?: (offset: number) => void): void {
  let le = true;
  let interfaces: Interface[] = [];
  const u32 = (o: number) => (le ? w.buf.readUInt32LE(o) : w.buf.readUInt32BE(o));
  const u16 = (o: number) => (le ? w.buf.readUInt16LE(o) : w.buf.readUInt16BE(o));
  let blocks = 0;
  while (w.ensure(1)) {
    const start = w.offset;
    if (!w.ensure(12)) throw truncated(w, 'block header', start, 12);
    let p = w.pos;
    const rawType = w.buf.readUInt32LE(p);
    if (rawType === PCAPNG_SHB) {
      /* A section header sets the byte order of everything up to the next one. */
      const bom = w.buf.readUInt32LE(p + 8);
      if (bom === PCAPNG_BYTE_ORDER) le = true;
      else if (w.buf.readUInt32BE(p + 8) === PCAPNG_BYTE_ORDER) le = false;
      else throw new CaptureError(start, 'corrupt section header: bad byte-order magic');
      interfaces = [];
    } else if (blocks === 0) {
      throw new CaptureError(start, 'pcapng file does not start with a section header');
    }
    const type = u32(p);
    const total = u32(p + 4);
    if (total < 12 || total % 4 !== 0 || total > MAX_PACKET_BYTES + 4096) throw new CaptureError(start, `corrupt block: length ${total} is invalid`);
    if (!w.ensure(total)) throw truncated(w, `block of type ${type}`, start, total);
    /* ensure may have slid the window: the block now starts at pos. */
    p = w.pos;
    if (u32(p + total - 4) !== total) throw new CaptureError(start, 'corrupt block: trailing length does not match');
    const body = p + 8;
    const bodyEnd = p + total - 4;
    w.pos = p + total;
    blocks++;
    if (type === 1) {
      if (bodyEnd - body < 8) throw new CaptureError(start, 'corrupt interface description block');
      interfaces.push(readInterface(w.buf, body, bodyEnd, u16(body), u16, (o) => (le ? u32(o + 4) * 4294967296 + u32(o) : u32(o) * 4294967296 + u32(o + 4))));
    } else if (type === 6 || type === 2) {
      /* Enhanced packet block (6) and the obsolete packet block (2) share this layout. */
      if (bodyEnd - body < 20) throw new CaptureError(start, 'corrupt packet block: too short');
      const ifId = type === 6 ? u32(body) : u16(body);
      const iface = interfaces[ifId];
      if (!iface) throw new CaptureError(start, `packet block names interface ${ifId}, which was not described`);
      const ts = (u32(body + 4) * 4294967296 + u32(body + 8)) * iface.unitMs + iface.offsetMs;
      const cap = u32(body + 12);
      if (body + 20 + cap > bodyEnd) throw new CaptureError(start, `corrupt packet block: captured length ${cap} exceeds the block`);
      onPacket(new PacketView(iface.linkType, ts, w.buf, body + 20, body + 20 + cap, start));
    } else if (type === 3) {
      /* Simple packet block: interface 0, no timestamp; captured length is what the block holds. */
      const iface = interfaces[0];
      if (!iface) throw new CaptureError(start, 'simple packet block before any interface description');
      const orig = u32(body);
      const cap = Math.min(orig, bodyEnd - body - 4);
      onPacket(new PacketView(iface.linkType, 0, w.buf, body + 4, body + 4 + cap, start));
    }
    /* Other block types (name resolution, statistics, custom, decryption secrets...) are skipped. */
    if (onBytes && (blocks & 1023) === 0) onBytes(w.offset);
  }
}

function readInterface(buf: Buffer, body: number, end: number, linkType: number, u16: (o: number) => number, u64: (o: number) => number): Interface {
  const iface: Interface = { linkType, unitMs: 1e-3, offsetMs: 0 };
  let o = body + 8;
  while (o + 4 <= end) {
    const code = u16(o);
    const len = u16(o + 2);
    const v = o + 4;
    if (code === 0 || v + len > end) break;
    if (code === 9 && len >= 1) {
      const r = buf[v];
      const seconds = r & 0x80 ? Math.pow(2, -(r & 0x7f)) : Math.pow(10, -r);
      iface.unitMs = seconds * 1000;
    } else if (code === 14 && len >= 8) {
      iface.offsetMs = u64(v) * 1000;
    }
    o = v + ((len + 3) & ~3);
  }
  return iface;
}
