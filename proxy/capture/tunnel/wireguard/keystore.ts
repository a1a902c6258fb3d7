/**
 * WireGuard keys and phones in the data dir: `wireguard/` (0700) holds the server key, one private
 * key file per phone (both 0600, needed to show the phone's config again) and `peers.json` (0600:
 * names, public keys, tunnel addresses). `phonehome wireguard add` writes here while phonehome may
 * be running; a lock file serialises writers and the running endpoint polls peers.json.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { TunnelPeer } from '../types';
import { FIRST_HOST, hostNumber, LAST_HOST, tunnelAddresses } from './addresses';
import { decodeKey, generatePrivateKey, privateKeyFromRaw } from './crypto';

export const WG_DIR = 'wireguard';
const SERVER_KEY = 'server.key';
const PEERS_FILE = 'peers.json';
const LOCK_FILE = 'peers.lock';
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;

export interface StoredPeer extends TunnelPeer {
  createdAt: string;
}

export class PeerNameError extends Error {}

export function wireguardDir(dataDir: string): string {
  const dir = path.join(dataDir, WG_DIR);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  return dir;
}

export function peersFilePath(dataDir: string): string {
  return path.join(dataDir, WG_DIR, PEERS_FILE);
}

function writeSecretFile(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
}

/** The server's private key (raw), created on first use. */
export function loadOrCreateServerKey(dataDir: string): Buffer {
  const file = path.join(wireguardDir(dataDir), SERVER_KEY);
  return withLock(dataDir, () => {
    if (fs.existsSync(file)) return decodeKey(fs.readFileSync(file, 'utf8'));
    const raw = generatePrivateKey();
    writeSecretFile(file, raw.toString('base64') + '\n');
    return raw;
  });
}

export function serverPublicKey(dataDir: string): string {
  return privateKeyFromRaw(loadOrCreateServerKey(dataDir)).publicKey.toString('base64');
}

/** The phones in peers.json (empty if none yet); a corrupt file is an error, never silently empty. */
export function listPeers(dataDir: string): StoredPeer[] {
  const file = peersFilePath(dataDir);
  if (!fs.existsSync(file)) return [];
  const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as { peers?: StoredPeer[] };
  if (!parsed || !Array.isArray(parsed.peers)) throw new Error(`${file}: no "peers" list`);
  return parsed.peers.map((p) => {
    if (typeof p.name !== 'string' || !NAME_RE.test(p.name) || typeof p.ipv4 !== 'string' || typeof p.ipv6 !== 'string') throw new Error(`${file}: malformed peer`);
    decodeKey(p.publicKey);
    return { name: p.name, publicKey: p.publicKey, ipv4: p.ipv4, ipv6: p.ipv6, createdAt: p.createdAt };
  });
}

function peerKeyFile(dataDir: string, name: string): string {
  return path.join(dataDir, WG_DIR, `peer-${name}.key`);
}

export function peerPrivateKey(dataDir: string, name: string): string | undefined {
  const file = peerKeyFile(dataDir, name);
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim() : undefined;
}

/** Makes a phone: key pair, next free tunnel addresses, appended to peers.json. */
export function addPeer(dataDir: string, name: string): { peer: StoredPeer; privateKey: string } {
  if (!NAME_RE.test(name)) throw new PeerNameError(`peer name must be 1-32 letters, digits, '.', '_' or '-' (got '${name}')`);
  wireguardDir(dataDir);
  return withLock(dataDir, () => {
    const peers = listPeers(dataDir);
    if (peers.some((p) => p.name === name)) throw new PeerNameError(`a peer named '${name}' exists already`);
    const used = new Set(peers.map((p) => hostNumber(p.ipv4)));
    let n = FIRST_HOST;
    while (used.has(n) && n <= LAST_HOST) n++;
    if (n > LAST_HOST) throw new Error('no free tunnel address left in 10.77.0.0/24');
    const raw = generatePrivateKey();
    const privateKey = raw.toString('base64');
    const peer: StoredPeer = { name, publicKey: privateKeyFromRaw(raw).publicKey.toString('base64'), ...tunnelAddresses(n), createdAt: new Date().toISOString() };
    writeSecretFile(peerKeyFile(dataDir, name), privateKey + '\n');
    writeSecretFile(peersFilePath(dataDir), JSON.stringify({ peers: [...peers, peer] }, null, 2) + '\n');
    return { peer, privateKey };
  });
}

/** Runs `fn` holding wireguard/peers.lock (O_EXCL); a lock older than 10 s is taken as stale. */
function withLock<T>(dataDir: string, fn: () => T): T {
  const lock = path.join(dataDir, WG_DIR, LOCK_FILE);
  const deadline = Date.now() + 5_000;
  for (;;) {
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: 'wx', mode: 0o600 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      try {
        if (Date.now() - fs.statSync(lock).mtimeMs > 10_000) fs.rmSync(lock, { force: true });
      } catch { /* removed meanwhile */ }
      if (Date.now() > deadline) throw new Error(`${lock} is held by another phonehome process`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(lock, { force: true });
  }
}

/** Calls `onChange` with the new list whenever peers.json changes (polled: works on every FS). */
export function watchPeers(dataDir: string, onChange: (peers: StoredPeer[]) => void, onError: (err: Error) => void, intervalMs = 1_000): () => void {
  const file = peersFilePath(dataDir);
  const listener = (cur: fs.Stats, prev: fs.Stats) => {
    if (cur.mtimeMs === prev.mtimeMs && cur.size === prev.size && cur.ino === prev.ino) return;
    try {
      onChange(listPeers(dataDir));
    } catch (err) {
      onError(err as Error);
    }
  };
  fs.watchFile(file, { interval: intervalMs, persistent: false }, listener);
  return () => fs.unwatchFile(file, listener);
}
