/**
 * Why: analysis must not slow the proxy, and must not lag when only other programs keep the laptop
 * busy. Running the analysis thread at a lower OS priority (nice) did the first but not the second
 * (under unrelated load, alerts came seconds late), and it inverted priorities: the proxy waits
 * for the worker's SQLite write to finish (a response is released only once its flow is stored),
 * and a low-priority worker preempted in the middle of that write kept the proxy waiting.
 *
 * So the worker runs at normal priority and yields by itself, between jobs (never inside a write):
 * it pauses while the proxy is busy (the main thread's event loop utilisation, published here
 * through shared memory) AND the machine is short of idle CPU (/proc/stat). Flows then wait, in
 * memory and in SQLite, and are analysed as soon as either is no longer true: never dropped.
 * PHONEHOME_ANALYSIS_YIELD=0 turns this off (analysis then competes with the proxy for CPU).
 */
import * as fs from 'fs';
import { performance } from 'perf_hooks';

/** The proxy counts as busy from this event loop utilisation (smoothed)... */
export const PROXY_BUSY_UTILISATION = 0.5;
/**
 * ...and the machine as short of CPU below this share of idle time (all cores): analysis waits for
 * a whole idle core on a 2-core laptop. Measured with bench:pipeline (client and server on the same
 * 2 cores): at 0.15 the worker still took ~0.12 ms of CPU per request from a saturated proxy
 * (full pipeline 0.67× recording only); at 0.5 it waits and catches up after (0.9×).
 */
export const MACHINE_IDLE_BELOW = 0.5;
/** How long the worker pauses before looking again. */
export const YIELD_PAUSE_MS = 20;
/** The machine's idle share is sampled at most this often. */
const CPU_SAMPLE_MS = 50;

/** Main thread side: publishes its event loop utilisation (×1000, smoothed over ~0.3 s) every 100 ms. */
export class LoadPublisher {
  readonly buffer = new SharedArrayBuffer(4);
  private readonly cell = new Int32Array(this.buffer);
  private last = performance.eventLoopUtilization();
  private smoothed = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(intervalMs = 100) {
    const alpha = 1 - Math.exp(-intervalMs / 300);
    this.timer = setInterval(() => {
      const now = performance.eventLoopUtilization();
      this.smoothed += alpha * (performance.eventLoopUtilization(now, this.last).utilization - this.smoothed);
      this.last = now;
      Atomics.store(this.cell, 0, Math.round(this.smoothed * 1000));
    }, intervalMs);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }
}

/** Idle and total CPU time of the machine so far (jiffies), or undefined where /proc/stat is missing. */
export function readCpuTimes(): { idle: number; total: number } | undefined {
  try {
    const line = fs.readFileSync('/proc/stat', 'latin1').slice(0, 256).split('\n', 1)[0];
    const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
    if (f.length < 5 || f.some((n) => !Number.isFinite(n))) return undefined;
    return { idle: f[3] + f[4], total: f.reduce((a, b) => a + b, 0) };
  } catch {
    return undefined;
  }
}

/** Whether the worker yields (default yes; PHONEHOME_ANALYSIS_YIELD=0: no). */
export function yieldEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.PHONEHOME_ANALYSIS_YIELD !== '0';
}

/** Worker side: how long to pause before the next job. */
export class YieldPolicy {
  private readonly proxyLoad: Int32Array;
  private lastCpu: { idle: number; total: number } | undefined;
  private lastSampleAt = 0;
  private idleShare = 1;

  constructor(buffer: SharedArrayBuffer, private readonly cpu: () => { idle: number; total: number } | undefined = readCpuTimes, private readonly now = () => performance.now()) {
    this.proxyLoad = new Int32Array(buffer);
  }

  /** YIELD_PAUSE_MS while the proxy is busy and the machine saturated, else 0. */
  pauseMs(): number {
    if (Atomics.load(this.proxyLoad, 0) < PROXY_BUSY_UTILISATION * 1000) return 0;
    const t = this.now();
    if (t - this.lastSampleAt >= CPU_SAMPLE_MS) {
      const c = this.cpu();
      if (c && this.lastCpu && c.total > this.lastCpu.total) this.idleShare = (c.idle - this.lastCpu.idle) / (c.total - this.lastCpu.total);
      this.lastCpu = c;
      this.lastSampleAt = t;
    }
    return this.idleShare < MACHINE_IDLE_BELOW ? YIELD_PAUSE_MS : 0;
  }
}
