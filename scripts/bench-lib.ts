/**
 * Why: the proxy benchmark compares processes, not functions, so it needs the same few tools for
 * each of them: start a child and wait for its port, read its CPU time and memory from /proc, and
 * summarise latencies. Linux only (/proc), like the machines the figures come from.
 */
import { ChildProcess, spawn, SpawnOptions } from 'child_process';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';

const CLOCK_TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU time (user + system) a process has used so far, in milliseconds. */
export function processCpuMs(pid: number): number {
  return statCpuMs(`/proc/${pid}/stat`);
}

/** CPU time of a process's main thread only (its event loop; worker threads excluded), in milliseconds. */
export function mainThreadCpuMs(pid: number): number {
  return statCpuMs(`/proc/${pid}/task/${pid}/stat`);
}

/** CPU time of one thread of a process (its kernel id), in milliseconds; 0 when unknown. */
export function threadCpuMs(pid: number, tid: number | undefined): number {
  if (!tid) return 0;
  try {
    return statCpuMs(`/proc/${pid}/task/${tid}/stat`);
  } catch {
    return 0;
  }
}

function statCpuMs(statPath: string): number {
  const stat = fs.readFileSync(statPath, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** Resident memory of a process in MB, or NaN once it has gone. */
export function processRssMb(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Samples a process's RSS every `intervalMs` and keeps the maximum. */
export class RssSampler {
  maxMb = 0;
  /** Maximum since the last resetWindow(): attributes memory to one scenario. */
  windowMaxMb = 0;
  private readonly timer: NodeJS.Timeout;
  constructor(private readonly pid: number, intervalMs = 100) {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
    this.sample();
  }
  sample(): void {
    const mb = processRssMb(this.pid);
    if (mb > this.maxMb) this.maxMb = mb;
    if (mb > this.windowMaxMb) this.windowMaxMb = mb;
  }
  resetWindow(): void {
    this.windowMaxMb = 0;
    this.sample();
  }
  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port: number, child: ChildProcess, timeoutMs = 30000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`process exited (${child.exitCode}) before listening on ${port}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/** Spawns a child whose stderr is kept (last 4 KB) for error messages. */
export function spawnChild(cmd: string, args: string[], options: SpawnOptions): ChildProcess & { tail: () => string } {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options }) as ChildProcess & { tail: () => string };
  let tail = '';
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-4096);
  };
  child.stderr?.on('data', keep);
  child.tail = () => tail;
  return child;
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise((r) => child.once('exit', r));
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => child.pid !== undefined && child.exitCode === null && process.kill(child.pid, 'SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export function median(values: number[]): number {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (!finite.length) return NaN;
  const mid = finite.length >> 1;
  return finite.length % 2 ? finite[mid] : (finite[mid - 1] + finite[mid]) / 2;
}
