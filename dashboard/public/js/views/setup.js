/**
 * Why: getting a phone onto the proxy is the step users fail at. This page shows the address to
 * type, QR codes for the setup page and the CA certificate, and the steps for Android and iOS.
 */
import { api } from '../api.js';
import { el, isSafeHref } from '../dom.js';

export function render(root) {
  const box = el('div', { class: 'setup' }, el('p', { class: 'empty' }, 'Loading…'));
  root.append(el('div', { class: 'toolbar' }, el('h1', null, 'Set up a phone')), box);
  api.setup().then((s) => box.replaceChildren(...renderSetup(s)))
    .catch((err) => box.replaceChildren(el('p', { class: 'error' }, `Could not load setup: ${err.message}`)));
}

function link(url) {
  const text = String(url || '');
  return isSafeHref(text) ? el('a', { href: text, rel: 'noopener' }, text) : el('span', { class: 'mono' }, text);
}

function qr(label, dataUrl, url) {
  const ok = typeof dataUrl === 'string' && /^data:image\/(svg\+xml|png);base64,/.test(dataUrl);
  return el('figure', { class: 'qr' },
    ok ? el('img', { src: dataUrl, alt: `QR code: ${label}`, width: '200', height: '200' }) : el('p', { class: 'muted' }, 'no QR code'),
    el('figcaption', null, label, el('br'), link(url)));
}

function renderSetup(s) {
  // proxyHost is the address the proxy answers on; the other LAN addresses are alternatives only when
  // the proxy listens on all of them (then proxyHost is one of them).
  const others = (s.addresses || []).includes(s.proxyHost) ? s.addresses.filter((a) => a !== s.proxyHost) : [];
  const addresses = [s.proxyHost, ...others];
  const steps = s.steps || {};
  return [
    el('section', { class: 'proxy-address' },
      el('h2', null, 'Proxy address'),
      el('p', null, 'On the phone, set the Wi-Fi network\'s proxy to manual with:'),
      el('dl', { class: 'facts big' },
        el('dt', null, 'Host'), el('dd', { class: 'mono' }, addresses.map((a, i) => [i ? ' or ' : '', String(a)])),
        el('dt', null, 'Port'), el('dd', { class: 'mono' }, String(s.proxyPort ?? ''))),
      el('p', { class: 'muted' }, 'The phone and this laptop must be on the same network.')),
    el('section', { class: 'qrs' }, el('h2', null, 'Scan with the phone'),
      el('div', { class: 'qr-row' },
        qr('Setup page', s.qr && s.qr.setup, s.setupUrl),
        qr('CA certificate (to see inside HTTPS)', s.qr && s.qr.ca, s.caUrl))),
    el('section', { class: 'steps' },
      stepList('Android', steps.android),
      stepList('iPhone / iPad', steps.ios)),
    s.wireguard ? renderWireGuard(s.wireguard) : null,
  ];
}

// VPN mode: one QR code per phone, scanned in the WireGuard app ("+" → "Scan from QR code"). The
// listing holds no key; each phone's QR code and config (its private key) come from its own endpoint.
function renderWireGuard(wg) {
  const phones = (Array.isArray(wg.phones) ? wg.phones : []).filter((p) => p && p.peer && typeof p.peer.name === 'string');
  return el('section', { class: 'wireguard' },
    el('h2', null, 'VPN mode (WireGuard)'),
    el('p', null, `Install the WireGuard app, tap + → Scan from QR code, scan the phone's code and switch the tunnel on. UDP port ${String(wg.port ?? '')}.`),
    el('p', { class: 'muted' }, 'All of the phone\'s traffic (IPv4 and IPv6, any app) then goes through this laptop. More phones: phonehome wireguard add NAME.'),
    el('div', { class: 'qr-row' }, phones.map((p) => el('div', { class: 'wg-phone' },
      el('figure', { class: 'qr' },
        el('img', { src: api.wireguardQrUrl(p.peer.name), alt: `QR code: WireGuard config of ${p.peer.name}`, width: '200', height: '200' }),
        el('figcaption', null, `${p.peer.name} (${String(p.peer.ipv4)})`)),
      el('p', { class: 'wg-status muted' }, phoneStatus(p.status))))),
    phones.map((p) => configText(p.peer.name)),
    droppedLine(wg.dropped));
}

/** The config text, fetched when the user opens it (it holds the phone's private key). */
function configText(name) {
  const pre = el('pre', { class: 'mono' }, 'Loading…');
  let loaded = false;
  const details = el('details', { class: 'wg-config', ontoggle: () => {
    if (!details.open || loaded) return;
    loaded = true;
    api.wireguardConfig(name).then((text) => { pre.textContent = text; })
      .catch((err) => { loaded = false; pre.textContent = `Could not load the config: ${err.message}`; });
  } }, el('summary', null, `Config text for ${name}`), pre);
  return details;
}

function phoneStatus(st) {
  if (!st || typeof st.lastHandshakeAt !== 'number') return 'not connected yet';
  const secs = Math.max(0, Math.round((Date.now() - st.lastHandshakeAt) / 1000));
  return `connected: last handshake ${secs} s ago${st.endpoint ? ` from ${String(st.endpoint)}` : ''}`;
}

function droppedLine(dropped) {
  const entries = Object.entries(dropped || {}).filter(([, n]) => Number(n) > 0);
  if (!entries.length) return null;
  return el('p', { class: 'muted wg-dropped' }, `Refused datagrams: ${entries.map(([k, n]) => `${k} ${Number(n)}`).join(', ')}`);
}

function stepList(title, items) {
  if (!items || !items.length) return null;
  return el('div', { class: 'step-list' }, el('h2', null, title), el('ol', null, items.map((t) => el('li', null, String(t)))));
}
