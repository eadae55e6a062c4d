// The thread list: each thread with its heartbeat schedule and last outcome; a click selects it.

import { api } from './api.js';
import { badge, byId, formatDuration, h, renderIfChanged, timeEl } from './dom.js';
import { selectThread, state } from './state.js';

// Configs of the listed threads are fetched on the slow tick, in one request; this many at most,
// so a service with thousands of threads does not read thousands of configs for one open tab.
export const MAX_LISTED_CONFIGS = 50;
export const THREADS_LIMIT = 100;

let threads = [];
let onSelect = () => {};

export function initThreads({ onSelected }) {
  onSelect = onSelected;
}

/** GET /api/threads, and (when ``withConfigs``) the listed threads' heartbeat configs, all in
 * one request. */
export async function refreshThreads(withConfigs) {
  const data = await api(`/api/threads?limit=${THREADS_LIMIT}`);
  threads = data.threads;
  if (withConfigs && threads.length) {
    const ids = threads.slice(0, MAX_LISTED_CONFIGS).map((t) => t.thread_id);
    const query = ids.map((id) => `thread_id=${encodeURIComponent(id)}`).join('&');
    const views = await api(`/api/heartbeat/configs?${query}`);
    for (const view of views.configs) state.configs.set(view.thread_id, view);
  }
  if (!threads.some((t) => t.thread_id === state.thread) && threads.length) {
    selectThread(threads.some((t) => t.thread_id === 'default') ? 'default' : threads[0].thread_id);
    await onSelect();
  }
  renderThreads();
}

export function renderThreads() {
  const rows = threads.map((t) => {
    const view = state.configs.get(t.thread_id);
    return {
      id: t.thread_id,
      title: t.title,
      selected: t.thread_id === state.thread,
      enabled: view?.config?.enabled ?? null,
      every: view?.config?.every_seconds ?? null,
      outcome: view?.last_outcome ?? null,
      reason: view?.last_reason ?? null,
      due: view?.config?.enabled ? view?.next_due_at ?? null : null,
    };
  });
  renderIfChanged(byId('threads'), rows, () =>
    rows.map((row) =>
      h(
        'tr',
        { class: row.selected ? 'selected' : '', dataset: { thread: row.id } },
        h(
          'th',
          { scope: 'row' },
          h(
            'button',
            {
              type: 'button',
              class: 'link-button',
              'aria-pressed': row.selected ? 'true' : 'false',
              title: row.title || null,
              onclick: async () => {
                selectThread(row.id);
                renderThreads();
                await onSelect();
              },
            },
            row.id,
          ),
        ),
        h('td', {}, row.enabled === null ? '—' : badge(row.enabled ? 'on' : 'off', row.enabled ? 'ok' : 'muted')),
        h('td', {}, row.every === null ? '—' : formatDuration(row.every)),
        h('td', {}, row.outcome ? [badge(row.outcome), ' ', h('span', { class: 'muted' }, row.reason || '')] : '—'),
        h('td', {}, row.due ? (state.heartbeatRunning === false ? 'loop stopped' : timeEl(row.due)) : '—'),
      ),
    ),
  );
}
