/**
 * A FIFO of bytes kept as the chunks they were written in: the send buffer (unacknowledged and
 * unsent data, read at any offset for (re)transmission, dropped from the front as ACKs arrive).
 */
export class ByteQueue {
  private chunks: Buffer[] = [];
  /** Bytes of chunks[0] already consumed. */
  private head = 0;
  length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Copies (or views, when in one chunk) `len` bytes starting `offset` bytes from the front. */
  slice(offset: number, len: number): Buffer {
    len = Math.max(0, Math.min(len, this.length - offset));
    if (len === 0) return Buffer.alloc(0);
    let skip = offset + this.head;
    let i = 0;
    while (skip >= this.chunks[i].length) {
      skip -= this.chunks[i].length;
      i++;
    }
    const first = this.chunks[i];
    if (skip + len <= first.length) return first.subarray(skip, skip + len);
    const out = Buffer.allocUnsafe(len);
    let written = 0;
    while (written < len) {
      const c = this.chunks[i++];
      const n = Math.min(c.length - skip, len - written);
      c.copy(out, written, skip, skip + n);
      written += n;
      skip = 0;
    }
    return out;
  }

  /** Drops `n` bytes from the front. */
  consume(n: number): void {
    n = Math.min(n, this.length);
    this.length -= n;
    while (n > 0) {
      const rest = this.chunks[0].length - this.head;
      if (n < rest) {
        this.head += n;
        return;
      }
      n -= rest;
      this.chunks.shift();
      this.head = 0;
    }
  }
}
