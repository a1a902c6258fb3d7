/**
 * Judge: the documented severity table (sensitivity × cleartext/TLS × confidence) and the
 * destination facts (cleartext, server address, country and network owner from the offline lookup).
 */
import { judgeDestination, severityOf, SEVERITY_TABLE, maxSeverity, trackerList } from '../../../../proxy/analyse/judge';
import { createGeoLookup } from '../../../../proxy/geo';
import type { Flow } from '../../../../proxy/flow';
import type { IdentifierType } from '../../../../proxy/analyse/types';

function flow(over: Partial<Flow>): Flow {
  return {
    kind: 'http', source: 'proxy', startedAt: 0, clientIp: '192.168.1.23', scheme: 'http', host: 'zzhc.vnet.cn', port: 9999, tls: false,
    requestHeaders: [], requestBody: { bytes: Buffer.alloc(0), size: 0, truncated: false }, responseHeaders: [],
    responseBody: { bytes: Buffer.alloc(0), size: 0, truncated: false }, timings: {}, tags: [], ...over,
  };
}

describe('severity table', () => {
  it.each<[IdentifierType, boolean, number, string]>([
    ['imei', true, 0.95, 'critical'],
    ['imei', false, 0.95, 'high'],
    ['iccid', true, 0.9, 'critical'],
    ['phone', false, 0.9, 'high'],
    ['location', true, 0.9, 'critical'],
    ['location', false, 0.9, 'high'],
    ['cell_id', true, 0.9, 'critical'],
    ['android_id', true, 0.9, 'high'],
    ['android_id', false, 0.9, 'medium'],
    ['email', false, 0.9, 'medium'],
    ['email', true, 0.9, 'high'],
    ['ad_id', false, 0.95, 'low'],
    ['ad_id', true, 0.95, 'medium'],
    ['imsi', true, 0.5, 'high'],
    ['ad_id', false, 0.5, 'low'],
  ])('%s cleartext=%s confidence=%s → %s', (type, cleartext, confidence, severity) => {
    expect(severityOf(type, cleartext, confidence)).toBe(severity);
  });

  it('rates a BSSID (surroundings) as location, the phone\'s own MAC as hardware', () => {
    expect(severityOf('mac', false, 0.9, 'surroundings')).toBe(SEVERITY_TABLE.location.tls);
    expect(severityOf('mac', true, 0.9, 'device')).toBe(SEVERITY_TABLE.hardware.cleartext);
  });

  it('takes the highest severity, info when there is none', () => {
    expect(maxSeverity(['low', 'critical', 'medium'])).toBe('critical');
    expect(maxSeverity([])).toBe('info');
  });
});

describe('judgeDestination', () => {
  const geo = createGeoLookup({
    countryV4: () => '3395354624,3395354879,CN\n134744064,134744319,US\n',
    asnV4: () => '3395354624,3395354879,4134,"Chinanet, Backbone"\n134744064,134744319,15169,Google LLC\n',
  });

  it('names country and network owner of the server address, and cleartext', () => {
    expect(judgeDestination(flow({ serverIp: '202.97.0.10' }), geo)).toEqual({
      host: 'zzhc.vnet.cn', domain: 'vnet.cn', serverIp: '202.97.0.10', country: 'CN', asn: 4134, org: 'Chinanet, Backbone', cleartext: true,
    });
  });

  it('uses an IP literal host when no server address was recorded, and TLS is not cleartext', () => {
    expect(judgeDestination(flow({ host: '8.8.8.8', scheme: 'https', tls: true }), geo)).toEqual({
      host: '8.8.8.8', serverIp: '8.8.8.8', country: 'US', asn: 15169, org: 'Google LLC', cleartext: false,
    });
  });

  it('labels a private server address local and does not look it up; leaves facts out when unknown', () => {
    const lookups: string[] = [];
    const spy = { lookup: (ip: string) => { lookups.push(ip); return geo.lookup(ip); } };
    expect(judgeDestination(flow({ serverIp: '192.168.1.1' }), spy)).toEqual({ host: 'zzhc.vnet.cn', domain: 'vnet.cn', serverIp: '192.168.1.1', local: true, cleartext: true });
    expect(lookups).toEqual([]);
    expect(judgeDestination(flow({}))).toEqual({ host: 'zzhc.vnet.cn', domain: 'vnet.cn', cleartext: true });
    expect(judgeDestination(flow({ serverIp: '203.0.113.9' }), geo)).toEqual({ host: 'zzhc.vnet.cn', domain: 'vnet.cn', serverIp: '203.0.113.9', cleartext: true });
  });

  it('names the tracker company of the host, not of an IP literal', () => {
    const trackers = trackerList();
    expect(judgeDestination(flow({ serverIp: '202.97.0.10' }), geo, trackers).tracker).toEqual({ company: 'China Telecom', category: 'activation', domain: 'vnet.cn' });
    expect(judgeDestination(flow({ host: 'example.org' }), geo, trackers).tracker).toBeUndefined();
    expect(judgeDestination(flow({ host: '8.8.8.8' }), geo, trackers)).not.toHaveProperty('tracker');
  });

  it('answers each flow for its own server address, lookup and tracker list, and callers may change what it returns', () => {
    const lookups: string[] = [];
    const spy = { lookup: (ip: string) => { lookups.push(ip); return geo.lookup(ip); } };
    const cn = judgeDestination(flow({ serverIp: '202.97.0.10' }), spy);
    expect(cn.country).toBe('CN');
    cn.homeCountry = 'NO';
    cn.crossBorder = true;
    /* Same host, another server address: its own answer; the same one again: the same facts, untouched by the caller's changes. */
    expect(judgeDestination(flow({ serverIp: '8.8.8.8' }), spy).country).toBe('US');
    expect(judgeDestination(flow({ serverIp: '202.97.0.10', scheme: 'https', tls: true }), spy)).toEqual({
      host: 'zzhc.vnet.cn', domain: 'vnet.cn', serverIp: '202.97.0.10', country: 'CN', asn: 4134, org: 'Chinanet, Backbone', cleartext: false,
    });
    expect(lookups).toEqual(['202.97.0.10', '8.8.8.8']);
    /* Another lookup or tracker list is asked afresh. */
    const elsewhere = { lookup: () => ({ country: 'DE' }) };
    expect(judgeDestination(flow({ serverIp: '202.97.0.10' }), elsewhere).country).toBe('DE');
    const list = trackerList();
    const withTrackers = judgeDestination(flow({ serverIp: '202.97.0.10' }), elsewhere, list);
    expect(withTrackers.tracker?.company).toBe('China Telecom');
    withTrackers.tracker!.company = 'changed by a caller';
    expect(judgeDestination(flow({ serverIp: '202.97.0.10' }), elsewhere, list).tracker?.company).toBe('China Telecom');
  });
});
