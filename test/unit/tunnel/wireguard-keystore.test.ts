/**
 * Phones and keys in <data-dir>/wireguard: owner-only files, address allocation, names, concurrent
 * `wireguard add`s, corrupt files reported (not treated as "no phones"), and the CLI command.
 */
import { spawn, spawnSync } from 'child_process';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { addPeer, listPeers, loadOrCreateServerKey, PeerNameError, peerPrivateKey, serverPublicKey } from '../../../proxy/capture/tunnel/wireguard/keystore';
import { CLI } from '../../e2e/helpers/phonehome';
import { makeTempDir, removeDir } from '../../e2e/helpers/tmp';

describe('WireGuard key store', () => {
  let dir: string;
  beforeEach(() => (dir = makeTempDir('phonehome-wg-')));
  afterEach(() => removeDir(dir));

  const mode = (f: string) => fs.statSync(path.join(dir, 'wireguard', f)).mode & 0o777;

  test('server key and phones are created owner-only and stay the same across loads', () => {
    const key = loadOrCreateServerKey(dir);
    expect(loadOrCreateServerKey(dir)).toEqual(key);
    const { peer, privateKey } = addPeer(dir, 'pixel');
    expect(mode('.')).toBe(0o700);
    expect(mode('server.key')).toBe(0o600);
    expect(mode('peer-pixel.key')).toBe(0o600);
    expect(mode('peers.json')).toBe(0o600);
    expect(peerPrivateKey(dir, 'pixel')).toBe(privateKey);
    // the stored public key is the one wireguard-tools derives from the stored private key
    expect(execFileSync('wg', ['pubkey'], { input: privateKey + '\n', encoding: 'utf8' }).trim()).toBe(peer.publicKey);
    expect(execFileSync('wg', ['pubkey'], { input: key.toString('base64') + '\n', encoding: 'utf8' }).trim()).toBe(serverPublicKey(dir));
  });

  test('phones get .2, .3, ... and fd77::2, ...; names are unique and checked', () => {
    expect(addPeer(dir, 'a').peer).toMatchObject({ ipv4: '10.77.0.2', ipv6: 'fd77::2' });
    expect(addPeer(dir, 'b').peer).toMatchObject({ ipv4: '10.77.0.3', ipv6: 'fd77::3' });
    expect(() => addPeer(dir, 'a')).toThrow(PeerNameError);
    for (const bad of ['', '../x', 'a b', 'x'.repeat(40)]) expect(() => addPeer(dir, bad)).toThrow(PeerNameError);
    expect(listPeers(dir).map((p) => p.name)).toEqual(['a', 'b']);
  });

  test('a corrupt peers file is an error, not an empty list', () => {
    addPeer(dir, 'a');
    fs.writeFileSync(path.join(dir, 'wireguard', 'peers.json'), '{"peers": [ {"name": "a"');
    expect(() => listPeers(dir)).toThrow();
    fs.writeFileSync(path.join(dir, 'wireguard', 'peers.json'), '{"peers": [{"name": "a", "publicKey": "nope", "ipv4": "10.77.0.2", "ipv6": "fd77::2"}]}');
    expect(() => listPeers(dir)).toThrow(/key/);
    const pub = Buffer.alloc(32, 9).toString('base64');
    fs.writeFileSync(path.join(dir, 'wireguard', 'peers.json'), JSON.stringify({ peers: [{ name: '../../etc/passwd', publicKey: pub, ipv4: '10.77.0.2', ipv6: 'fd77::2' }] }));
    expect(() => listPeers(dir)).toThrow(/malformed/);
  });

  test('concurrent `phonehome wireguard add` processes never hand out the same address', async () => {
    const runs = ['p1', 'p2', 'p3', 'p4'].map((name) => new Promise<number | null>((resolve) => {
      const c = spawn(process.execPath, [CLI, 'wireguard', 'add', name, '--data-dir', dir, '--no-qr', '--endpoint', '192.0.2.1'], { stdio: 'ignore' });
      c.on('exit', resolve);
    }));
    expect(await Promise.all(runs)).toEqual([0, 0, 0, 0]);
    const peers = listPeers(dir);
    expect(peers).toHaveLength(4);
    expect(new Set(peers.map((p) => p.ipv4)).size).toBe(4);
  }, 30000);

  test('the CLI prints the config with a terminal QR code, show/list find the phone, bad names are usage errors', () => {
    const add = spawnSync(process.execPath, [CLI, 'wireguard', 'add', 'pixel', '--data-dir', dir, '--endpoint', '192.0.2.1:51999'], { encoding: 'utf8' });
    expect(add.status).toBe(0);
    expect(add.stdout).toContain('Endpoint = 192.0.2.1:51999');
    expect(add.stdout).toContain(`PrivateKey = ${peerPrivateKey(dir, 'pixel')}`);
    expect(add.stdout).toMatch(/[▀▄█]/); // the QR code's half blocks
    const show = spawnSync(process.execPath, [CLI, 'wireguard', 'show', 'pixel', '--data-dir', dir, '--no-qr', '--endpoint', '192.0.2.1:51999'], { encoding: 'utf8' });
    expect(show.stdout).toContain('Address = 10.77.0.2/32, fd77::2/128');
    const list = spawnSync(process.execPath, [CLI, 'wireguard', 'list', '--data-dir', dir], { encoding: 'utf8' });
    expect(list.stdout).toBe(`pixel\t10.77.0.2\tfd77::2\t${listPeers(dir)[0].publicKey}\n`);
    const bad = spawnSync(process.execPath, [CLI, 'wireguard', 'add', '../evil', '--data-dir', dir], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/peer name/);
    const missing = spawnSync(process.execPath, [CLI, 'wireguard', 'show', 'nope', '--data-dir', dir], { encoding: 'utf8' });
    expect(missing.status).toBe(1);
  }, 30000);
});
