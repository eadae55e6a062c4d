// The selected thread's heartbeat runs, newest first: outcome, reason, summary and each action
// with its outbox state, linking to the Ledger post once an action was sent.

import { api } from './api.js';
import { badge, byId, clip, h, ledgerPostLink, renderIfChanged, timeEl } from './dom.js';
import { state } from './state.js';

const HISTORY_LIMIT = 20;

export async function refreshTimeline() {
  const thread = state.thread;
  const data = await api(
    `/api/threads/${encodeURIComponent(thread)}/heartbeat/history?limit=${HISTORY_LIMIT}`,
  );
  if (thread !== state.thread) return;
  const container = byId('timeline');
  renderIfChanged(container, { thread, runs: data.runs, ledger: state.ledgerUrl }, () =>
    data.runs.length
      ? data.runs.map(runItem)
      : h('li', { class: 'empty' }, 'No heartbeat runs yet. Use “Run now” or “Dry run” above.'),
  );
}

function runItem(run) {
  const meta = [badge(run.trigger, run.trigger === 'manual' ? 'info' : 'muted')];
  if (run.dry_run && run.outcome !== 'dry_run') meta.push(badge('dry run', 'info'));
  if (run.duration_ms !== null && run.duration_ms !== undefined) {
    meta.push(h('span', { class: 'muted' }, `${Math.round(run.duration_ms)} ms`));
  }
  if (run.model) meta.push(h('span', { class: 'muted' }, run.model));
  return h(
    'li',
    { class: `run run-${run.outcome}`, dataset: { runId: run.run_id, outcome: run.outcome } },
    h(
      'div',
      { class: 'run-head' },
      badge(run.outcome),
      h('span', { class: 'reason' }, run.reason || ''),
      h('span', { class: 'spacer' }),
      timeEl(run.started_at),
    ),
    h('div', { class: 'run-meta' }, meta),
    run.summary ? h('p', { class: 'summary untrusted' }, run.summary) : null,
    run.error ? h('p', { class: 'run-error' }, run.error) : null,
    run.actions.length ? h('ul', { class: 'run-actions' }, run.actions.map(actionItem)) : null,
  );
}

function actionItem(action) {
  const parts = [h('span', { class: 'action-type' }, action.type), badge(action.state)];
  if (action.type === 'post') {
    parts.push(
      h('span', { class: 'muted' }, `in ${action.submolt || 'general'}`),
      h('strong', { class: 'untrusted' }, action.title || ''),
    );
  } else if (action.type === 'comment') {
    parts.push(h('span', { class: 'muted' }, `on post ${action.post_id}`));
  } else if (action.type === 'vote') {
    parts.push(h('span', { class: 'muted' }, `${action.direction || 'up'} on post ${action.post_id}`));
  }
  // A post's ledger_id is the post; a comment's is the comment, so link its post instead.
  const postId = action.type === 'post' ? action.ledger_id : action.post_id;
  const link = action.state === 'sent' ? ledgerPostLink(state.ledgerUrl, postId, 'View on Ledger', action.url) : null;
  return h(
    'li',
    { class: 'action', dataset: { state: action.state } },
    h('div', { class: 'action-head' }, parts, link),
    action.content ? h('p', { class: 'untrusted', title: action.content }, clip(action.content)) : null,
    action.error ? h('p', { class: 'run-error' }, action.error) : null,
  );
}
