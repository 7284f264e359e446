// REST client for /api/v1: JSON in and out, Bearer token, and a readable reason for every failure.

export class ApiError extends Error {
  constructor(status, reason, body = null) {
    super(reason);
    this.name = 'ApiError';
    this.status = status; // 0 when the server could not be reached at all
    this.body = body;
  }
}

/** The human reason of a DRF error body: `detail`, or `field: message` pairs. */
export function errorReason(status, body, statusText = '') {
  if (body && typeof body === 'object') {
    if (typeof body.detail === 'string') return body.detail;
    if (typeof body.message === 'string') return body.message;
    const parts = [];
    for (const [field, value] of Object.entries(body)) {
      const text = Array.isArray(value) ? value.join(' ') : typeof value === 'string' ? value : JSON.stringify(value);
      parts.push(field === 'non_field_errors' ? text : `${field}: ${text}`);
    }
    if (parts.length) return parts.join('; ');
  }
  if (typeof body === 'string' && body.trim() && body.length < 200) return body.trim();
  return `HTTP ${status}${statusText ? ` ${statusText}` : ''}`;
}

/**
 * createApi({base, getToken, onUnauthorized}) → {get, post, patch, del}
 * onUnauthorized(reason) is called on a 401 from any call but login, so the page can return to
 * sign-in; the call still rejects with the ApiError.
 */
export function createApi({ base, getToken, onUnauthorized = () => {} }) {
  async function request(method, path, body) {
    const headers = { Accept: 'application/json' };
    const token = getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'omit', // the JWT is the only credential; no cookies ride along
        cache: 'no-store',
      });
    } catch (err) {
      throw new ApiError(0, 'Server unreachable — check the connection');
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = text;
      }
    }
    if (!response.ok) {
      const error = new ApiError(response.status, errorReason(response.status, data, response.statusText), data);
      if (response.status === 401 && !path.startsWith('/auth/login')) onUnauthorized(error.message);
      throw error;
    }
    return data;
  }
  return {
    get: (path) => request('GET', path),
    post: (path, body = {}) => request('POST', path, body),
    patch: (path, body) => request('PATCH', path, body),
    del: (path) => request('DELETE', path),
  };
}

/** The list inside a DRF response, paginated ({results: [...]}) or not. */
export function listOf(payload) {
  if (Array.isArray(payload)) return payload;
  if (payload && Array.isArray(payload.results)) return payload.results;
  return [];
}
