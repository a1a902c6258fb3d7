/**
 * Why: each phone is known by its address; its profile (name and its own IMEI, number, ICCID...)
 * lets detection find those exact values in any encoding. The server validates the profile and its
 * 400 message is shown as is, so the rules live in one place.
 */
import { api } from '../api.js';
import { el } from '../dom.js';
import { dateTime } from '../format.js';
import { stream } from '../stream.js';
import { loadFilters, saveFilters } from './filters.js';
import { reanalysisSentence } from './live.js';

const EXAMPLE = '{\n  "name": "Nokia 7 plus",\n  "imei": ["354000000000000"],\n  "phone": "+4791234567",\n  "iccid": "8947000000000000000",\n  "mac": "d4:6a:00:00:00:00"\n}';

export function render(root) {
  const list = el('div', { class: 'devices' }, el('p', { class: 'empty' }, 'Loading…'));
  const notice = el('p', { class: 'notice', role: 'status' });
  notice.hidden = true;
  root.append(el('div', { class: 'toolbar' }, el('h1', null, 'Devices')), notice, list);

  async function load() {
    try {
      const res = await api.devices();
      const items = res.items || [];
      if (!items.length) {
        list.replaceChildren(el('p', { class: 'empty' }, 'No phone seen yet. Follow Setup, then open any app on the phone.'));
        return;
      }
      list.replaceChildren(...items.map((d) => deviceCard(d, load)));
    } catch (err) {
      list.replaceChildren(el('p', { class: 'error' }, `Could not load devices: ${err.message}`));
    }
  }
  load();
  const off = stream.on('reanalysis', (s) => {
    notice.hidden = false;
    notice.textContent = reanalysisSentence(s);
    load();
  });
  return off;
}

function deviceCard(d, reload) {
  const profileText = JSON.stringify(d.profile || {}, null, 2);
  const textarea = el('textarea', { name: 'profile', rows: '8', cols: '60', spellcheck: 'false',
    'aria-label': `Profile of ${d.clientIp}`, placeholder: EXAMPLE });
  textarea.value = profileText === '{}' ? '' : profileText;
  const message = el('p', { class: 'form-message', role: 'status' });
  const form = el('form', { class: 'profile', onsubmit: async (e) => {
    e.preventDefault();
    let profile;
    try {
      profile = textarea.value.trim() ? JSON.parse(textarea.value) : {};
    } catch (err) {
      show(`Not valid JSON: ${err.message}`, true);
      return;
    }
    if (profile === null || typeof profile !== 'object' || Array.isArray(profile)) {
      show('The profile must be a JSON object, e.g. {"name": "...", "imei": "..."}', true);
      return;
    }
    try {
      await api.saveDevice(d.clientIp, profile);
      show('Saved. New traffic is checked against this profile.', false);
      setTimeout(reload, 1200);
    } catch (err) {
      show(`Not saved — ${err.message}`, true);
    }
  } },
  el('label', null, 'Profile (JSON: name, and the phone\'s own imei, phone, iccid, imsi, mac, serial…)', textarea),
  el('div', { class: 'form-actions' }, el('button', { type: 'submit' }, 'Save profile'), ' ',
    el('button', { type: 'button', class: 'reanalyse', onclick: reanalyse,
      title: 'Analyse everything this phone sent again, with the profile as saved' }, 'Re-check past traffic')),
  message);

  async function reanalyse() {
    try {
      const res = await api.reanalyseDevice(d.clientIp);
      show(`${res.queued} flow${res.queued === 1 ? '' : 's'} queued for analysis with the saved profile; Live shows what it finds, and a summary when it is done.`, false);
    } catch (err) {
      show(`Not queued — ${err.message}`, true);
    }
  }

  function show(text, isError) {
    message.textContent = text;
    message.className = isError ? 'form-message error' : 'form-message ok';
  }

  return el('section', { class: 'device-card', dataset: { clientIp: d.clientIp } },
    el('h2', null, d.name || (d.profile && d.profile.name) || 'Unnamed phone', ' ', el('span', { class: 'muted mono' }, String(d.clientIp))),
    el('dl', { class: 'facts' },
      el('dt', null, 'Flows'), el('dd', null, String(d.flows ?? 0)),
      el('dt', null, 'Findings'), el('dd', null, String(d.findings ?? 0)),
      el('dt', null, 'First seen'), el('dd', null, dateTime(d.firstSeen)),
      el('dt', null, 'Last seen'), el('dd', null, dateTime(d.lastSeen))),
    el('p', null, el('a', { href: '#/live', onclick: () => pickDevice(d.clientIp) }, 'Show this phone\'s alerts')),
    form);
}

function pickDevice(clientIp) {
  saveFilters({ ...loadFilters(), device: clientIp });
}
