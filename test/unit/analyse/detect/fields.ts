/** Hand-built DecodedFields for detector tests, shaped like decode/ produces them. */
import type { DecodedField } from '../../../../proxy/analyse/types';

export function jsonField(key: string | null, value: string, opts: { parents?: string[]; group?: string; chain?: string[] } = {}): DecodedField {
  const parents = opts.parents ?? [];
  const keyPath = key === null ? parents : [...parents, key];
  const group = opts.group ?? `body>json:$${parents.map((p) => `.${p}`).join('')}`;
  return { path: key === null ? `${group}` : `${group}.${key}`, key, keyPath, value, chain: opts.chain ?? ['json'], group };
}

export function queryField(key: string, value: string): DecodedField {
  return { path: `query:${key}`, key, keyPath: [key], value, chain: ['query'], group: 'query' };
}

export function textField(value: string): DecodedField {
  return { path: 'body', key: null, keyPath: [], value, chain: [], group: 'body' };
}

/** Luhn-complete a digit string. */
export { luhnComplete as luhn } from '../../../../scripts/fixtures/random';
