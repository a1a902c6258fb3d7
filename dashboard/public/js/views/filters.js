/**
 * Why: Live, Flows and Destinations filter the same way (device, identifier type, host, severity);
 * one bar, one matching rule, and the choice survives moving between views in this tab.
 */
import { api } from '../api.js';
import { el, select } from '../dom.js';
import { IDENTIFIER_TYPES, SEVERITIES, severityRank, typeLabel } from '../format.js';

const KEY = 'phonehome.filters';

export function loadFilters() {
  try {
    const f = JSON.parse(sessionStorage.getItem(KEY) || '{}');
    return { device: f.device || '', type: f.type || '', host: f.host || '', severity: f.severity || '', q: f.q || '' };
  } catch {
    return { device: '', type: '', host: '', severity: '', q: '' };
  }
}

export function saveFilters(f) {
  sessionStorage.setItem(KEY, JSON.stringify(f));
}

/** Does an item (alert, flow summary or finding) pass the filters? Same rules the REST filters state in API.md. */
export function matches(f, item) {
  if (f.device && item.clientIp !== f.device) return false;
  if (f.host && !String(item.host || '').toLowerCase().includes(f.host.toLowerCase())) return false;
  if (f.type) {
    const types = item.types || item.findingTypes || (item.type ? [item.type] : []);
    if (!types.includes(f.type)) return false;
  }
  if (f.severity && severityRank(item.severity) < severityRank(f.severity)) return false;
  if (f.q && !String(item.url || '').toLowerCase().includes(f.q.toLowerCase())) return false;
  return true;
}

/**
 * The filter bar. `fields` picks which filters this view offers; onchange gets the new filters.
 * Device names are loaded from /api/devices once the bar is on screen.
 */
export function filterBar(filters, fields, onchange) {
  const f = { ...filters };
  const fire = () => {
    saveFilters({ ...loadFilters(), ...f });
    onchange({ ...f });
  };
  const bar = el('form', { class: 'filters', role: 'search', onsubmit: (e) => e.preventDefault() });
  if (fields.includes('device')) {
    const deviceSel = select('device', 'Device', [['', 'all devices']], f.device, (v) => { f.device = v; fire(); });
    bar.append(el('label', null, 'Device ', deviceSel));
    api.devices().then((res) => {
      for (const d of res.items || []) {
        const o = el('option', { value: d.clientIp }, d.name ? `${d.name} (${d.clientIp})` : d.clientIp);
        if (d.clientIp === f.device) o.selected = true;
        deviceSel.append(o);
      }
    }).catch(() => {});
  }
  if (fields.includes('type')) {
    bar.append(el('label', null, 'Identifier ', select('type', 'Identifier type',
      [['', 'any'], ...IDENTIFIER_TYPES.map((t) => [t, typeLabel(t)])], f.type, (v) => { f.type = v; fire(); })));
  }
  if (fields.includes('severity')) {
    bar.append(el('label', null, 'Severity ', select('severity', 'Minimum severity',
      [['', 'any'], ...SEVERITIES.map((s) => [s, `${s} or worse`])], f.severity, (v) => { f.severity = v; fire(); })));
  }
  for (const [key, label, placeholder] of [['host', 'Host', 'e.g. vnet.cn'], ['q', 'URL', 'substring of the URL']]) {
    if (!fields.includes(key)) continue;
    let debounce = null;
    const input = el('input', { type: 'search', name: key, value: f[key], placeholder, 'aria-label': label });
    input.addEventListener('input', () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => { f[key] = input.value.trim(); fire(); }, 250);
    });
    bar.append(el('label', null, `${label} `, input));
  }
  return bar;
}
