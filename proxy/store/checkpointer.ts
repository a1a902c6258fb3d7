/**
 * WAL checkpoints off the event loop. With SQLite's automatic checkpoint, every ~4 MB of bodies
 * one INSERT also copies the WAL into the database file: 15-25 ms of blocked proxy, measured with
 * 1 MB bodies. Here the proxy's connection never checkpoints; a worker thread with its own
 * connection runs PASSIVE checkpoints (which never block the writer) on a timer.
 */
import { Worker } from 'worker_threads';

const WORKER_SOURCE = `
const { parentPort, workerData } = require('worker_threads');
const Database = require(workerData.betterSqlite3);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 1000');
let stopping = false;
function checkpoint() {
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ type: 'checkpoint', log: r.log, checkpointed: r.checkpointed });
  } catch (err) {
    parentPort.postMessage({ type: 'error', message: String(err && err.message || err) });
  }
}
const timer = setInterval(() => { if (!stopping) checkpoint(); }, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m === 'stop') { stopping = true; clearInterval(timer); db.close(); parentPort.close(); }
});
`;

export interface CheckpointStats {
  /** Checkpoints run so far. */
  runs: number;
  /** Frames in the WAL at the last checkpoint, and how many of them it copied. */
  lastLog: number;
  lastCheckpointed: number;
  lastError?: string;
}

export class BackgroundCheckpointer {
  readonly stats: CheckpointStats = { runs: 0, lastLog: 0, lastCheckpointed: 0 };
  private readonly worker: Worker;
  private readonly exited: Promise<void>;

  constructor(file: string, readonly intervalMs = 500) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { file, intervalMs, betterSqlite3: require.resolve('better-sqlite3') } });
    this.worker.on('message', (m: { type: string; log?: number; checkpointed?: number; message?: string }) => {
      if (m.type === 'checkpoint') {
        this.stats.runs++;
        this.stats.lastLog = m.log ?? 0;
        this.stats.lastCheckpointed = m.checkpointed ?? 0;
      } else if (m.type === 'error') this.stats.lastError = m.message;
    });
    this.worker.on('error', (err) => (this.stats.lastError = err.message));
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    // After the listeners (adding a 'message' listener refs the port again): never keeps a process alive.
    this.worker.unref();
  }

  /** Stops after any checkpoint in progress; the database stays consistent either way. */
  async stop(): Promise<void> {
    // Held while stopping: with nothing else left on the event loop (a start that failed on a busy
    // port), an unref'd worker and timer let the process exit mid-await, with status 0 and no message.
    this.worker.ref();
    this.worker.postMessage('stop');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, 2000)));
    await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    await this.worker.terminate();
  }
}
