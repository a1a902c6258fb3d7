/**
 * Starting phonehome for tests: in-process (startPhonehome, the composition `start` uses) with a
 * loopback-only name resolver and the test origin's certificate as upstream root, or as the real
 * CLI in a child process (stopped by PID in teardown). Test origins live on loopback, so both
 * allow loopback targets (`--allow-loopback-targets`) unless a test says otherwise.
 */
import { ChildProcess, spawn } from 'child_process';
import type { LookupAddress } from 'dns';
import * as path from 'path';
import Database from 'better-sqlite3';
import { Phonehome, PhonehomeOptions, startPhonehome } from '../../../proxy/app';
import type { FlowRow } from '../../../proxy/store/flows';
import { originCert } from './origin';
import { makeTempDir, removeDir } from './tmp';

/** Every name resolves to 127.0.0.1: tests never reach anything but loopback. */
export function loopbackLookup(
  _hostname: string,
  options: { all?: boolean } | number | undefined,
  callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
): void {
  if (typeof options === 'object' && options?.all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
  else callback(null, '127.0.0.1', 4);
}

export interface TestPhonehome extends Phonehome {
  logs: string[];
  /** All rows of `flows`, oldest first, read through a separate connection like a user's sqlite3. */
  flows(where?: string, ...params: unknown[]): FlowRow[];
  stop(): Promise<void>;
}

export async function startTestPhonehome(opts: PhonehomeOptions = {}): Promise<TestPhonehome> {
  const dataDir = opts.dataDir ?? makeTempDir();
  const logs: string[] = [];
  const app = await startPhonehome({
    listenHost: '127.0.0.1',
    port: 0,
    dashboardPort: null,
    log: (l) => logs.push(l),
    allowLoopbackTargets: true,
    ...opts,
    dataDir,
    proxy: { upstreamCa: originCert().certPem, lookup: loopbackLookup as never, sniffTimeoutMs: 300, ...opts.proxy },
  });
  return Object.assign(app, {
    logs,
    flows: (where?: string, ...params: unknown[]) => readFlows(path.join(dataDir, 'phonehome.db'), where, ...params),
    async stop() {
      await app.close();
      if (!opts.dataDir) removeDir(dataDir);
    },
  });
}

export function readFlows(dbFile: string, where?: string, ...params: unknown[]): FlowRow[] {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    return db.prepare(`SELECT * FROM flows ${where ? `WHERE ${where}` : ''} ORDER BY id`).all(...params) as FlowRow[];
  } finally {
    db.close();
  }
}

/** Waits until `check` returns a truthy value (flows are stored when the exchange ends). */
export async function eventually<T>(check: () => T | undefined | false | null, timeoutMs = 5000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const CLI = path.join(__dirname, '..', '..', '..', 'bin', 'phonehome.js');

export interface CliProcess {
  child: ChildProcess;
  port: number;
  stdout: () => string;
  stderr: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Runs `phonehome start …` from the built CLI (with --allow-loopback-targets: test origins are on
 * loopback; `refuseLoopback` leaves it off) and waits for "proxy listening on HOST:PORT".
 */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}, refuseLoopback = false): Promise<CliProcess> {
  const child = spawn(process.execPath, [CLI, 'start', ...(refuseLoopback ? [] : ['--allow-loopback-targets']), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, signal);
    return exited;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop('SIGKILL');
      reject(new Error(`phonehome start did not report its port: ${out}${err}`));
    }, 20000);
    const onData = () => {
      const m = /proxy listening on \S+:(\d+)/.exec(out);
      if (!m) return;
      clearTimeout(timer);
      child.stdout!.removeListener('data', onData);
      resolve({ child, port: Number(m[1]), stdout: () => out, stderr: () => err, stop });
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`phonehome start exited with ${code}: ${out}${err}`));
    });
  });
}
