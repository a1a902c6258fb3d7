import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Store } from '../../../proxy/store';
import type { Flow } from '../../../proxy/flow';

function bigFlow(i: number): Flow {
  return {
    kind: 'http', source: 'proxy', startedAt: Date.now(), clientIp: '192.168.1.23', method: 'GET', url: `https://cdn.test/${i}`, scheme: 'https',
    host: 'cdn.test', port: 443, tls: true, requestHeaders: [], requestBody: { bytes: Buffer.alloc(0), size: 0, truncated: false },
    responseHeaders: [], responseBody: { bytes: Buffer.alloc(256 * 1024, i), size: 256 * 1024, truncated: false }, timings: {}, tags: [],
  };
}

describe('store: background WAL checkpoints', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-ckpt-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('moves written flows from the WAL into the database file without the writer checkpointing', async () => {
    const store = Store.open({ dataDir: dir, backgroundCheckpoint: true });
    try {
      expect(store.db.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
      const dbFile = path.join(dir, 'phonehome.db');
      const sizeBefore = fs.statSync(dbFile).size;
      for (let i = 0; i < 40; i++) store.flows.insert(bigFlow(i));
      // 10 MB of bodies: the writer alone would leave them all in the WAL.
      const moved = () => fs.statSync(dbFile).size > sizeBefore + 8 * 1024 * 1024 && store.checkpointer!.stats.runs > 0;
      const deadline = Date.now() + 10000;
      while (!moved() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(fs.statSync(dbFile).size).toBeGreaterThan(sizeBefore + 8 * 1024 * 1024);
      expect(store.checkpointer!.stats.runs).toBeGreaterThan(0);
      expect(store.checkpointer!.stats.lastError).toBeUndefined();
    } finally {
      await store.closeAsync();
    }
    const again = Store.open({ dataDir: dir });
    expect(again.db.prepare('SELECT count(*) AS n FROM flows').get()).toEqual({ n: 40 });
    expect(again.db.pragma('integrity_check', { simple: true })).toBe('ok');
    again.close();
  });

  it('a store opened without it keeps SQLite automatic checkpoints (short-lived commands)', () => {
    const store = Store.open({ dataDir: dir });
    expect(store.db.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
    expect(store.checkpointer).toBeUndefined();
    store.close();
  });

  it('never keeps a process alive by itself (a script that forgets to close the store still exits)', () => {
    // The built module (npm test builds before jest): a plain node process, no jest around it.
    const storeModule = path.join(__dirname, '..', '..', '..', 'dist', 'proxy', 'store');
    const script = `const { Store } = require(${JSON.stringify(storeModule)}); Store.open({ dataDir: ${JSON.stringify(dir)}, backgroundCheckpoint: true }).flows; console.log('opened');`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10000 });
    expect(r.stdout.trim()).toBe('opened');
    expect(r.status).toBe(0);
  });
});
