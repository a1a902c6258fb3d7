/**
 * Fuzzing the proxy's request parser over real loopback sockets: batches of seeded hostile requests
 * (helpers/fuzz-requests.ts) written straight to the proxy, inside plain CONNECT tunnels and inside
 * intercepted TLS. After each batch the proxy must still forward a normal request to the loopback
 * origin, and no listener may have failed (a contained failure is logged "… failed for client …":
 * contained, but still a bug). An uncaught exception fails the batch that caused it.
 *
 * Reproduce a failure with its seed: PHONEHOME_FUZZ_SEED=<seed> npx jest test/e2e/proxy-fuzz.test.ts
 */
import * as net from 'net';
import { connectTcp, curl, openTunnel, tlsThroughProxy } from './helpers/clients';
import { describeCase, FuzzCase, fuzzCase, FuzzTargets, seededRng } from './helpers/fuzz-requests';
import { DISTINCT_HOST_COUNT, Origin, refusedPort, startHttpOrigin, startHttpsOrigin } from './helpers/origin';
import { eventually, startTestPhonehome, TestPhonehome } from './helpers/phonehome';

const SEEDS = process.env.PHONEHOME_FUZZ_SEED ? [Number(process.env.PHONEHOME_FUZZ_SEED)] : [1402, 2718, 31337];
const BATCHES = 4;
const CASES_PER_BATCH = 60;
const CONCURRENCY = 20;
/** A case's client gives up waiting for the proxy after this long (a bound, not a measurement). */
const CASE_WAIT_MS = 1500;

let ph: TestPhonehome;
let httpOrigin: Origin;
let httpsOrigin: Origin;
let targets: FuzzTargets;

beforeAll(async () => {
  [httpOrigin, httpsOrigin] = await Promise.all([startHttpOrigin(), startHttpsOrigin()]);
  ph = await startTestPhonehome({ headTimeoutMs: 1000 });
  targets = { originPort: httpOrigin.port, httpsOriginPort: httpsOrigin.port, proxyPort: ph.proxyPort, closedPort: await refusedPort() };
});

afterAll(async () => {
  await ph?.stop();
  await Promise.all([httpOrigin?.close(), httpsOrigin?.close()]);
});

let tlsHosts = 0;

/**
 * Opens the route a case asks for; undefined when the proxy refused or closed the tunnel (that is an
 * answer too). TLS cases use a new name each (h1.test…): cases that close right after the handshake
 * look like certificate pinning, after which the proxy relays that name untouched (by design).
 */
async function route(c: FuzzCase): Promise<net.Socket | undefined> {
  if (c.via === 'direct') return connectTcp(ph.proxyPort);
  try {
    if (c.via === 'tunnel') {
      const { socket, status } = await openTunnel(ph.proxyPort, c.tunnelTo!);
      if (status === 200) return socket;
      socket.destroy();
      return undefined;
    }
    const host = `h${(tlsHosts++ % DISTINCT_HOST_COUNT) + 1}.test`;
    return (await tlsThroughProxy(ph.proxyPort, host, httpsOrigin.port, ph.ca.certPem)) as unknown as net.Socket;
  } catch {
    return undefined;
  }
}

/** Writes a case and waits for the proxy to close the connection, or gives up after CASE_WAIT_MS. */
async function runCase(c: FuzzCase): Promise<void> {
  const socket = await route(c);
  if (!socket) return;
  socket.on('error', () => undefined);
  socket.on('data', () => undefined);
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      socket.destroy();
      resolve();
    }, CASE_WAIT_MS);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    (async () => {
      for (const piece of c.writes) {
        if (socket.destroyed) return;
        socket.write(piece);
        await new Promise((r) => setImmediate(r));
      }
      if (c.end && !socket.destroyed) socket.end();
    })().catch(() => socket.destroy());
  });
}

async function runBatch(cases: FuzzCase[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < cases.length) await runCase(cases[next++]);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

async function normalRequestWorks(): Promise<boolean> {
  const r = await curl(['-x', `http://127.0.0.1:${ph.proxyPort}`, `http://origin.test:${httpOrigin.port}/alive`], 15000);
  try {
    return r.code === 0 && JSON.parse(r.stdout).url === '/alive';
  } catch {
    return false;
  }
}

describe.each(SEEDS)('proxy request parser fuzz, seed %i', (seed) => {
  const rng = seededRng(seed);
  for (let batch = 1; batch <= BATCHES; batch++) {
    it(`batch ${batch}/${BATCHES}: the proxy stays up, contains nothing, and still forwards a normal request`, async () => {
      const cases = Array.from({ length: CASES_PER_BATCH }, () => fuzzCase(rng, targets));
      const logsBefore = ph.logs.length;
      await runBatch(cases);
      const failures = ph.logs.slice(logsBefore).filter((l) => / failed for client |internal error/.test(l));
      const context = `seed ${seed}, batch ${batch} (PHONEHOME_FUZZ_SEED=${seed}); cases:\n${cases.map(describeCase).join('\n')}`;
      if (failures.length) throw new Error(`listeners failed:\n${failures.join('\n')}\n${context}`);
      if (!(await normalRequestWorks())) throw new Error(`the proxy no longer forwards a normal request after ${context}`);
    }, 120_000);
  }
});

describe('after the fuzzing', () => {
  it('the hostile connections are gone and a normal request still works', async () => {
    // What may stay: the shared keep-alive pool's idle connections to the two origins, at most one per
    // concurrent case each (3 after a typical run).
    const bound = 2 * CONCURRENCY;
    const settled = () => (ph.proxy.openSocketCount() <= bound ? ph.proxy.openSocketCount() : false);
    const open = await eventually(settled, 15000, 'hostile connections to close').catch(() => ph.proxy.openSocketCount());
    expect(open).toBeLessThanOrEqual(bound);
    expect(await normalRequestWorks()).toBe(true);
  });
});
