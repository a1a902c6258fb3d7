/**
 * Why: the live feed must not lose an alert across a dropped connection or a dashboard restart.
 * One WebSocket for the page; it remembers the last seq it saw (memory and sessionStorage) and
 * reconnects with ?since=<seq> and exponential backoff, so the server replays what was missed.
 */

const SEQ_KEY = 'phonehome.lastSeq';
const MIN_DELAY_MS = 250;
const MAX_DELAY_MS = 10000;

export class LiveStream {
  constructor() {
    this.listeners = new Map();
    this.lastSeq = null;
    this.ws = null;
    this.delay = MIN_DELAY_MS;
    this.timer = null;
    this.state = 'idle';
  }

  /** type: 'flow' | 'alert' | 'stats' | 'state' | 'reset'. Returns an unsubscribe function. */
  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type).delete(fn);
  }

  emit(type, data, msg) {
    for (const fn of this.listeners.get(type) || []) {
      try {
        fn(data, msg);
      } catch (err) {
        console.error(`live ${type} handler failed`, err);
      }
    }
  }

  storedSeq() {
    const v = Number(sessionStorage.getItem(SEQ_KEY));
    return Number.isFinite(v) && v > 0 ? v : null;
  }

  /** Start from `since` (the seq the initial REST fill reflects), or resume from what this tab saw. */
  start(since) {
    this.lastSeq = since ?? this.storedSeq();
    if (this.lastSeq !== null) sessionStorage.setItem(SEQ_KEY, String(this.lastSeq));
    this.connect();
  }

  connect() {
    clearTimeout(this.timer);
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const since = this.lastSeq !== null ? `?since=${encodeURIComponent(this.lastSeq)}` : '';
    this.setState('connecting');
    let ws;
    try {
      ws = new WebSocket(`${proto}//${location.host}/ws${since}`);
    } catch (err) {
      this.scheduleReconnect(`could not open: ${err.message}`);
      return;
    }
    this.ws = ws;
    ws.addEventListener('open', () => {
      this.delay = MIN_DELAY_MS;
      this.setState('live');
    });
    ws.addEventListener('message', (ev) => this.onMessage(ev.data));
    ws.addEventListener('close', (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      const why = ev.code === 4008 ? 'fell behind; resuming' : `closed (${ev.code})`;
      if (ev.code === 4008) this.delay = MIN_DELAY_MS;
      this.scheduleReconnect(why);
    });
  }

  onMessage(raw) {
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      console.warn('live: ignored a message that is not JSON');
      return;
    }
    if (!msg || typeof msg.type !== 'string') return;
    if (msg.type === 'stats' && msg.data && typeof msg.data.seq === 'number' && this.lastSeq !== null && msg.data.seq < this.lastSeq) {
      // The server's history is shorter than what we saw: its database was replaced. Start over from it.
      this.lastSeq = msg.data.seq;
      sessionStorage.setItem(SEQ_KEY, String(msg.data.seq));
      this.emit('reset', msg.data);
    }
    if (typeof msg.seq === 'number') {
      if (this.lastSeq !== null && msg.seq <= this.lastSeq) return;
      this.lastSeq = msg.seq;
      sessionStorage.setItem(SEQ_KEY, String(msg.seq));
    }
    this.emit(msg.type, msg.data, msg);
  }

  scheduleReconnect(why) {
    this.setState('reconnecting', why);
    const wait = this.delay + Math.floor(Math.random() * this.delay * 0.3);
    this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  setState(state, detail) {
    this.state = state;
    this.emit('state', { state, detail, lastSeq: this.lastSeq });
  }
}

export const stream = new LiveStream();
