/**
 * HPACK's Huffman code (RFC 7541 §5.2, Appendix B), decoding only. The code is canonical, so the
 * RFC's table is fully given by each symbol's code length: codes are rebuilt from the lengths here,
 * then turned into a decoder that reads four bits at a time (two table lookups per byte, no
 * per-bit loop). Padding longer than 7 bits, padding that is not the EOS prefix, and an EOS symbol
 * inside the string are decoding errors, as the RFC requires.
 *
 * API: huffmanDecode(buf, start, end, out) → bytes written into `out`, or -1 on a decoding error;
 * `out` must hold at least huffmanMaxDecodedLength(end - start) bytes.
 */

/** Code length in bits of symbols 0–255 and EOS (256), from RFC 7541 Appendix B. */
const CODE_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];

export const EOS = 256;

/** [code, length] of every symbol: canonical codes, assigned in order of (length, symbol). */
export function huffmanCodes(): [code: number, length: number][] {
  const order = CODE_LENGTHS.map((_, s) => s).sort((a, b) => CODE_LENGTHS[a] - CODE_LENGTHS[b] || a - b);
  const codes: [number, number][] = new Array(CODE_LENGTHS.length);
  let code = 0;
  let prevLength = CODE_LENGTHS[order[0]];
  for (let i = 0; i < order.length; i++) {
    const s = order[i];
    const length = CODE_LENGTHS[s];
    if (i > 0) code = (code + 1) * 2 ** (length - prevLength);
    prevLength = length;
    codes[s] = [code, length];
  }
  return codes;
}

/*
 * The decoder: the states are the code tree's inner nodes (256 of them, the root is 0). For every
 * state and every 4-bit nibble, TRANSITIONS holds the state reached, and the symbol completed on the
 * way if any (codes are at least 5 bits long: at most one per nibble).
 */
const EMITS = 0x100;
const FAILS = 0x200;
const SYMBOL_SHIFT = 16;
const TRANSITIONS = new Uint32Array(256 * 16);
/** States a string may end in: the root, or 1 to 7 bits of the EOS code (all ones). */
const ACCEPTING = new Uint8Array(256);

(function build(): void {
  /* children[node*2 + bit]: an inner node (≥ 0) or a leaf (-1 - symbol). */
  const children = new Int32Array(256 * 2).fill(-1000);
  const depth = new Uint8Array(256);
  const allOnes = new Uint8Array(256);
  allOnes[0] = 1;
  let nodes = 1;
  huffmanCodes().forEach(([code, length], symbol) => {
    let node = 0;
    for (let i = length - 1; i >= 0; i--) {
      const bit = Math.floor(code / 2 ** i) & 1;
      const slot = node * 2 + bit;
      if (i === 0) children[slot] = -1 - symbol;
      else {
        if (children[slot] === -1000) {
          children[slot] = nodes;
          depth[nodes] = depth[node] + 1;
          allOnes[nodes] = allOnes[node] & bit;
          nodes++;
        }
        node = children[slot];
      }
    }
  });
  for (let n = 0; n < 256; n++) ACCEPTING[n] = n === 0 || (allOnes[n] === 1 && depth[n] <= 7) ? 1 : 0;
  for (let state = 0; state < 256; state++) {
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let entry = 0;
      for (let i = 3; i >= 0; i--) {
        const next = children[node * 2 + ((nibble >> i) & 1)];
        if (next >= 0) {
          node = next;
          continue;
        }
        const symbol = -1 - next;
        if (symbol === EOS) entry |= FAILS;
        else entry |= EMITS | (symbol << SYMBOL_SHIFT);
        node = 0;
      }
      TRANSITIONS[state * 16 + nibble] = entry | node;
    }
  }
})();

/** The most bytes `encodedBytes` of Huffman code can decode to (the shortest code is 5 bits). */
export function huffmanMaxDecodedLength(encodedBytes: number): number {
  return Math.ceil((encodedBytes * 8) / 5);
}

export function huffmanDecode(buf: Uint8Array, start: number, end: number, out: Uint8Array): number {
  let state = 0;
  let n = 0;
  for (let i = start; i < end; i++) {
    const b = buf[i];
    let t = TRANSITIONS[(state << 4) | (b >> 4)];
    if (t & FAILS) return -1;
    if (t & EMITS) out[n++] = t >>> SYMBOL_SHIFT;
    state = t & 0xff;
    t = TRANSITIONS[(state << 4) | (b & 15)];
    if (t & FAILS) return -1;
    if (t & EMITS) out[n++] = t >>> SYMBOL_SHIFT;
    state = t & 0xff;
  }
  return ACCEPTING[state] === 1 ? n : -1;
}
