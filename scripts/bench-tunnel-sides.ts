/**
 * The laptop sides the VPN benchmarks compare, in one netns pair: phonehome (`start --wireguard`
 * with a phone made by `wireguard add`) and wireguard-go with the kernel behind it (the reference),
 * each on its own UDP port, optionally another build of phonehome (BENCH_BASELINE: same phone, own
 * server key and port), and the phone's wireguard-go switched between them by peer — directly, or
 * through a lossy UDP relay (scripts/lossy-udp-relay.ts) in front of a side.
 * Shared by bench:tunnel (UDP) and bench:tunnel-tcp (TCP).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { LAPTOP_UNDERLAY, NetnsPair, waitFor } from './vpn-netns';

/** The checkout: this file runs from dist/scripts (benches) or scripts/ (e2e tests through ts-jest). */
const REPO = path.basename(path.dirname(__dirname)) === 'dist' ? path.join(__dirname, '..', '..') : path.join(__dirname, '..');
const CLI = path.join(REPO, 'bin', 'phonehome.js');
/** The relay runs as its own process, from the build (e2e tests need `npm run build` first). */
const RELAY_JS = path.join(REPO, 'dist', 'scripts', 'lossy-udp-relay.js');
const PHONEHOME_PORT = 51820;
const WIREGUARD_GO_PORT = 51821;
const BASELINE_PORT = 51822;

/** A laptop side as the phone sees it: the process to measure, its public key and endpoint. */
export interface LaptopSide {
  pid: number;
  peer: string;
  endpoint: string;
}

/**
 * Starts both laptop sides and the phone (connected to phonehome first). nodeArgs go before the CLI
 * in phonehome's node command (e.g. --cpu-prof).
 */
export async function startLaptopSides(pair: NetnsPair, dir: string, nodeArgs: string[] = []): Promise<{ phonehome: LaptopSide; wireguardGo: LaptopSide; baseline?: LaptopSide }> {
  const add = spawnSync(process.execPath, [CLI, 'wireguard', 'add', 'bench', '--data-dir', dir, '--endpoint', `${LAPTOP_UNDERLAY}:${PHONEHOME_PORT}`, '--no-qr'], { encoding: 'utf8' });
  if (add.status !== 0) throw new Error(add.stderr);
  const value = (k: string) => new RegExp(`^${k} = (.+)$`, 'm').exec(add.stdout)![1].trim();
  const phoneKeyFile = path.join(dir, 'phone.key');
  fs.writeFileSync(phoneKeyFile, value('PrivateKey') + '\n', { mode: 0o600 });
  const phonePub = spawnSync('wg', ['pubkey'], { input: value('PrivateKey') + '\n', encoding: 'utf8' }).stdout.trim();
  const ph = pair.spawnIn(pair.laptopNs, process.execPath,
    [...nodeArgs, CLI, 'start', '--wireguard', '--wireguard-port', String(PHONEHOME_PORT), '--port', '0', '--dashboard-port', '0', '--data-dir', dir]);
  await waitFor(() => /Press Ctrl\+C/.test(ph.output()), 30000, 'phonehome');

  const lapIface = `wglp${pair.id}`;
  const lapKey = path.join(dir, 'laptop.key');
  fs.writeFileSync(lapKey, spawnSync('wg', ['genkey'], { encoding: 'utf8' }).stdout, { mode: 0o600 });
  const lapPub = spawnSync('wg', ['pubkey'], { input: fs.readFileSync(lapKey), encoding: 'utf8' }).stdout.trim();
  const wgLaptop = pair.spawnIn(pair.laptopNs, 'wireguard-go', ['-f', lapIface], { env: { ...process.env, LOG_LEVEL: 'error' } });
  await waitFor(() => fs.existsSync(`/var/run/wireguard/${lapIface}.sock`), 10000, 'laptop wireguard-go');
  pair.execIn(pair.laptopNs, 'wg', ['set', lapIface, 'listen-port', String(WIREGUARD_GO_PORT), 'private-key', lapKey, 'peer', phonePub, 'allowed-ips', '10.77.0.2/32,fd77::2/128']);
  pair.execIn(pair.laptopNs, 'ip', ['addr', 'add', '10.77.0.1/24', 'dev', lapIface]);
  pair.execIn(pair.laptopNs, 'ip', ['link', 'set', lapIface, 'mtu', '1420', 'up']);

  const baseline = process.env.BENCH_BASELINE ? await startBaseline(pair, dir, process.env.BENCH_BASELINE) : undefined;

  await pair.startPhone({ privateKeyFile: phoneKeyFile, serverPublicKey: value('PublicKey'), endpoint: value('Endpoint'), ipv4: '10.77.0.2', ipv6: 'fd77::2' });
  return {
    phonehome: { pid: ph.child.pid!, peer: value('PublicKey'), endpoint: `${LAPTOP_UNDERLAY}:${PHONEHOME_PORT}` },
    wireguardGo: { pid: wgLaptop.child.pid!, peer: lapPub, endpoint: `${LAPTOP_UNDERLAY}:${WIREGUARD_GO_PORT}` },
    baseline,
  };
}

/**
 * Another build of phonehome (BENCH_BASELINE=its checkout, with bin/ and a built dist/) on its own
 * port, with this run's phone but a server key of its own: the phone sees it as another peer (with
 * the same key, the phone's session with one build roamed to the other, which then did all the work).
 */
async function startBaseline(pair: NetnsPair, dir: string, root: string): Promise<LaptopSide> {
  const baseDir = path.join(dir, 'baseline');
  fs.mkdirSync(baseDir, { mode: 0o700 });
  fs.cpSync(path.join(dir, 'wireguard'), path.join(baseDir, 'wireguard'), { recursive: true });
  const serverKey = path.join(baseDir, 'wireguard', 'server.key');
  fs.writeFileSync(serverKey, spawnSync('wg', ['genkey'], { encoding: 'utf8' }).stdout, { mode: 0o600 });
  const peer = spawnSync('wg', ['pubkey'], { input: fs.readFileSync(serverKey), encoding: 'utf8' }).stdout.trim();
  const cli = path.resolve(root, 'bin', 'phonehome.js');
  const ph = pair.spawnIn(pair.laptopNs, process.execPath,
    [cli, 'start', '--wireguard', '--wireguard-port', String(BASELINE_PORT), '--port', '0', '--dashboard-port', '0', '--data-dir', baseDir]);
  await waitFor(() => /Press Ctrl\+C/.test(ph.output()), 30000, 'baseline phonehome');
  return { pid: ph.child.pid!, peer, endpoint: `${LAPTOP_UNDERLAY}:${BASELINE_PORT}` };
}

/** What the phone's tunnel points at: a peer and the endpoint it is reached by. */
export type PhoneTarget = { peer: string; endpoint: string };

/** Points the phone's tunnel at `next` (removing the previous peer when it differs); returns it. */
export function switchPhoneTo(pair: NetnsPair, current: PhoneTarget | undefined, next: LaptopSide): PhoneTarget {
  if (current && current.peer === next.peer && current.endpoint === next.endpoint) return current;
  if (current && current.peer !== next.peer) pair.execIn(pair.phoneNs, 'wg', ['set', pair.wgIface, 'peer', current.peer, 'remove']);
  pair.execIn(pair.phoneNs, 'wg', ['set', pair.wgIface, 'peer', next.peer, 'allowed-ips', '0.0.0.0/0,::/0', 'endpoint', next.endpoint]);
  return { peer: next.peer, endpoint: next.endpoint };
}

/**
 * While the phone is meant to reach the laptop sides only through the relay, its namespace drops
 * datagrams from their direct ports: otherwise one packet a side still sends to the phone's old
 * direct address makes the phone's wireguard-go roam back to the direct path, bypassing the relay.
 */
export function relayOnly(pair: NetnsPair, on: boolean): void {
  const ports = `{ ${PHONEHOME_PORT}, ${WIREGUARD_GO_PORT}, ${BASELINE_PORT} }`;
  if (on) {
    pair.execIn(pair.phoneNs, 'nft', ['-f', '-'], {
      input: `table inet relayonly {\n chain input { type filter hook input priority 0; ip saddr ${LAPTOP_UNDERLAY} udp sport ${ports} drop; }\n chain output { type filter hook output priority 0; ip daddr ${LAPTOP_UNDERLAY} udp dport ${ports} drop; }\n}\n`,
    });
  } else {
    try {
      pair.execIn(pair.phoneNs, 'nft', ['delete', 'table', 'inet', 'relayonly']);
    } catch { /* not there */ }
  }
}

/** A link profile of the lossy relay: loss each way, fixed delay and uniform jitter (ms). */
export interface LinkProfile {
  loss: number;
  delayMs: number;
  jitterMs: number;
}

/**
 * Starts one relay process in the laptop namespace with a route per (side, profile), listening on
 * consecutive ports from `firstPort`; returns each side as reached through each profile's relay.
 */
export async function startRelays(pair: NetnsPair, sides: LaptopSide[], profiles: LinkProfile[], firstPort = 51900): Promise<LaptopSide[][]> {
  let port = firstPort;
  const routes: object[] = [];
  const out = profiles.map((p, pi) => sides.map((side, si) => {
    const listen = `${LAPTOP_UNDERLAY}:${port++}`;
    routes.push({ listen, target: side.endpoint, ...p, seed: 1 + pi * 16 + si });
    return { ...side, endpoint: listen };
  }));
  const relay = pair.spawnIn(pair.laptopNs, process.execPath, [RELAY_JS, JSON.stringify(routes)]);
  await waitFor(() => relay.output().includes('relay up') || relay.child.exitCode !== null, 10000, 'lossy relay');
  if (relay.child.exitCode !== null) throw new Error(`relay exited: ${relay.output()}`);
  return out;
}
