/**
 * Puts IPv4 and IPv6 fragments from a phone back together, so a datagram bigger than the tunnel
 * MTU (a large UDP beacon, say) is relayed and analysed rather than lost. Hostile input is
 * bounded: at most `maxDatagrams` incomplete datagrams of at most 64 KiB each, dropped after
 * `timeoutMs`; overlapping fragments drop the whole datagram (RFC 5722's rule, applied to IPv4 too).
 */
import { finish, sumWords } from './checksum';
import type { IpPacket } from './packet';

export interface ReassemblyOptions {
  timeoutMs?: number;
  maxDatagrams?: number;
}

export type ReassemblyResult =
  /** The whole packet, ready to parse; `fragments` it was made of. */
  | { kind: 'done'; packet: Buffer; fragments: number }
  | { kind: 'held' }
  /** Fragments given up on (this one included), and why. */
  | { kind: 'dropped'; reason: 'fragment-overlap' | 'fragment-too-big' | 'bad-fragment'; fragments: number };

interface Pending {
  first?: IpPacket;
  pieces: { offset: number; data: Buffer }[];
  total?: number;
  received: number;
  started: number;
}

const MAX_DATAGRAM = 65535;

export class Reassembler {
  private readonly pending = new Map<string, Pending>();
  private readonly timeoutMs: number;
  private readonly maxDatagrams: number;

  constructor(opts: ReassemblyOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.maxDatagrams = opts.maxDatagrams ?? 64;
  }

  get size(): number {
    return this.pending.size;
  }

  /** Incomplete datagrams older than the timeout (or beyond the limit) are removed; returns how many fragments they held. */
  expire(now = Date.now()): number {
    let lost = 0;
    for (const [key, p] of this.pending) {
      if (now - p.started < this.timeoutMs && this.pending.size <= this.maxDatagrams) break; // Map keeps insertion order: oldest first
      lost += p.pieces.length;
      this.pending.delete(key);
    }
    return lost;
  }

  add(ip: IpPacket, now = Date.now()): ReassemblyResult {
    const f = ip.fragment!;
    const key = `${ip.version}|${ip.src}|${ip.dst}|${ip.protocol}|${f.id}`;
    let p = this.pending.get(key);
    if (!p) {
      p = { pieces: [], received: 0, started: now };
      this.pending.set(key, p);
    }
    const end = f.offset + ip.payload.length;
    const give = (reason: 'fragment-overlap' | 'fragment-too-big' | 'bad-fragment'): ReassemblyResult => {
      this.pending.delete(key);
      return { kind: 'dropped', reason, fragments: p!.pieces.length + 1 };
    };
    if (f.more && ip.payload.length % 8 !== 0) return give('bad-fragment');
    if (end + f.unfragmentable.length > MAX_DATAGRAM) return give('fragment-too-big');
    if (!f.more) {
      if (p.total !== undefined && p.total !== end) return give('bad-fragment');
      p.total = end;
    }
    if (p.total !== undefined && end > p.total) return give('bad-fragment');
    for (const q of p.pieces) if (f.offset < q.offset + q.data.length && q.offset < end) return give('fragment-overlap');
    p.pieces.push({ offset: f.offset, data: Buffer.from(ip.payload) });
    p.received += ip.payload.length;
    if (f.offset === 0) p.first = ip;
    if (p.total === undefined || p.received !== p.total || !p.first) return { kind: 'held' };
    this.pending.delete(key);
    return { kind: 'done', packet: assemble(p.first, p.pieces, p.total), fragments: p.pieces.length };
  }
}

function assemble(first: IpPacket, pieces: { offset: number; data: Buffer }[], total: number): Buffer {
  const f = first.fragment!;
  const head = Buffer.from(f.unfragmentable);
  const body = Buffer.alloc(total);
  for (const piece of pieces) piece.data.copy(body, piece.offset);
  if (first.version === 4) {
    head.writeUInt16BE(head.length + total, 2);
    head.writeUInt16BE(0, 6);
    head.writeUInt16BE(0, 10);
    head.writeUInt16BE(finish(sumWords(head, 0, head.length)), 10);
  } else {
    head[f.nextHeaderAt] = first.protocol;
    head.writeUInt16BE(head.length - 40 + total, 4);
  }
  return Buffer.concat([head, body]);
}
