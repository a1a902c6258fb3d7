/**
 * The anti-replay window of RFC 6479 for transport counters: a ring of 64-bit words, so a packet
 * up to WINDOW_SIZE behind the highest counter seen is accepted once. Callers `check` before the
 * AEAD and `update` only after it verifies, so forged packets cannot move the window.
 */
const WORD_BITS = 64n;
const RING_WORDS = 128; // 8192 bits
const RING_BITS = BigInt(RING_WORDS) * WORD_BITS;
/** Packets this far behind the newest one are still accepted (ring minus one word, as in RFC 6479). */
export const WINDOW_SIZE = RING_BITS - WORD_BITS;
/** WireGuard's Reject-After-Messages: counters at or above this are refused. */
export const REJECT_AFTER_MESSAGES = 2n ** 64n - 2n ** 13n - 1n;

export class ReplayWindow {
  private readonly ring = new BigUint64Array(RING_WORDS);
  private top = -1n; // highest accepted counter; -1: none yet

  /** True when `counter` is new and inside the window (does not change state). */
  check(counter: bigint): boolean {
    if (counter >= REJECT_AFTER_MESSAGES) return false;
    if (counter > this.top) return true;
    if (this.top - counter >= WINDOW_SIZE) return false;
    const word = Number((counter / WORD_BITS) % BigInt(RING_WORDS));
    const bit = counter % WORD_BITS;
    return (this.ring[word] & (1n << bit)) === 0n;
  }

  /** Marks `counter` as seen (call only after check() and a verified AEAD). Returns false on a replay. */
  update(counter: bigint): boolean {
    if (!this.check(counter)) return false;
    if (counter > this.top) {
      const topWord = this.top < 0n ? -1n : this.top / WORD_BITS;
      const newWord = counter / WORD_BITS;
      let clear = newWord - topWord;
      if (clear > BigInt(RING_WORDS)) clear = BigInt(RING_WORDS);
      for (let i = 1n; i <= clear; i++) this.ring[Number((topWord + i) % BigInt(RING_WORDS))] = 0n;
      this.top = counter;
    }
    const word = Number((counter / WORD_BITS) % BigInt(RING_WORDS));
    this.ring[word] |= 1n << (counter % WORD_BITS);
    return true;
  }
}
