/**
 * The data directory's files are owner-only whatever the directory's mode: a `--data-dir` the user
 * made with mode 0755 still gets phonehome.db, -wal and -shm (a real SQLite file, after writes), the
 * CA, WireGuard keys, peers and the listen file at 0600, and the start log says the directory is open.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { startPhonehome } from '../../../proxy/app';
import { dataDirExposure, ensureDataDir, writeOwnerOnlyFile } from '../../../proxy/data-dir';
import type { Flow } from '../../../proxy/flow';
import { Store } from '../../../proxy/store';

const modeOf = (file: string) => fs.statSync(file).mode & 0o777;

function flow(i: number): Flow {
  const body = Buffer.from(`imei=35403109012345${i % 10}&n=${i}`);
  return {
    kind: 'http', source: 'proxy', startedAt: 1_700_000_000_000 + i, clientIp: '192.168.1.23', method: 'POST', url: `http://example.test/${i}`,
    scheme: 'http', host: 'example.test', port: 80, tls: false, requestHeaders: [['Content-Type', 'application/x-www-form-urlencoded']],
    requestBody: { bytes: body, size: body.length, truncated: false }, responseHeaders: [], responseBody: { bytes: Buffer.alloc(0), size: 0, truncated: false },
    timings: {}, tags: [],
  };
}

/** Every regular file under dir, with its path relative to dir. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p).map((f) => path.join(e.name, f)));
    else if (e.isFile()) out.push(e.name);
  }
  return out;
}

describe('data directory file modes', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-modes-'));
    fs.chmodSync(dir, 0o755);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('in a 0755 directory, phonehome.db, -wal and -shm are 0600 after writes', () => {
    const store = Store.open({ dataDir: dir });
    try {
      for (let i = 0; i < 200; i++) store.flows.insert(flow(i));
      const db = path.join(dir, 'phonehome.db');
      expect(fs.statSync(`${db}-wal`).size).toBeGreaterThan(0);
      expect([modeOf(db), modeOf(`${db}-wal`), modeOf(`${db}-shm`)]).toEqual([0o600, 0o600, 0o600]);
    } finally {
      store.close();
    }
    expect(modeOf(path.join(dir, 'phonehome.db'))).toBe(0o600);
  });

  test('a database and WAL left at 0644 (older phonehome, another tool) are narrowed when opened', () => {
    Store.open({ dataDir: dir }).close();
    const db = path.join(dir, 'phonehome.db');
    fs.chmodSync(db, 0o644);
    fs.writeFileSync(`${db}-wal`, '');
    fs.chmodSync(`${db}-wal`, 0o644);
    const store = Store.open({ dataDir: dir });
    try {
      store.flows.insert(flow(1));
      expect([modeOf(db), modeOf(`${db}-wal`), modeOf(`${db}-shm`)]).toEqual([0o600, 0o600, 0o600]);
      expect(store.flows.get(1)?.host).toBe('example.test');
    } finally {
      store.close();
    }
  });

  test('phonehome in a 0755 directory: every file it writes (database, CA, WireGuard keys, peers, listen file) is 0600, and the log warns', async () => {
    const logs: string[] = [];
    const app = await startPhonehome({
      dataDir: dir, listenHost: '127.0.0.1', port: 0, dashboardPort: null, log: (l) => logs.push(l), analysis: false,
      wireguard: { port: 0, listenHost: '127.0.0.1', createIpLayer: () => ({ receive: () => undefined, stats: () => ({}), close: async () => undefined }) },
    });
    try {
      app.store.flows.insert(flow(1));
      const files = filesUnder(dir);
      expect(files).toEqual(expect.arrayContaining(['phonehome.db', 'phonehome.db-wal', 'phonehome.db-shm', 'ca.pem', 'ca-key.pem', path.join('wireguard', 'peers.json'), path.join('wireguard', 'server.key')]));
      expect(files.some((f) => f.startsWith(`wireguard${path.sep}`) && f.endsWith('.json') && f !== path.join('wireguard', 'peers.json'))).toBe(true);
      const wide = files.filter((f) => modeOf(path.join(dir, f)) !== 0o600).map((f) => `${f} ${modeOf(path.join(dir, f)).toString(8)}`);
      expect(wide).toEqual([]);
      expect(logs.join('\n')).toContain(`data directory ${dir} is open to other users (mode 0755)`);
    } finally {
      await app.close();
    }
  });

  test('the warning names the directory only when others can enter it', () => {
    const warnings: string[] = [];
    ensureDataDir(dir, (w) => warnings.push(w));
    expect(warnings).toEqual([expect.stringMatching(/mode 0755.*chmod 700/)]);
    fs.chmodSync(dir, 0o700);
    expect(dataDirExposure(dir)).toBeUndefined();
    const fresh = path.join(dir, 'new');
    ensureDataDir(fresh, (w) => warnings.push(w));
    expect(modeOf(fresh)).toBe(0o700);
    expect(warnings).toHaveLength(1);
  });

  test('writeOwnerOnlyFile replaces a file another user could read with an owner-only one', () => {
    const file = path.join(dir, 'token');
    fs.writeFileSync(file, 'old', { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    writeOwnerOnlyFile(file, 'new');
    expect(fs.readFileSync(file, 'utf8')).toBe('new');
    expect(modeOf(file)).toBe(0o600);
    expect(fs.readdirSync(dir)).toEqual(['token']);
  });
});
