/**
 * Fuzzing the dashboard's HTTP and upgrade handlers of a real `phonehome start` (a child process,
 * stopped by PID): random and mutated requests — targets, methods, Host, Origin, cookies, Bearer
 * tokens, percent-escapes, Fetch Metadata, WebSocket handshakes, bodies, byte flips — written raw on
 * sockets, many with the valid token so they reach the routes. No answer may be a 5xx, no handler
 * may fail (its log line), and after each batch the process is alive and `/api/stats` with the
 * token answers 200. Seeded: a failure prints its seed and request; PHONEHOME_FUZZ_SEED=N replays
 * it, PHONEHOME_FUZZ_BATCHES=N runs longer.
 */
import * as path from 'path';
import { CliProcess, eventually, startCli } from './helpers/phonehome';
import { rawRequest, WS_UPGRADE_HEADERS } from './helpers/raw-http';
import { makeTempDir, removeDir } from './helpers/tmp';

const SEED = Number(process.env.PHONEHOME_FUZZ_SEED ?? 140_611);
const BATCHES = Number(process.env.PHONEHOME_FUZZ_BATCHES ?? 24);
const PER_BATCH = 60;
const PARALLEL = 6;

/** mulberry32: small, seedable, good enough to pick mutations. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return { next, int, chance: (p: number) => next() < p, pick: <T>(xs: readonly T[]): T => xs[int(xs.length)] };
}
type Rng = ReturnType<typeof rng>;

const PATHS = [
  '/', '/index.html', '/js/app.js', '/css/app.css', '/ws', '/api/stats', '/api/flows', '/api/flows/1', '/api/flows/999999', '/api/findings',
  '/api/destinations', '/api/devices', '/api/devices/127.0.0.1', '/api/devices/127.0.0.1/reanalyse', '/api/devices/::1/reanalyse', '/api/setup',
  '/api/export.har', '/api/wireguard/phone/config', '/api/wireguard/phone/qr.svg', '/api/nothing',
];
const METHODS = ['GET', 'GET', 'GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'CONNECT', 'M-SEARCH'];
const ESCAPES = ['%', '%E0%A4%A', '%E0%A4', '%00', '%ff', '%2e%2e/', '%2F', '%25', '%C0%AF', '%%', '%u0041', '%0d%0a', '%5c', '%G1'];
const QUERY_KEYS = ['limit', 'before', 'since', 'token', 'severity', 'q', 'type', 'host', 'device', 'onlyFindings', 'until', 'view', 'severity[]', '__proto__', 'constructor'];
const QUERY_VALUES = ['1', '0', '-1', '500', '501', '1e309', '9007199254740993', 'high', 'urgent', 'imei', '', '%', '%E0%A4%A', 'a'.repeat(3000), '[]', '{}', '2024-13-45', 'null'];

function randomText(r: Rng, n: number, alphabet = 'abcAZ09-._~!$&\'()*+,;=:@/?#[]%"<>\\^`{|} '): string {
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[r.int(alphabet.length)];
  return s;
}

interface Draft {
  method: string;
  path: string;
  query: string[];
  headers: Array<[string, string]>;
  body: string;
  /** Bytes to flip, insert or remove once written. */
  flips: number;
}

function setHeader(d: Draft, name: string, value: string | null): void {
  d.headers = d.headers.filter(([k]) => k.toLowerCase() !== name.toLowerCase());
  if (value !== null) d.headers.push([name, value]);
}

/** Each changes one thing of a valid request; a request gets up to three of them. */
const MUTATIONS: Array<(r: Rng, d: Draft, port: number, token: string) => void> = [
  (r, d) => { d.method = r.pick(METHODS); },
  (r, d) => {
    const p = d.path;
    const roll = r.int(6);
    if (roll === 0) d.path = '/' + p; // '//api/…', '//ws'
    else if (roll === 1) { const at = r.int(p.length) + 1; d.path = p.slice(0, at) + r.pick(ESCAPES) + p.slice(at); }
    else if (roll === 2) d.path = p.replace(/\/[^/]*$/, '/' + randomText(r, 1 + r.int(12)));
    else if (roll === 3) d.path = '/' + 'a/'.repeat(r.int(3000));
    else d.path = r.pick(['//[/ws', '//[/api/stats', '//[::1', '/[', '//%', '//:99999/ws', '//a:b@c/ws', '//@/ws', '*', 'http://127.0.0.1:1/api/stats', 'http://[/ws', '//127.0.0.1/api/stats', '/\\evil.example/', '/..%2f..%2fetc/passwd', '/%2e%2e/%2e%2e/package.json', '/.env', '/api/flows/%E0%A4%A']);
  },
  (r, d, _port, token) => {
    for (let i = r.int(4); i >= 0; i--) d.query.push(`${r.pick(QUERY_KEYS)}=${r.chance(0.2) ? token : r.pick(QUERY_VALUES)}`);
    if (r.chance(0.3)) d.query.push(randomText(r, r.int(20)));
  },
  (r, d, port) => setHeader(d, 'Host', r.pick([`localhost:${port}`, `[::1]:${port}`, 'evil.example', '[::1', '', `127.0.0.1:${port}:80`, '127.0.0.1:99999', 'a'.repeat(300), null])),
  (r, d, _port, token) => setHeader(d, 'Authorization', r.pick(['Bearer', 'Bearer ', `Bearer ${token}x`, `bearer\t${token}`, 'Basic YTpi', `Bearer ${'%E0%A4%A'.repeat(5)}`, `Bearer ${token} ${token}`, null])),
  (r, d, _port, token) => {
    const value = r.pick([token, '%E0%A4%A', `"${token}"`, `${token}%`, randomText(r, 10), '']);
    setHeader(d, 'Cookie', r.pick([`phonehome_token=${value}`, `a=1; phonehome_token=${value}; phonehome_token=x`, 'phonehome_token', `=${value}`, `${'c=1; '.repeat(200)}phonehome_token=${value}`]));
  },
  (r, d, port) => setHeader(d, 'Origin', r.pick([`http://127.0.0.1:${port}`, `http://127.0.0.1:${port + 1}`, 'null', 'http://evil.example', 'http://[', `HTTP://127.0.0.1:${port}`, 'x'.repeat(2000), `http://127.0.0.1:${port}/path`])),
  (r, d) => {
    setHeader(d, 'Sec-Fetch-Site', r.pick(['same-origin', 'same-site', 'cross-site', 'none', 'bogus']));
    setHeader(d, 'Sec-Fetch-Mode', r.pick(['navigate', 'cors', 'no-cors', 'websocket', null]));
    setHeader(d, 'Sec-Fetch-Dest', r.pick(['document', 'image', 'iframe', 'empty', null]));
  },
  (r, d) => setHeader(d, 'Accept', r.pick(['text/html', 'application/json', '*/*', 'text/html;q=0', randomText(r, 30)])),
  (r, d) => {
    // A WebSocket handshake, valid or not, on whatever target the request has.
    if (r.chance(0.5)) {
      for (const line of WS_UPGRADE_HEADERS.trim().split('\r\n')) { const i = line.indexOf(':'); setHeader(d, line.slice(0, i), line.slice(i + 1).trim()); }
      if (r.chance(0.5)) d.path = '/ws';
    } else {
      setHeader(d, 'Connection', r.pick(['Upgrade', 'upgrade, keep-alive', 'close']));
      setHeader(d, 'Upgrade', r.pick(['websocket', 'WebSocket', 'h2c', 'x']));
      setHeader(d, 'Sec-WebSocket-Version', r.pick(['13', '8', 'x', '']));
      setHeader(d, 'Sec-WebSocket-Key', r.pick(['dGhlIHNhbXBsZSBub25jZQ==', 'short', '', '%E0%A4%A']));
    }
  },
  (r, d) => {
    const roll = r.int(6);
    const json = (v: unknown) => { setHeader(d, 'Content-Type', 'application/json'); d.body = JSON.stringify(v); };
    if (roll === 0) json({ profile: r.chance(0.5) ? null : { name: randomText(r, 10), imei: r.pick(['490154203237518', '1', 42, [], {}]) } });
    else if (roll === 1) { setHeader(d, 'Content-Type', 'application/json'); d.body = '['.repeat(5000); }
    else if (roll === 2) { setHeader(d, 'Content-Type', 'application/json'); d.body = `{"profile": ${randomText(r, r.int(50))}`; }
    else if (roll === 3) { setHeader(d, 'Content-Type', r.pick(['text/plain', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded'])); d.body = randomText(r, r.int(500)); }
    else if (roll === 4) json({ profile: { name: 'x'.repeat(70_000) } });
    else setHeader(d, 'Transfer-Encoding', 'chunked');
    if (r.chance(0.1)) setHeader(d, 'Content-Length', String(Buffer.byteLength(d.body) + r.int(10) - 5));
  },
  (r, d) => d.headers.push([`X-${randomText(r, 5, 'abcdef')}`, randomText(r, r.int(100))]),
  (r, d) => { d.flips = 1 + r.int(5); },
];

/** A valid request (own Host, the Bearer token, a real route) with up to three things changed. */
function request(r: Rng, port: number, token: string): Buffer {
  const d: Draft = {
    method: r.chance(0.8) ? 'GET' : r.pick(['POST', 'PUT']),
    path: r.pick(PATHS), query: [], body: '', flips: 0,
    headers: [['Host', `127.0.0.1:${port}`], ['Authorization', `Bearer ${token}`]],
  };
  // A quarter are WebSocket handshakes: the raw upgrade listener gets the same mutations as the routes.
  if (r.chance(0.25)) {
    d.method = 'GET';
    d.path = '/ws';
    for (const line of WS_UPGRADE_HEADERS.trim().split('\r\n')) d.headers.push([line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()]);
  }
  for (let i = r.int(4); i > 0; i--) r.pick(MUTATIONS)(r, d, port, token);
  if (d.body && !d.headers.some(([k]) => /^(content-length|transfer-encoding)$/i.test(k))) d.headers.push(['Content-Length', String(Buffer.byteLength(d.body))]);
  const head = [`${d.method} ${d.path}${d.query.length ? `?${d.query.join('&')}` : ''} HTTP/1.1`, ...d.headers.map(([k, v]) => `${k}: ${v}`)];
  const bytes = Buffer.from(`${head.join('\r\n')}\r\n\r\n${d.body}`, 'latin1');
  if (!d.flips) return bytes;
  const out = [...bytes];
  for (let i = d.flips; i > 0; i--) {
    const at = r.int(out.length);
    const op = r.int(3);
    if (op === 0) out[at] = r.int(256);
    else if (op === 1) out.splice(at, 0, r.int(256));
    else out.splice(at, 1);
  }
  return Buffer.from(out);
}

describe('dashboard fuzz', () => {
  let dir: string;
  let cli: CliProcess | undefined;
  afterAll(async () => {
    if (process.env.DEBUG_HANDLES) { process.kill(cli!.child.pid!, 'SIGTERM'); await new Promise((r) => setTimeout(r, 6000)); console.log(cli!.stderr().slice(-3000)); }
    await cli?.stop();
    removeDir(dir);
  });

  it(`survives ${BATCHES} batches of ${PER_BATCH} random and mutated requests (seed ${SEED})`, async () => {
    dir = makeTempDir('phonehome-fuzz-');
    cli = await startCli(['--listen-host', '127.0.0.1', '--port', '0', '--dashboard-port', '0', '--data-dir', path.join(dir, 'data')]);
    const [, port, token] = (await eventually(() => /dashboard: +http:\/\/127\.0\.0\.1:(\d+)\/\?token=(\S+)/.exec(cli!.stdout()), 10_000, 'the banner')).map(String);
    const dashPort = Number(port);
    const r = rng(SEED);
    const statuses = new Map<number, number>();
    for (let batch = 0; batch < BATCHES; batch++) {
      const requests = Array.from({ length: PER_BATCH }, () => request(r, dashPort, token));
      for (let i = 0; i < requests.length; i += PARALLEL) {
        const answers = await Promise.all(requests.slice(i, i + PARALLEL).map((req) => rawRequest(dashPort, req, 3000)));
        answers.forEach((a, k) => {
          statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
          const sent = JSON.stringify(requests[i + k].toString('latin1').slice(0, 600));
          if (a.status >= 500) throw new Error(`seed ${SEED}, batch ${batch}: ${a.status} for ${sent}: ${a.body.slice(0, 200)}`);
        });
      }
      if (cli.child.exitCode !== null || cli.child.signalCode !== null) {
        throw new Error(`seed ${SEED}, batch ${batch}: phonehome exited (${cli.child.exitCode ?? cli.child.signalCode}): ${cli.stderr().slice(-2000)}`);
      }
      const stats = await fetch(`http://127.0.0.1:${dashPort}/api/stats`, { headers: { Authorization: `Bearer ${token}` } });
      expect([batch, stats.status]).toEqual([batch, 200]);
    }
    // No handler failed (each failure is logged as "… failed: …"), and the token never reached a log line.
    expect(cli.stderr().split('\n').filter((l) => / failed: /.test(l))).toEqual([]);
    expect(cli.stderr().includes(token) || cli.stdout().split(token).length > 2).toBe(false);
    // The fuzz reached the routes, not only the gate: successes, refusals and bad requests all happened.
    for (const s of [200, 400, 401, 403, 404]) expect([s, statuses.get(s) ?? 0]).not.toEqual([s, 0]);
    process.stdout.write(`dashboard fuzz, seed ${SEED}: ${[...statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`).join(' ')}\n`);
  }, 240_000);
});
