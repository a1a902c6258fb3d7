/**
 * Reassembles fragmented IP datagrams (a large UDP DNS answer, a TCP segment over a small MTU),
 * within bounds: a capture can hold fragments that never complete or overlap maliciously, so the
 * number of datagrams in progress, their size and their age are all capped.
 */

export const MAX_PENDING_DATAGRAMS = 256;
export const MAX_DATAGRAM_BYTES = 65535;
export const FRAGMENT_TIMEOUT_MS = 30_000;
/** A 64 KiB datagram over a 1280-byte MTU is ~52 fragments; far more is an attack on the reassembler. */
export const MAX_FRAGMENTS_PER_DATAGRAM = 128;

interface Pending {
  pieces: Array<{ off: number; data: Buffer }>;
  /** Total length, known once the last fragment (more-fragments = 0) arrived. */
  total: number;
  bytes: number;
  firstTs: number;
}

export class FragmentReassembler {
  private readonly pending = new Map<string, Pending>();
  dropped = 0;

  /**
   * Adds one fragment (offset in bytes into the datagram's payload); returns the whole payload once
   * every byte from 0 to the end is present, else null.
   */
  add(key: string, off: number, more: boolean, data: Buffer, ts: number): Buffer | null {
    let p = this.pending.get(key);
    if (!p) {
      if (this.pending.size >= MAX_PENDING_DATAGRAMS) this.expire(ts, true);
      p = { pieces: [], total: -1, bytes: 0, firstTs: ts };
      this.pending.set(key, p);
    }
    if (off + data.length > MAX_DATAGRAM_BYTES || p.pieces.length >= MAX_FRAGMENTS_PER_DATAGRAM) {
      this.pending.delete(key);
      this.dropped++;
      return null;
    }
    if (!more) p.total = off + data.length;
    p.pieces.push({ off, data: Buffer.from(data) });
    p.bytes += data.length;
    if (p.total < 0) return null;
    p.pieces.sort((a, b) => a.off - b.off);
    let covered = 0;
    for (const piece of p.pieces) {
      if (piece.off > covered) return null;
      covered = Math.max(covered, piece.off + piece.data.length);
    }
    if (covered < p.total) return null;
    this.pending.delete(key);
    const out = Buffer.alloc(p.total);
    /* Later pieces overwrite earlier ones where they overlap (the last copy on the wire wins). */
    for (const piece of p.pieces) piece.data.copy(out, piece.off, 0, Math.min(piece.data.length, p.total - piece.off));
    return out;
  }

  /** Drops datagrams older than the timeout (or, when full, the oldest one). */
  expire(now: number, makeRoom = false): void {
    for (const [key, p] of this.pending) {
      if (now - p.firstTs > FRAGMENT_TIMEOUT_MS || makeRoom) {
        this.pending.delete(key);
        this.dropped++;
        makeRoom = false;
      }
    }
  }
}
