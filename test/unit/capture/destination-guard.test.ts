/**
 * The destination guard: loopback refused unless allowed, phonehome's own ports refused on every
 * address of the laptop, and names checked again after resolution inside the socket's own lookup,
 * so a name that resolves to loopback never opens a connection (real sockets on loopback).
 */
import type { LookupAddress, LookupOptions } from 'dns';
import * as net from 'net';
import { DestinationGuard, DestinationRefusedError, isDestinationRefused } from '../../../proxy/capture/destination-guard';

const LAPTOP_ADDRESSES = ['127.0.0.1', '::1', '192.168.1.10', 'fe80::1c2:3ff:fe04:506'];

/** Resolves a few test names (stands in for a DNS server an attacker controls). */
const ANSWERS: Record<string, LookupAddress[]> = {
  'rebind.test': [{ address: '127.0.0.1', family: 4 }],
  'six.test': [{ address: '::1', family: 6 }],
  'mapped.test': [{ address: '::ffff:127.0.0.1', family: 6 }],
  'mixed.test': [{ address: '93.184.216.34', family: 4 }, { address: '127.0.0.1', family: 4 }],
  'public.test': [{ address: '93.184.216.34', family: 4 }],
  'laptop.test': [{ address: '192.168.1.10', family: 4 }],
  'any.test': [{ address: '0.0.0.0', family: 4 }],
};

function testLookup(hostname: string, options: LookupOptions, cb: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void): void {
  const answers = ANSWERS[hostname];
  if (!answers) return cb(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), '', 0);
  if (options.all) cb(null, answers);
  else cb(null, answers[0].address, answers[0].family);
}

function guard(allowLoopbackTargets = false): DestinationGuard {
  const g = new DestinationGuard({ allowLoopbackTargets, lookup: testLookup as never, localAddresses: () => LAPTOP_ADDRESSES });
  g.addOwnService('proxy', 'tcp', 8080);
  g.addOwnService('dashboard', 'tcp', 8081);
  g.addOwnService('wireguard', 'udp', 51820);
  return g;
}

function resolve(g: DestinationGuard, host: string, port: number, all: boolean): Promise<{ err: NodeJS.ErrnoException | null; address: string | LookupAddress[] }> {
  return new Promise((done) => g.lookupFor(port)(host, { all } as LookupOptions, (err, address) => done({ err, address })));
}

describe('DestinationGuard.check', () => {
  test.each(['127.0.0.1', '127.1', '2130706433', '0x7f000001', '017700000001', '::ffff:127.0.0.1', '::ffff:7f00:1', '::1', '0.0.0.0', '::', 'localhost', 'LOCALHOST.', 'db.localhost'])(
    'refuses %s by default, on any port, and says why',
    (host) => {
      for (const port of [1, 80, 443, 8082, 5432, 65535]) {
        const r = guard().check(host.toLowerCase(), port);
        expect(r).toMatchObject({ kind: 'loopback', tag: 'loopback-refused' });
        expect(r!.message).toMatch(/this laptop's own loopback address.*--allow-loopback-targets/);
      }
    },
  );

  test('names the address a spelling stands for', () => {
    expect(guard().check('0x7f000001', 80)!.message).toMatch(/^refused: 0x7f000001 \(127\.0\.0\.1\) is this laptop's own loopback/);
    expect(guard().check('127.0.0.1', 80)!.message).toMatch(/^refused: 127\.0\.0\.1 is/);
  });

  test.each(['128.0.0.1', '10.0.0.1', '192.168.1.11', '8.8.8.8', 'example.com', 'zzhc.vnet.cn', '127.example.com', 'fd77::1'])('lets %s through', (host) => {
    expect(guard().check(host, 443)).toBeUndefined();
  });

  test('--allow-loopback-targets lets loopback through, except phonehome\'s own ports', () => {
    const g = guard(true);
    for (const host of ['127.0.0.1', '127.1', 'localhost', '::1', '0.0.0.0']) expect(g.check(host, 5432)).toBeUndefined();
    expect(g.check('127.1', 8080)).toMatchObject({ kind: 'self', tag: 'self-refused' });
    expect(g.check('localhost', 8081)!.message).toMatch(/is phonehome itself \(port 8081, its dashboard\)/);
  });

  test('phonehome\'s own ports are refused on the laptop\'s other addresses too, whatever the flag', () => {
    for (const g of [guard(false), guard(true)]) {
      expect(g.check('192.168.1.10', 8080)!.message).toMatch(/^refused: 192\.168\.1\.10 is phonehome itself \(port 8080, its proxy port/);
      expect(g.check('192.168.1.10', 8081)).toMatchObject({ kind: 'self' });
      expect(g.check('3232235786', 8081)).toMatchObject({ kind: 'self' }); // 192.168.1.10 as one number
      expect(g.check('::ffff:192.168.1.10', 8081)).toMatchObject({ kind: 'self' });
      expect(g.check('FE80::1C2:3FF:FE04:506'.toLowerCase(), 8081)).toMatchObject({ kind: 'self' });
      expect(g.check('192.168.1.10', 8082)).toBeUndefined(); // any other service of the laptop on its LAN address
      expect(g.check('192.168.1.11', 8080)).toBeUndefined(); // another machine's proxy
      expect(g.check('192.168.1.10', 51820)).toBeUndefined(); // TCP: WireGuard is UDP
      expect(g.check('192.168.1.10', 51820, { protocol: 'udp' })).toMatchObject({ kind: 'self' });
      expect(g.check('192.168.1.10', 8080, { allow: ['proxy'] })).toBeUndefined();
    }
  });

  test('isThisLaptop recognises the laptop in any spelling and nothing else', () => {
    const g = guard();
    for (const h of ['127.0.0.1', '127.9.9.9', '0x7f000001', 'localhost', '::1', '::', '192.168.1.10', '0xc0a8010a', '::ffff:c0a8:10a']) expect(g.isThisLaptop(h)).toBe(true);
    for (const h of ['192.168.1.11', '10.0.0.1', 'example.com', 'fe80::1']) expect(g.isThisLaptop(h)).toBe(false);
  });
});

describe('DestinationGuard.lookupFor: resolved addresses are checked before connecting', () => {
  test.each([
    ['rebind.test', /rebind\.test resolves to 127\.0\.0\.1, which is this laptop's own loopback/],
    ['six.test', /six\.test resolves to ::1, which/],
    ['mapped.test', /mapped\.test resolves to ::ffff:127\.0\.0\.1, which/],
    ['any.test', /any\.test resolves to 0\.0\.0\.0/],
    ['localhost', /^refused: localhost is this laptop's own loopback/],
    ['127.1', /^refused: 127\.1 \(127\.0\.0\.1\)/],
  ])('%s is refused, with one answer or all', async (host, message) => {
    for (const all of [false, true]) {
      const { err } = await resolve(guard(), host, 443, all);
      expect(isDestinationRefused(err)).toBe(true);
      expect(err!.message).toMatch(message);
      expect((err as DestinationRefusedError).refusal.tag).toBe('loopback-refused');
    }
  });

  test('a name with a loopback address among its answers is refused when the socket may use any of them', async () => {
    const { err } = await resolve(guard(), 'mixed.test', 443, true);
    expect(err!.message).toMatch(/mixed\.test resolves to 127\.0\.0\.1/);
    // With one answer asked for, the socket connects to that one: a public address, allowed.
    expect(await resolve(guard(), 'mixed.test', 443, false)).toEqual({ err: null, address: '93.184.216.34' });
  });

  test('a public answer passes unchanged; resolver errors pass through', async () => {
    expect(await resolve(guard(), 'public.test', 443, false)).toEqual({ err: null, address: '93.184.216.34' });
    expect(await resolve(guard(), 'public.test', 443, true)).toEqual({ err: null, address: [{ address: '93.184.216.34', family: 4 }] });
    const { err } = await resolve(guard(), 'nowhere.test', 443, false);
    expect(err!.code).toBe('ENOTFOUND');
  });

  test('a name for the laptop\'s LAN address is refused only on phonehome\'s own ports', async () => {
    expect((await resolve(guard(), 'laptop.test', 8081, true)).err!.message).toMatch(/laptop\.test resolves to 192\.168\.1\.10, which is phonehome itself \(port 8081, its dashboard\)/);
    expect((await resolve(guard(), 'laptop.test', 3000, true)).err).toBeNull();
  });

  test('with --allow-loopback-targets, loopback answers pass', async () => {
    expect(await resolve(guard(true), 'rebind.test', 443, false)).toEqual({ err: null, address: '127.0.0.1' });
  });
});

describe('through a real socket', () => {
  let server: net.Server;
  let port: number;
  let connections = 0;

  beforeAll(async () => {
    server = net.createServer((s) => {
      connections++;
      s.on('error', () => undefined);
      s.end('hello');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as net.AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  function connect(g: DestinationGuard, autoSelectFamily: boolean): Promise<Error | 'connected'> {
    return new Promise((done) => {
      const s = net.connect({ host: 'rebind.test', port, lookup: g.lookupFor(port), autoSelectFamily });
      s.once('connect', () => {
        s.destroy();
        done('connected');
      });
      s.once('error', (err) => done(err));
    });
  }

  test('a name resolving to 127.0.0.1 fails with the refusal and the server sees no connection', async () => {
    for (const autoSelectFamily of [false, true]) {
      const result = await connect(guard(), autoSelectFamily);
      expect(isDestinationRefused(result)).toBe(true);
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(connections).toBe(0);
  });

  test('the same connection goes through with --allow-loopback-targets (the test can fail)', async () => {
    expect(await connect(guard(true), true)).toBe('connected');
    await new Promise((r) => setTimeout(r, 50));
    expect(connections).toBe(1);
  });
});
