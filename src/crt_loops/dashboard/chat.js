// Chat with the agent in the selected thread: its messages with their importance scores, and a
// box to write. The person's message shows at once; the reply is streamed (the chat API's stream
// mode) and grows in place while the model writes it, after a visible "thinking" line until its
// first words arrive and a status line that says how long it has been.

import { api, apiStream, detailText } from './api.js';
import { byId, clip, h, renderIfChanged, timeEl } from './dom.js';
import { state } from './state.js';

export const MESSAGES_LIMIT = 30;
let sending = null; // {thread, text, since, partial} while a reply is awaited
let onSent = () => {};

export function initChat({ onChange }) {
  onSent = onChange;
  byId('chat-form').addEventListener('submit', (event) => {
    event.preventDefault();
    send();
  });
  byId('chat-input').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey) {
      event.preventDefault();
      send();
    }
  });
}

export async function refreshMessages() {
  const thread = state.thread;
  byId('chat-thread').textContent = thread;
  let data;
  try {
    data = await api(`/api/threads/${encodeURIComponent(thread)}/messages?limit=${MESSAGES_LIMIT}&newest=true`);
  } catch (error) {
    if (error.status !== 404) throw error;
    data = { messages: [] }; // a thread with no messages yet
  }
  if (thread !== state.thread) return;
  const waiting = sending && sending.thread === thread ? sending : null;
  renderIfChanged(byId('messages'), { thread, messages: data.messages, waiting: waiting?.text }, () => {
    const items = data.messages.map(messageItem);
    if (waiting) items.push(pendingItem(waiting.partial));
    return items.length ? items : h('li', { class: 'empty' }, 'No messages yet: say hello below.');
  });
  const list = byId('messages');
  list.scrollTop = list.scrollHeight;
}

function pendingItem(partial) {
  // The model's words so far are untrusted text like every reply: text nodes only.
  return h('li', { class: 'message message-pending', dataset: { role: 'assistant' } },
    h('span', { class: 'spinner', 'aria-hidden': 'true' }),
    partial
      ? h('p', { class: 'body untrusted', id: 'chat-partial' }, partial)
      : h('span', { class: 'muted', id: 'chat-waiting' }, 'The agent is thinking…'));
}

function showPartial(piece) {
  if (!sending) return;
  sending.partial = (sending.partial || '') + piece;
  const pending = document.querySelector('#messages .message-pending');
  if (!pending || sending.thread !== state.thread) return;
  pending.replaceWith(pendingItem(sending.partial));
  const list = byId('messages');
  list.scrollTop = list.scrollHeight;
}

function messageItem(message) {
  const score = message.importance;
  const scored = score === null || score === undefined
    ? h('span', { class: 'importance muted', title: 'not scored yet (the reflection loop scores new messages)' }, 'unscored')
    : h('span', { class: `importance importance-${score >= 7 ? 'high' : score >= 4 ? 'mid' : 'low'}`, title: message.importance_reason || `scored by ${message.scored_by}` }, `importance ${score}/10`);
  return h(
    'li',
    { class: `message message-${message.role}`, dataset: { role: message.role, messageId: String(message.id) } },
    h('div', { class: 'message-head' }, h('strong', {}, message.role === 'user' ? 'You' : 'Agent'), scored, h('span', { class: 'spacer' }), timeEl(message.created_at)),
    h('p', { class: message.role === 'user' ? 'body' : 'body untrusted', title: message.content }, clip(message.content, 2000)),
  );
}

async function send() {
  const input = byId('chat-input');
  const text = input.value.trim();
  if (!text || sending) return;
  const thread = state.thread;
  const status = byId('chat-status');
  const button = byId('chat-send');
  sending = { thread, text, since: Date.now() };
  button.disabled = true;
  input.value = '';
  status.textContent = 'Waiting for the reply…';
  const clock = setInterval(() => {
    const seconds = Math.round((Date.now() - sending.since) / 1000);
    status.textContent = `Waiting for the reply… ${seconds} s`;
  }, 1000);
  try {
    await refreshMessages().catch(() => {});
    const reply = await apiStream(
      `/api/threads/${encodeURIComponent(thread)}/chat`,
      { message: text, stream: true },
      showPartial,
    );
    status.textContent = `Answered in ${(reply.duration_ms / 1000).toFixed(1)} s by ${reply.model}.`;
  } catch (error) {
    // 503: the LLM is not reachable; the service kept the message (the detail says so).
    status.textContent = `Not answered: ${detailText(error.detail) || error.message}`;
  } finally {
    clearInterval(clock);
    sending = null;
    button.disabled = false;
    await refreshMessages().catch(() => {});
    onSent();
  }
}
