import * as path from 'path';
import { Worker } from 'worker_threads';
import { GATE_MAX_WAIT_MS, WriteGate } from '../../../proxy/store/write-gate';

/** A thread that takes the gate, says so, and leaves it after holdMs — or dies holding it. */
const HOLDER = `
const { parentPort, workerData, threadId } = require('worker_threads');
const cell = new Int32Array(workerData.gate);
while (Atomics.compareExchange(cell, 0, 0, threadId + 1) !== 0) Atomics.wait(cell, 0, Atomics.load(cell, 0), 10);
parentPort.postMessage('held');
if (workerData.die) process.exit(1);
setTimeout(() => { Atomics.store(cell, 0, 0); Atomics.notify(cell, 0); }, workerData.holdMs);
`;

describe('WriteGate: one writer at a time across the threads of the process', () => {
  const workers: Worker[] = [];
  afterAll(async () => {
    for (const w of workers) await w.terminate();
  });

  function holder(gate: WriteGate, opts: { holdMs?: number; die?: boolean }): Promise<Worker> {
    const w = new Worker(HOLDER, { eval: true, workerData: { gate: gate.buffer, ...opts } });
    workers.push(w);
    return new Promise((resolve) => w.once('message', () => resolve(w)));
  }

  it('a writer blocks while another thread holds the gate, and goes as soon as it is left', async () => {
    const gate = new WriteGate();
    await holder(gate, { holdMs: 100 });
    const cell = new Int32Array(gate.buffer);
    expect(cell[0]).not.toBe(0);
    const t0 = Date.now();
    const holderWhenRun = gate.run(() => ({ cell: cell[0], waited: Date.now() - t0 }));
    // Inside run() this thread holds the gate; the other one had left it (not a give-up after the max wait).
    expect(holderWhenRun.cell).not.toBe(0);
    expect(holderWhenRun.waited).toBeLessThan(GATE_MAX_WAIT_MS);
    expect(cell[0]).toBe(0);
  });

  it('an event loop waiting without blocking (whenFree) is woken when a writer in another thread leaves', async () => {
    // The holder is the real WriteGate (compiled: `npm test` builds first), which notifies only when a thread waits.
    const gateJs = path.resolve(__dirname, '../../../dist/proxy/store/write-gate.js');
    const gate = new WriteGate();
    const w = new Worker(
      `const { parentPort, workerData } = require('worker_threads');
       const { WriteGate } = require(workerData.gateJs);
       const gate = new WriteGate(workerData.gate);
       parentPort.once('message', () => gate.run(() => { parentPort.postMessage('held'); const t = Date.now() + 150; while (Date.now() < t); }));`,
      { eval: true, workerData: { gate: gate.buffer, gateJs } },
    );
    workers.push(w);
    const held = new Promise((r) => w.once('message', r));
    w.postMessage('go');
    await held;
    const cell = new Int32Array(gate.buffer);
    expect(cell[0]).not.toBe(0);
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    const t0 = Date.now();
    await gate.whenFree(5000);
    clearInterval(ticker);
    expect(cell[0]).toBe(0);
    expect(Date.now() - t0).toBeLessThan(4000); // woken by the release, not by the timeout
    expect(ticks).toBeGreaterThan(0); // the loop kept running meanwhile
    expect(gate.tryRun(() => 'mine')).toEqual({ ran: true, value: 'mine' });
  });

  it('frees the gate held by a thread that died, and is re-entrant within a thread', async () => {
    const gate = new WriteGate();
    const w = await holder(gate, { die: true });
    const deadThreadId = w.threadId;
    await new Promise((r) => w.once('exit', r));
    expect(new Int32Array(gate.buffer)[0]).toBe(deadThreadId + 1);
    gate.releaseIfHeldBy(deadThreadId);
    expect(gate.run(() => gate.run(() => 'nested'))).toBe('nested');
    expect(new Int32Array(gate.buffer)[0]).toBe(0);
  });
});
