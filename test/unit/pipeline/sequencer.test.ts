import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Broadcaster } from '../../../proxy/pipeline/broadcaster';
import { EventSequencer } from '../../../proxy/pipeline/sequencer';
import { Store } from '../../../proxy/store';
import type { StoredEvent } from '../../../proxy/store/events';

describe('EventSequencer: broadcast in seq order, without gaps, whatever order writers report commits in', () => {
  let dir: string;
  let store: Store;
  let broadcaster: Broadcaster;
  let seen: number[];
  let sequencer: EventSequencer | undefined;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'phonehome-seq-'));
    store = Store.open({ dataDir: dir });
    broadcaster = new Broadcaster();
    seen = [];
    broadcaster.subscribe((e) => seen.push(e.seq));
  });
  afterEach(() => {
    sequencer?.close();
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const append = (n: number): StoredEvent[] => Array.from({ length: n }, (_, i) => store.events.append('flow', { i }, null));

  it('starts after the last stored message and holds a message back until the ones before it are published', () => {
    append(3);
    sequencer = new EventSequencer(store.events, broadcaster, 60_000);
    const [a, b, c] = append(3);
    sequencer.committed([c]);
    sequencer.committed([b]);
    expect(seen).toEqual([]);
    expect(sequencer.waiting).toBe(2);
    sequencer.committed([a]);
    expect(seen).toEqual([4, 5, 6]);
    // Reported twice (a worker restarted after committing): published once.
    sequencer.committed([b, c]);
    expect(seen).toEqual([4, 5, 6]);
  });

  it('reads the missing messages from SQLite when their writer never reports them (it died after committing)', async () => {
    sequencer = new EventSequencer(store.events, broadcaster, 30);
    const events = append(5);
    sequencer.committed([events[0], events[3], events[4]]);
    expect(seen).toEqual([1]);
    await new Promise((r) => setTimeout(r, 120));
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    const published: StoredEvent[] = [];
    broadcaster.subscribe((e) => published.push(e));
    const [late] = append(1);
    sequencer.committed([late]);
    expect(published.map((e) => [e.seq, e.data])).toEqual([[6, { i: 0 }]]);
  });

  it('skips a seq that is in no row, so one hole cannot stall the stream', async () => {
    sequencer = new EventSequencer(store.events, broadcaster, 30);
    const events = append(3);
    store.db.prepare('DELETE FROM events WHERE seq = 2').run();
    sequencer.committed([events[0], events[2]]);
    await new Promise((r) => setTimeout(r, 120));
    expect(seen).toEqual([1, 3]);
  });
});
