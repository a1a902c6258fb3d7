/**
 * Seeds a store with many analysed flows (realistic mix: a few leaking hosts, many clean ones, several
 * phones) through the real recorder, so that benchmarks time the dashboard's queries on a large database.
 */
import type { AnalysisResult, Finding } from '../proxy/analyse/types';
import type { Flow } from '../proxy/flow';
import { AnalysisRecorder } from '../proxy/pipeline/recorder';
import type { Store } from '../proxy/store';

const LEAKY_HOSTS = ['zzhc.vnet.cn', 'ads.example', 'metrics.example', 'crash.example'];
const CLEAN_HOSTS = Array.from({ length: 200 }, (_, i) => `cdn${i}.example`);
const PHONES = ['192.168.1.23', '192.168.1.24', '192.168.1.25', '192.168.1.26'];

export function seedFlows(store: Store, count: number): void {
  const recorder = new AnalysisRecorder(store);
  const t0 = Date.now() - count * 1000;
  const batch = store.db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const leaky = i % 10 === 0;
      const host = leaky ? LEAKY_HOSTS[i % LEAKY_HOSTS.length] : CLEAN_HOSTS[i % CLEAN_HOSTS.length];
      const body = leaky ? `imei=490154203237518&SIM1CELLID=${i}&n=${i}` : `q=item${i}`;
      const flow: Flow = {
        kind: 'http', source: 'proxy', startedAt: t0 + i * 1000, endedAt: t0 + i * 1000 + 20, clientIp: PHONES[i % PHONES.length],
        method: 'POST', url: `http://${host}/api/v1/collect?n=${i}`, scheme: 'http', host, port: 80, tls: i % 3 === 0,
        requestHeaders: [['Host', host], ['Content-Type', 'application/x-www-form-urlencoded']],
        requestBody: { bytes: Buffer.from(body), size: body.length, truncated: false }, responseStatus: 200,
        responseHeaders: [['Content-Type', 'application/json']], responseBody: { bytes: Buffer.from('{"ok":true}'), size: 11, truncated: false },
        timings: { totalMs: 20 }, tags: [],
      };
      store.flows.insert(flow);
      const findings: Finding[] = leaky
        ? [{ type: 'imei', value: '490154203237518', path: 'body>form:imei', chain: ['form'], detector: 'key', confidence: 0.95, explanation: 'IMEI under key imei', severity: 'high' },
           { type: 'cell_id', value: String(i), path: 'body>form:SIM1CELLID', chain: ['form'], detector: 'key', confidence: 0.8, explanation: 'cell id', severity: 'medium' }]
        : [];
      const result: AnalysisResult = {
        findings,
        fields: [...new URLSearchParams(body)].map(([k, v]) => ({ path: `body>form:${k}`, key: k, keyPath: [k], value: v, chain: ['form'], group: 'body>form' })),
        destination: { host, cleartext: !flow.tls, country: leaky ? 'CN' : 'US', org: leaky ? 'China Telecom' : 'Example CDN', asn: leaky ? 4134 : 64500 },
        severity: findings.length ? 'high' : 'info', notes: [], limitsHit: [],
      };
      recorder.record(flow, result);
    }
  });
  for (let i = 0; i < count; i += 5000) batch(i, Math.min(count, i + 5000));
}
