import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { AnalysisPipeline, InlineAnalyser, WorkerAnalyser } from '../../../proxy/pipeline';
import type { WorkerAnalyserOptions } from '../../../proxy/pipeline/analyser';
import type { StoredEvent } from '../../../proxy/store/events';
import { Store } from '../../../proxy/store';
import type { AnalysisResult, DeviceProfile } from '../../../proxy/analyse/types';
import type { Flow } from '../../../proxy/flow';
import { formAnalyser, formFlow } from './fixtures/flows';

const IMEI = '490154203237518';
const CRASHY = path.join(__dirname, 'fixtures', 'crashy-analyser.js');

describe('analysis pipeline', () => {
  let dir: string;
  let store: Store;
  let pipeline: AnalysisPipeline | undefined;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-pipeline-'));
    store = Store.open({ dataDir: dir });
  });
  afterEach(async () => {
    await pipeline?.close();
    pipeline = undefined;
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function record(flow: Flow): Flow {
    store.flows.insert(flow);
    return flow;
  }

  it('stores findings, fields, verdict and flow+alert messages for a leaking flow', async () => {
    pipeline = new AnalysisPipeline({ store, analyser: new InlineAnalyser(formAnalyser) });
    const seen: StoredEvent[] = [];
    pipeline.broadcaster.subscribe((e) => seen.push(e));
    const flow = record(formFlow(`imei=${IMEI}&SIM1CELLID=12345`));
    pipeline.submit(flow);
    await pipeline.idle();

    const finding = store.db.prepare('SELECT type, value, path, chain, detector, severity, host, country, org FROM findings WHERE flow_id = ?').get(flow.id);
    expect(finding).toEqual({ type: 'imei', value: IMEI, path: 'body>form:imei', chain: '["form"]', detector: 'key', severity: 'high', host: 'zzhc.vnet.cn', country: 'CN', org: 'China Telecom' });
    const carried = store.db.prepare("SELECT DISTINCT flow_id FROM fields WHERE key = 'sim1cellid'").all();
    expect(carried).toEqual([{ flow_id: flow.id }]);
    const row = store.db.prepare('SELECT analysis_state, severity, finding_count, finding_types FROM flows WHERE id = ?').get(flow.id);
    expect(row).toEqual({ analysis_state: 1, severity: 'high', finding_count: 1, finding_types: '["imei"]' });

    expect(seen.map((e) => e.type)).toEqual(['flow', 'alert']);
    expect(seen[1].seq).toBeGreaterThan(seen[0].seq);
    const alert = seen[1].data as { flowId: number; types: string[]; findings: { value: string }[]; severity: string };
    expect(alert.flowId).toBe(flow.id);
    expect(alert.types).toEqual(['imei']);
    expect(alert.findings[0].value).toBe(IMEI);
    // The messages are the stored log: a reconnecting client reads the same thing from SQLite.
    expect(store.events.after(0, 10).map((e) => [e.seq, e.type])).toEqual(seen.map((e) => [e.seq, e.type]));
    const summary = seen[0].data as Record<string, unknown>;
    expect(summary).not.toHaveProperty('requestBody');
  });

  it('a flow without identifiers gets a flow message and no alert', async () => {
    pipeline = new AnalysisPipeline({ store, analyser: new InlineAnalyser(formAnalyser) });
    const seen: StoredEvent[] = [];
    pipeline.broadcaster.subscribe((e) => seen.push(e));
    pipeline.submit(record(formFlow('q=weather')));
    await pipeline.idle();
    expect(seen.map((e) => e.type)).toEqual(['flow']);
    expect((seen[0].data as { severity: string }).severity).toBe('info');
  });

  it('when the queue is full, flows stay pending in SQLite and are all analysed later, exactly once', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const analyser = new InlineAnalyser(async (flow) => {
      await gate;
      return formAnalyser(flow);
    });
    pipeline = new AnalysisPipeline({ store, analyser, queueLimit: 2, inFlight: 1, catchUpIntervalMs: 50 });
    const flows = Array.from({ length: 12 }, (_, i) => record(formFlow(`imei=${IMEI}&n=${i}`)));
    for (const f of flows) pipeline.submit(f);
    expect(pipeline.stats().overflowed).toBeGreaterThan(0);
    expect(pipeline.stats().pending).toBe(12);
    release();
    await pipeline.idle();
    expect(pipeline.stats().pending).toBe(0);
    const perFlow = store.db.prepare("SELECT flow_id, COUNT(*) AS n FROM events WHERE type = 'alert' GROUP BY flow_id").all() as { n: number }[];
    expect(perFlow).toHaveLength(12);
    expect(perFlow.every((r) => r.n === 1)).toBe(true);
    expect((store.db.prepare('SELECT COUNT(*) AS n FROM findings').get() as { n: number }).n).toBe(12);
  });

  it('bounds the body bytes held in memory: beyond queueByteLimit flows wait in SQLite, and all are analysed later', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let maxConcurrentBytes = 0;
    let heldNow = 0;
    const analyser = new InlineAnalyser(async (flow) => {
      heldNow += flow.requestBody.bytes.length;
      maxConcurrentBytes = Math.max(maxConcurrentBytes, heldNow);
      await gate;
      heldNow -= flow.requestBody.bytes.length;
      return formAnalyser(flow);
    });
    // 10 flows of ~100 KB each against a 256 KB budget: at most 2 fit in memory at once.
    pipeline = new AnalysisPipeline({ store, analyser, queueByteLimit: 256 * 1024, inFlight: 8, catchUpIntervalMs: 50 });
    const pad = 'x'.repeat(100 * 1024);
    const flows = Array.from({ length: 10 }, (_, i) => record(formFlow(`imei=${IMEI}&n=${i}&pad=${pad}`)));
    for (const f of flows) pipeline.submit(f);
    expect(pipeline.stats().overflowed).toBe(8);
    release();
    await pipeline.idle();
    expect(maxConcurrentBytes).toBeLessThanOrEqual(256 * 1024);
    expect(pipeline.stats().pending).toBe(0);
    expect((store.db.prepare("SELECT COUNT(DISTINCT flow_id) AS n FROM events WHERE type = 'alert'").get() as { n: number }).n).toBe(10);
  });

  it('after a restart, flows recorded but never analysed are caught up', async () => {
    const ids = [record(formFlow(`imei=${IMEI}`)).id, record(formFlow('a=b')).id];
    store.close();
    store = Store.open({ dataDir: dir });
    pipeline = new AnalysisPipeline({ store, analyser: new InlineAnalyser(formAnalyser), catchUpIntervalMs: 50 });
    await pipeline.idle();
    const states = store.db.prepare('SELECT id, analysis_state FROM flows ORDER BY id').all();
    expect(states).toEqual(ids.map((id) => ({ id, analysis_state: 1 })));
  });

  it('uses the device profile when set, else the default profile, for flows analysed after the change', async () => {
    const profiles: (DeviceProfile | null)[] = [];
    const analyser = new InlineAnalyser((flow, profile) => {
      profiles.push(profile);
      return formAnalyser(flow);
    });
    pipeline = new AnalysisPipeline({ store, analyser, defaultProfile: { name: 'default', imei: IMEI } });
    pipeline.submit(record(formFlow('a=1')));
    await pipeline.idle();
    store.devices.setProfile('192.168.1.23', { name: 'Nokia 7 plus', iccid: '8947080012345678901' });
    pipeline.submit(record(formFlow('a=2')));
    await pipeline.idle();
    expect(profiles).toEqual([{ name: 'default', imei: IMEI }, { name: 'Nokia 7 plus', iccid: '8947080012345678901' }]);
    const summary = store.events.after(0, 10).filter((e) => e.type === 'flow').pop()!.data as { device: string };
    expect(summary.device).toBe('Nokia 7 plus');
  });

  it('caps stored fields per flow and per value, and says so in the notes', async () => {
    const big = 'x'.repeat(5000);
    const analyser = new InlineAnalyser((flow): AnalysisResult => ({
      ...formAnalyser(flow),
      fields: Array.from({ length: 2500 }, (_, i) => ({ path: `body>json:$[${i}]`, key: String(i), keyPath: [], value: big, chain: ['json'], group: '' })),
    }));
    pipeline = new AnalysisPipeline({ store, analyser });
    const flow = record(formFlow('[]'));
    pipeline.submit(flow);
    await pipeline.idle();
    const r = store.db.prepare('SELECT COUNT(*) AS n, MAX(length(value)) AS len, MIN(value_truncated) AS cut FROM fields WHERE flow_id = ?').get(flow.id);
    expect(r).toEqual({ n: 2000, len: 4096, cut: 1 });
    const notes = JSON.parse((store.db.prepare('SELECT analysis_notes FROM flows WHERE id = ?').get(flow.id) as { analysis_notes: string }).analysis_notes);
    expect(notes.join(' ')).toMatch(/500 decoded fields beyond the cap of 2000/);
  });

  it('records an analyser error on the flow and keeps going', async () => {
    pipeline = new AnalysisPipeline({ store, analyser: new InlineAnalyser((flow) => {
      if (flow.requestBody.bytes.toString() === 'bad') throw new Error('undecodable');
      return formAnalyser(flow);
    }) });
    const bad = record(formFlow('bad'));
    const good = record(formFlow(`imei=${IMEI}`));
    pipeline.submit(bad);
    pipeline.submit(good);
    await pipeline.idle();
    const rows = store.db.prepare('SELECT id, analysis_state, analysis_error FROM flows ORDER BY id').all();
    expect(rows).toEqual([{ id: bad.id, analysis_state: 2, analysis_error: 'undecodable' }, { id: good.id, analysis_state: 1, analysis_error: null }]);
  });
});

describe.each([
  ['the worker stores each outcome on its own connection', true],
  ['the main thread stores the results (in-memory stores)', false],
])('analysis worker thread (compiled dist/proxy/pipeline/worker.js): %s', (_name, workerStores) => {
  let dir: string;
  let store: Store;
  let pipeline: AnalysisPipeline | undefined;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-worker-'));
    store = Store.open({ dataDir: dir });
  });
  afterEach(async () => {
    await pipeline?.close();
    pipeline = undefined;
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function state(id: number) {
    return store.db.prepare('SELECT analysis_state AS state, analysis_error AS error FROM flows WHERE id = ?').get(id) as { state: number; error: string | null };
  }

  function workerAnalyser(opts: Omit<WorkerAnalyserOptions, 'dbFile' | 'writeGate'> = {}): WorkerAnalyser {
    return new WorkerAnalyser({ analyserModule: CRASHY, ...opts, ...(workerStores ? { dbFile: store.file, writeGate: store.writeGate.buffer } : {}) });
  }

  it('a flow that kills the worker is recorded as failed, the worker restarts, and the others are analysed', async () => {
    const crashes: string[] = [];
    const analyser = workerAnalyser({ onCrash: (r) => crashes.push(r) });
    pipeline = new AnalysisPipeline({ store, analyser, log: () => {} });
    const flows = ['before', 'crash', 'after', 'throw', 'last'].map((b) => {
      const f = formFlow(b);
      store.flows.insert(f);
      pipeline!.submit(f);
      return f;
    });
    await pipeline.idle();
    expect(flows.map((f) => state(f.id!).state)).toEqual([1, 2, 1, 2, 1]);
    expect(state(flows[1].id!).error).toMatch(/worker exited with code 3/);
    expect(state(flows[3].id!).error).toBe('Error: cannot decode this');
    expect(analyser.crashes).toBe(1);
    expect(crashes).toHaveLength(1);
    // Decoded fields came back from the worker with Buffers revived.
    expect(store.db.prepare('SELECT value FROM fields WHERE flow_id = ?').get(flows[4].id)).toEqual({ value: 'last' });
    // Each flow announced once, even the one analysed before the crash and written by the next worker.
    expect(store.db.prepare("SELECT flow_id FROM events WHERE type = 'flow' ORDER BY flow_id").all()).toEqual(flows.map((f) => ({ flow_id: f.id })));
  });

  it('a flow that hangs the worker past its time budget is failed and the worker replaced', async () => {
    const analyser = workerAnalyser({ timeoutMs: 300 });
    pipeline = new AnalysisPipeline({ store, analyser, log: () => {} });
    const hang = formFlow('hang');
    const next = formFlow('fine');
    for (const f of [hang, next]) {
      store.flows.insert(f);
      pipeline.submit(f);
    }
    await pipeline.idle();
    expect(state(hang.id!)).toEqual({ state: 2, error: expect.stringMatching(/longer than 300 ms/) });
    expect(state(next.id!).state).toBe(1);
  });

  it('flows queued when phonehome stops are analysed, once each, by the next start', async () => {
    pipeline = new AnalysisPipeline({ store, analyser: workerAnalyser(), log: () => {} });
    const flows = Array.from({ length: 40 }, (_, i) => {
      const f = formFlow(`n=${i}`);
      store.flows.insert(f);
      pipeline!.submit(f);
      return f;
    });
    await pipeline.close();
    const pendingAfterStop = pipeline.stats().pending;
    store.close();
    store = Store.open({ dataDir: dir });
    pipeline = new AnalysisPipeline({ store, analyser: workerAnalyser(), log: () => {}, catchUpIntervalMs: 50 });
    await pipeline.idle();
    expect(pendingAfterStop).toBeGreaterThan(0);
    expect(store.db.prepare('SELECT COUNT(*) AS n FROM flows WHERE analysis_state = 1').get()).toEqual({ n: flows.length });
    const perFlow = store.db.prepare("SELECT flow_id, COUNT(*) AS n FROM events WHERE type = 'flow' GROUP BY flow_id").all() as { n: number }[];
    expect(perFlow).toHaveLength(flows.length);
    expect(perFlow.every((r) => r.n === 1)).toBe(true);
  });

  it('broadcasts every stored message once, in seq order and without gaps, while both threads write the log', async () => {
    const analyser = workerAnalyser();
    pipeline = new AnalysisPipeline({ store, analyser, log: () => {} });
    const seen: number[] = [];
    pipeline.broadcaster.subscribe((e) => seen.push(e.seq));
    // Crashes make the main thread write failures while the worker writes the others' analyses.
    const bodies = Array.from({ length: 60 }, (_, i) => (i % 15 === 7 ? 'crash' : `n=${i}`));
    for (const b of bodies) {
      const f = formFlow(b);
      store.flows.insert(f);
      pipeline.submit(f);
    }
    await pipeline.idle();
    await new Promise((r) => setTimeout(r, 50));
    const stored = store.events.after(0, 1000).map((e) => e.seq);
    expect(stored).toHaveLength(60);
    expect(seen).toEqual(stored);
    expect(stored).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    expect(store.db.prepare('SELECT COUNT(*) AS n FROM flows WHERE analysis_state = 2').get()).toEqual({ n: 4 });
  });

  // Only the worker commits on another thread: with the main thread storing there is one writer.
  if (workerStores) it('a message the main thread commits while the worker\'s earlier commit is still in the post is not broadcast first', async () => {
    pipeline = new AnalysisPipeline({ store, analyser: workerAnalyser(), log: () => {} });
    const seen: number[] = [];
    pipeline.broadcaster.subscribe((e) => seen.push(e.seq));
    const analysed = formFlow('n=1');
    const failed = formFlow('n=2');
    store.flows.insert(analysed);
    store.flows.insert(failed);
    pipeline.submit(analysed);
    // Hold the event loop until the worker has committed (its reply cannot be read meanwhile)...
    const deadline = Date.now() + 10_000;
    while (store.events.latestSeq() === 0 && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    expect(store.events.latestSeq()).toBe(1);
    // ...then write from the main thread, as the pipeline does for a flow whose worker died.
    pipeline.sequencer.committed(pipeline.recorder.recordFailure(failed, 'worker died', false));
    expect(seen).toEqual([]);
    await pipeline.idle();
    expect(seen).toEqual([1, 2]);
  });
});

describe('pipeline with the real analyser in the worker', () => {
  let dir: string;
  let store: Store;
  let pipeline: AnalysisPipeline;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-real-'));
    store = Store.open({ dataDir: dir });
    pipeline = new AnalysisPipeline({ store, log: () => {} });
  });
  afterEach(async () => {
    await pipeline.close();
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('takes over the WAL checkpoints of a store that ran them in a thread of its own (one thread less)', async () => {
    await pipeline.close();
    store.close();
    store = Store.open({ dataDir: dir, backgroundCheckpoint: true });
    pipeline = new AnalysisPipeline({ store, log: () => {} });
    expect(store.checkpointer).toBeUndefined();
    const dbFile = path.join(dir, 'phonehome.db');
    const sizeBefore = fs.statSync(dbFile).size;
    // 10 MB of bodies: the proxy's connection never checkpoints, so only the worker can move them.
    for (let i = 0; i < 40; i++) {
      const f = formFlow(`n=${i}`, { responseBody: { bytes: Buffer.alloc(256 * 1024, i), size: 256 * 1024, truncated: false } });
      store.flows.insert(f);
      pipeline.submit(f);
    }
    await pipeline.idle();
    const deadline = Date.now() + 10_000;
    while (fs.statSync(dbFile).size < sizeBefore + 8 * 1024 * 1024 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(fs.statSync(dbFile).size).toBeGreaterThan(sizeBefore + 8 * 1024 * 1024);
    await pipeline.close();
    await store.closeAsync();
    store = Store.open({ dataDir: dir });
    expect(store.db.pragma('integrity_check', { simple: true })).toBe('ok');
  });

  it('is ready once the worker has warmed up, and the warm-up leaves nothing in the store', async () => {
    await pipeline.ready();
    await new Promise((r) => setTimeout(r, 50));
    const count = (table: string) => (store.db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n;
    expect([count('flows'), count('findings'), count('fields'), count('events'), count('devices')]).toEqual([0, 0, 0, 0, 0]);
    const flow = formFlow(`imei=${IMEI}`);
    store.flows.insert(flow);
    pipeline.submit(flow);
    await pipeline.idle();
    expect(store.db.prepare('SELECT flow_id, type, value FROM findings').all()).toEqual([{ flow_id: flow.id, type: 'imei', value: IMEI }]);
  });

  it('finds an IMEI in a form body, stores its field, and matches the device profile in base64', async () => {
    store.devices.setProfile('192.168.1.23', { name: 'Nokia 7 plus', iccid: '89470000000000000009' });
    const inner = Buffer.from(JSON.stringify({ SIM1ICCID: '89470000000000000009', SIM1CELLID: '2345' })).toString('base64');
    const flow = formFlow(`imei=${IMEI}&payload=${encodeURIComponent(inner)}`);
    store.flows.insert(flow);
    pipeline.submit(flow);
    await pipeline.idle();
    const findings = store.findings.forFlow(flow.id!);
    expect(findings).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'imei', value: IMEI, severity: expect.any(String) })]));
    expect(findings.some((f) => f.type === 'iccid' && f.value === '89470000000000000009')).toBe(true);
    const cell = store.db.prepare("SELECT value, chain FROM fields WHERE flow_id = ? AND key = 'sim1cellid'").get(flow.id) as { value: string; chain: string };
    expect(cell.value).toBe('2345');
    expect(JSON.parse(cell.chain)).toEqual(expect.arrayContaining(['base64', 'json']));
    expect(store.db.prepare('SELECT analysis_state FROM flows WHERE id = ?').get(flow.id)).toEqual({ analysis_state: 1 });
  });

  it('analyses TLS failures and raw tunnels too, and announces them', async () => {
    const seen: string[] = [];
    pipeline.broadcaster.subscribe((e) => seen.push(`${e.type}:${(e.data as { kind?: string }).kind}`));
    const tlsFailure = formFlow('', { kind: 'tls-failure', scheme: 'tls', tls: true, host: 'pinned.example', port: 443, sni: 'pinned.example', method: undefined, url: undefined, error: 'client rejected our certificate', tags: ['pinning-suspected'], requestHeaders: [], responseHeaders: [] });
    const raw = formFlow('\x16\x03garbage', { kind: 'raw', scheme: 'tcp', tls: false, host: '10.0.0.9', port: 5228, method: undefined, url: undefined, requestHeaders: [], responseHeaders: [] });
    for (const f of [tlsFailure, raw]) {
      store.flows.insert(f);
      pipeline.submit(f);
    }
    await pipeline.idle();
    expect(seen).toEqual(['flow:tls-failure', 'flow:raw']);
    expect(store.db.prepare('SELECT kind, analysis_state FROM flows ORDER BY id').all()).toEqual([{ kind: 'tls-failure', analysis_state: 1 }, { kind: 'raw', analysis_state: 1 }]);
  });
});
