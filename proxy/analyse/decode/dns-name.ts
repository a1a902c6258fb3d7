/**
 * DNS names as decodable values: a phone can leak an identifier in a lookup
 * (`354812345678453.t.example.com`, a hex or base32 label), and in VPN mode every lookup is a
 * flow of kind `dns` whose host is the name asked for. Each label is walked like any other value
 * (so the hex and base64 sniffing applies), and labels that are plausible base32 (RFC 4648,
 * case-insensitive, no padding — the usual way to fit bytes into a DNS label) are decoded first.
 */
import type { Flow } from '../../flow';
import type { DecodeContext, Position } from './context';
import { isMostlyPrintable } from './text';
import { walkValue } from './walk';

/** Shorter labels are words or short tags, not encoded identifiers. */
const BASE32_MIN_LABEL = 16;
const BASE32_ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

export function decodeDnsName(ctx: DecodeContext, flow: Flow): void {
  if (flow.kind !== 'dns' || !flow.host) return;
  const labels = flow.host.replace(/\.$/, '').split('.');
  labels.forEach((label, i) => {
    if (!label || ctx.stopped) return;
    const pos: Position = { path: `dns:label:${i}`, key: null, keyPath: [], value: '', chain: ['dns'], group: 'dns' };
    const bytes = base32Label(label);
    if (bytes) walkValue(ctx, bytes, { ...pos, path: `${pos.path}>base32`, chain: ['dns', 'base32'] });
    walkValue(ctx, label, pos);
  });
}

/**
 * Bytes of a label that reads as base32: at least 16 characters of the base32 alphabet, a length
 * a real encoding can have, and either printable text inside or letters mixed with digits 2-7
 * (a plain word like 'connectivitycheck' fits the alphabet but decodes to noise).
 */
export function base32Label(label: string): Buffer | undefined {
  const text = label.toLowerCase();
  if (text.length < BASE32_MIN_LABEL || ![0, 2, 4, 5, 7].includes(text.length % 8)) return undefined;
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const ch of text) {
    const v = BASE32_ALPHABET.indexOf(ch);
    if (v < 0) return undefined;
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >> bits) & 0xff);
    }
    value &= (1 << bits) - 1;
  }
  const bytes = Buffer.from(out);
  if (isMostlyPrintable(bytes)) return bytes;
  return /[a-z]/.test(text) && /[2-7]/.test(text) ? bytes : undefined;
}
