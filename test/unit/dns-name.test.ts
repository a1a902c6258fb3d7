/**
 * DNS flows go through the same analysis as proxied requests, plus a decode step for the name
 * itself: an identifier in a label (as digits, hex or base32) must become a finding, and ordinary
 * names must not produce any.
 */
import { analyseFlow } from '../../proxy/analyse';
import { base32Label } from '../../proxy/analyse/decode/dns-name';
import { dnsFlow } from '../../proxy/capture/dns/record';
import { luhnCheckDigit } from '../../proxy/analyse/detect/validate';

const IMEI = `35481234567845${luhnCheckDigit('35481234567845')}`;

function base32(bytes: Buffer): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) { bits -= 5; out += alphabet[(value >> bits) & 31]; }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

const lookup = (name: string) => dnsFlow({ source: 'vpn', clientIp: '10.77.0.2', resolver: '10.77.0.1', name, type: 'A', startedAt: Date.now() });

describe('DNS names in analysis', () => {
  it('finds an IMEI sent as a label', () => {
    const result = analyseFlow(lookup(`${IMEI}.t.example.com`));
    const imei = result.findings.find((f) => f.type === 'imei');
    expect(imei).toMatchObject({ value: IMEI, path: 'dns:label:0', chain: ['dns'] });
  });

  it('finds an IMEI hidden as hex or base32 text in a label', () => {
    const hex = Buffer.from(IMEI).toString('hex');
    const b32 = base32(Buffer.from(IMEI));
    for (const [label, chain] of [[hex, ['dns', 'hex']], [b32, ['dns', 'base32']], [b32.toUpperCase(), ['dns', 'base32']]] as const) {
      const result = analyseFlow(lookup(`${label}.beacon.example.net`));
      const imei = result.findings.find((f) => f.type === 'imei');
      expect(imei?.value).toBe(IMEI);
      expect(imei?.chain).toEqual(chain);
    }
  });

  it('finds nothing in ordinary names, including long words that fit the base32 alphabet', () => {
    for (const name of ['connectivitycheck.gstatic.com', 'www.google.com', 'zzhc.vnet.cn', 'time.android.com', '_dns.resolver.arpa', 'graph.facebook.com']) {
      expect(analyseFlow(lookup(name)).findings).toEqual([]);
    }
    expect(base32Label('connectivitycheck')).toBeUndefined();
  });

  it('keeps other flow kinds as they were (no dns step for http)', () => {
    const flow = { ...lookup(`${IMEI}.t.example.com`), kind: 'http' as const, url: 'https://t.example.com/' };
    expect(analyseFlow(flow).findings.find((f) => f.path.startsWith('dns:'))).toBeUndefined();
  });
});
