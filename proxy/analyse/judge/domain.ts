/**
 * Why: "who gets it" is a company, not a hostname: a1.telemetry.example.co.uk and
 * b7.example.co.uk both belong to example.co.uk. The registrable domain (eTLD+1) comes from the
 * Public Suffix List through the maintained `tldts` package (no network access; the list ships
 * with it). IP literals and single-label names have none.
 */
import { getDomain } from 'tldts';
import { isIpLiteral } from './local-address';

export function registrableDomain(host: string): string | undefined {
  const h = host.trim().toLowerCase().replace(/\.$/, '');
  if (!h || isIpLiteral(h)) return undefined;
  try {
    return getDomain(h, { allowPrivateDomains: false }) ?? undefined;
  } catch {
    return undefined;
  }
}
