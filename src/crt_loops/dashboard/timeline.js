// The selected thread's heartbeat runs, newest first: the shared headline, the model's own
// summary, each action with its outbox state, and the prompt the run sent (on demand). Skips
// can be hidden, and runs in a row with the same outcome and reason fold into one line.

import { api } from './api.js';
import { badge, byId, clip, h, ledgerPostLink, renderIfChanged, timeEl } from './dom.js';
import { state } from './state.js';

export const HISTORY_LIMIT = 20;
let hideSkips = false;

export function initTimeline({ onChange }) {
  const box = byId('timeline-hide-skips');
  box.addEventListener('change', () => {
    hideSkips = box.checked;
    onChange();
  });
}

/** Runs in a row with the same outcome and reason, as [first, count] pairs. */
export function collapse(runs) {
  const groups = [];
  for (const run of runs) {
    const last = groups[groups.length - 1];
    if (last && last.run.outcome === run.outcome && last.run.reason === run.reason && !run.actions.length) {
      last.count += 1;
      last.oldest = run;
    } else {
      groups.push({ run, count: 1, oldest: run });
    }
  }
  return groups;
}

export async function refreshTimeline() {
  const thread = state.thread;
  const data = await api(
    `/api/threads/${encodeURIComponent(thread)}/heartbeat/history?limit=${HISTORY_LIMIT}`,
  );
  if (thread !== state.thread) return;
  const shown = hideSkips ? data.runs.filter((r) => r.outcome !== 'skipped') : data.runs;
  const hidden = data.runs.length - shown.length;
  const container = byId('timeline');
  renderIfChanged(container, { thread, runs: shown, hidden, ledger: state.ledgerUrl }, () => {
    const items = collapse(shown).map(runItem);
    if (hidden) items.push(h('li', { class: 'empty' }, `${hidden} skipped run(s) hidden.`));
    return items.length
      ? items
      : h('li', { class: 'empty' }, 'No heartbeat runs yet. Use “Run now” or “Dry run” above.');
  });
}

function runItem({ run, count, oldest }) {
  const meta = [badge(run.trigger, run.trigger === 'manual' ? 'info' : 'muted')];
  if (run.dry_run && run.outcome !== 'dry_run') meta.push(badge('dry run', 'info'));
  if (run.duration_ms !== null && run.duration_ms !== undefined) {
    meta.push(h('span', { class: 'muted' }, `${Math.round(run.duration_ms)} ms`));
  }
  if (run.model) meta.push(h('span', { class: 'muted' }, run.model));
  const tokens = tokensText(run.tokens);
  if (tokens) meta.push(h('span', { class: 'muted tokens', title: 'as the LLM server counted them' }, tokens));
  const repeated = count > 1
    ? h('span', { class: 'repeat', title: 'runs in a row with the same outcome' }, `×${count} since `, timeEl(oldest.started_at))
    : null;
  return h(
    'li',
    { class: `run run-${run.outcome}`, dataset: { runId: run.run_id, outcome: run.outcome, count: String(count) } },
    h(
      'div',
      { class: 'run-head' },
      badge(run.outcome),
      h('span', { class: 'headline' }, run.headline || run.reason || ''),
      h('span', { class: 'spacer' }),
      repeated,
      timeEl(run.started_at),
    ),
    h('div', { class: 'run-meta' }, meta),
    run.summary && run.outcome !== 'skipped'
      ? h('p', { class: 'summary' }, h('span', { class: 'muted' }, 'The model said: '), h('span', { class: 'untrusted' }, run.summary))
      : null,
    run.error ? h('p', { class: 'run-error' }, run.error) : null,
    run.raw_reply
      ? h('details', { class: 'raw-reply' }, h('summary', {}, 'the model\'s reply'),
          h('pre', { class: 'untrusted' }, run.raw_reply))
      : null,
    run.actions.length ? h('ul', { class: 'run-actions' }, run.actions.map(actionItem)) : null,
    run.prompt_chars ? promptView(run) : null,
  );
}

/** "1,180 prompt tokens (968 cached) · 64 generated", or '' when the server said nothing. */
export function tokensText(tokens) {
  if (!tokens || tokens.prompt_tokens == null) return '';
  const n = (x) => Number(x).toLocaleString('en');
  const cached = tokens.cached_tokens ? ` (${n(tokens.cached_tokens)} cached)` : '';
  const generated = tokens.completion_tokens != null ? ` · ${n(tokens.completion_tokens)} generated` : '';
  return `${n(tokens.prompt_tokens)} prompt tokens${cached}${generated}`;
}

function promptView(run) {
  const body = h('pre', { class: 'prompt untrusted' }, 'Loading…');
  const details = h(
    'details',
    { class: 'prompt-view' },
    h('summary', {}, `Prompt sent (${run.prompt_chars} characters, secrets masked)`),
    body,
  );
  details.addEventListener('toggle', async () => {
    if (!details.open || details.dataset.loaded) return;
    try {
      const data = await api(
        `/api/threads/${encodeURIComponent(run.thread_id)}/heartbeat/runs/${run.run_id}/prompt`,
      );
      details.dataset.loaded = '1';
      body.textContent = data.messages.map((m) => `## ${m.role}\n${m.content}`).join('\n\n');
    } catch (error) {
      body.textContent = `Not available: ${error.message}`;
    }
  });
  return details;
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
    action.error ? h('p', { class: 'run-error' }, action.state === 'blocked' ? `Blocked: ${action.error}` : action.error) : null,
  );
}
