/**
 * Why: analysis must never compete with the proxy for CPU. On a laptop with few cores, a burst of
 * traffic keeps the proxy's event loop, the phone's TLS and the analysis worker busy at once; at
 * equal priority the worker takes its share and the proxy slows down. Lowering the worker thread's
 * scheduling priority (Linux: setpriority on the thread's own id, which changes that thread only)
 * lets the proxy go first; analysis takes the idle time, and when it falls behind, flows wait in
 * SQLite (state pending) and are analysed as soon as there is CPU — never dropped.
 */
import * as fs from 'fs';
import * as os from 'os';

/** Nice value of the analysis thread (0 = same as the proxy, 19 = lowest). PHONEHOME_ANALYSIS_NICE overrides. */
export const DEFAULT_ANALYSIS_NICE = 10;

export function analysisNice(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.PHONEHOME_ANALYSIS_NICE;
  const n = raw === undefined || raw === '' ? DEFAULT_ANALYSIS_NICE : Number(raw);
  return Number.isInteger(n) ? Math.max(0, Math.min(19, n)) : DEFAULT_ANALYSIS_NICE;
}

/**
 * Lowers the priority of the calling thread (a worker thread) by `nice`. Returns the thread id it
 * applied to, or undefined where threads cannot be addressed (not Linux) or it was refused.
 */
export function lowerThisThreadPriority(nice: number): number | undefined {
  if (nice <= 0 || process.platform !== 'linux') return undefined;
  try {
    // "/proc/thread-self" → "<pid>/task/<tid>": the kernel id of this very thread.
    const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isInteger(tid) || tid <= 0) return undefined;
    os.setPriority(tid, Math.min(19, os.getPriority(tid) + nice));
    return tid;
  } catch {
    return undefined;
  }
}
