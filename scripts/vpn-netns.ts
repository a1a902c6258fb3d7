/**
 * Network namespaces for the VPN e2e tests (test/e2e/vpn-*.test.ts) and scripts/bench-tunnel.ts, after
 * /work/shared/scripts/netns-wg-demo.sh: a "phone" namespace running wireguard-go (the phone's
 * WireGuard app) with a full-tunnel route, and a "laptop" namespace joined by a veth pair where
 * phonehome runs. Names carry a random suffix (other runs share this machine); every process is
 * recorded by PID and `destroy()` kills them and deletes the namespaces, also after a failure.
 */
import { ChildProcess, execFileSync, spawn, SpawnOptions } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';

export const PHONE_UNDERLAY = '10.99.0.2';
export const LAPTOP_UNDERLAY = '10.99.0.1';
/** "Internet" host on the laptop namespace's loopback (RFC 2544 range, never routed publicly). */
export const TEST_HOST = '198.18.0.1';

export function canRunNetns(): boolean {
  if (process.getuid?.() !== 0 || !fs.existsSync('/dev/net/tun')) return false;
  for (const bin of ['ip', 'wg', 'wireguard-go']) {
    try {
      execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    } catch {
      return false;
    }
  }
  return true;
}

export function run(cmd: string, args: string[], opts: { input?: string; timeout?: number } = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', timeout: opts.timeout ?? 15000, input: opts.input, stdio: ['pipe', 'pipe', 'pipe'] });
}

export interface Background {
  child: ChildProcess;
  output: () => string;
}

export class NetnsPair {
  readonly id = crypto.randomBytes(3).toString('hex');
  readonly phoneNs = `vpnph-${this.id}`;
  readonly laptopNs = `vpnlp-${this.id}`;
  /** wireguard-go's control socket path is global: the interface name must be unique. */
  readonly wgIface = `wgph${this.id}`;
  private readonly children: ChildProcess[] = [];

  setup(): void {
    const [vp, vl] = [`vph${this.id}`, `vlp${this.id}`];
    run('ip', ['netns', 'add', this.phoneNs]);
    run('ip', ['netns', 'add', this.laptopNs]);
    run('ip', ['link', 'add', vp, 'type', 'veth', 'peer', 'name', vl]);
    run('ip', ['link', 'set', vp, 'netns', this.phoneNs]);
    run('ip', ['link', 'set', vl, 'netns', this.laptopNs]);
    run('ip', ['-n', this.phoneNs, 'addr', 'add', `${PHONE_UNDERLAY}/24`, 'dev', vp]);
    run('ip', ['-n', this.laptopNs, 'addr', 'add', `${LAPTOP_UNDERLAY}/24`, 'dev', vl]);
    for (const ns of [this.phoneNs, this.laptopNs]) run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    run('ip', ['-n', this.phoneNs, 'link', 'set', vp, 'up']);
    run('ip', ['-n', this.laptopNs, 'link', 'set', vl, 'up']);
    run('ip', ['-n', this.laptopNs, 'addr', 'add', `${TEST_HOST}/32`, 'dev', 'lo']);
  }

  /** Runs a command in a namespace (`ip netns exec` execs in place, so the PID is the command's). */
  spawnIn(ns: string, cmd: string, args: string[], opts: SpawnOptions = {}): Background {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    this.children.push(child);
    let out = '';
    child.stdout?.on('data', (d) => (out += d));
    child.stderr?.on('data', (d) => (out += d));
    return { child, output: () => out };
  }

  execIn(ns: string, cmd: string, args: string[], opts: { input?: string; timeout?: number } = {}): string {
    return run('ip', ['netns', 'exec', ns, cmd, ...args], opts);
  }

  /**
   * Starts wireguard-go as the phone with the given client settings: full tunnel for IPv4 and
   * IPv6 (the config's AllowedIPs), MTU 1420, the tunnel addresses on its interface.
   */
  async startPhone(c: { privateKeyFile: string; serverPublicKey: string; endpoint: string; ipv4: string; ipv6: string }): Promise<void> {
    this.spawnIn(this.phoneNs, 'wireguard-go', ['-f', this.wgIface], { env: { ...process.env, LOG_LEVEL: 'error' } });
    const sock = `/var/run/wireguard/${this.wgIface}.sock`;
    await waitFor(() => fs.existsSync(sock), 10000, 'wireguard-go control socket');
    this.execIn(this.phoneNs, 'wg', ['set', this.wgIface, 'private-key', c.privateKeyFile, 'peer', c.serverPublicKey,
      'allowed-ips', '0.0.0.0/0,::/0', 'endpoint', c.endpoint]);
    run('ip', ['-n', this.phoneNs, 'addr', 'add', `${c.ipv4}/32`, 'dev', this.wgIface]);
    run('ip', ['-n', this.phoneNs, '-6', 'addr', 'add', `${c.ipv6}/128`, 'dev', this.wgIface, 'nodad']);
    run('ip', ['-n', this.phoneNs, 'link', 'set', this.wgIface, 'mtu', '1420', 'up']);
    run('ip', ['-n', this.phoneNs, 'route', 'add', 'default', 'dev', this.wgIface]);
    run('ip', ['-n', this.phoneNs, '-6', 'route', 'add', 'default', 'dev', this.wgIface]);
  }

  /** Seconds since the phone's last handshake with phonehome (0 = never), as `wg show` reports it. */
  latestHandshake(): number {
    const out = this.execIn(this.phoneNs, 'wg', ['show', this.wgIface, 'latest-handshakes']).trim();
    return Number(out.split(/\s+/)[1] ?? 0);
  }

  async destroy(): Promise<void> {
    for (const child of this.children) {
      if (child.exitCode !== null || child.signalCode !== null || !child.pid) continue;
      const exited = new Promise((r) => child.once('exit', r));
      try {
        process.kill(child.pid, 'SIGTERM');
      } catch { /* gone */ }
      const t = setTimeout(() => {
        try {
          process.kill(child.pid!, 'SIGKILL');
        } catch { /* gone */ }
      }, 3000);
      await exited;
      clearTimeout(t);
    }
    for (const ns of [this.phoneNs, this.laptopNs]) {
      try {
        run('ip', ['netns', 'del', ns]);
      } catch { /* never created */ }
    }
    fs.rmSync(`/var/run/wireguard/${this.wgIface}.sock`, { force: true });
  }
}

export async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
