/**
 * The `/ws` stream. Each client first gets every stored message after `?since=N` (read from SQLite in
 * pages), then live ones, with no gap and no duplicate: it subscribes before replaying, buffers live
 * messages meanwhile, and flushes those with seq beyond the last replayed. Each client's send queue is
 * bounded (messages in flight and bytes buffered); a client too far behind is closed with 4008 and can
 * resume with ?since=. Pings detect dead peers. The proxy never waits on any of this.
 */
import type { IncomingMessage } from 'http';
import type { Duplex } from 'stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { Broadcaster } from '../../proxy/pipeline/broadcaster';
import type { StoredEvent } from '../../proxy/store/events';
import type { EventStore } from '../../proxy/store/events';

export const CLOSE_TOO_SLOW = 4008;

export interface HubOptions {
  events: EventStore;
  broadcaster: Broadcaster;
  /** Stats for the periodic `stats` message (data.seq = latest seq). */
  stats(): unknown;
  heartbeatMs?: number;
  maxQueueMessages?: number;
  maxQueueBytes?: number;
  statsIntervalMs?: number;
  replayPageSize?: number;
  /** How long a dropped client may take to read its close frame before the socket is destroyed. */
  dropGraceMs?: number;
  /** A failure while attaching or feeding a client (logged by the server; the client is closed, the hub goes on). */
  onError?(err: unknown): void;
}

export const HUB_DEFAULTS = {
  heartbeatMs: 15_000,
  maxQueueMessages: 1000,
  maxQueueBytes: 8 * 1024 * 1024,
  statsIntervalMs: 2000,
  replayPageSize: 500,
  dropGraceMs: 5000,
};

interface Client {
  ws: WebSocket;
  /** Payload bytes handed to ws so far, and the running end offset of each message not yet flushed to the kernel. */
  sentBytes: number;
  unflushedEnds: number[];
  live: boolean;
  buffered: StoredEvent[];
  lastSeq: number;
  missedPongs: number;
  dropped: boolean;
  unsubscribe(): void;
}

const wire = new WeakMap<StoredEvent, string>();
function serialize(e: StoredEvent): string {
  let s = wire.get(e);
  if (!s) {
    s = JSON.stringify({ seq: e.seq, type: e.type, ts: e.ts, data: e.data });
    wire.set(e, s);
  }
  return s;
}

export class WsHub {
  readonly wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  private readonly clients = new Set<Client>();
  private readonly cfg: typeof HUB_DEFAULTS;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly statsTimer: NodeJS.Timeout;
  private lastStats = '';
  /** Clients closed for being too slow (for tests and logs). */
  dropped = 0;

  constructor(private readonly opts: HubOptions) {
    this.cfg = { ...HUB_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([k, v]) => k in HUB_DEFAULTS && v !== undefined)) };
    this.heartbeat = setInterval(() => this.beat(), this.cfg.heartbeatMs);
    this.statsTimer = setInterval(() => this.pushStats(false), this.cfg.statsIntervalMs);
    this.heartbeat.unref();
    this.statsTimer.unref();
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Completes an upgrade already checked for token and Origin; `query` is the request's, parsed (request-input.ts). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, query: URLSearchParams): void {
    const since = parseSince(query);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      try {
        this.attach(ws, since);
      } catch (err) {
        this.opts.onError?.(err);
        ws.terminate();
      }
    });
  }

  close(): void {
    clearInterval(this.heartbeat);
    clearInterval(this.statsTimer);
    for (const c of this.clients) {
      c.unsubscribe();
      c.ws.terminate();
    }
    this.clients.clear();
    this.wss.close();
  }

  private attach(ws: WebSocket, since: number | null): void {
    const client: Client = { ws, sentBytes: 0, unflushedEnds: [], live: since === null, buffered: [], lastSeq: since ?? 0, missedPongs: 0, dropped: false, unsubscribe: () => {} };
    this.clients.add(client);
    client.unsubscribe = this.opts.broadcaster.subscribe((e) => {
      try {
        this.deliver(client, e);
      } catch (err) {
        this.opts.onError?.(err);
        this.detach(client);
        ws.terminate();
      }
    });
    ws.on('pong', () => (client.missedPongs = 0));
    ws.on('message', () => {}); // the stream is one-way; client messages are ignored
    ws.on('close', () => this.detach(client));
    ws.on('error', () => this.detach(client));
    if (since === null) this.sendStats(client);
    else {
      this.replay(client, since).catch((err) => {
        this.opts.onError?.(err);
        this.detach(client);
        ws.terminate();
      });
    }
  }

  private detach(client: Client): void {
    client.unsubscribe();
    this.clients.delete(client);
  }

  private deliver(client: Client, e: StoredEvent): void {
    if (client.dropped) return;
    if (!client.live) {
      client.buffered.push(e);
      if (client.buffered.length > this.cfg.maxQueueMessages) this.drop(client);
      return;
    }
    if (e.seq > client.lastSeq) this.send(client, e);
  }

  private async replay(client: Client, since: number): Promise<void> {
    // A client ahead of this store (its data dir was reset) would otherwise wait for seq to catch up.
    const latest = this.opts.events.latestSeq();
    if (since > latest) client.lastSeq = since = latest;
    let cursor = since;
    for (;;) {
      if (client.dropped || client.ws.readyState !== WebSocket.OPEN) return;
      let page: StoredEvent[];
      try {
        page = this.opts.events.after(cursor, this.pageSize());
      } catch {
        client.ws.close(1011, 'could not read the message log');
        return;
      }
      for (const e of page) {
        if (!this.send(client, e)) return;
        cursor = e.seq;
      }
      if (page.length < this.pageSize()) break;
      await this.waitForRoom(client);
    }
    client.live = true;
    for (const e of client.buffered.splice(0)) if (e.seq > client.lastSeq && !this.send(client, e)) return;
    this.sendStats(client);
  }

  private pageSize(): number {
    return Math.max(1, Math.min(this.cfg.replayPageSize, Math.floor(this.cfg.maxQueueMessages / 2)));
  }

  /** Between replay pages: let the socket drain below half its budget, or drop the client. */
  private async waitForRoom(client: Client): Promise<void> {
    const deadline = Date.now() + this.cfg.dropGraceMs;
    while (
      (client.ws.bufferedAmount > this.cfg.maxQueueBytes / 2 || queuedMessages(client) > this.cfg.maxQueueMessages / 2) &&
      !client.dropped && client.ws.readyState === WebSocket.OPEN
    ) {
      if (Date.now() > deadline) return this.drop(client);
      await new Promise((r) => setTimeout(r, 10));
    }
    await new Promise((r) => setImmediate(r));
  }

  private send(client: Client, e: StoredEvent): boolean {
    if (!this.sendRaw(client, serialize(e))) return false;
    client.lastSeq = e.seq;
    return true;
  }

  private sendRaw(client: Client, text: string): boolean {
    if (client.dropped || client.ws.readyState !== WebSocket.OPEN) return false;
    if (queuedMessages(client) >= this.cfg.maxQueueMessages || client.ws.bufferedAmount > this.cfg.maxQueueBytes) {
      this.drop(client);
      return false;
    }
    client.sentBytes += Buffer.byteLength(text);
    client.unflushedEnds.push(client.sentBytes);
    client.ws.send(text);
    return true;
  }

  private drop(client: Client): void {
    if (client.dropped) return;
    client.dropped = true;
    this.dropped++;
    this.detach(client);
    client.buffered = [];
    client.ws.close(CLOSE_TOO_SLOW, `too slow: reconnect with ?since=${client.lastSeq}`);
    setTimeout(() => client.ws.terminate(), this.cfg.dropGraceMs).unref();
  }

  private beat(): void {
    for (const c of this.clients) {
      if (c.missedPongs >= 2) {
        this.detach(c);
        c.ws.terminate();
        continue;
      }
      c.missedPongs++;
      try {
        c.ws.ping();
      } catch {
        /* socket already gone: the close handler cleans up */
      }
    }
  }

  private statsMessage(): string {
    return JSON.stringify({ seq: null, type: 'stats', ts: Date.now(), data: this.opts.stats() });
  }

  private sendStats(client: Client): void {
    try {
      this.sendRaw(client, this.statsMessage());
    } catch {
      /* the store is closing */
    }
  }

  /** Sends stats to live clients when they changed since the last push. */
  pushStats(force: boolean): void {
    if (!this.clients.size) return;
    let data: string;
    try {
      data = JSON.stringify(this.opts.stats());
    } catch {
      return;
    }
    if (!force && data === this.lastStats) return;
    this.lastStats = data;
    const text = `{"seq":null,"type":"stats","ts":${Date.now()},"data":${data}}`;
    for (const c of this.clients) if (c.live) this.sendRaw(c, text);
  }
}

/** Messages still waiting in user space: those whose last byte is within ws.bufferedAmount. */
function queuedMessages(client: Client): number {
  const flushed = client.sentBytes - client.ws.bufferedAmount;
  const ends = client.unflushedEnds;
  let i = 0;
  while (i < ends.length && ends[i] <= flushed) i++;
  if (i) ends.splice(0, i);
  return ends.length;
}

/** ?since=N: a whole number up to 2^53; anything else means "live only". */
function parseSince(query: URLSearchParams): number | null {
  const raw = query.get('since');
  if (raw === null || !/^\d{1,16}$/.test(raw) || !Number.isSafeInteger(Number(raw))) return null;
  return Number(raw);
}
