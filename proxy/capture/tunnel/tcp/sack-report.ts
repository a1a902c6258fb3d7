/**
 * The receiver's half of SACK (RFC 2018) and D-SACK (RFC 2883): which blocks an ACK reports. With
 * them the phone's TCP learns in one round trip every hole in what reached us and retransmits only
 * those (without them it resends one hole per round trip, or everything after a timeout).
 *  - The first block holds the segment that triggered the ACK; then the blocks reported most
 *    recently, so a block survives a few lost ACKs; then any other held range.
 *  - A duplicate segment (data we already had) is reported once as a D-SACK block in first place,
 *    followed by the held range that contains it if any, so the sender can tell its retransmission
 *    was spurious and undo its congestion response.
 */
import type { SackBlock } from '../types';
import type { Reassembly } from './reassembly';
import { seqGe, seqLt } from './seq';

/** Blocks that fit with timestamps (40 option bytes: 12 + 4 + 3 * 8) and without (4 + 4 * 8). */
export const MAX_SACK_BLOCKS_WITH_TS = 3;
export const MAX_SACK_BLOCKS = 4;

export class SackReport {
  /** Left edges of the blocks reported last, most recent first (their ranges may have grown since). */
  private recent: number[] = [];
  private dsack: SackBlock | undefined;

  constructor(private readonly stats: { dsacksSent: number }) {}

  /** Out-of-order data at [start, end) arrived: its range goes first in the next ACK. */
  onOutOfOrder(start: number): void {
    this.recent = [start, ...this.recent.filter((s) => s !== start)].slice(0, MAX_SACK_BLOCKS);
  }

  /** Data at [start, end) arrived that we already had (below rcvNxt or already held out of order). */
  onDuplicate(start: number, end: number): void {
    if (seqLt(start, end)) this.dsack = [start >>> 0, end >>> 0];
  }

  /** The blocks for the ACK about to be sent (consumes a pending D-SACK). */
  blocks(rcvNxt: number, ooo: Reassembly, max: number): SackBlock[] | undefined {
    const out: SackBlock[] = [];
    const dsack = this.dsack;
    this.dsack = undefined;
    if (dsack) {
      out.push(dsack);
      this.stats.dsacksSent++;
      // Inside a held range: that range follows, so the sender sees which data it duplicated.
      const around = seqGe(dsack[0], rcvNxt) ? ooo.rangeAround(dsack[0]) : undefined;
      if (around) out.push(around);
    }
    if (ooo.size > 0) {
      const kept: number[] = [];
      for (const start of this.recent) {
        if (out.length >= max) break;
        const range = seqGe(start, rcvNxt) ? ooo.rangeAround(start) : undefined;
        if (!range || out.some((b) => b !== dsack && b[0] === range[0])) continue;
        out.push(range);
        kept.push(range[0]);
      }
      this.recent = kept;
      if (out.length < max) {
        for (const range of ooo.ranges(max)) {
          if (out.length >= max) break;
          if (!out.some((b) => b !== dsack && b[0] === range[0])) out.push(range);
        }
      }
    } else {
      this.recent = [];
    }
    return out.length ? out : undefined;
  }
}
