// The console's only way to the API: same origin, the session cookie, the CSRF header on writes.
// The token itself is never here: the browser holds an HttpOnly session cookie instead.

let csrf = null;

export function setCsrf(value) {
  csrf = value;
}

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code;
    this.details = error.details;
  }
}

export function signInAgain(reason = 'expired') {
  const next = location.pathname + location.search;
  location.assign(`/ui/login?reason=${encodeURIComponent(reason)}&next=${encodeURIComponent(next)}`);
}

function serverTime(header) {
  const match = /app;dur=([\d.]+)/.exec(header || '');
  return match ? Number(match[1]) : null;
}

// One request: its JSON, and how long it took here and on the server (Server-Timing).
export async function timedRequest(method, url, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  const started = performance.now();
  const response = await fetch(url, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const clientMs = performance.now() - started;
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { error: { message: text } }; }
  }
  if (response.status === 401) {
    signInAgain((data && data.error && data.error.details && data.error.details.reason) || 'expired');
    throw new ApiError(401, data);
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return { data, clientMs, serverMs: serverTime(response.headers.get('Server-Timing')) };
}

export async function request(method, url, body) {
  return (await timedRequest(method, url, body)).data;
}

// Paths under /api/v1; ``query`` values that are empty are left out.
export function api(method, path, body) {
  return request(method, `/api/v1${path}`, body);
}

export function get(path, query) {
  return api('GET', path + queryString(query));
}

export function queryString(query) {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== null && value !== undefined && value !== '') params.set(key, value);
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

// GETs that many pages need and that change slowly (catalog, worker and queue names).
const cache = new Map();
export function cached(path, seconds = 30) {
  const hit = cache.get(path);
  if (hit && hit.until > Date.now()) return hit.promise;
  const promise = get(path).catch((error) => { cache.delete(path); throw error; });
  cache.set(path, { promise, until: Date.now() + seconds * 1000 });
  return promise;
}
