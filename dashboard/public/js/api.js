/**
 * Why: the REST side of dashboard/API.md in one place, so views never build URLs by hand and every
 * failure reaches the user as a readable message (the server's own text when it sends one).
 */

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

async function request(method, path, body, asText = false) {
  const init = { method, headers: { Accept: asText ? 'text/plain' : 'application/json' }, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, `phonehome is not reachable (${err.message})`);
  }
  const text = await res.text();
  if (asText && res.ok) return text;
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const msg = (json && (json.error || json.message)) || text || res.statusText;
    throw new ApiError(res.status, `${res.status}: ${String(msg).slice(0, 500)}`);
  }
  return json;
}

export const api = {
  flows: (filters) => request('GET', `/api/flows${query(filters)}`),
  flow: (id) => request('GET', `/api/flows/${encodeURIComponent(id)}`),
  findings: (filters) => request('GET', `/api/findings${query(filters)}`),
  destinations: (filters) => request('GET', `/api/destinations${query(filters)}`),
  devices: () => request('GET', '/api/devices'),
  saveDevice: (clientIp, profile) => request('PUT', `/api/devices/${encodeURIComponent(clientIp)}`, { profile }),
  reanalyseDevice: (clientIp) => request('POST', `/api/devices/${encodeURIComponent(clientIp)}/reanalyse`),
  setup: () => request('GET', '/api/setup'),
  wireguardConfig: (name) => request('GET', `/api/wireguard/${encodeURIComponent(name)}/config`, undefined, true),
  wireguardQrUrl: (name) => `/api/wireguard/${encodeURIComponent(name)}/qr.svg`,
  stats: () => request('GET', '/api/stats'),
};
