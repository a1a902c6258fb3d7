/**
 * Why: a user may want analysis to take only the CPU nothing else wants (PHONEHOME_ANALYSIS_NICE):
 * lowering the worker thread's scheduling priority (Linux: setpriority on the thread's own id,
 * which changes that thread only) lets everything else go first; flows wait in SQLite (state
 * pending) meanwhile and are analysed as soon as there is CPU — never dropped. By default the
 * worker keeps normal priority and yields to a busy proxy itself (cpu-yield.ts).
 */
import * as fs from 'fs';
import * as os from 'os';

/**
 * Nice value of the analysis thread (0 = same as the proxy, 19 = lowest). PHONEHOME_ANALYSIS_NICE
 * overrides. 0 by default: the worker yields to a busy proxy by itself (cpu-yield.ts); a lower OS
 * priority made alerts late whenever other programs kept the laptop busy, and let the scheduler
 * preempt the worker inside a SQLite write the proxy was waiting for.
 */
export const DEFAULT_ANALYSIS_NICE = 0;

/** The kernel's id of the calling thread (Linux), e.g. for per-thread CPU figures; else undefined. */
export function thisThreadKernelId(): number | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    // "/proc/thread-self" → "<pid>/task/<tid>": the kernel id of this very thread.
    const tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isInteger(tid) && tid > 0 ? tid : undefined;
  } catch {
    return undefined;
  }
}

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
  if (nice <= 0) return undefined;
  const tid = thisThreadKernelId();
  if (tid === undefined) return undefined;
  try {
    os.setPriority(tid, Math.min(19, os.getPriority(tid) + nice));
    return tid;
  } catch {
    return undefined;
  }
}
