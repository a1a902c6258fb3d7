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
    expect(logs.join()).toMatch(/recording failed/);
  });
});
