/**
 * `phonehome wireguard add NAME`: makes a phone for VPN mode (key pair, tunnel addresses) and prints
 * the config its WireGuard app imports, as text and as a terminal QR code. Works before the first
 * start and while phonehome runs (the running endpoint picks the new phone up from peers.json).
 * `phonehome wireguard show [NAME]` prints the configs again; `list` lists the phones.
 */
import type { Command } from '../cli';
import { ensureDataDir } from '../data-dir';
import { lanAddresses } from '../../dashboard/server/setup-info';
import { configuredEndpoint, phoneConfigs } from '../capture/tunnel';
import { terminalQr } from '../capture/tunnel/wireguard/client-config';
import { addPeer, listPeers, PeerNameError, serverPublicKey } from '../capture/tunnel/wireguard/keystore';
import { DATA_DIR_FLAG, UsageError } from './args';

const DETAILS = `Subcommands:
  add NAME     make a phone and print its client config and QR code
  show [NAME]  print the config and QR code of one phone (or of all)
  list         list the phones: name, tunnel addresses, public key
Scan the QR code with the WireGuard app (Android, iOS), then run 'phonehome start --wireguard'.
The config's Endpoint is this laptop's LAN address and the port of the last 'start --wireguard'
(default 51820); --endpoint overrides it. Private keys stay in <data-dir>/wireguard (owner-only).`;

export const command: Command = {
  spec: {
    name: 'wireguard',
    summary: 'make phones for VPN mode and print their WireGuard configs (add, show, list)',
    usage: 'phonehome wireguard add NAME | show [NAME] | list [--data-dir DIR] [--endpoint HOST[:PORT]]',
    flags: [
      DATA_DIR_FLAG,
      { name: 'endpoint', type: 'string', placeholder: 'HOST[:PORT]', description: "address the phone reaches this laptop on (default: first LAN address)" },
      { name: 'no-qr', type: 'boolean', description: 'print the config text only' },
    ],
    details: DETAILS,
  },
  async run(args) {
    const [sub, name, ...extra] = args.positionals;
    if (!sub) throw new UsageError('missing subcommand: add NAME, show [NAME] or list');
    if (extra.length) throw new UsageError(`unexpected argument '${extra[0]}'`);
    const dataDir = ensureDataDir(args.flags['data-dir'] as string | undefined, (m) => process.stderr.write(`phonehome wireguard: ${m}\n`));
    const endpoint = endpointOf(dataDir, args.flags['endpoint'] as string | undefined);
    const qr = args.flags['no-qr'] !== true;
    if (sub === 'add') {
      if (!name) throw new UsageError('wireguard add needs a NAME for the phone');
      try {
        addPeer(dataDir, name);
      } catch (err) {
        if (err instanceof PeerNameError) throw new UsageError(err.message);
        throw err;
      }
      process.stdout.write(await render(dataDir, endpoint, name, qr));
      return 0;
    }
    if (sub === 'show') {
      const out = await render(dataDir, endpoint, name, qr);
      if (!out) {
        process.stderr.write(name ? `phonehome wireguard: no phone named '${name}'\n` : 'phonehome wireguard: no phones yet; add one with: phonehome wireguard add NAME\n');
        return 1;
      }
      process.stdout.write(out);
      return 0;
    }
    if (sub === 'list') {
      if (name) throw new UsageError(`unexpected argument '${name}'`);
      for (const p of listPeers(dataDir)) process.stdout.write(`${p.name}\t${p.ipv4}\t${p.ipv6}\t${p.publicKey}\n`);
      return 0;
    }
    throw new UsageError(`unknown subcommand '${sub}' (add, show, list)`);
  },
};

function endpointOf(dataDir: string, flag: string | undefined): string {
  if (!flag) return configuredEndpoint(dataDir, lanAddresses()[0] ?? '127.0.0.1');
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(flag);
  if (!m || (m[2] !== undefined && Number(m[2]) > 65535)) throw new UsageError(`--endpoint: expected HOST or HOST:PORT, got '${flag}'`);
  return configuredEndpoint(dataDir, m[1].replace(/^\[|\]$/g, ''), m[2] === undefined ? undefined : Number(m[2]));
}

/** Config text (and QR) of one phone or of all; '' when there is none. */
export async function render(dataDir: string, endpoint: string, name: string | undefined, qr: boolean): Promise<string> {
  const configs = phoneConfigs(dataDir, serverPublicKey(dataDir), endpoint).filter((c) => !name || c.peer.name === name);
  const parts: string[] = [];
  for (const c of configs) {
    parts.push(`# WireGuard config for '${c.peer.name}' (${c.peer.ipv4}, ${c.peer.ipv6}): import it in the WireGuard app\n`);
    parts.push(c.config);
    if (qr) parts.push('\n' + (await terminalQr(c.config)));
  }
  return parts.join('');
}
