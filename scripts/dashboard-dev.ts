/**
 * Dev server for the dashboard page: a temp SQLite store seeded with realistic leaking flows, run
 * through the real analysis pipeline, served by the real dashboard server, with new flows trickling
 * in so the live view moves. Lets you work on dashboard/public without a phone (edit, reload). It
 * prints the link with its token (a new random one each run).
 *
 *   npm run build && node dist/scripts/dashboard-dev.js [--flows N] [--every MS] [--port P] [--keep]
 *
 * --flows N: flows seeded before the server starts (default 200; try 100000 for the speed check).
 * --every MS: one new flow every MS milliseconds (default 1500; 0 = none). --keep: keep the temp dir.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { startDashboard } from '../dashboard/server';
import type { Flow, Header } from '../proxy/flow';
import { AnalysisPipeline } from '../proxy/pipeline';
import { Store } from '../proxy/store';

/** Values of one imaginary phone (valid check digits), so profile detection has something to match. */
const PHONE = {
  imei: '490154203237518',
  imei2: '356938035643809',
  iccid: '89470000000000000072',
  imsi: '242011234567890',
  mac: 'd4:6a:6a:12:34:56',
  adId: '38400000-8cf0-11bd-b23e-10b96e40000d',
  androidId: '9774d56d682e549c',
  msisdn: '+4791234567',
};
const XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">';

function body(text: string | Buffer): Flow['requestBody'] {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text);
  return { bytes, size: bytes.length, truncated: false };
}

function flow(url: string, headers: Header[], reqBody: string | Buffer, clientIp: string, method = 'POST'): Flow {
  const u = new URL(url);
  const tls = u.protocol === 'https:';
  const now = Date.now();
  return {
    kind: 'http', source: 'proxy', startedAt: now - 40, endedAt: now, clientIp, method, url,
    scheme: tls ? 'https' : 'http', host: u.hostname, port: Number(u.port) || (tls ? 443 : 80), tls,
    sni: tls ? u.hostname : undefined, requestHeaders: [['Host', u.host], ...headers], requestBody: body(reqBody),
    responseStatus: 200, responseHeaders: [['Content-Type', 'application/json']], responseBody: body('{"ok":true}'),
    timings: { totalMs: 40 }, tags: [],
  };
}

/** The kinds of traffic phonehome exists for, each built the way such clients really send it. */
const MAKERS: ((i: number, ip: string) => Flow)[] = [
  // Nokia 7 plus, 2019: a cleartext form post to China Telecom's activation server.
  (i, ip) => flow('http://zzhc.vnet.cn:9999/register', [['Content-Type', 'application/x-www-form-urlencoded']],
    `IMEI1=${PHONE.imei}&IMEI2=${PHONE.imei2}&ICCID=${PHONE.iccid}&MAC=${PHONE.mac.toUpperCase()}&SIM1CELLID=${20000 + (i % 500)}&seq=${i}`, ip),
  // An ad SDK: JSON over TLS with the advertising ID and Android ID.
  (i, ip) => flow('https://ads.example-sdk.com/v2/bid', [['Content-Type', 'application/json']],
    JSON.stringify({ app: 'com.example.game', device: { gaid: PHONE.adId, android_id: PHONE.androidId, lmt: 0 }, n: i }), ip),
  // Telemetry: base64-wrapped, gzipped JSON with the IMSI and location.
  (i, ip) => flow('https://telemetry.example-oem.com/log', [['Content-Type', 'application/octet-stream'], ['Content-Encoding', 'gzip']],
    zlib.gzipSync(Buffer.from(JSON.stringify({ d: Buffer.from(JSON.stringify({ imsi: PHONE.imsi, lat: 59.9139 + i * 1e-5, lon: 10.7522 })).toString('base64') }))), ip),
  // A query-string beacon with the phone number.
  (i, ip) => flow(`http://stats.example-carrier.net/ping?msisdn=${encodeURIComponent(PHONE.msisdn)}&t=${i}`, [], '', ip, 'GET'),
  // Hostile text in every place the page shows: it must be displayed, never run.
  (i, ip) => flow(`http://evil.example.org/x?q=${encodeURIComponent(XSS)}&imei=${PHONE.imei}`, [['X-Note', XSS], ['Content-Type', 'text/html']],
    `<html>${XSS} imei=${PHONE.imei} n=${i}</html>`, ip),
  // Nothing to find.
  (i, ip) => flow(`https://cdn.example.com/img/${i}.png`, [], '', ip, 'GET'),
];

function makeFlow(i: number): Flow {
  const ip = i % 5 === 0 ? '192.168.1.40' : '192.168.1.23';
  return MAKERS[i % MAKERS.length](i, ip);
}

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const v = Number(process.argv[at + 1]);
  if (!Number.isInteger(v) || v < 0) throw new Error(`--${name} needs a whole number`);
  return v;
}

async function main(): Promise<void> {
  const seed = flag('flows', 200);
  const every = flag('every', 1500);
  const port = flag('port', 0);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-dev-'));
  const store = Store.open({ dataDir: dir });
  const pipeline = new AnalysisPipeline({ store, log: (m) => process.stderr.write(`pipeline: ${m}\n`) });
  store.devices.setProfile('192.168.1.23', { name: 'Nokia 7 plus', imei: [PHONE.imei, PHONE.imei2], iccid: PHONE.iccid });
  let n = 0;
  const record = () => {
    const f = makeFlow(n++);
    store.flows.insert(f);
    pipeline.submit(f);
  };
  for (let i = 0; i < seed; i++) {
    record();
    if (i % 2000 === 1999) {
      await pipeline.idle();
      process.stderr.write(`seeded ${i + 1}/${seed}\n`);
    }
  }
  await pipeline.idle();
  const dashboard = await startDashboard({
    port, store, broadcaster: pipeline.broadcaster, reanalyse: (ip) => pipeline.reanalyse(ip),
    // No proxy runs here: the Setup view shows an example address.
    setupInfo: { proxyHost: '192.168.1.10', proxyPort: 8080, addresses: ['192.168.1.10'],
      setupUrl: 'http://192.168.1.10:8080/setup', caUrl: 'http://192.168.1.10:8080/ca.pem' },
  });
  process.stdout.write(`dashboard: ${dashboard.url}  (data in ${dir})\n`);
  const timer = every > 0 ? setInterval(record, every) : null;
  const stop = async () => {
    if (timer) clearInterval(timer);
    await dashboard.close();
    await pipeline.close();
    store.close();
    if (!process.argv.includes('--keep')) fs.rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err) => {
  process.stderr.write(`dashboard-dev: ${(err as Error).stack}\n`);
  process.exit(1);
});
