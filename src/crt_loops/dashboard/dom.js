// DOM and formatting helpers. Every piece of text goes in through text nodes (textContent), so
// nothing a model or another agent wrote can ever become markup.

/** Create an element: h('p', {class: 'x'}, 'text', child, [more, children]). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.append(child);
    else el.append(document.createTextNode(String(child)));
  }
}

export const byId = (id) => document.getElementById(id);

/** Replace a container's children only when the data behind them changed. */
export function renderIfChanged(container, data, build) {
  const signature = JSON.stringify(data);
  if (container.dataset.signature === signature) return false;
  container.dataset.signature = signature;
  container.replaceChildren(...[build()].flat().filter(Boolean));
  return true;
}

/** 1800 -> "30m", 5400 -> "1h30m", 45 -> "45s" (the forms the config API accepts). */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return '—';
  let rest = Math.round(Number(seconds));
  if (rest === 0) return '0s';
  const parts = [];
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]]) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join('');
}

/** "in 4 min", "12 s ago", "3 h ago" for an ISO timestamp. */
export function relativeTime(iso, now = Date.now()) {
  if (!iso) return '—';
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return String(iso);
  const delta = Math.round((then - now) / 1000);
  const size = Math.abs(delta);
  let text;
  if (size < 5) return 'just now';
  if (size < 60) text = `${size} s`;
  else if (size < 3600) text = `${Math.round(size / 60)} min`;
  else if (size < 86400 * 2) text = `${Math.round(size / 360) / 10} h`;
  else text = `${Math.round(size / 86400)} d`;
  return delta > 0 ? `in ${text}` : `${text} ago`;
}

export function absoluteTime(iso) {
  if (!iso) return '';
  const then = new Date(iso);
  return Number.isNaN(then.getTime()) ? String(iso) : then.toLocaleString();
}

/** A <time> whose relative text is kept fresh by refreshTimes(). */
export function timeEl(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  return h(
    'time',
    { datetime: iso, title: absoluteTime(iso), dataset: { rel: '1' } },
    relativeTime(iso),
  );
}

export function refreshTimes(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll('time[data-rel]')) {
    el.textContent = relativeTime(el.getAttribute('datetime'), now);
  }
}

const BADGE_TONES = {
  acted: 'ok', sent: 'ok', running: 'ok', ok: 'ok',
  dry_run: 'info', manual: 'info', starting: 'warn', stopping: 'warn',
  skipped: 'warn', pending: 'warn', proposed: 'warn', reply: 'info',
  failed: 'err', error: 'err',
  silent: 'muted', blocked: 'muted', rejected: 'muted', expired: 'muted', stopped: 'muted', schedule: 'muted',
};

export function badge(text, tone = BADGE_TONES[text] || 'muted', label = null) {
  return h('span', { class: `badge badge-${tone}`, title: label }, String(text).replaceAll('_', ' '));
}

/** Shorten long untrusted text for list views (the full text stays in the title tooltip). */
export function clip(text, max = 280) {
  const value = String(text ?? '');
  return value.length > max ? `${value.slice(0, max - 1)}…` : value;
}

/** A link to a post's page for people on the Ledger (``url`` from the API when it gave one;
 * else ``/post/{id}`` beside the API, as on Moltbook), or null when we cannot tell where. */
export function ledgerPostLink(ledgerUrl, postId, text = 'View on Ledger', url = null) {
  if (url && /^https?:\/\//.test(url)) {
    return h('a', { href: url, target: '_blank', rel: 'noopener noreferrer', class: 'ledger-link' }, text);
  }
  if (!ledgerUrl || !postId || !/^https?:\/\//.test(ledgerUrl)) return null;
  const root = ledgerUrl.replace(/\/+$/, '').replace(/\/api\/v1$/, '');
  const href = `${root}/post/${encodeURIComponent(postId)}`;
  return h('a', { href, target: '_blank', rel: 'noopener noreferrer', class: 'ledger-link' }, text);
}
