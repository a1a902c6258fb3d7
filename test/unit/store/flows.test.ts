import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Store } from '../../../proxy/store';
import { schemaVersion } from '../../../proxy/store/db';
import { MIGRATIONS } from '../../../proxy/store/migrations';
import type { Flow } from '../../../proxy/flow';

function sampleFlow(): Flow {
  return {
    kind: 'http', source: 'proxy', startedAt: 1_700_000_000_000, endedAt: 1_700_000_000_050,
    clientIp: '192.168.1.23', clientPort: 50123, method: 'POST', url: 'http://zzhc.vnet.cn:9999/', scheme: 'http',
    host: 'zzhc.vnet.cn', port: 9999, serverIp: '127.0.0.1', tls: false,
    requestHeaders: [['Host', 'zzhc.vnet.cn:9999'], ['Content-Type', 'application/encrypted-json']],
    requestBody: { bytes: Buffer.from('eyJJTUVJMSI6IjM1In0='), size: 20, truncated: false },
    responseStatus: 200, responseHeaders: [['Content-Length', '2']],
    responseBody: { bytes: Buffer.from('ok'), size: 2, truncated: false },
    timings: { connectMs: 1, totalMs: 50 }, tags: ['cleartext'],
  };
}

describe('store: flows', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-store-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('creates phonehome.db in WAL mode at the latest schema version', () => {
    const store = Store.open({ dataDir: dir });
    expect(fs.existsSync(path.join(dir, 'phonehome.db'))).toBe(true);
    expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(schemaVersion(store.db)).toBe(MIGRATIONS[MIGRATIONS.length - 1].version);
    store.close();
  });

  it('round-trips a flow with its bodies, headers in order, sizes and tags', () => {
    const store = Store.open({ dataDir: dir });
    const id = store.flows.insert(sampleFlow());
    store.close();
    const again = Store.open({ dataDir: dir });
    const f = again.flows.get(id)!;
    expect(f.requestBody.bytes.toString()).toBe('eyJJTUVJMSI6IjM1In0=');
    expect(f.requestHeaders[1]).toEqual(['Content-Type', 'application/encrypted-json']);
    expect(f.responseStatus).toBe(200);
    expect(f.tls).toBe(false);
    expect(f.tags).toEqual(['cleartext']);
    const row = again.db.prepare('SELECT host, port, method FROM flows WHERE id = ?').get(id);
    expect(row).toEqual({ host: 'zzhc.vnet.cn', port: 9999, method: 'POST' });
    again.close();
  });

  it('stores the TLS and HTTP versions in their own columns', () => {
    const store = Store.open({ dataDir: dir });
    const id = store.flows.insert({ ...sampleFlow(), tls: true, scheme: 'https', tlsVersion: 'TLSv1.3', httpVersion: '1.1', sni: 'zzhc.vnet.cn' });
    expect(store.db.prepare('SELECT tls, tls_version, http_version, sni FROM flows WHERE id = ?').get(id)).toEqual({ tls: 1, tls_version: 'TLSv1.3', http_version: '1.1', sni: 'zzhc.vnet.cn' });
    expect(store.flows.get(id)).toMatchObject({ tlsVersion: 'TLSv1.3', httpVersion: '1.1' });
    store.close();
  });

  it('refuses a database from a newer phonehome instead of breaking it', () => {
    const store = Store.open({ dataDir: dir });
    store.db.pragma('user_version = 999');
    store.close();
    expect(() => Store.open({ dataDir: dir })).toThrow(/newer than this phonehome/);
  });
});
