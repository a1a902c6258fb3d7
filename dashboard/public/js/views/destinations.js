/**
 * Why: answers "who gets my IMEI?" — each host that received identifiers, which types, how often,
 * first and last seen. A stacked bar per host reads faster than the table, so both are shown.
 */
import { api } from '../api.js';
import { el, svg } from '../dom.js';
import { IDENTIFIER_TYPES, dateTime, typeClass, typeLabel } from '../format.js';
import { filterBar, loadFilters, saveFilters } from './filters.js';

/** Hosts drawn in the chart; the table lists them all. */
const CHART_HOSTS = 25;

export function render(root) {
  let filters = loadFilters();
  let generation = 0;
  const body = el('div', { class: 'destinations' }, el('p', { class: 'empty' }, 'Loading…'));
  root.append(
    el('div', { class: 'toolbar' }, el('h1', null, 'Destinations'),
      filterBar(filters, ['device', 'type'], (f) => { filters = f; load(); })),
    body);

  async function load() {
    const gen = ++generation;
    try {
      const res = await api.destinations({ device: filters.device, type: filters.type });
      if (gen !== generation) return;
      const items = res.items || [];
      if (!items.length) {
        body.replaceChildren(el('p', { class: 'empty' }, 'No identifiers have been sent anywhere yet.'));
        return;
      }
      body.replaceChildren(chart(items.slice(0, CHART_HOSTS)), table(items));
    } catch (err) {
      body.replaceChildren(el('p', { class: 'error' }, `Could not load destinations: ${err.message}`));
    }
  }
  load();
}

function typesOf(items) {
  const present = new Set();
  for (const d of items) for (const [t, n] of Object.entries(d.types || {})) if (n > 0) present.add(t);
  const known = IDENTIFIER_TYPES.filter((t) => present.has(t));
  return [...known, ...[...present].filter((t) => !IDENTIFIER_TYPES.includes(t)).sort()];
}

function chart(items) {
  const types = typesOf(items);
  const max = Math.max(1, ...items.map((d) => Object.values(d.types || {}).reduce((a, b) => a + (Number(b) || 0), 0)));
  const labelW = 260;
  const barW = 560;
  const rowH = 22;
  const height = items.length * rowH + 8;
  const root = svg('svg', { class: 'chart', viewBox: `0 0 ${labelW + barW + 60} ${height}`, role: 'img',
    'aria-label': 'Identifier types received per host' });
  items.forEach((d, i) => {
    const y = 4 + i * rowH;
    const host = String(d.host || '');
    root.append(svg('text', { x: labelW - 8, y: y + 15, class: d.cleartext ? 'label cleartext' : 'label', 'text-anchor': 'end' },
      host.length > 36 ? `…${host.slice(-35)}` : host));
    let x = labelW;
    let total = 0;
    for (const t of types) {
      const n = Number((d.types || {})[t]) || 0;
      if (!n) continue;
      const w = Math.max(1, (n / max) * barW);
      root.append(svg('rect', { x, y: y + 3, width: w, height: rowH - 6, class: `seg ${typeClass(t)}` },
        svg('title', null, `${host}: ${typeLabel(t)} × ${n}`)));
      x += w;
      total += n;
    }
    root.append(svg('text', { x: x + 6, y: y + 15, class: 'count' }, String(total)));
  });
  const legend = el('div', { class: 'legend' }, types.map((t) => el('span', { class: 'legend-item' },
    el('span', { class: `swatch ${typeClass(t)}` }), typeLabel(t))),
  el('span', { class: 'legend-item cleartext' }, 'red host = sent in cleartext'));
  return el('figure', { class: 'chart-box' }, root, legend);
}

function table(items) {
  const types = typesOf(items);
  return el('table', { class: 'list destinations' },
    el('thead', null, el('tr', null, el('th', { scope: 'col' }, 'Host'), el('th', { scope: 'col' }, 'Owner'),
      types.map((t) => el('th', { scope: 'col', class: 'num' }, typeLabel(t))),
      ['Total', 'In cleartext', 'First seen', 'Last seen'].map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', null, items.map((d) => el('tr', { class: d.cleartext ? 'cleartext' : '' },
      el('td', { class: 'host' }, el('a', { href: '#/live', onclick: () => focusHost(d.host) }, String(d.host || ''))),
      el('td', null, [d.org, d.country].filter(Boolean).join(' · ')),
      types.map((t) => el('td', { class: 'num' }, (d.types || {})[t] ? String(d.types[t]) : '')),
      el('td', { class: 'num' }, String(d.total ?? '')),
      el('td', { class: 'num' }, cleartextCell(d.cleartext)),
      el('td', null, dateTime(d.firstSeen)),
      el('td', null, dateTime(d.lastSeen))))));
}

/** Clicking a host opens the live alerts filtered to it. */
function focusHost(host) {
  saveFilters({ ...loadFilters(), host: String(host || '') });
}

/** `cleartext` counts identifiers sent without TLS (a boolean reads as yes/no). */
function cleartextCell(v) {
  if (typeof v === 'boolean') return v ? 'yes' : '';
  return v ? String(v) : '';
}
