/**
 * Why: Wi-Fi loses and reorders packets, and this kernel has no netem to imitate it. This relay
 * stands between the phone's WireGuard (wireguard-go in the phone namespace) and a laptop side
 * (phonehome, or wireguard-go + the kernel): every datagram, each way, is dropped with probability
 * `loss` or delayed by `delayMs` plus a uniform `jitterMs` (so datagrams overtake each other, as
 * on a real radio link). Seeded, so a run's drops reproduce. Used by the lossy e2e test and
 * bench:tunnel-tcp; one process serves several routes (one per laptop side and link profile).
 *
 *   node dist/scripts/lossy-udp-relay.js '<json routes>'
 *   routes: [{ "listen": "10.99.0.1:51920", "target": "10.99.0.1:51820", "loss": 0.03,
 *              "delayMs": 20, "jitterMs": 20, "seed": 1 }, ...]
 * Prints "relay up" when listening; on SIGTERM prints each route's counters as JSON and exits.
 */
import * as dgram from 'dgram';
import { prng } from './fixtures/random';

export interface RelayRoute {
  listen: string;
  target: string;
  /** Probability that a datagram is dropped, each direction. */
  loss: number;
  /** Fixed one-way delay added by the relay, and the uniform jitter on top of it (ms). */
  delayMs: number;
  jitterMs: number;
  seed?: number;
}

interface Counters {
  route: string;
  toTarget: number;
  toClient: number;
  droppedToTarget: number;
  droppedToClient: number;
}

function hostPort(text: string): { host: string; port: number } {
  const at = text.lastIndexOf(':');
  return { host: text.slice(0, at), port: Number(text.slice(at + 1)) };
}

/** Starts one route: the client talks to `listen`; the target sees the relay's own socket. */
function startRoute(route: RelayRoute): Promise<Counters> {
  const rand = prng(route.seed ?? 1);
  const counters: Counters = { route: `${route.listen} -> ${route.target}`, toTarget: 0, toClient: 0, droppedToTarget: 0, droppedToClient: 0 };
  const listen = hostPort(route.listen);
  const target = hostPort(route.target);
  const front = dgram.createSocket('udp4');
  const back = dgram.createSocket('udp4');
  let client: { address: string; port: number } | undefined;
  const delay = () => route.delayMs + rand() * route.jitterMs;
  front.on('message', (msg, rinfo) => {
    client = { address: rinfo.address, port: rinfo.port };
    if (rand() < route.loss) return void counters.droppedToTarget++;
    counters.toTarget++;
    setTimeout(() => back.send(msg, target.port, target.host), delay());
  });
  back.on('message', (msg) => {
    const to = client;
    if (!to) return;
    if (rand() < route.loss) return void counters.droppedToClient++;
    counters.toClient++;
    setTimeout(() => front.send(msg, to.port, to.address), delay());
  });
  for (const s of [front, back]) s.on('error', (err) => console.error(`relay ${counters.route}: ${err.message}`));
  return new Promise((resolve) => front.bind(listen.port, listen.host, () => back.bind(0, () => resolve(counters))));
}

async function main(): Promise<void> {
  const routes = JSON.parse(process.argv[2] ?? '[]') as RelayRoute[];
  if (!routes.length) throw new Error('usage: lossy-udp-relay.js \'[{"listen":"h:p","target":"h:p","loss":0.03,"delayMs":20,"jitterMs":20}]\'');
  const all = await Promise.all(routes.map(startRoute));
  process.on('SIGTERM', () => {
    console.log(JSON.stringify(all));
    process.exit(0);
  });
  console.log('relay up');
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
