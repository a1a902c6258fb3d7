/**
 * The /ws stream over real sockets and a real SQLite file: increasing sequence numbers, resume with
 * ?since= after a disconnect and after a dashboard restart (nothing lost, nothing twice), slow-client
 * drop with 4008, heartbeat termination of a dead peer, and the token and Origin checks on the upgrade.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { bearer, connectWs, startHarness, Harness, TestClient } from '../unit/pipeline/fixtures/dashboard-harness';

const IMEI = '490154203237518';

function storedSeqsAfter(h: Harness, since: number): number[] {
  return (h.store.db.prepare('SELECT seq FROM events WHERE seq > ? ORDER BY seq').all(since) as { seq: number }[]).map((r) => r.seq);
}

describe('WebSocket /ws', () => {
  let h: Harness;
  const clients: TestClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.ws.terminate();
    await h?.close();
  });
  async function connect(query = '', opts = {}): Promise<TestClient> {
    const c = await connectWs(`ws://127.0.0.1:${h.dashboard.port}/ws${query}`, { ...opts, headers: bearer(h.token) });
    clients.push(c);
    return c;
  }

  it('streams flow and alert messages live with strictly increasing seq', async () => {
    h = await startHarness({ ws: { statsIntervalMs: 50 } });
    const c = await connect();
    for (let i = 0; i < 20; i++) h.record(i % 2 ? `imei=${IMEI}&n=${i}` : `n=${i}`);
    await h.pipeline.idle();
    await c.waitFor((m) => m.filter((x) => x.type === 'alert').length === 10);
    const seqs = c.seqs();
    expect(seqs).toEqual(storedSeqsAfter(h, 0));
    expect(seqs.every((s, i) => i === 0 || s > seqs[i - 1])).toBe(true);
    const alert = c.messages.find((m) => m.type === 'alert')!;
    expect(alert.data).toMatchObject({ host: 'zzhc.vnet.cn', types: ['imei'], severity: 'high', findings: [expect.objectContaining({ value: IMEI })] });
    const flow = c.messages.find((m) => m.type === 'flow')!;
    expect(flow.data).not.toHaveProperty('requestBody');
    await c.waitFor((m) => m.some((x) => x.type === 'stats' && x.data.seq === seqs[seqs.length - 1]));
    const stats = c.messages.filter((m) => m.type === 'stats').pop()!;
    expect(stats.seq).toBeNull();
    expect(stats.data).toMatchObject({ flows: 20, alerts: 10, queue: { pending: 0, analysed: 20 } });
  });

  it('resumes with ?since= after a disconnect: everything missed, then live, no duplicates', async () => {
    h = await startHarness();
    const first = await connect();
    h.record(`imei=${IMEI}`);
    await first.waitFor((m) => m.some((x) => x.type === 'alert'));
    const last = Math.max(...first.seqs());
    first.ws.close();
    for (let i = 0; i < 30; i++) h.record(`imei=${IMEI}&n=${i}`);
    await h.pipeline.idle();
    const again = await connect(`?since=${last}`);
    // Live flows keep arriving while the replay runs.
    for (let i = 0; i < 30; i++) h.record(`imei=${IMEI}&late=${i}`);
    await h.pipeline.idle();
    const expected = storedSeqsAfter(h, last);
    expect(expected).toHaveLength(120);
    await again.waitFor(() => again.seqs().length >= expected.length);
    expect(again.seqs()).toEqual(expected);
  });

  it('replays in pages larger than one page, switching to live without a gap', async () => {
    h = await startHarness({ ws: { replayPageSize: 7 } });
    for (let i = 0; i < 25; i++) h.record(`imei=${IMEI}&n=${i}`);
    await h.pipeline.idle();
    const c = await connect('?since=0');
    const timer = setInterval(() => h.record(`imei=${IMEI}&live=1`), 2);
    await new Promise((r) => setTimeout(r, 150));
    clearInterval(timer);
    await h.pipeline.idle();
    const expected = storedSeqsAfter(h, 0);
    await c.waitFor(() => c.seqs().length >= expected.length);
    expect(c.seqs()).toEqual(expected);
  });

  it('replays a long history with the default limits without dropping the reader', async () => {
    h = await startHarness();
    const insert = h.store.db.transaction(() => {
      for (let i = 0; i < 5000; i++) h.store.events.append('flow', { id: i, url: `http://example.test/${'y'.repeat(500)}` }, null);
    });
    insert();
    const c = await connect('?since=0');
    await c.waitFor(() => c.seqs().length >= 5000, 20_000);
    expect(c.seqs()).toEqual(storedSeqsAfter(h, 0));
    expect(h.dashboard.hub.dropped).toBe(0);
  });

  it('loses nothing across a dashboard restart, and across a full reopen of the store', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-ws-restart-'));
    try {
      h = await startHarness({}, dir);
      const c = await connect('?since=0');
      h.record(`imei=${IMEI}`);
      await c.waitFor((m) => m.some((x) => x.type === 'alert'));
      const last = Math.max(...c.seqs());
      await h.dashboard.close();
      await c.closed;
      for (let i = 0; i < 5; i++) h.record(`imei=${IMEI}&while-down=${i}`);
      await h.pipeline.idle();
      await h.restartDashboard();
      const c2 = await connect(`?since=${last}`);
      await c2.waitFor(() => c2.seqs().length >= 10);
      expect(c2.seqs()).toEqual(storedSeqsAfter(h, last));
      const last2 = Math.max(...c2.seqs());

      // The whole process goes away: the sequence continues from SQLite.
      await h.close();
      h = await startHarness({}, dir);
      h.record(`imei=${IMEI}&after-restart=1`);
      await h.pipeline.idle();
      const c3 = await connect(`?since=${last2}`);
      await c3.waitFor(() => c3.seqs().length >= 2);
      expect(c3.seqs()).toEqual(storedSeqsAfter(h, last2));
      expect(c3.seqs()[0]).toBeGreaterThan(last2);
    } finally {
      await h.close();
      fs.rmSync(dir, { recursive: true, force: true });
      h = undefined as unknown as Harness;
    }
  });

  it('a client ahead of the store (reset data dir) still gets new messages', async () => {
    h = await startHarness();
    const c = await connect('?since=999999');
    h.record(`imei=${IMEI}`);
    await h.pipeline.idle();
    await c.waitFor((m) => m.some((x) => x.type === 'alert'));
    expect(c.seqs()).toEqual(storedSeqsAfter(h, 0));
  });

  it('closes a client that stops reading with 4008 while others keep receiving', async () => {
    h = await startHarness({ ws: { maxQueueMessages: 50, maxQueueBytes: 256 * 1024, dropGraceMs: 10_000 } });
    const slow = await connect();
    const healthy = await connect();
    (slow.ws as unknown as { _socket: import('net').Socket })._socket.pause();
    const url = `http://zzhc.vnet.cn/${'x'.repeat(4000)}`;
    let n = 0;
    // Small batches with a pause: the healthy reader lives in this same process and reads between them.
    while (h.dashboard.hub.dropped === 0 && n < 40_000) {
      for (let i = 0; i < 10; i++, n++) h.record(`imei=${IMEI}&n=${n}`, { url });
      await h.pipeline.idle();
      await new Promise((r) => setTimeout(r, 2));
    }
    expect(h.dashboard.hub.dropped).toBe(1);
    (slow.ws as unknown as { _socket: import('net').Socket })._socket.resume();
    const closed = await slow.closed;
    expect(closed.code).toBe(4008);
    expect(closed.reason).toMatch(/too slow: reconnect with \?since=\d+/);
    // The healthy client got everything, and the pipeline never stopped.
    h.record(`imei=${IMEI}&after=1`);
    await h.pipeline.idle();
    const expected = storedSeqsAfter(h, 0);
    await healthy.waitFor(() => healthy.seqs().length >= expected.length, 15_000);
    expect(healthy.seqs()).toEqual(expected);
    // The dropped client resumes from the seq in its close reason and misses nothing.
    const since = Number(/since=(\d+)/.exec(closed.reason)![1]);
    const back = await connect(`?since=${since}`);
    await back.waitFor(() => back.seqs().length >= storedSeqsAfter(h, since).length, 15_000);
    expect(back.seqs()).toEqual(storedSeqsAfter(h, since));
  });

  it('terminates a peer that stops answering pings, keeps one that answers', async () => {
    h = await startHarness({ ws: { heartbeatMs: 100 } });
    const dead = await connect('', { autoPong: false });
    const alive = await connect();
    const t0 = Date.now();
    const closed = await dead.closed;
    expect(closed.code).toBe(1006);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(alive.ws.readyState).toBe(alive.ws.OPEN);
    expect(h.dashboard.hub.clientCount).toBe(1);
  });

  it('checks the Origin on the upgrade: foreign 403 even with the token; own, or absent with the Bearer token, accepted', async () => {
    h = await startHarness();
    const url = `ws://127.0.0.1:${h.dashboard.port}/ws`;
    const headers = bearer(h.token);
    await expect(connectWs(url, { origin: 'http://evil.example', headers })).rejects.toMatchObject({ status: 403 });
    // Another port of 127.0.0.1 is another origin (and the same site: a browser would send the cookie).
    await expect(connectWs(url, { origin: 'http://127.0.0.1:9', headers })).rejects.toMatchObject({ status: 403 });
    await expect(connectWs(url, { origin: `http://localhost:${h.dashboard.port}`, headers })).rejects.toMatchObject({ status: 403 });
    await expect(connectWs(url, { origin: 'null', headers })).rejects.toMatchObject({ status: 403 });
    clients.push(await connectWs(url, { origin: `http://127.0.0.1:${h.dashboard.port}`, headers }));
    clients.push(await connectWs(url, { headers }));
    await expect(connectWs(`ws://127.0.0.1:${h.dashboard.port}/elsewhere`, { headers })).rejects.toMatchObject({ status: 404 });
  });

  it('requires the token on the upgrade, in any of its three carriers; the cookie alone only with the page\'s Origin', async () => {
    const token = 'tok-0123456789abcdef0123456789abcdef';
    h = await startHarness({ token });
    const url = `ws://127.0.0.1:${h.dashboard.port}/ws`;
    const own = `http://127.0.0.1:${h.dashboard.port}`;
    await expect(connectWs(url)).rejects.toMatchObject({ status: 401 });
    await expect(connectWs(url, { origin: own })).rejects.toMatchObject({ status: 401 });
    await expect(connectWs(`${url}?token=bad`)).rejects.toMatchObject({ status: 401 });
    await expect(connectWs(url, { headers: { Cookie: 'phonehome_token=%E0%A4%A' } })).rejects.toMatchObject({ status: 401 });
    clients.push(await connectWs(`${url}?token=${token}`));
    clients.push(await connectWs(url, { headers: { Authorization: `Bearer ${token}` } }));
    clients.push(await connectWs(url, { origin: own, headers: { Cookie: `phonehome_token=${token}` } }));
    // The cookie is what a browser adds by itself: without an Origin to prove where it comes from, refused.
    await expect(connectWs(url, { headers: { Cookie: `phonehome_token=${token}` } })).rejects.toMatchObject({ status: 403 });
    expect(h.dashboard.hub.clientCount).toBe(3);
  });
});
