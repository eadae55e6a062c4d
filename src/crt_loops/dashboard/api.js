// The JSON API client: one fetch wrapper that adds the bearer token and turns error bodies
// ({"detail": ...}) into ApiError. Each call is a short request; live updates are polling, so
// no API worker thread is ever held by an open connection (the one exception is a chat reply
// streamed while the model writes it, which holds one for as long as the model call lasts).

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

async function request(path, { method = 'GET', body, accept = 'application/json' } = {}) {
  const headers = { Accept: accept };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const token = getToken() || memoryToken;
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    return await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'the service is not reachable');
  }
}

/** A whole answer's JSON; an error status becomes an ApiError carrying its detail. */
async function answer(response) {
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

// Answers already in hand, by path: a tick's one GET /api/dashboard/poll holds the answers of
// the GETs its views are about to send (each part names its GET), so they are not sent again.
// Each is used once, and whatever the tick did not use is dropped when it ends (app.js): an
// action's refresh afterwards always asks the service.
const prefetched = new Map();

/** Keep the poll's parts ({path, status, body}) for the GETs that follow. */
export function prefetch(parts) {
  prefetched.clear();
  for (const part of parts) prefetched.set(part.path, part);
}

export function dropPrefetched() {
  prefetched.clear();
}

export async function api(path, options = {}) {
  const reading = options.method === undefined || options.method === 'GET';
  if (!reading) prefetched.clear(); // a change: what the poll read may no longer hold
  const part = reading ? prefetched.get(path) : undefined;
  if (part) {
    prefetched.delete(path);
    if (part.status >= 200 && part.status < 300) return part.body;
    throw new ApiError(part.status, part.body?.detail ?? `HTTP ${part.status}`);
  }
  return answer(await request(path, options));
}

/**
 * POST `body` to a route that answers NDJSON events while it works (the chat's stream mode):
 * `onText` gets each {"event": "text"} piece as it arrives; the final {"event": "done"} line is
 * returned, and an {"event": "error"} line is thrown as an ApiError. A route that answers in one
 * piece instead is returned as is.
 */
export async function apiStream(path, body, onText) {
  prefetched.clear();
  const response = await request(path, { method: 'POST', body, accept: 'application/x-ndjson' });
  const type = response.headers.get('content-type') || '';
  if (!response.ok || !type.startsWith('application/x-ndjson') || !response.body) {
    return answer(response);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  let last = null;
  const take = (line) => {
    if (!line.trim()) return;
    const event = JSON.parse(line);
    if (event.event === 'text') onText(event.text);
    else last = event;
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffered.indexOf('\n')) >= 0) {
      take(buffered.slice(0, end));
      buffered = buffered.slice(end + 1);
    }
  }
  take(buffered + decoder.decode());
  if (!last) throw new ApiError(0, 'the answer ended before the reply did');
  if (last.event === 'error') throw new ApiError(last.status, last.detail);
  return last;
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
