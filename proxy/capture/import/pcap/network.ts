/**
 * From a captured frame to the IP datagram inside it: strips the link layer (Ethernet with VLAN
 * tags, raw IP, Linux cooked SLL/SLL2, BSD null/loopback), reads the IPv4 or IPv6 header (IPv6
 * extension headers skipped) and reassembles fragments. Frames that are not IP, or too short, are
 * skipped (null), never an exception.
 */
import { FragmentReassembler } from './fragments';

export const LINKTYPE = {
  NULL: 0,
  ETHERNET: 1,
  RAW: 101,
  LOOP: 108,
  LINUX_SLL: 113,
  IPV4: 228,
  IPV6: 229,
  LINUX_SLL2: 276,
} as const;

export const SUPPORTED_LINK_TYPES: readonly number[] = Object.values(LINKTYPE);

/** An address as a cheap lookup key: the 32-bit number for IPv4, 32 hex digits for IPv6 (see addressText). */
export type AddressKey = number | string;

export interface IpDatagram {
  v6: boolean;
  src: AddressKey;
  dst: AddressKey;
  /** IP protocol number of the payload (6 TCP, 17 UDP). */
  proto: number;
  /** The payload is buf[start, end): no view is made per packet (valid until the next packet is decoded). */
  buf: Buffer;
  start: number;
  end: number;
}

/** The payload as a view (for the rare paths that want one). */
export function ipPayload(ip: IpDatagram): Buffer {
  return ip.buf.subarray(ip.start, ip.end);
}

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;

/** Offset of the IP header from the frame's start `f` (frame of `len` bytes in `b`), or -1. */
function linkPayload(b: Buffer, f: number, len: number, linkType: number): number {
  switch (linkType) {
    case LINKTYPE.ETHERNET: {
      let o = 12;
      while (o + 2 <= len) {
        const type = (b[f + o] << 8) | b[f + o + 1];
        if (type === 0x8100 || type === 0x88a8 || type === 0x9100) {
          o += 4; // 802.1Q / 802.1ad tag: TCI, then the next type
          continue;
        }
        return type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6 ? o + 2 : -1;
      }
      return -1;
    }
    case LINKTYPE.RAW:
    case LINKTYPE.IPV4:
    case LINKTYPE.IPV6:
      return 0;
    case LINKTYPE.LINUX_SLL:
      return len >= 16 && isIpType((b[f + 14] << 8) | b[f + 15]) ? 16 : -1;
    case LINKTYPE.LINUX_SLL2:
      return len >= 20 && isIpType((b[f] << 8) | b[f + 1]) ? 20 : -1;
    case LINKTYPE.NULL:
    case LINKTYPE.LOOP:
      /* A 4-byte address family (host order for NULL, network order for LOOP); the IP version says the rest. */
      return len >= 4 ? 4 : -1;
    default:
      return -1;
  }
}

function isIpType(t: number): boolean {
  return t === ETHERTYPE_IPV4 || t === ETHERTYPE_IPV6;
}

export class NetworkDecoder {
  readonly fragments = new FragmentReassembler();
  /** One datagram object reused for every packet: callers read it before the next decode and keep nothing of it. */
  private readonly out: IpDatagram = { v6: false, src: 0, dst: 0, proto: 0, buf: Buffer.alloc(0), start: 0, end: 0 };

  decode(frame: Buffer, linkType: number, ts: number): IpDatagram | null {
    return this.decodeAt(frame, 0, frame.length, linkType, ts);
  }

  /** The frame is b[start, end): no view of it is made until the IP payload. */
  decodeAt(b: Buffer, start: number, end: number, linkType: number, ts: number): IpDatagram | null {
    const o = linkPayload(b, start, end - start, linkType);
    if (o < 0 || start + o >= end) return null;
    const version = b[start + o] >> 4;
    if (version === 4) return this.ipv4(b, start + o, end, ts);
    if (version === 6) return this.ipv6(start + o === 0 && end === b.length ? b : b.subarray(start + o, end), ts);
    return null;
  }

  private ipv4(b: Buffer, s: number, bEnd: number, ts: number): IpDatagram | null {
    const len = bEnd - s;
    if (len < 20) return null;
    const ihl = (b[s] & 0x0f) * 4;
    const total = (b[s + 2] << 8) | b[s + 3];
    if (ihl < 20 || total < ihl) return null;
    /* Ethernet pads short frames; a snap length cuts long ones (then keep what was captured). */
    const end = Math.min(total, len);
    if (end < ihl) return null;
    const src = ((b[s + 12] << 24) | (b[s + 13] << 16) | (b[s + 14] << 8) | b[s + 15]) >>> 0;
    const dst = ((b[s + 16] << 24) | (b[s + 17] << 16) | (b[s + 18] << 8) | b[s + 19]) >>> 0;
    const proto = b[s + 9];
    const flags = (b[s + 6] << 8) | b[s + 7];
    const more = (flags & 0x2000) !== 0;
    const fragOff = (flags & 0x1fff) * 8;
    if (more || fragOff > 0) {
      const whole = this.fragments.add(`4/${src}/${dst}/${proto}/${(b[s + 4] << 8) | b[s + 5]}`, fragOff, more, b.subarray(s + ihl, s + end), ts);
      if (!whole) return null;
      return this.datagram(false, src, dst, proto, whole, 0, whole.length);
    }
    return this.datagram(false, src, dst, proto, b, s + ihl, s + end);
  }

  private datagram(v6: boolean, src: AddressKey, dst: AddressKey, proto: number, buf: Buffer, start: number, end: number): IpDatagram {
    const d = this.out;
    d.v6 = v6;
    d.src = src;
    d.dst = dst;
    d.proto = proto;
    d.buf = buf;
    d.start = start;
    d.end = end;
    return d;
  }

  private ipv6(b: Buffer, ts: number): IpDatagram | null {
    if (b.length < 40) return null;
    const end = Math.min(40 + b.readUInt16BE(4), b.length);
    let next = b[6];
    let o = 40;
    let frag: { off: number; more: boolean; id: number } | undefined;
    /* Hop-by-hop, routing, fragment, destination options, AH, mobility: skip to the transport header. */
    for (let hops = 0; hops < 16; hops++) {
      if (next === 0 || next === 43 || next === 60 || next === 135) {
        if (o + 2 > end) return null;
        const len = (b[o + 1] + 1) * 8;
        next = b[o];
        o += len;
      } else if (next === 44) {
        if (o + 8 > end) return null;
        const v = b.readUInt16BE(o + 2);
        frag = { off: v & 0xfff8, more: (v & 1) === 1, id: b.readUInt32BE(o + 4) };
        next = b[o];
        o += 8;
      } else if (next === 51) {
        if (o + 2 > end) return null;
        const len = (b[o + 1] + 2) * 4;
        next = b[o];
        o += len;
      } else break;
    }
    if (o > end) return null;
    const src = b.toString('hex', 8, 24);
    const dst = b.toString('hex', 24, 40);
    if (frag && (frag.more || frag.off > 0)) {
      const whole = this.fragments.add(`6/${src}/${dst}/${frag.id}`, frag.off, frag.more, b.subarray(o, end), ts);
      if (!whole) return null;
      return this.datagram(true, src, dst, next, whole, 0, whole.length);
    }
    return this.datagram(true, src, dst, next, b, o, end);
  }
}

/** Printable form of an address key: IPv4 as is, IPv6 in RFC 5952 form (longest zero run as ::). */
export function addressText(key: AddressKey, v6: boolean): string {
  if (typeof key === 'number') return `${key >>> 24}.${(key >>> 16) & 255}.${(key >>> 8) & 255}.${key & 255}`;
  if (!v6) return key;
  const groups: number[] = [];
  for (let i = 0; i < 32; i += 4) groups.push(parseInt(key.slice(i, i + 4), 16));
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    return `::ffff:${groups[6] >> 8}.${groups[6] & 255}.${groups[7] >> 8}.${groups[7] & 255}`;
  }
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}
