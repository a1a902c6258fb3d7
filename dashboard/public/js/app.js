/**
 * Why: the page's entry point. Hash routing (#/live, #/flows/123, ...) keeps every view linkable
 * without server routes; one live stream feeds the header stats and whichever view is open.
 */
import { api } from './api.js';
import { clear, el } from './dom.js';
import { stream } from './stream.js';
import * as live from './views/live.js';
import * as flows from './views/flows.js';
import * as flowDetail from './views/flow-detail.js';
import * as destinations from './views/destinations.js';
import * as devices from './views/devices.js';
import * as setup from './views/setup.js';

const ROUTES = [
  [/^#\/live$/, 'live', live],
  [/^#\/flows\/(\d+)$/, 'flows', flowDetail],
  [/^#\/flows$/, 'flows', flows],
  [/^#\/destinations$/, 'destinations', destinations],
  [/^#\/devices$/, 'devices', devices],
  [/^#\/setup$/, 'setup', setup],
];

const viewRoot = document.getElementById('view');
let cleanup = null;

function route() {
  const hash = location.hash || '#/live';
  const match = ROUTES.find(([re]) => re.test(hash));
  if (!match) {
    location.replace('#/live');
    return;
  }
  const [re, tab, view] = match;
  const params = hash.match(re).slice(1);
  for (const a of document.querySelectorAll('.tabs a')) {
    if (a.dataset.view === tab) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (cleanup) {
    try {
      cleanup();
    } catch (err) {
      console.error('view cleanup failed', err);
    }
  }
  clear(viewRoot);
  cleanup = view.render(viewRoot, params) || null;
}

let lastStats = null;

function renderStats(s) {
  const box = document.getElementById('stats');
  if (!s) return;
  lastStats = { ...s };
  const pending = s.queue && s.queue.pending ? ` · ${s.queue.pending} waiting for analysis` : '';
  clear(box).append(
    el('span', null, `${s.flows ?? 0} flows`), ' · ',
    el('span', null, `${s.alerts ?? 0} alerts`), ' · ',
    el('span', null, `${s.devices ?? 0} devices`), pending,
  );
}

function renderConn({ state, detail }) {
  const box = document.getElementById('conn');
  box.className = `conn conn-${state}`;
  box.textContent = state === 'live' ? 'live' : state === 'connecting' ? 'connecting…' : `reconnecting (${detail || ''})`;
}

/** A first visit with ?token=T has just set the cookie; keep the token out of the address bar and history. */
function dropTokenFromUrl() {
  const url = new URL(location.href);
  if (url.searchParams.has('token')) {
    url.searchParams.delete('token');
    history.replaceState(null, '', url.pathname + url.search + url.hash);
  }
}

async function boot() {
  dropTokenFromUrl();
  stream.on('stats', renderStats);
  // Stats arrive every few seconds; count what streams in meanwhile so the header never lags the list.
  stream.on('flow', () => lastStats && renderStats({ ...lastStats, flows: (lastStats.flows ?? 0) + 1 }));
  stream.on('alert', () => lastStats && renderStats({ ...lastStats, alerts: (lastStats.alerts ?? 0) + 1 }));
  stream.on('state', renderConn);
  window.addEventListener('hashchange', route);
  let since = null;
  try {
    const s = await api.stats();
    renderStats(s);
    since = typeof s.seq === 'number' ? s.seq : null;
  } catch (err) {
    document.getElementById('stats').textContent = err.message;
  }
  // Views fill from REST (as of at least `since`); the stream delivers everything after it and
  // views merge duplicates by id.
  route();
  stream.start(since);
}

boot();
