/**
 * Why: to trust an alert, a user must see the request exactly as the phone sent it, where in it
 * the identifier sat (through every encoding), and why phonehome calls it an identifier.
 * Every captured byte is shown as text; identifiers are marked by splitting text nodes.
 */
import { api } from '../api.js';
import { el, highlighted } from '../dom.js';
import { base64Bytes, bytes, dateTime, deviceLabel, hexDump, severityClass, typeClass, typeLabel, verdictLabel } from '../format.js';

/** Bytes shown in the hex view before asking the user to download instead. */
const HEX_VIEW_LIMIT = 64 * 1024;
/** Characters of body text put in the DOM; the rest is noted, not rendered. */
const TEXT_VIEW_LIMIT = 512 * 1024;

export function render(root, [id]) {
  const box = el('div', { class: 'flow-detail', 'aria-busy': 'true' }, el('p', { class: 'empty' }, 'Loading…'));
  root.append(el('p', null, el('a', { href: '#/live' }, '← Live alerts'), ' · ', el('a', { href: '#/flows' }, 'All flows')), box);
  api.flow(id).then((detail) => {
    box.replaceChildren(...renderDetail(detail));
    box.setAttribute('aria-busy', 'false');
  }).catch((err) => {
    box.replaceChildren(el('p', { class: 'error' }, `Could not load flow ${id}: ${err.message}`));
    box.setAttribute('aria-busy', 'false');
  });
}

/** What to mark: each finding's normalized value and the field values at the paths it was found. */
function needlesFor(findings, fields) {
  const needles = [];
  const seen = new Set();
  const add = (text, f) => {
    if (!text || text.length < 2 || seen.has(text.toLowerCase())) return;
    seen.add(text.toLowerCase());
    needles.push({ text, className: `hit ${typeClass(f.type)}`, title: `${typeLabel(f.type)} (${f.detector}): ${f.explanation || ''}` });
  };
  for (const f of findings) {
    add(String(f.value ?? ''), f);
    for (const field of fields) if (field.path === f.path) add(String(field.value ?? ''), f);
    // The same MAC is often sent without separators or in upper case.
    if (f.type === 'mac') add(String(f.value).replace(/:/g, ''), f);
    if (f.type === 'phone') add(String(f.value).replace(/^\+/, ''), f);
  }
  return needles;
}

function renderDetail(d) {
  const flow = d.flow || {};
  const findings = d.findings || [];
  const fields = d.fields || [];
  const needles = needlesFor(findings, fields);
  const dest = d.destination || {};
  const out = [];

  out.push(el('h1', null, el('span', { class: `sev ${severityClass(flow.severity)}` }, verdictLabel(flow)), ' ',
    `${flow.method || flow.kind || ''} `, el('span', { class: 'mono' }, highlighted(flow.url || `${flow.host}:${flow.port}`, needles))));

  out.push(el('dl', { class: 'facts' },
    fact('Device', deviceLabel(flow.device, flow.clientIp)),
    fact('Destination', [flow.host, flow.port ? `:${flow.port}` : '', flow.serverIp ? ` (${flow.serverIp})` : ''].join('')),
    fact('Owner', [dest.org, dest.country, dest.asn ? `AS${dest.asn}` : ''].filter(Boolean).join(' · ')),
    fact('Transport', transport(flow)),
    fact('Status', flow.status != null ? String(flow.status) : ''),
    fact('Time', `${dateTime(flow.startedAt)}${flow.endedAt ? ` (${Math.max(0, flow.endedAt - flow.startedAt)} ms)` : ''}`),
    fact('Error', flow.error || ''),
    fact('Tags', (flow.tags || []).join(', ')),
  ));

  out.push(el('h2', null, `Findings (${findings.length})`));
  if (!findings.length) out.push(el('p', { class: 'empty' }, 'No identifiers found in this flow.'));
  else out.push(findingsTable(findings));

  if ((d.notes || []).length) {
    out.push(el('h2', null, 'Decoder notes'), el('ul', { class: 'notes' }, d.notes.map((n) => el('li', null, String(n)))));
  }

  out.push(el('div', { class: 'exchange' },
    el('section', { class: 'request' },
      el('h2', null, 'Request'),
      el('pre', { class: 'startline mono' }, highlighted(`${flow.method || ''} ${flow.url || ''}`, needles)),
      headersTable(flow.requestHeaders, needles),
      bodyView('Request body', flow.requestBody, needles)),
    el('section', { class: 'response' },
      el('h2', null, 'Response'),
      el('pre', { class: 'startline mono' }, flow.status != null ? `HTTP ${flow.status}` : '(no response)'),
      headersTable(flow.responseHeaders, needles),
      bodyView('Response body', flow.responseBody, needles))));

  out.push(el('h2', null, `Decoded fields (${fields.length})`), decodedTree(fields, findings, needles));
  return out;
}

function transport(flow) {
  if (flow.tls) return `TLS${flow.sni ? `, SNI ${flow.sni}` : ''}`;
  if (flow.method === 'CONNECT' && flow.error) return 'tunnel never opened: nothing was sent';
  return 'cleartext — anyone on the path can read it';
}

function fact(label, value) {
  if (!value) return null;
  return [el('dt', null, label), el('dd', null, value)];
}

function findingsTable(findings) {
  return el('table', { class: 'list findings' },
    el('thead', null, el('tr', null, ['Identifier', 'Value', 'Where', 'Decoded through', 'How', 'Why'].map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', null, findings.map((f) => el('tr', { class: severityClass(f.severity), dataset: { findingType: f.type } },
      el('td', null, el('span', { class: `chip ${typeClass(f.type)}` }, typeLabel(f.type)), ' ', el('span', { class: `sev ${severityClass(f.severity)}` }, f.severity || '')),
      el('td', { class: 'mono' }, el('mark', { class: `hit ${typeClass(f.type)}` }, String(f.value ?? ''))),
      el('td', { class: 'mono path' }, String(f.path ?? '')),
      el('td', null, chain(f.chain)),
      el('td', null, `${f.detector || ''}${f.confidence != null ? ` ${Math.round(f.confidence * 100)}%` : ''}`),
      el('td', { class: 'explanation' }, String(f.explanation ?? ''))))));
}

function chain(steps) {
  if (!steps || !steps.length) return el('span', { class: 'muted' }, 'as sent');
  return el('span', { class: 'chain' }, steps.map((s, i) => [i ? ' → ' : '', el('code', null, String(s))]));
}

function headersTable(headers, needles) {
  if (!headers || !headers.length) return el('p', { class: 'muted' }, 'no headers');
  return el('table', { class: 'headers mono' }, el('tbody', null, headers.map(([name, value]) =>
    el('tr', null, el('th', { scope: 'row' }, String(name)), el('td', null, highlighted(String(value ?? ''), needles))))));
}

function bodyView(title, body, needles) {
  if (!body || !body.size) return el('p', { class: 'muted' }, `${title}: empty`);
  const raw = base64Bytes(body.base64);
  const hasText = typeof body.text === 'string';
  let mode = hasText ? 'text' : 'hex';
  const pre = el('pre', { class: 'body mono' });
  const note = el('p', { class: 'muted' }, `${title}: ${bytes(body.size)}`, body.contentType ? `, ${body.contentType}` : '',
    body.truncated ? el('strong', { class: 'truncated' }, ` — truncated: ${bytes(raw.length)} of ${bytes(body.size)} kept`) : '');
  const toggle = el('button', { type: 'button', class: 'toggle', onclick: () => { mode = mode === 'text' ? 'hex' : 'text'; draw(); } });
  toggle.hidden = !hasText;
  function draw() {
    toggle.textContent = mode === 'text' ? 'Show hex' : 'Show text';
    if (mode === 'text') {
      const t = body.text.length > TEXT_VIEW_LIMIT ? body.text.slice(0, TEXT_VIEW_LIMIT) : body.text;
      pre.replaceChildren(highlighted(t, needles));
      if (t.length < body.text.length) pre.append(el('span', { class: 'muted' }, `\n… ${body.text.length - t.length} more characters not shown`));
    } else {
      pre.replaceChildren(hexDump(raw, HEX_VIEW_LIMIT));
      if (raw.length > HEX_VIEW_LIMIT) pre.append(el('span', { class: 'muted' }, `\n… ${bytes(raw.length - HEX_VIEW_LIMIT)} more not shown`));
    }
    pre.dataset.mode = mode;
  }
  draw();
  return el('div', { class: 'bodyview' }, el('div', { class: 'bodyhead' }, note, toggle), pre);
}

/** Fields grouped by the container they came from, outermost encoding first. */
function decodedTree(fields, findings, needles) {
  if (!fields.length) return el('p', { class: 'muted' }, 'Nothing decoded.');
  const hitPaths = new Map(findings.map((f) => [f.path, f]));
  const groups = new Map();
  for (const f of fields) {
    const path = String(f.path ?? '');
    // The container a field sits in: everything before its own key (`body>gzip>json:$.d>base64>json`).
    const cut = path.lastIndexOf(':');
    const where = cut > 0 ? path.slice(0, cut) : path;
    if (!groups.has(where)) groups.set(where, []);
    groups.get(where).push(f);
  }
  return el('div', { class: 'tree' }, [...groups.entries()].map(([where, items]) => {
    const hasHit = items.some((f) => hitPaths.has(f.path));
    const details = el('details', { class: hasHit ? 'group has-hit' : 'group' },
      el('summary', null, el('code', null, where), ` — ${items.length} field${items.length === 1 ? '' : 's'}`,
        items[0].chain && items[0].chain.length ? [' · ', chain(items[0].chain)] : ''),
      el('table', { class: 'fields mono' }, el('tbody', null, items.map((f) => {
        const hit = hitPaths.get(f.path);
        return el('tr', { class: hit ? 'field hit-row' : 'field', title: String(f.path ?? '') },
          el('th', { scope: 'row' }, String(f.key ?? f.path ?? '')),
          el('td', null, hit ? el('mark', { class: `hit ${typeClass(hit.type)}`, title: typeLabel(hit.type) }, String(f.value ?? ''))
            : highlighted(String(f.value ?? ''), needles)),
          el('td', { class: 'muted' }, hit ? el('span', { class: `chip ${typeClass(hit.type)}` }, typeLabel(hit.type)) : '',
            f.truncated ? el('span', { class: 'truncated', title: 'Only the start of this value was kept' }, ' (cut)') : ''));
      }))));
    if (hasHit || groups.size <= 3) details.open = true;
    return details;
  }));
}
