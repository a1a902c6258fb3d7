/**
 * Why: the screen a user watches while using the phone. Alerts (one row per flow that leaked
 * something) arrive over the live stream, newest first; the REST fill shows what happened before.
 * The DOM holds a bounded number of rows so that a busy phone cannot make the page slow.
 */
import { api } from '../api.js';
import { clear, el } from '../dom.js';
import { deviceLabel, severityClass, severityRank, time, typeClass, typeLabel } from '../format.js';
import { stream } from '../stream.js';
import { filterBar, loadFilters, matches } from './filters.js';

/** Newest rows kept on screen while alerts stream in (older ones stay reachable via "Load more"). */
export const LIVE_ROW_CAP = 500;
const PAGE = 200;
/** How long a newly arrived row stays highlighted. */
const FRESH_MS = 2000;

export function render(root) {
  let filters = loadFilters();
  /** flowId → { alert, findings: Map<id, FindingRow>, row } */
  const shown = new Map();
  /** Alerts that arrived while paused: the newest LIVE_ROW_CAP are kept, all are counted. */
  let held = [];
  let heldCount = 0;
  let paused = false;
  let olderBefore = null;
  let generation = 0;
  /** Rows the user asked for with "Load older" are not trimmed away by live traffic. */
  let extraRows = 0;

  const tbody = el('tbody');
  const empty = el('p', { class: 'empty' }, 'Loading…');
  const heldNote = el('span', { class: 'held', 'aria-live': 'polite' });
  const notice = el('p', { class: 'notice', role: 'status' });
  notice.hidden = true;
  const pauseBtn = el('button', { type: 'button', class: 'pause', 'aria-pressed': 'false', onclick: togglePause }, 'Pause');
  const moreBtn = el('button', { type: 'button', class: 'more', onclick: loadOlder, disabled: true }, 'Load older alerts');
  const table = el('table', { class: 'list live' },
    el('thead', null, el('tr', null,
      ['Time', 'Severity', 'Device', 'Identifiers', 'Destination', 'Transport', 'Request'].map((h) => el('th', { scope: 'col' }, h)))),
    tbody);

  root.append(
    el('div', { class: 'toolbar' },
      el('h1', null, 'Live alerts'),
      filterBar(filters, ['device', 'type', 'severity', 'host'], (f) => { filters = f; refill(); }),
      pauseBtn, heldNote),
    notice, empty, table, el('div', { class: 'pager' }, moreBtn));

  function togglePause() {
    paused = !paused;
    pauseBtn.textContent = paused ? 'Resume' : 'Pause';
    pauseBtn.setAttribute('aria-pressed', String(paused));
    root.classList.toggle('paused', paused);
    if (!paused) {
      const toShow = held;
      const missed = heldCount - held.length;
      held = [];
      heldCount = 0;
      if (missed > 0) refill();
      else for (const a of toShow) queueLive(a);
    }
    updateHeldNote();
  }

  function updateHeldNote() {
    heldNote.textContent = paused ? `paused — ${heldCount} new alert${heldCount === 1 ? '' : 's'} held` : '';
  }

  function updateEmpty() {
    empty.hidden = shown.size > 0;
    if (!shown.size) empty.textContent = 'No alerts yet. Point a phone at the proxy (see Setup) and use it; every request that carries an identifier shows up here.';
  }

  /**
   * Puts an alert into its row, creating the row if needed. A live alert carries all of its flow's
   * findings (after a re-analysis they replace the old ones); a REST page may hold only some of
   * them, so those are merged.
   */
  function addAlert(alert, fresh, complete = false) {
    let entry = shown.get(alert.flowId);
    if (!entry) {
      entry = { alert: { ...alert }, findings: new Map(), row: null };
      shown.set(alert.flowId, entry);
    } else if (complete) {
      entry.alert = { ...entry.alert, ...alert };
      entry.findings = new Map();
    } else {
      for (const k of ['severity', 'country', 'org', 'device', 'url', 'method', 'sentence']) if (alert[k] != null) entry.alert[k] = alert[k];
    }
    for (const f of alert.findings || []) entry.findings.set(f.id, f);
    const types = new Set([...(complete ? [] : entry.alert.types || []), ...(alert.types || []), ...[...entry.findings.values()].map((f) => f.type)]);
    entry.alert.types = [...types];
    for (const f of entry.findings.values()) {
      if (severityRank(f.severity) > severityRank(entry.alert.severity)) entry.alert.severity = f.severity;
    }
    const row = alertRow(entry.alert, fresh);
    if (entry.row) entry.row.replaceWith(row);
    else insertInOrder(row, alert.flowId);
    entry.row = row;
    trim();
    updateEmpty();
    return row;
  }

  function insertInOrder(row, flowId) {
    for (const r of tbody.children) {
      if (Number(r.dataset.flowId) < flowId) {
        tbody.insertBefore(row, r);
        return;
      }
    }
    tbody.append(row);
  }

  function trim() {
    while (tbody.children.length > LIVE_ROW_CAP + extraRows) {
      const last = tbody.lastElementChild;
      shown.delete(Number(last.dataset.flowId));
      last.remove();
      olderBefore = oldestFindingId();
      moreBtn.disabled = false;
    }
  }

  function oldestFindingId() {
    let min = null;
    for (const e of shown.values()) for (const id of e.findings.keys()) if (min === null || id < min) min = id;
    return min;
  }

  function findingsToAlerts(items) {
    const byFlow = new Map();
    for (const f of items) {
      let a = byFlow.get(f.flowId);
      if (!a) {
        a = { flowId: f.flowId, startedAt: f.startedAt, clientIp: f.clientIp, device: f.device, host: f.host,
          url: f.url, method: f.method, tls: f.tls, severity: f.severity, types: [], findings: [], country: f.country, org: f.org,
          sentence: f.sentence };
        byFlow.set(f.flowId, a);
      }
      a.findings.push(f);
      if (!a.types.includes(f.type)) a.types.push(f.type);
      if (severityRank(f.severity) > severityRank(a.severity)) a.severity = f.severity;
    }
    return [...byFlow.values()];
  }

  async function fetchPage(before) {
    const gen = generation;
    const res = await api.findings({ ...filters, q: undefined, limit: PAGE, before });
    if (gen !== generation) return null;
    return res;
  }

  async function refill() {
    generation++;
    shown.clear();
    liveQueue = [];
    held = [];
    heldCount = 0;
    extraRows = 0;
    clear(tbody);
    updateHeldNote();
    empty.hidden = false;
    empty.textContent = 'Loading…';
    try {
      const res = await fetchPage(undefined);
      if (!res) return;
      for (const a of findingsToAlerts(res.items || [])) addAlert(a, false);
      olderBefore = res.nextBefore;
      moreBtn.disabled = res.nextBefore == null;
      updateEmpty();
    } catch (err) {
      empty.hidden = false;
      empty.textContent = `Could not load alerts: ${err.message}`;
    }
  }

  async function loadOlder() {
    if (olderBefore == null) return;
    moreBtn.disabled = true;
    try {
      const res = await fetchPage(olderBefore);
      if (!res) return;
      const older = findingsToAlerts(res.items || []);
      // Raise the cap first: the rows asked for must not be trimmed as they are added.
      extraRows += older.filter((a) => !shown.has(a.flowId)).length;
      for (const a of older) addAlert(a, false);
      olderBefore = res.nextBefore;
      moreBtn.disabled = res.nextBefore == null;
    } catch (err) {
      moreBtn.disabled = false;
      empty.hidden = false;
      empty.textContent = `Could not load older alerts: ${err.message}`;
    }
  }

  const unsubscribe = stream.on('alert', (alert) => {
    if (!alert || typeof alert.flowId !== 'number' || !matches(filters, alert)) return;
    if (paused && !shown.has(alert.flowId)) {
      heldCount++;
      held.push(alert);
      if (held.length > LIVE_ROW_CAP) held.shift();
      updateHeldNote();
      return;
    }
    queueLive(alert);
  });

  /** Alerts that arrived since the last frame: added together, so a burst costs one layout, not one each. */
  let liveQueue = [];
  let flushScheduled = false;
  function queueLive(alert) {
    liveQueue.push(alert);
    if (flushScheduled) return;
    flushScheduled = true;
    // Hidden tabs get no animation frames; a timer still drains the queue there.
    if (document.hidden) setTimeout(flushLive, 250);
    else requestAnimationFrame(flushLive);
  }
  function flushLive() {
    flushScheduled = false;
    const batch = liveQueue;
    liveQueue = [];
    const rows = batch.map((a) => addAlert(a, true, true));
    // A still highlight, cleared once: an animation would repaint every fresh row on every frame.
    setTimeout(() => { for (const r of rows) r.classList.remove('fresh'); }, FRESH_MS);
  }

  // The store was replaced (new data dir): what is on screen belongs to another history.
  const offReset = stream.on('reset', () => refill());
  // A re-check announces a bounded number of alerts, then this summary: the tables hold all of them.
  const offReanalysis = stream.on('reanalysis', (s) => {
    notice.hidden = false;
    notice.textContent = reanalysisSentence(s);
    refill();
  });

  refill();
  return () => {
    unsubscribe();
    offReset();
    offReanalysis();
    root.classList.remove('paused');
  };
}

function alertRow(a, fresh) {
  const open = () => { location.hash = `#/flows/${Number(a.flowId)}`; };
  const row = el('tr', {
    class: `alert ${severityClass(a.severity)}${fresh ? ' fresh' : ''}`,
    dataset: { flowId: Number(a.flowId), severity: a.severity || 'info' },
    tabindex: '0',
    onclick: open,
    onkeydown: (e) => { if (e.key === 'Enter') open(); },
  },
  el('td', { class: 'time' }, el('a', { href: `#/flows/${Number(a.flowId)}` }, time(a.startedAt))),
  el('td', null, el('span', { class: `sev ${severityClass(a.severity)}` }, a.severity || 'info')),
  el('td', { class: 'device' }, deviceLabel(a.device, a.clientIp)),
  el('td', { class: 'types' }, (a.types || []).map((t) => el('span', { class: `chip ${typeClass(t)}` }, typeLabel(t)))),
  el('td', { class: 'host' }, a.host || '', a.country ? el('span', { class: 'country', title: a.org || '' }, ` ${a.country}`) : null,
    // The judge's sentence (built from facts; the host in it is captured text, so text only like everything here).
    a.sentence ? el('div', { class: 'sentence' }, String(a.sentence)) : null),
  el('td', null, a.tls ? el('span', { class: 'tls' }, 'TLS') : el('span', { class: 'clear' }, 'cleartext')),
  el('td', { class: 'url', title: `${a.method || ''} ${a.url || ''}` }, `${a.method || ''} ${a.url || ''}`));
  return row;
}

export function reanalysisSentence(s) {
  if (!s || typeof s !== 'object') return '';
  const who = s.device ? `${String(s.device)} (${String(s.clientIp)})` : String(s.clientIp);
  const flows = Number(s.flows) || 0;
  const found = Number(s.withFindings) || 0;
  const shownLive = Number(s.announced) || 0;
  const rest = found > shownLive ? ` (${shownLive} announced here as they were found; all are in Flows)` : '';
  return `Re-check of ${who} finished: ${flows} flow${flows === 1 ? '' : 's'} analysed again, ${found} with findings${rest}.`;
}
