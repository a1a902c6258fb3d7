/**
 * Why: the first flows a fresh analysis worker sees run through cold code (lazily compiled, not yet
 * optimised by V8): measured, the first ~20 alerts after `phonehome start` took 40-130 ms instead
 * of 1-2 ms, which is the whole p99 of a minute of traffic. The worker analyses these few synthetic
 * flows for a few tens of ms before it says it is ready, so the phone's first request is judged by
 * warm code. Nothing is stored; the shapes are the common ones (forms, JSON, query strings, gzip,
 * base64, DNS names), the values invented (a Luhn-valid test IMEI, a documentation-range address).
 */
import * as zlib from 'zlib';
import type { Flow } from '../flow';

/** Analysis time spent warming up, at most (and at most WARM_UP_ROUNDS rounds of the flows below). */
export const WARM_UP_BUDGET_MS = 60;
export const WARM_UP_ROUNDS = 150;

function flow(over: Partial<Flow>): Flow {
  const empty = { bytes: Buffer.alloc(0), size: 0, truncated: false };
  return {
    kind: 'http', source: 'proxy', startedAt: 0, endedAt: 0, clientIp: '192.168.0.2', method: 'GET', scheme: 'http', host: 'warm-up.invalid',
    port: 80, serverIp: '192.0.2.1', tls: false, requestHeaders: [], requestBody: empty, responseStatus: 200, responseHeaders: [], responseBody: empty,
    timings: {}, tags: [], ...over,
  };
}

function body(text: string | Buffer) {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text);
  return { bytes, size: bytes.length, truncated: false };
}

export function warmUpFlows(): Flow[] {
  const form = 'imei=490154203237518&iccid=89470000000000000009&SIM1CELLID=20817&mac=00:11:22:33:44:55&model=Nokia+7+plus';
  const json = JSON.stringify({ device: { imei: '490154203237518', adid: '38400000-8cf0-11bd-b23e-10b96e40000d' }, loc: { lat: 59.91, lon: 10.75 }, blob: Buffer.from('imsi=242019876543210').toString('base64'), hex: Buffer.from('490154203237518').toString('hex') });
  return [
    flow({ method: 'POST', url: 'http://warm-up.invalid/register', requestHeaders: [['Content-Type', 'application/x-www-form-urlencoded']], requestBody: body(form), responseBody: body('ok') }),
    flow({ method: 'POST', url: 'https://warm-up.invalid/v1/events', scheme: 'https', port: 443, tls: true, requestHeaders: [['Content-Type', 'application/json']], requestBody: body(json) }),
    flow({ url: 'http://warm-up.invalid/config?app=com.example&imei=490154203237518&n=1', responseHeaders: [['Content-Encoding', 'gzip'], ['Content-Type', 'application/json']], responseBody: body(zlib.gzipSync('{"ok":true,"interval":3600}')) }),
    flow({ kind: 'dns', method: 'QUERY', url: 'dns://490154203237518.warm-up.invalid/?type=A', scheme: 'dns', host: '490154203237518.warm-up.invalid', port: 53 }),
  ];
}

/** Runs analyse over the warm-up flows until the budget or the rounds are spent; errors are ignored. */
export function warmUp(analyse: (flow: Flow) => unknown, budgetMs = WARM_UP_BUDGET_MS, rounds = WARM_UP_ROUNDS): number {
  const flows = warmUpFlows();
  const until = performance.now() + budgetMs;
  let done = 0;
  for (let r = 0; r < rounds && performance.now() < until; r++) {
    for (const f of flows) {
      try {
        analyse(f);
      } catch {
        // A test analyser that throws on purpose: nothing to warm.
      }
    }
    done++;
  }
  return done;
}
