/**
 * Which job the analysis worker is running, in shared memory: the worker sets it around each
 * analysis, and the main thread reads it without any message — to time a stuck analysis, and after
 * a crash to fail the one flow that caused it while the others (analysed, maybe not yet written)
 * are simply posted again to the new worker.
 */
export class RunningJobCell {
  private readonly cell: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(4)) {
    this.cell = new Int32Array(buffer);
  }

  start(jobId: number): void {
    Atomics.store(this.cell, 0, jobId);
  }

  stop(): void {
    Atomics.store(this.cell, 0, 0);
  }

  /** The job being analysed, or 0 when the worker is between jobs (loading, writing, idle). */
  get current(): number {
    return Atomics.load(this.cell, 0);
  }
}
