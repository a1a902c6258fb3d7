/**
 * When the analysis worker yields (cpu-yield.ts): only while the proxy's event loop is busy AND the
 * machine has no idle CPU, so other programs keeping the laptop busy do not delay alerts, and a
 * saturated proxy gets the CPU. The proxy's load is measured for real on this thread's event loop.
 */
import { LoadPublisher, PROXY_BUSY_UTILISATION, YieldPolicy, YIELD_PAUSE_MS, readCpuTimes } from '../../../proxy/pipeline/cpu-yield';

function policy(proxyLoad: number, idleShares: number[]) {
  const buffer = new SharedArrayBuffer(4);
  new Int32Array(buffer)[0] = Math.round(proxyLoad * 1000);
  let t = 0;
  let jiffies = { idle: 0, total: 0 };
  let i = 0;
  // Each CPU sample adds 100 jiffies of which idleShares[i] were idle.
  const cpu = () => {
    const share = idleShares[Math.min(i++, idleShares.length - 1)];
    jiffies = { idle: jiffies.idle + share * 100, total: jiffies.total + 100 };
    return jiffies;
  };
  const p = new YieldPolicy(buffer, cpu, () => (t += 60));
  return p;
}

describe('analysis worker yielding to the proxy', () => {
  it('pauses only while the proxy is busy and the machine has no idle CPU', () => {
    const busySaturated = policy(0.9, [0.02]);
    busySaturated.pauseMs(); // first sample: no window yet
    expect(busySaturated.pauseMs()).toBe(YIELD_PAUSE_MS);
    const busyWithIdleCores = policy(0.9, [0.6]);
    busyWithIdleCores.pauseMs();
    expect(busyWithIdleCores.pauseMs()).toBe(0);
    // Other programs saturate the machine, the proxy is quiet: alerts must not wait.
    const quietProxy = policy(PROXY_BUSY_UTILISATION - 0.1, [0.0]);
    quietProxy.pauseMs();
    expect(quietProxy.pauseMs()).toBe(0);
    // The machine frees up: the worker goes on.
    const recovering = policy(0.9, [0.02, 0.02, 0.5]);
    recovering.pauseMs();
    expect(recovering.pauseMs()).toBe(YIELD_PAUSE_MS);
    expect(recovering.pauseMs()).toBe(0);
  });

  it('reads the machine\'s CPU times', () => {
    const c = readCpuTimes();
    if (process.platform !== 'linux') return expect(c).toBeUndefined();
    expect(c!.total).toBeGreaterThan(0);
    expect(c!.idle).toBeLessThanOrEqual(c!.total);
  });

  it('publishes the event loop utilisation of its thread: near 0 idle, high when kept busy', async () => {
    const pub = new LoadPublisher(20);
    const cell = new Int32Array(pub.buffer);
    try {
      await new Promise((r) => setTimeout(r, 300));
      const idle = Atomics.load(cell, 0);
      const until = Date.now() + 600;
      while (Date.now() < until) {
        const spin = Date.now() + 15;
        while (Date.now() < spin);
        await new Promise((r) => setImmediate(r));
      }
      const busy = Atomics.load(cell, 0);
      expect(idle).toBeLessThan(300);
      expect(busy).toBeGreaterThan(PROXY_BUSY_UTILISATION * 1000);
    } finally {
      pub.close();
    }
  });
});
