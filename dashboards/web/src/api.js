// The one client for the HTTP API (CONTRACT §3). Same-origin session
// cookie; every change carries X-Requested-With (the server's CSRF check)
// and, for incident actions, If-Match with the version the operator saw.

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message || code || String(status));
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

let onUnauthenticated = () => {};
export function setUnauthenticatedHandler(f) { onUnauthenticated = f; }

function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === '') continue;
    u.set(k, Array.isArray(v) ? v.join(',') : String(v));
  }
  const s = u.toString();
  return s ? '?' + s : '';
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// request: a GET the server refused with 429 (a caller's share of heavy
// requests, e.g. statistics) is tried again after Retry-After, twice at
// most; changes are never repeated.
export async function request(method, path, opts = {}) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await requestOnce(method, path, opts);
    } catch (e) {
      if (method !== 'GET' || e.status !== 429 || attempt >= 2) throw e;
      await sleep(Math.min(5000, (e.retryAfter || 1) * 1000));
    }
  }
}

async function requestOnce(method, path, { body, version, query, quiet401 } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET') headers['X-Requested-With'] = 'ioc-dashboard';
  if (version !== undefined && version !== null) headers['If-Match'] = `"${version}"`;
  let res;
  try {
    res = await fetch(path + qs(query), {
      method, headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'network', e.message);
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch (e) { data = null; }
  }
  if (!res.ok) {
    if (res.status === 401 && !quiet401) onUnauthenticated();
    const err = data && data.error ? data.error : {};
    throw new ApiError(res.status, err.code || 'http_' + res.status, err.message || res.statusText,
      Number(res.headers.get('Retry-After')) || 0);
  }
  return data;
}

export const api = {
  config: () => request('GET', '/app-config.json'),
  login: (name, password) => request('POST', '/api/v1/login', { body: { name, password }, quiet401: true }),
  logout: () => request('POST', '/api/v1/logout', { body: {} }),
  me: () => request('GET', '/api/v1/me', { quiet401: true }),
  areas: () => request('GET', '/api/v1/areas'),
  incidents: (filter) => request('GET', '/api/v1/incidents', { query: filter }),
  incident: (id) => request('GET', '/api/v1/incidents/' + encodeURIComponent(id)),
  nearestUnits: (id, limit = 5) => request('GET', `/api/v1/incidents/${encodeURIComponent(id)}/nearest-units`, { query: { limit } }),
  // The cameras within radius metres of a point, nearest first, each with
  // its latest snapshot (GET /api/v1/devices?near=, docs/dashboards.md).
  camerasNear: ([lon, lat], radius = 1000, limit = 5) =>
    request('GET', '/api/v1/devices', { query: { near: `${lon},${lat}`, radius_m: radius, kind: 'camera', limit } }),
  open: (body) => request('POST', '/api/v1/incidents', { body }),
  act: (id, action, version, body = {}) =>
    request('POST', `/api/v1/incidents/${encodeURIComponent(id)}/${action}`, { body, version }),
  units: () => request('GET', '/api/v1/units', { query: { limit: 1000 } }),
  stats: (groupBy, filter) => request('GET', '/api/v1/stats/incidents', { query: { ...filter, group_by: groupBy } }),
  responseTimes: (by, filter) => request('GET', '/api/v1/stats/response-times', { query: { ...filter, by } }),
};

// exportURL is a link the browser follows itself (the cookie goes along).
export function exportURL(ext, filter) {
  return '/api/v1/incidents.' + ext + qs(filter);
}
export function capURL(id) {
  return '/api/v1/incidents/' + encodeURIComponent(id) + '.cap';
}

// activeIncidents reads every open incident over HTTP (the fallback when
// the live channel is missing), page by page.
export async function activeIncidents(max = 5000) {
  const out = [];
  for (const status of ['new', 'acknowledged', 'dispatched']) {
    let cursor;
    do {
      const page = await api.incidents({ status, limit: 1000, cursor });
      out.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor && out.length < max);
  }
  return out;
}
