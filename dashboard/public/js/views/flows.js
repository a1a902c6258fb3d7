/**
 * Why: alerts show only flows that leaked something; this list shows every recorded flow
 * (including TLS failures and raw tunnels), paged by id so it stays fast with 100k flows.
 */
import { api } from '../api.js';
import { clear, el } from '../dom.js';
import { bytes, deviceLabel, severityClass, time, typeClass, typeLabel, verdictLabel } from '../format.js';
import { stream } from '../stream.js';
import { filterBar, loadFilters, matches } from './filters.js';

const PAGE = 100;
const ROW_CAP = 500;

export function render(root) {
  let filters = loadFilters();
  let nextBefore = null;
  let generation = 0;
  let extraRows = 0;
  const rows = new Map();
  const flowsById = new Map();
  const tbody = el('tbody');
  const status = el('p', { class: 'empty' }, 'Loading…');
  const moreBtn = el('button', { type: 'button', class: 'more', onclick: () => loadPage(true), disabled: true }, 'Load older flows');
  const exportLink = el('a', { class: 'export', href: exportHref(filters), download: '', title: 'The HTTP flows these filters select, with their findings, as a HAR file' }, 'Export HAR');
  root.append(
    el('div', { class: 'toolbar' }, el('h1', null, 'Flows'),
      filterBar(filters, ['device', 'type', 'severity', 'host', 'q'], (f) => { filters = f; exportLink.href = exportHref(f); reload(); }),
      exportLink),
    status,
    el('table', { class: 'list flows' },
      el('thead', null, el('tr', null, ['Time', 'Device', 'Request', 'Status', 'Transport', 'Size', 'Identifiers'].map((h) => el('th', { scope: 'col' }, h)))),
      tbody),
    el('div', { class: 'pager' }, moreBtn));

  function put(flow, atTop) {
    const row = flowRow(flow);
    const old = rows.get(flow.id);
    if (old) old.replaceWith(row);
    else if (atTop) tbody.prepend(row);
    else tbody.append(row);
    rows.set(flow.id, row);
    flowsById.set(flow.id, flow);
    while (tbody.children.length > ROW_CAP + extraRows) {
      const last = tbody.lastElementChild;
      rows.delete(Number(last.dataset.flowId));
      flowsById.delete(Number(last.dataset.flowId));
      last.remove();
      nextBefore = Number(tbody.lastElementChild.dataset.flowId);
      moreBtn.disabled = false;
    }
    status.hidden = rows.size > 0;
  }

  async function loadPage(older) {
    const gen = generation;
    moreBtn.disabled = true;
    try {
      const res = await api.flows({ ...filters, limit: PAGE, before: older ? nextBefore : undefined });
      if (gen !== generation) return;
      const items = res.items || [];
      // Raise the cap first: the rows asked for must not be trimmed as they are added.
      if (older) extraRows += items.filter((f) => !rows.has(f.id)).length;
      for (const f of items) put(f, false);
      nextBefore = res.nextBefore;
      moreBtn.disabled = res.nextBefore == null;
      status.hidden = rows.size > 0;
      status.textContent = 'No flows recorded that match.';
    } catch (err) {
      status.hidden = false;
      status.textContent = `Could not load flows: ${err.message}`;
    }
  }

  function reload() {
    generation++;
    rows.clear();
    flowsById.clear();
    extraRows = 0;
    clear(tbody);
    status.hidden = false;
    status.textContent = 'Loading…';
    loadPage(false);
  }

  const offFlow = stream.on('flow', (flow) => {
    if (flow && typeof flow.id === 'number' && matches(filters, flow)) put(flow, !rows.has(flow.id));
  });
  // An alert arrives after its flow was analysed: it carries what the row lacks (types, severity).
  const offAlert = stream.on('alert', (alert) => {
    if (!alert || typeof alert.flowId !== 'number') return;
    const known = flowsById.get(alert.flowId);
    const flow = { ...(known || summaryFromAlert(alert)), severity: alert.severity, findingTypes: alert.types || [],
      findingCount: (alert.findings || []).length, analysis: 'analysed' };
    // With a type or severity filter the flow itself did not match until now.
    if (known || matches(filters, flow)) put(flow, !known);
  });

  // A re-check changed past flows' verdicts and announced only some of them: read the list again.
  const offReanalysis = stream.on('reanalysis', () => reload());
  reload();
  return () => { offFlow(); offAlert(); offReanalysis(); };
}

function flowRow(f) {
  const open = () => { location.hash = `#/flows/${Number(f.id)}`; };
  const what = f.kind === 'http' ? `${f.method || ''} ${f.url || ''}` : `${f.kind} ${f.host}:${f.port}`;
  return el('tr', { class: `flow ${f.findingCount ? severityClass(f.severity) : ''}`, dataset: { flowId: Number(f.id) }, tabindex: '0',
    onclick: open, onkeydown: (e) => { if (e.key === 'Enter') open(); } },
  el('td', { class: 'time' }, el('a', { href: `#/flows/${Number(f.id)}` }, time(f.startedAt))),
  el('td', { class: 'device' }, deviceLabel(f.device, f.clientIp)),
  el('td', { class: 'url', title: what }, what, f.error ? el('span', { class: 'error' }, ` — ${f.error}`) : ''),
  el('td', null, f.status != null ? String(f.status) : ''),
  el('td', null, f.tls ? el('span', { class: 'tls' }, 'TLS') : el('span', { class: 'clear' }, 'cleartext')),
  el('td', { class: 'num' }, bytes((f.requestSize || 0) + (f.responseSize || 0))),
  el('td', { class: 'types' }, (f.findingTypes || []).map((t) => el('span', { class: `chip ${typeClass(t)}` }, typeLabel(t))),
    f.analysis && f.analysis !== 'analysed' ? el('span', { class: `state state-${f.analysis === 'failed' ? 'failed' : 'pending'}` }, verdictLabel(f)) : ''));
}

/** A row for a flow first seen through its alert (its own message was filtered out before it had findings). */
function summaryFromAlert(a) {
  return { id: a.flowId, startedAt: a.startedAt, clientIp: a.clientIp, device: a.device, kind: 'http', method: a.method,
    url: a.url, host: a.host, tls: a.tls, status: null, requestSize: null, responseSize: null, tags: [] };
}

/** The download URL of the HAR export for these filters (the same filters the list applies). */
function exportHref(filters) {
  const params = new URLSearchParams();
  for (const k of ['device', 'type', 'severity', 'host', 'q']) if (filters[k]) params.set(k, filters[k]);
  const qs = params.toString();
  return `/api/export.har${qs ? `?${qs}` : ''}`;
}
