/**
 * The two laptop sides the VPN benchmarks compare, in one netns pair: phonehome (`start --wireguard`
 * with a phone made by `wireguard add`) and wireguard-go with the kernel behind it (the reference),
 * each on its own UDP port, and the phone's wireguard-go switched between them by peer.
 * Shared by bench:tunnel (UDP) and bench:tunnel-tcp (TCP).
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { LAPTOP_UNDERLAY, NetnsPair, waitFor } from './vpn-netns';

const CLI = path.join(__dirname, '..', '..', 'bin', 'phonehome.js');
const PHONEHOME_PORT = 51820;
const WIREGUARD_GO_PORT = 51821;

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
export async function startLaptopSides(pair: NetnsPair, dir: string, nodeArgs: string[] = []): Promise<{ phonehome: LaptopSide; wireguardGo: LaptopSide }> {
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

  await pair.startPhone({ privateKeyFile: phoneKeyFile, serverPublicKey: value('PublicKey'), endpoint: value('Endpoint'), ipv4: '10.77.0.2', ipv6: 'fd77::2' });
  return {
    phonehome: { pid: ph.child.pid!, peer: value('PublicKey'), endpoint: `${LAPTOP_UNDERLAY}:${PHONEHOME_PORT}` },
    wireguardGo: { pid: wgLaptop.child.pid!, peer: lapPub, endpoint: `${LAPTOP_UNDERLAY}:${WIREGUARD_GO_PORT}` },
  };
}

/** Points the phone's tunnel at `next` (removing `current`); returns the peer now in use. */
export function switchPhoneTo(pair: NetnsPair, current: string | undefined, next: LaptopSide): string {
  if (current === next.peer) return current;
  if (current) pair.execIn(pair.phoneNs, 'wg', ['set', pair.wgIface, 'peer', current, 'remove']);
  pair.execIn(pair.phoneNs, 'wg', ['set', pair.wgIface, 'peer', next.peer, 'allowed-ips', '0.0.0.0/0,::/0', 'endpoint', next.endpoint]);
  return next.peer;
}
