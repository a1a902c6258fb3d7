/**
 * Why: detectors often read one piece of text several ways (a key's reading, a pattern's, the
 * profile's), and one value must come out as one finding. This keeps the best candidate per slot —
 * per matched text, then per finding — cheaply for the usual flow of 0-2 candidates, and with a map
 * for the flows that have many.
 */
import type { DecodedField } from '../types';
import type { Candidate } from './candidate';
import { DETECTOR_RANK } from './candidate';

/** What a detector proposes: a candidate but for the field (and, by default, the subject). */
export type Proposal = Omit<Candidate, 'field' | 'subject'> & { subject?: Candidate['subject'] };
export type FieldProposal = Omit<Candidate, 'subject'> & { subject?: Candidate['subject'] };

/** Every candidate has the same properties in the same order (one object shape for every reader). */
export function candidateOf(p: Proposal, field: DecodedField, subject: Candidate['subject']): Candidate {
  return {
    type: p.type,
    value: p.value,
    detector: p.detector,
    confidence: p.confidence,
    field,
    span: p.span,
    evidence: p.evidence,
    subject: p.subject ?? subject,
    path: p.path,
    keyLabel: p.keyLabel,
  };
}

/** Profile > key > pattern, then the higher confidence. */
function better(a: Candidate, b: Candidate): boolean {
  const rank = DETECTOR_RANK[a.detector] - DETECTOR_RANK[b.detector];
  return rank !== 0 ? rank > 0 : a.confidence > b.confidence;
}

/** Up to this many candidates a flow's slots are compared one by one; past it they are looked up in a map. */
const FEW = 8;

/**
 * The best candidate per slot, in the order slots were first seen. A flow has 0-2 candidates as a
 * rule: they are compared directly, with no map and no key strings; a map is made past FEW.
 */
export class BestPerSlot {
  readonly list: Candidate[] = [];
  private index: Map<string, number> | undefined;

  constructor(
    private readonly sameSlot: (a: Candidate, b: Candidate) => boolean,
    /** Equal for candidates of one slot and only for them. */
    private readonly slotKey: (c: Candidate) => string,
  ) {}

  offer(c: Candidate): void {
    const list = this.list;
    let at = -1;
    if (this.index) {
      const key = this.slotKey(c);
      const found = this.index.get(key);
      if (found === undefined) this.index.set(key, list.length);
      else at = found;
    } else {
      for (let i = 0; i < list.length; i++) {
        if (this.sameSlot(list[i]!, c)) {
          at = i;
          break;
        }
      }
      if (at < 0 && list.length >= FEW) {
        this.index = new Map();
        for (let i = 0; i < list.length; i++) this.index.set(this.slotKey(list[i]!), i);
        this.index.set(this.slotKey(c), list.length);
      }
    }
    if (at < 0) list.push(c);
    else if (better(c, list[at]!)) list[at] = c;
  }
}

/* Candidates compete per (field path, matched text): one piece of text is one identifier. */
export const sameText = (a: Candidate, b: Candidate): boolean => a.span === b.span && a.field.path === b.field.path;
export const textKey = (c: Candidate): string => `${c.field.path.length}:${c.field.path}\u0000${c.span}`;
/* Findings are one per type, value and path. */
const pathOf = (c: Candidate): string => c.path ?? c.field.path;
export const sameFinding = (a: Candidate, b: Candidate): boolean => a.type === b.type && a.value === b.value && pathOf(a) === pathOf(b);
export const findingKey = (c: Candidate): string => `${c.type}\u0000${c.value.length}:${c.value}\u0000${pathOf(c)}`;
