/**
 * Hostile requests for fuzzing the proxy's request parser, generated from a seed (mulberry32) so a
 * failing case is reproduced by its seed alone. Each case is the bytes a client writes (in one or
 * several writes) and where they are written: straight to the proxy, inside a plain CONNECT tunnel,
 * or inside TLS intercepted through a tunnel. Shapes: origin- and absolute-form requests, CONNECT
 * lines, Host headers with odd ports, percent escapes, huge and broken headers, chunked bodies with
 * bad sizes, upgrade requests, garbage (and garbage TLS) after a CONNECT, random bytes, and byte
 * mutations of valid requests.
 */

export type Rng = () => number;

/** mulberry32: small, fast, and the same sequence for a seed on every platform. */
export function seededRng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FuzzTargets {
  /** The loopback HTTP origin (reached as origin.test:port). */
  originPort: number;
  /** The loopback HTTPS origin. */
  httpsOriginPort: number;
  proxyPort: number;
  /** A port where nothing listens. */
  closedPort: number;
}

export interface FuzzCase {
  kind: string;
  /** How the bytes reach the parser. */
  via: 'direct' | 'tunnel' | 'tls';
  /** The tunnel's target when via is 'tunnel' or 'tls'. */
  tunnelTo?: string;
  /** Written one after another (a split head, a body in pieces). */
  writes: Buffer[];
  /** Half-close after writing (the client is done sending). */
  end: boolean;
}

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)];
const int = (rng: Rng, lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));
const bytes = (rng: Rng, n: number) => Buffer.from(Array.from({ length: n }, () => int(rng, 0, 255)));

const METHODS = ['GET', 'POST', 'PUT', 'HEAD', 'OPTIONS', 'DELETE', 'PATCH', 'TRACE', 'PRI', 'G ET', 'get', 'X'.repeat(40), '', 'GET\0'];
const VERSIONS = ['HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1 ', 'HTTP/9.9', 'HTTP/1', 'HTTPS/1.1', ''];
const ODD_PORTS = ['99999', '-5', '0', '65536', '', '80a', '08080', '1e3', ' 80', '4294967377', '%38%30'];
const ESCAPES = ['%zz', '%', '%E0%A4%A', '%00', '%2e%2e%2f', '%25', '%C0%AF', '%ff%fe', '%u0041', '%%41', '%0d%0a'];
const WEIRD_HOSTS = ['[::1]', '[/', '[', ']', 'a:b:c', '..', '../../x', 'xn--', 'é.test', 'a b', '', 'x'.repeat(300), '[::ffff:127.0.0.1]', '%41.test', 'origin.test.', '@', 'user@origin.test'];

function hostPort(rng: Rng, t: FuzzTargets): string {
  const r = rng();
  if (r < 0.35) return `origin.test:${t.originPort}`;
  if (r < 0.45) return `origin.test:${t.closedPort}`;
  if (r < 0.55) return `127.0.0.1:${t.proxyPort}`;
  if (r < 0.7) return `${pick(rng, ['origin.test', '127.0.0.1', 'phonehome.setup'])}:${pick(rng, ODD_PORTS)}`;
  if (r < 0.9) return `${pick(rng, WEIRD_HOSTS)}${rng() < 0.5 ? `:${t.originPort}` : ''}`;
  return bytes(rng, int(rng, 1, 20)).toString('latin1');
}

function path(rng: Rng): string {
  let p = pick(rng, ['/', '/a', '/a/b?c=d', '/q?imei=356938035643809&x=%41', '*', '', '//[/ws', '/./../..', '?', '#frag', '/ws']);
  for (let i = int(rng, 0, 3); i > 0; i--) p += pick(rng, ESCAPES) + pick(rng, ['', 'x', '/', '=']);
  if (rng() < 0.05) p += 'p'.repeat(int(rng, 1000, 70000));
  return p;
}

function target(rng: Rng, t: FuzzTargets): string {
  const r = rng();
  if (r < 0.3) return `http://origin.test:${t.originPort}${path(rng)}`;
  if (r < 0.45) return path(rng);
  if (r < 0.8) return `${pick(rng, ['http', 'https', 'HTTP', 'ftp', 'ws', 'http:/', ''])}://${hostPort(rng, t)}${path(rng)}`;
  return pick(rng, ['//[/ws', 'http://[/ws', 'http://', 'http://:80/', 'http://%zz/', `http://origin.test:${t.originPort}`, '*']);
}

/** Well-formed header lines with hostile values: they reach the forwarding code, not just the parser. */
function oddHeader(rng: Rng, t: FuzzTargets): string {
  return pick(rng, [
    `Cookie: phonehome_token=${pick(rng, ESCAPES)}`,
    `X-Long: ${'v'.repeat(int(rng, 100, 40000))}`,
    'Content-Length: 5',
    'Transfer-Encoding: chunked',
    'Transfer-Encoding: gzip, chunked',
    'Connection: close',
    'Connection: keep-alive, X-Drop',
    'Proxy-Connection: keep-alive',
    'Proxy-Authorization: Basic %%%',
    'Expect: 100-continue',
    'Content-Encoding: gzip',
    `Referer: http://${hostPort(rng, t)}/`,
    `X-Escapes: ${pick(rng, ESCAPES)}${pick(rng, ESCAPES)}`,
  ]);
}

/** Header lines a strict parser must reject (or a lenient one must survive). */
function brokenHeader(rng: Rng): string {
  return pick(rng, [
    'X-Folded: a\r\n continued',
    'NoColonHere',
    ': empty-name',
    'X-Nul: a\0b',
    'Content-Length: -1',
    'Content-Length: 99999999999999999999',
    'Content-Length: 3, 4',
    'Transfer-Encoding: identity',
    `X-Bytes: ${bytes(rng, 8).toString('latin1')}`,
  ]);
}

function headers(rng: Rng, t: FuzzTargets, host: string): string[] {
  const out: string[] = [];
  if (rng() < 0.85) out.push(`Host: ${rng() < 0.6 ? host : hostPort(rng, t)}`);
  if (rng() < 0.1) out.push(`Host: ${hostPort(rng, t)}`); // a second Host
  for (let i = int(rng, 0, 3); i > 0; i--) out.push(oddHeader(rng, t));
  if (rng() < 0.25) out.push(brokenHeader(rng));
  if (rng() < 0.05) for (let i = 0; i < 3000; i++) out.push(`X-H${i}: v`);
  return out;
}

function chunkedBody(rng: Rng): string {
  let body = '';
  for (let i = int(rng, 0, 3); i > 0; i--) {
    const size = pick(rng, ['5', 'zz', '-1', 'ffffffffffffffff', '5;ext=1', '5 ', '0x5', '']);
    body += `${size}\r\nhello\r\n`;
  }
  return body + pick(rng, ['0\r\n\r\n', '0\r\n', '', '0\r\nTrailer: x\r\n\r\n']);
}

function requestText(rng: Rng, t: FuzzTargets): string {
  const method = rng() < 0.85 ? pick(rng, ['GET', 'POST', 'PUT', 'HEAD', 'OPTIONS']) : pick(rng, METHODS);
  const tgt = target(rng, t);
  const version = rng() < 0.85 ? 'HTTP/1.1' : pick(rng, VERSIONS);
  const hs = headers(rng, t, `origin.test:${t.originPort}`);
  const eol = rng() < 0.9 ? '\r\n' : '\n';
  let body = '';
  if (hs.some((h) => /chunked/.test(h))) body = chunkedBody(rng);
  else if (hs.some((h) => /^Content-Length/.test(h))) body = 'hello';
  return `${method} ${tgt} ${version}${eol}${hs.join(eol)}${eol}${eol}${body}`;
}

function upgradeText(rng: Rng, t: FuzzTargets): string {
  const tgt = pick(rng, ['/ws', '//[/ws', `http://origin.test:${t.originPort}/ws`, `http://origin.test:${pick(rng, ODD_PORTS)}/ws`, `http://${pick(rng, WEIRD_HOSTS)}/ws`, path(rng)]);
  const hs = [`Host: ${rng() < 0.7 ? `origin.test:${t.originPort}` : hostPort(rng, t)}`, 'Connection: Upgrade', `Upgrade: ${pick(rng, ['websocket', 'h2c', 'garbage', '', 'websocket, h2c'])}`];
  if (rng() < 0.8) hs.push('Sec-WebSocket-Version: 13', `Sec-WebSocket-Key: ${pick(rng, ['dGhlIHNhbXBsZSBub25jZQ==', '', '%%%'])}`);
  if (rng() < 0.3) hs.push(`Cookie: phonehome_token=${pick(rng, ESCAPES)}`);
  const after = rng() < 0.5 ? bytes(rng, int(rng, 1, 200)).toString('latin1') : '';
  return `GET ${tgt} HTTP/1.1\r\n${hs.join('\r\n')}\r\n\r\n${after}`;
}

function connectText(rng: Rng, t: FuzzTargets): string {
  const authority = rng() < 0.5 ? `origin.test:${pick(rng, [t.originPort, t.httpsOriginPort])}` : hostPort(rng, t);
  const version = rng() < 0.9 ? 'HTTP/1.1' : pick(rng, VERSIONS);
  return `CONNECT ${authority} ${version}\r\nHost: ${authority}\r\n\r\n`;
}

/** Something that looks like TLS to a sniffer and is not: a handshake record with random insides. */
function garbageTls(rng: Rng): Buffer {
  const len = int(rng, 0, 600);
  const declared = rng() < 0.5 ? len : int(rng, 0, 0xffff);
  const head = Buffer.from([0x16, 0x03, int(rng, 0, 4), declared >> 8, declared & 0xff, 0x01]);
  return Buffer.concat([head, bytes(rng, len)]);
}

function mutate(rng: Rng, data: Buffer): Buffer {
  const out = Buffer.from(data);
  for (let i = int(rng, 1, 8); i > 0 && out.length; i--) out[int(rng, 0, out.length - 1)] = int(rng, 0, 255);
  if (rng() < 0.3) return out.subarray(0, int(rng, 0, out.length));
  return out;
}

/** Splits `data` into 1-4 writes at random points. */
function split(rng: Rng, data: Buffer): Buffer[] {
  const cuts = Array.from({ length: int(rng, 0, 3) }, () => int(rng, 0, data.length)).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const c of cuts) {
    out.push(data.subarray(at, c));
    at = c;
  }
  out.push(data.subarray(at));
  return out.filter((b) => b.length > 0);
}

/** One case, drawn from `rng`. */
export function fuzzCase(rng: Rng, t: FuzzTargets): FuzzCase {
  const shape = pick(rng, ['request', 'request', 'request', 'upgrade', 'connect+garbage', 'connect+tls-garbage', 'connect+request', 'pipelined', 'random', 'mutated', 'mutated']);
  let via: FuzzCase['via'] = 'direct';
  let data: Buffer;
  switch (shape) {
    case 'request':
      data = Buffer.from(requestText(rng, t), 'latin1');
      if (rng() < 0.3) via = pick(rng, ['tunnel', 'tls'] as const);
      break;
    case 'upgrade':
      data = Buffer.from(upgradeText(rng, t), 'latin1');
      if (rng() < 0.3) via = pick(rng, ['tunnel', 'tls'] as const);
      break;
    case 'connect+garbage':
      data = Buffer.concat([Buffer.from(connectText(rng, t), 'latin1'), bytes(rng, int(rng, 1, 2000))]);
      break;
    case 'connect+tls-garbage':
      data = Buffer.concat([Buffer.from(connectText(rng, t), 'latin1'), garbageTls(rng)]);
      break;
    case 'connect+request':
      data = Buffer.from(connectText(rng, t) + requestText(rng, t), 'latin1');
      break;
    case 'pipelined': {
      const parts: string[] = [];
      for (let i = int(rng, 2, 30); i > 0; i--) parts.push(rng() < 0.3 ? connectText(rng, t) : requestText(rng, t));
      data = Buffer.from(parts.join(''), 'latin1');
      if (rng() < 0.3) via = pick(rng, ['tunnel', 'tls'] as const);
      break;
    }
    case 'random':
      data = bytes(rng, int(rng, 1, 3000));
      break;
    default:
      data = mutate(rng, Buffer.from(pick(rng, [requestText, upgradeText, connectText])(rng, t), 'latin1'));
      if (rng() < 0.2) via = pick(rng, ['tunnel', 'tls'] as const);
  }
  const tunnelTo = via === 'tls' ? `origin.test:${t.httpsOriginPort}` : `origin.test:${t.originPort}`;
  return { kind: shape, via, tunnelTo: via === 'direct' ? undefined : tunnelTo, writes: split(rng, data), end: rng() < 0.5 };
}

/** A case as a line for a failure message: shape, route and the first bytes. */
export function describeCase(c: FuzzCase): string {
  const all = Buffer.concat(c.writes);
  return `${c.kind} via ${c.via}${c.tunnelTo ? ` ${c.tunnelTo}` : ''}: ${JSON.stringify(all.subarray(0, 160).toString('latin1'))}${all.length > 160 ? ` (+${all.length - 160} bytes)` : ''}`;
}
