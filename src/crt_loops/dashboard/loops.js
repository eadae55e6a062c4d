// The four loops: one card each, built once and updated in place on every poll (so a button a
// person is about to click is never swapped out under the pointer).

import { api, detailText } from './api.js';
import { badge, byId, formatDuration, h, timeEl } from './dom.js';

const TITLES = {
  reflection: 'Reflection',
  personality: 'Personality',
  journal_self_reply: 'Journal self-reply',
  heartbeat: 'Heartbeat',
};

const cards = new Map();
let afterAction = () => {};

export function initLoops({ onChange }) {
  afterAction = onChange;
}

function field(label, value) {
  return [h('dt', {}, label), h('dd', {}, value)];
}

function buildCard(name) {
  const title = TITLES[name] || name;
  const refs = {
    state: h('span', { class: 'state' }),
    body: h('dl', { class: 'facts' }),
    error: h('p', { class: 'loop-error', hidden: true }),
    message: h('p', { class: 'action-message', role: 'status', 'aria-live': 'polite' }),
  };
  refs.start = h(
    'button',
    { type: 'button', class: 'btn btn-small', 'aria-label': `Start ${title} loop` },
    'Start',
  );
  refs.stop = h(
    'button',
    { type: 'button', class: 'btn btn-small btn-quiet', 'aria-label': `Stop ${title} loop` },
    'Stop',
  );
  refs.start.addEventListener('click', () => act(name, 'start', refs));
  refs.stop.addEventListener('click', () => act(name, 'stop', refs));
  refs.card = h(
    'article',
    { class: 'card loop', dataset: { loop: name }, 'aria-label': `${title} loop` },
    h('header', { class: 'card-head' }, h('h3', {}, title), refs.state),
    refs.body,
    refs.error,
    h('div', { class: 'actions' }, refs.start, refs.stop),
    refs.message,
  );
  return refs;
}

async function act(name, verb, refs) {
  refs.start.disabled = true;
  refs.stop.disabled = true;
  refs.message.textContent = verb === 'start' ? 'Starting…' : 'Stopping (waits for the current tick)…';
  try {
    await api(`/api/loops/${encodeURIComponent(name)}/${verb}`, { method: 'POST' });
    refs.message.textContent = '';
  } catch (error) {
    if (error.status !== 401) refs.message.textContent = `Could not ${verb}: ${detailText(error.detail)}`;
  }
  await afterAction();
}

/** Render GET /api/loops (plus GET /api/heartbeat/status for the heartbeat card). */
export function renderLoops(loops, heartbeatStatus) {
  const container = byId('loops');
  for (const loop of loops) {
    let refs = cards.get(loop.name);
    if (!refs) {
      refs = buildCard(loop.name);
      cards.set(loop.name, refs);
      container.append(refs.card);
    }
    refs.state.replaceChildren(badge(loop.state));
    refs.card.dataset.state = loop.state;
    const facts = [
      ...field('Interval', formatDuration(loop.interval_seconds)),
      ...field('Last tick', timeEl(loop.last_tick_at)),
      ...field('Next tick', loop.running ? timeEl(loop.next_wake_at) : '—'),
      ...field('Ticks', `${loop.ticks} (${loop.failures} failed)`),
      ...field('At startup', loop.enabled ? 'on' : 'off (env var)'),
    ];
    if (loop.name === 'heartbeat' && heartbeatStatus) {
      const due = heartbeatStatus.next_due;
      facts.push(
        ...field('Threads on', String(heartbeatStatus.threads_enabled ?? 0)),
        ...field('Next due', due ? h('span', {}, `${due.thread_id} `, timeEl(due.at)) : '—'),
      );
    }
    refs.body.replaceChildren(...facts);
    refs.error.hidden = !loop.last_error;
    refs.error.textContent = loop.last_error ? `Last error: ${loop.last_error}` : '';
    const busy = loop.state === 'starting' || loop.state === 'stopping';
    refs.start.disabled = loop.running || busy;
    refs.stop.disabled = !loop.running || busy;
  }
}
