// The JSON API client: one fetch wrapper that adds the bearer token and turns error bodies
// ({"detail": ...}) into ApiError. Each call is a short request; live updates are polling, so
// no API worker thread is ever held by an open connection.

const TOKEN_KEY = 'crt.apiToken';

export class ApiError extends Error {
  /** status 0 means the service could not be reached at all. */
  constructor(status, detail) {
    super(detailText(detail) || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

export function getToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

export function setToken(token) {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage disabled (private mode): the token then lasts until the page is reloaded.
  }
  memoryToken = token;
}

let memoryToken = '';
let unauthorizedHandler = () => {};

/** Called with the ApiError whenever the service answers 401. */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

export async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const token = getToken() || memoryToken;
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'the service is not reachable');
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: text.slice(0, 500) };
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data?.detail ?? response.statusText);
    if (response.status === 401) unauthorizedHandler(error);
    throw error;
  }
  return data;
}

/** A 422 detail is a list of {loc, msg} or a plain string; make one readable sentence. */
export function detailText(detail) {
  if (detail === null || detail === undefined) return '';
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((item) => {
        const field = fieldOf(item);
        const msg = cleanMessage(item?.msg ?? JSON.stringify(item));
        return field ? `${field}: ${msg}` : msg;
      })
      .join('; ');
  }
  return JSON.stringify(detail);
}

/** The field a validation error is about: the last name in its loc (["body", "max_tokens"]). */
export function fieldOf(item) {
  const loc = Array.isArray(item?.loc) ? item.loc : [];
  const names = loc.filter((part) => typeof part === 'string' && part !== 'body');
  const name = names.length ? names[names.length - 1] : '';
  return name === 'every' ? 'every_seconds' : name;
}

/** Pydantic prefixes custom messages with "Value error, "; a person does not need it. */
export function cleanMessage(msg) {
  return String(msg).replace(/^Value error, /, '');
}
