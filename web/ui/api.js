// api.js: the page's REST calls, and the server clock they reveal.

let skewMs = 0; // server clock minus local clock, from the Date header

// serverNow is the time on the server's clock, in ms.
export function serverNow() {
  return Date.now() + skewMs;
}

// apiFetch is fetch that also learns the server's clock from the Date
// header, so that token expiry (server clock) is judged correctly on a
// machine with a wrong clock. The Switchboard client uses it too.
export async function apiFetch(input, init) {
  const res = await fetch(input, init);
  const date = res.headers.get('Date');
  const server = date ? Date.parse(date) : NaN;
  if (!isNaN(server)) {
    const skew = server + 500 - Date.now(); // the header has whole seconds
    skewMs = Math.abs(skew) > 5000 ? skew : 0;
  }
  return res;
}

// api calls the JSON API and resolves to {status, ok, data}; it rejects
// only when the server cannot be reached. token, if given, authenticates.
export async function api(method, path, body, token) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = 'Bearer ' + token;
  const res = await apiFetch(path, {
    method: method,
    headers: headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch (e) { data = null; }
  }
  return { status: res.status, ok: res.ok, data: data };
}

// errorMessage picks a human-readable message out of any of the server's error shapes.
export function errorMessage(data, fallback) {
  if (data && typeof data === 'object') {
    if (data.error && typeof data.error.message === 'string' && data.error.message) return data.error.message;
    if (Array.isArray(data.non_field_errors) && data.non_field_errors.length) return data.non_field_errors.join(' ');
    if (typeof data.detail === 'string') return data.detail;
    if (typeof data.message === 'string') return data.message;
  }
  return fallback;
}

// fieldErrors returns {field: message} from {"error":{"fields":{...}}} or DRF-style {"field": ["..."]}.
export function fieldErrors(data) {
  const out = {};
  if (!data || typeof data !== 'object') return out;
  const src = data.error && data.error.fields && typeof data.error.fields === 'object' ? data.error.fields : data;
  for (const name of ['username', 'password', 'email']) {
    const v = src[name];
    if (typeof v === 'string') out[name] = v;
    else if (Array.isArray(v)) out[name] = v.join(' ');
  }
  return out;
}
