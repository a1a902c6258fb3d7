/**
 * phonehome's side of WireGuard as the initiator, against wireguard-go as the responder (the role a
 * phone plays when phonehome has to reach it after a quiet spell): our initiation must be accepted,
 * wireguard-go's response must verify, and a ping sealed with the derived keys must come back as a
 * reply that opens with them. Runs phonehome's built modules in one namespace, wireguard-go (with
 * the kernel answering the ping) in the other. Needs root, /dev/net/tun, wireguard-go, wg.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { makeTempDir, removeDir } from './helpers/tmp';
import { canRunNetns, LAPTOP_UNDERLAY, NetnsPair, waitFor } from '../../scripts/vpn-netns';

const describeNetns = canRunNetns() ? describe : describe.skip;
const DIST = path.join(__dirname, '..', '..', 'dist', 'proxy', 'capture', 'tunnel', 'wireguard');

/** Handshake as initiator, then one ICMP echo 10.77.0.2 -> 10.77.0.1 through the session. */
const INITIATOR_JS = `
const c = require(${JSON.stringify(path.join(DIST, 'crypto.js'))});
const h = require(${JSON.stringify(path.join(DIST, 'handshake.js'))});
const dgram = require('dgram');
const [keyB64, peerB64, host, port] = process.argv.slice(1);
const me = c.privateKeyFromRaw(c.decodeKey(keyB64));
const s = dgram.createSocket('udp4');
const { message, state } = h.createInitiation(me, c.decodeKey(peerB64), 0x1234);
const sum = (b) => { let x = 0; for (let i = 0; i < b.length; i += 2) x += (b[i] << 8) + (b[i + 1] || 0); while (x >> 16) x = (x & 0xffff) + (x >> 16); return ~x & 0xffff; };
function ping() {
  const p = Buffer.alloc(20 + 8 + 16);
  p[0] = 0x45; p.writeUInt16BE(p.length, 2); p[8] = 64; p[9] = 1;
  Buffer.from([10, 77, 0, 2]).copy(p, 12); Buffer.from([10, 77, 0, 1]).copy(p, 16);
  p.writeUInt16BE(sum(p.subarray(0, 20)), 10);
  p[20] = 8; p.writeUInt16BE(0xbeef, 24); p.writeUInt16BE(1, 26); Buffer.from('phonehome-ping!!').copy(p, 28);
  p.writeUInt16BE(sum(p.subarray(20)), 22);
  return p;
}
let keys, remote;
s.on('message', (m) => {
  if (m[0] === 2) {
    const done = h.consumeResponse(m, state, me);
    if (!done) { console.log(JSON.stringify({ response: false })); process.exit(1); }
    keys = done.keys; remote = done.remoteIndex;
    const sealed = c.aeadSeal(keys.send, 0n, Buffer.concat([ping(), Buffer.alloc(4)]), Buffer.alloc(0));
    const out = Buffer.alloc(16 + sealed.length); out.writeUInt32LE(4, 0); out.writeUInt32LE(remote, 4); sealed.copy(out, 16);
    s.send(out, Number(port), host);
  } else if (m[0] === 4 && keys) {
    const plain = c.aeadOpen(keys.recv, m.readBigUInt64LE(8), m.subarray(16), Buffer.alloc(0));
    if (!plain || plain.length === 0) return; // keepalive
    console.log(JSON.stringify({ response: true, receiver: m.readUInt32LE(4), src: [...plain.subarray(12, 16)].join('.'),
      icmpType: plain[20], id: plain.readUInt16BE(24), payload: plain.subarray(28, 44).toString() }));
    process.exit(0);
  }
});
s.send(message, Number(port), host);
setTimeout(() => { console.log(JSON.stringify({ timeout: true, gotKeys: !!keys })); process.exit(1); }, 8000);
`;

describeNetns('phonehome as the WireGuard initiator, wireguard-go as the responder', () => {
  const pair = new NetnsPair();
  const iface = `wgi${pair.id}`;
  let dir: string;

  beforeAll(async () => {
    dir = makeTempDir('phonehome-wginit-');
    pair.setup();
    pair.spawnIn(pair.laptopNs, 'wireguard-go', ['-f', iface], { env: { ...process.env, LOG_LEVEL: 'error' } });
    await waitFor(() => fs.existsSync(`/var/run/wireguard/${iface}.sock`), 10000, 'wireguard-go socket');
  }, 30000);

  afterAll(async () => {
    await pair.destroy();
    fs.rmSync(`/var/run/wireguard/${iface}.sock`, { force: true });
    removeDir(dir);
  });

  test('initiation accepted, response verified, a sealed ping is answered and opens with the derived keys', () => {
    const wg = (args: string[], input?: string) => spawnSync('wg', args, { input, encoding: 'utf8' }).stdout.trim();
    const ourKey = wg(['genkey']);
    const theirKey = wg(['genkey']);
    const keyFile = path.join(dir, 'responder.key');
    fs.writeFileSync(keyFile, theirKey + '\n', { mode: 0o600 });
    pair.execIn(pair.laptopNs, 'wg', ['set', iface, 'listen-port', '51820', 'private-key', keyFile, 'peer', wg(['pubkey'], ourKey + '\n'), 'allowed-ips', '10.77.0.2/32']);
    pair.execIn(pair.laptopNs, 'ip', ['addr', 'add', '10.77.0.1/24', 'dev', iface]);
    pair.execIn(pair.laptopNs, 'ip', ['link', 'set', iface, 'up']);
    const r = spawnSync('ip', ['netns', 'exec', pair.phoneNs, process.execPath, '-e', INITIATOR_JS, ourKey, wg(['pubkey'], theirKey + '\n'), LAPTOP_UNDERLAY, '51820'],
      { encoding: 'utf8', timeout: 20000 });
    const result = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}');
    expect(result).toEqual({ response: true, receiver: 0x1234, src: '10.77.0.1', icmpType: 0, id: 0xbeef, payload: 'phonehome-ping!!' });
    expect(pair.execIn(pair.laptopNs, 'wg', ['show', iface, 'latest-handshakes']).trim().split(/\s+/)[1]).not.toBe('0');
  });
});
