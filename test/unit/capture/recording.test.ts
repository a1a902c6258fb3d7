import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { BodyTap, FlowRecorder } from '../../../proxy/capture/recording';
import { emptyBody, Flow } from '../../../proxy/flow';
import { Store } from '../../../proxy/store';

function flow(): Flow {
  return {
    kind: 'http', source: 'proxy', startedAt: Date.now(), clientIp: '192.168.1.23', scheme: 'http', host: 'zzhc.vnet.cn', port: 80, tls: false,
    requestHeaders: [], requestBody: emptyBody(), responseHeaders: [], responseBody: emptyBody(), timings: {}, tags: [],
  };
}

describe('capture/recording', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-rec-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('keeps the first `limit` bytes of a body, its true size, and whether it was cut', () => {
    const tap = new BodyTap(10);
    tap.add(Buffer.from('IMEI=3547'));
    tap.add(Buffer.from('26080000000'));
    expect(tap.toBody()).toEqual({ bytes: Buffer.from('IMEI=35472'), size: 20, truncated: true });
    const whole = new BodyTap(100);
    whole.add(Buffer.from('ok'));
    expect(whole.toBody()).toEqual({ bytes: Buffer.from('ok'), size: 2, truncated: false });
    const none = new BodyTap(0);
    none.add(Buffer.from('secret'));
    expect(none.toBody()).toEqual({ bytes: Buffer.alloc(0), size: 6, truncated: true });
  });

  it('copies chunks, so a reused buffer cannot change what was recorded', () => {
    const tap = new BodyTap(100);
    const chunk = Buffer.from('abc');
    tap.add(chunk);
    chunk.write('xyz');
    expect(tap.toBody().bytes.toString()).toBe('abc');
  });

  it('stores a flow, tags truncation, then calls the listener with the id; a throwing listener is logged only', () => {
    const store = Store.open({ dataDir: dir });
    const logs: string[] = [];
    const seen: number[] = [];
    const rec = new FlowRecorder(store, (l) => logs.push(l), (f) => {
      seen.push(f.id!);
      throw new Error('listener bug');
    });
    const f = flow();
    f.requestBody = { bytes: Buffer.from('a'), size: 5, truncated: true };
    expect(() => rec.record(f)).not.toThrow();
    rec.flushNow();
    expect(seen).toEqual([f.id]);
    expect(store.flows.get(f.id!)!.tags).toContain('body-truncated');
    expect(logs.join()).toMatch(/listener bug/);
    store.close();
  });

  it('logs, and does not throw, when the store cannot write', () => {
    const store = Store.open({ dataDir: dir });
    store.close();
    const logs: string[] = [];
    const rec = new FlowRecorder(store, (l) => logs.push(l));
    expect(() => rec.record(flow())).not.toThrow();
    rec.flushNow();
    expect(logs.join()).toMatch(/recording failed/);
  });

  it('stores the flows of one event-loop turn together, in order, before telling the listener and the after-store step', async () => {
    const store = Store.open({ dataDir: dir });
    const order: string[] = [];
    const rec = new FlowRecorder(store, () => undefined, (f) => order.push(`listener ${f.id}`));
    const flows = [flow(), flow(), flow()];
    flows.forEach((f, i) => {
      f.url = `http://zzhc.vnet.cn/n=${i}`;
      rec.record(f, (stored) => order.push(`stored ${stored.id} (${store.flows.get(stored.id!)!.url})`));
    });
    expect(flows.every((f) => f.id === undefined)).toBe(true); // not yet: at the end of this turn
    await new Promise((r) => setImmediate(r));
    const ids = flows.map((f) => f.id!);
    expect(ids).toEqual([ids[0], ids[0] + 1, ids[0] + 2]);
    expect(order).toEqual(ids.flatMap((id, i) => [`stored ${id} (http://zzhc.vnet.cn/n=${i})`, `listener ${id}`]));
    store.close();
  });

  it('does not block the event loop while another thread is writing: the batch waits for the write gate, then is stored', async () => {
    const store = Store.open({ dataDir: dir });
    const seen: number[] = [];
    const rec = new FlowRecorder(store, () => undefined, (f) => seen.push(f.id!));
    const cell = new Int32Array(store.writeGate.buffer);
    Atomics.store(cell, 0, 12345); // as if the analysis worker (another thread) held the gate
    rec.record(flow());
    let timerRan = false;
    await new Promise((r) => setTimeout(r, 15)).then(() => (timerRan = true));
    expect(timerRan).toBe(true);
    expect(seen).toEqual([]);
    Atomics.store(cell, 0, 0);
    Atomics.notify(cell, 0);
    for (let i = 0; i < 50 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(seen).toHaveLength(1);
    expect(store.flows.get(seen[0])).toBeDefined();
    store.close();
  });

  it('a batch with a flow that cannot be stored still stores the others, and tells each waiter its fate', async () => {
    const store = Store.open({ dataDir: dir });
    const logs: string[] = [];
    const seen: number[] = [];
    const rec = new FlowRecorder(store, (l) => logs.push(l), (f) => seen.push(f.id!));
    const bad = flow();
    (bad as { kind: unknown }).kind = null; // violates NOT NULL
    const fates: boolean[] = [];
    for (const f of [flow(), bad, flow()]) rec.record(f, (_f, stored) => fates.push(stored));
    await new Promise((r) => setImmediate(r));
    expect(seen).toHaveLength(2);
    expect(bad.id).toBeUndefined();
    // Everyone waiting hears back, stored or not (a response held for its flow is released either way).
    expect(fates).toEqual([true, false, true]);
    expect(logs.join()).toMatch(/recording failed \(1 so far\)/);
    store.close();
  });
});
