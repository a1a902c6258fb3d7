/**
 * Why: every WireGuard handshake costs phonehome four X25519 operations, and a replayed
 * initiation keeps its valid mac1, so anyone who saw one packet can make phonehome work. This
 * floods `phonehome start --wireguard` (on loopback) with BENCH_RATE replayed initiations a second
 * for BENCH_SECONDS and measures the CPU time phonehome spends per second of flood, and whether a
 * real phone (an initiator here that answers cookie replies as wireguard-go does) still completes
 * a handshake during the flood. BENCH_BASELINE=DIR also floods another build (DIR = a checkout with
 * bin/ and a built dist/, e.g. main) in the same run, alternating. Medians of BENCH_ROUNDS rounds.
 *
 *   npm run bench:wireguard-flood      BENCH_RATE=10000 BENCH_SECONDS=5 BENCH_ROUNDS=3
 */
import { spawnSync } from 'child_process';
import * as dgram from 'dgram';
import { once } from 'events';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { freePort, median, processCpuMs, spawnChild, stopChild } from './bench-lib';
import { openCookieReply } from '../proxy/capture/tunnel/wireguard/cookie';
import { decodeKey, privateKeyFromRaw, tai64n } from '../proxy/capture/tunnel/wireguard/crypto';
import { createInitiation } from '../proxy/capture/tunnel/wireguard/handshake';
import { INIT, MSG_COOKIE_REPLY, MSG_RESPONSE } from '../proxy/capture/tunnel/wireguard/messages';

const RATE = Number(process.env.BENCH_RATE ?? 10_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ROOT = path.join(__dirname, '..', '..');

interface Target { name: string; pid: number; port: number; serverPub: Buffer; phoneKey: Buffer }

async function start(name: string, root: string, dir: string): Promise<{ target: Target; stop: () => Promise<void> }> {
  const cli = path.join(root, 'bin', 'phonehome.js');
  const port = await freePort();
  const add = spawnSync(process.execPath, [cli, 'wireguard', 'add', 'flooded', '--data-dir', dir, '--endpoint', `127.0.0.1:${port}`, '--no-qr'], { encoding: 'utf8' });
  if (add.status !== 0) throw new Error(add.stderr);
  const value = (k: string) => new RegExp(`^${k} = (.+)$`, 'm').exec(add.stdout)![1].trim();
  const child = spawnChild(process.execPath, [cli, 'start', '--wireguard', '--wireguard-port', String(port), '--listen-host', '127.0.0.1', '--port', '0', '--dashboard-port', '0', '--data-dir', dir], {});
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  const deadline = Date.now() + 30_000;
  while (!/Press Ctrl\+C/.test(out)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`${name} did not start: ${out}${child.tail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    target: { name, pid: child.pid!, port, serverPub: decodeKey(value('PublicKey')), phoneKey: decodeKey(value('PrivateKey')) },
    stop: () => stopChild(child),
  };
}

/** Floods with one replayed initiation; meanwhile a real phone tries to handshake. */
async function flood(t: Target): Promise<{ cpuMsPerSecond: number; handshakeMs: number | undefined }> {
  const phone = privateKeyFromRaw(t.phoneKey);
  const attacker = dgram.createSocket('udp4');
  attacker.bind(0, '127.0.0.1');
  await once(attacker, 'listening');
  const replayed = createInitiation(phone, t.serverPub, 4242, tai64n(Date.now() - 3_600_000)).message;
  const perTick = Math.max(1, Math.round(RATE / 1000));
  const timer = setInterval(() => {
    for (let i = 0; i < perTick; i++) attacker.send(replayed, t.port, '127.0.0.1');
  }, 1);
  await new Promise((r) => setTimeout(r, 500)); // the flood is on
  const cpuBefore = processCpuMs(t.pid);
  const startedAt = Date.now();
  const handshakeMs = await realPhone(phone, t);
  await new Promise((r) => setTimeout(r, Math.max(0, SECONDS * 1000 - (Date.now() - startedAt))));
  const cpuMsPerSecond = (processCpuMs(t.pid) - cpuBefore) / ((Date.now() - startedAt) / 1000);
  clearInterval(timer);
  attacker.close();
  await new Promise((r) => setTimeout(r, 1500)); // under load no more
  return { cpuMsPerSecond, handshakeMs };
}

/**
 * An initiator that retries every 500 ms and uses a cookie reply as wireguard-go does; ms to the
 * response. It sends from 127.0.0.2: the flood comes from another address, as it would.
 */
async function realPhone(phone: ReturnType<typeof privateKeyFromRaw>, t: Target): Promise<number | undefined> {
  const s = dgram.createSocket('udp4');
  s.bind(0, '127.0.0.2');
  await once(s, 'listening');
  const t0 = Date.now();
  let cookie: Buffer | undefined;
  let lastMac1 = Buffer.alloc(16);
  let done = false;
  s.on('message', (m) => {
    if (m[0] === MSG_RESPONSE) done = true;
    if (m[0] === MSG_COOKIE_REPLY) cookie = openCookieReply(m, t.serverPub, lastMac1) ?? cookie;
  });
  try {
    for (let attempt = 0; attempt < 40 && !done; attempt++) {
      const { message } = createInitiation(phone, t.serverPub, 1000 + attempt, tai64n(), cookie);
      lastMac1 = Buffer.from(message.subarray(INIT.mac1, INIT.mac1 + 16));
      s.send(message, t.port, '127.0.0.1');
      for (let w = 0; w < 50 && !done; w++) await new Promise((r) => setTimeout(r, 10));
    }
    return done ? Date.now() - t0 : undefined;
  } finally {
    s.close();
  }
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-wg-flood-'));
  const stops: Array<() => Promise<void>> = [];
  try {
    const targets: Target[] = [];
    const mine = await start('phonehome', ROOT, path.join(dir, 'this'));
    stops.push(mine.stop);
    targets.push(mine.target);
    if (process.env.BENCH_BASELINE) {
      const base = await start('baseline', path.resolve(process.env.BENCH_BASELINE), path.join(dir, 'baseline'));
      stops.push(base.stop);
      targets.push(base.target);
    }
    console.log(`bench:wireguard-flood ${RATE} replayed initiations/s for ${SECONDS} s, ${ROUNDS} rounds, ${os.cpus().length} CPUs`);
    const results = new Map<string, Array<{ cpuMsPerSecond: number; handshakeMs: number | undefined }>>(targets.map((t) => [t.name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const t of targets) {
        const r = await flood(t);
        results.get(t.name)!.push(r);
        console.log(`  round ${round + 1} ${t.name.padEnd(10)} ${r.cpuMsPerSecond.toFixed(0).padStart(5)} ms CPU per second of flood; a real phone's handshake: ${r.handshakeMs === undefined ? 'none in 20 s' : `${r.handshakeMs} ms`}`);
      }
    }
    console.log('medians:');
    for (const t of targets) {
      const rs = results.get(t.name)!;
      const ok = rs.filter((r) => r.handshakeMs !== undefined);
      console.log(`  ${t.name.padEnd(10)} ${median(rs.map((r) => r.cpuMsPerSecond)).toFixed(0).padStart(5)} ms CPU/s (${(median(rs.map((r) => r.cpuMsPerSecond)) / 10).toFixed(0)}% of a core); real handshakes ${ok.length}/${rs.length}${ok.length ? `, median ${median(ok.map((r) => r.handshakeMs!))} ms` : ''}`);
    }
  } finally {
    for (const stop of stops) await stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
