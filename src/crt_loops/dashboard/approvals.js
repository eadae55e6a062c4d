// Heartbeat actions waiting for the owner (a thread's approval is "posts" or "all"): the count
// as a badge in the header, and each action with its context, editable title and text, and
// Approve / Reject. The list is never re-rendered under an edit in progress; the API's answer
// (sent, blocked with its reason, a 409 saying it expired, a 422 naming a field) is shown on
// the action itself.

import { api, detailText, fieldOf } from './api.js';
import { badge, byId, h, renderIfChanged, timeEl } from './dom.js';

let afterChange = async () => {};
const drafts = new Set(); // action ids with an edit in progress

export function initApprovals({ onChanged }) {
  afterChange = onChanged;
  const list = byId('approvals');
  list.addEventListener('input', (event) => {
    const item = event.target.closest('[data-action-id]');
    if (item) drafts.add(item.dataset.actionId);
  });
  list.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-decision]');
    if (!button) return;
    const item = button.closest('[data-action-id]');
    decide(item, button.dataset.decision);
  });
}

export async function refreshApprovals() {
  const data = await api('/api/approvals');
  renderBadge(data.count);
  const list = byId('approvals');
  const shown = new Set(data.approvals.map((a) => String(a.action_id)));
  for (const id of drafts) if (!shown.has(id)) drafts.delete(id);
  if (drafts.size) return; // someone is editing: keep their text
  renderIfChanged(list, data.approvals, () =>
    data.approvals.length
      ? data.approvals.map(approvalItem)
      : h('li', { class: 'empty' }, 'Nothing waits for your approval.'),
  );
}

function renderBadge(count) {
  const link = byId('approvals-badge');
  link.hidden = !count;
  link.textContent = `${count} to approve`;
  byId('approvals-count').textContent = String(count);
}

function approvalItem(action) {
  const id = action.action_id;
  const fields = [];
  if (action.type === 'post') {
    fields.push(
      h('label', { for: `appr-${id}-title` }, 'Title'),
      h('input', { id: `appr-${id}-title`, name: 'title', type: 'text', value: action.title || '' }),
      h('small', { class: 'field-error', id: `appr-${id}-title-error` }),
    );
  }
  if (action.type === 'post' || action.type === 'comment') {
    const text = h('textarea', { id: `appr-${id}-content`, name: 'content', rows: '4' });
    text.value = action.content || '';
    fields.push(
      h('label', { for: `appr-${id}-content` }, action.type === 'post' ? 'Text' : 'Comment'),
      text,
      h('small', { class: 'field-error', id: `appr-${id}-content-error` }),
    );
  }
  const where =
    action.type === 'post'
      ? `post in ${action.submolt || 'general'}`
      : action.type === 'comment'
        ? `comment on post ${action.post_id}${action.parent_id ? `, replying to ${action.parent_id}` : ''}`
        : `${action.direction || 'up'}vote on post ${action.post_id}`;
  return h(
    'li',
    { class: 'approval', dataset: { actionId: String(id), thread: action.thread_id } },
    h(
      'div',
      { class: 'run-head' },
      badge(action.state),
      h('span', { class: 'action-type' }, where),
      h('span', { class: 'muted' }, `thread ${action.thread_id}`),
      h('span', { class: 'spacer' }),
      h('span', { class: 'muted' }, 'expires '),
      timeEl(action.expires_at),
    ),
    action.run_summary
      ? h('p', { class: 'summary untrusted' }, `The agent's reason: ${action.run_summary}`)
      : null,
    h('div', { class: 'approval-fields' }, fields),
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'button', class: 'btn', dataset: { decision: 'approve' } }, 'Approve'),
      h('input', {
        type: 'text',
        name: 'reason',
        placeholder: 'reason (optional)',
        'aria-label': 'Reason for rejecting',
      }),
      h(
        'button',
        { type: 'button', class: 'btn btn-quiet', dataset: { decision: 'reject' } },
        'Reject',
      ),
      h('span', { class: 'approval-status', role: 'status', 'aria-live': 'polite' }),
    ),
  );
}

async function decide(item, decision) {
  const id = item.dataset.actionId;
  const status = item.querySelector('.approval-status');
  for (const slot of item.querySelectorAll('.field-error')) slot.textContent = '';
  const value = (name) => item.querySelector(`[name="${name}"]`)?.value;
  let body;
  if (decision === 'approve') {
    body = {};
    for (const name of ['title', 'content']) if (value(name) !== undefined) body[name] = value(name);
  } else {
    body = value('reason') ? { reason: value('reason') } : {};
  }
  for (const button of item.querySelectorAll('button')) button.disabled = true;
  status.textContent = decision === 'approve' ? 'Sending…' : 'Rejecting…';
  try {
    const action = await api(`/api/approvals/${id}/${decision}`, { method: 'POST', body });
    item.dataset.result = action.state;
    status.textContent =
      action.state === 'sent'
        ? 'Approved and sent'
        : action.state === 'rejected'
          ? 'Rejected'
          : `${action.state}: ${action.error || ''}`;
    drafts.delete(id);
    await afterChange();
  } catch (error) {
    for (const button of item.querySelectorAll('button')) button.disabled = false;
    if (error.status === 422 && Array.isArray(error.detail)) {
      for (const entry of error.detail) {
        const slot = byId(`appr-${id}-${fieldOf(entry)}-error`);
        if (slot) slot.textContent = detailText([entry]);
      }
    }
    item.dataset.result = `error-${error.status}`;
    status.textContent = error.message;
    if (error.status === 409 || error.status === 404) {
      drafts.delete(id); // decided elsewhere (or expired): the next refresh drops it
    }
  }
}
