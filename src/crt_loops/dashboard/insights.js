// What the loops made of the selected thread: its journal and its personality profile.

import { api } from './api.js';
import { badge, byId, clip, h, renderIfChanged, timeEl } from './dom.js';
import { state } from './state.js';

export const JOURNAL_LIMIT = 10;
const PROFILE_FIELDS = ['verbosity', 'formality', 'tone', 'emoji', 'formatting'];

export async function refreshJournal() {
  const thread = state.thread;
  const data = await api(`/api/threads/${encodeURIComponent(thread)}/journal?limit=${JOURNAL_LIMIT}`);
  if (thread !== state.thread) return;
  renderIfChanged(byId('journal'), { thread, entries: data.entries }, () =>
    data.entries.length
      ? data.entries.map((entry) =>
          h(
            'li',
            { class: 'entry', dataset: { entryId: String(entry.id) } },
            h(
              'div',
              { class: 'entry-head' },
              badge(entry.entry_type, 'info'),
              h('strong', { class: 'untrusted' }, entry.title),
              h('span', { class: 'spacer' }),
              timeEl(entry.created_at),
            ),
            entry.reply_to ? h('p', { class: 'muted' }, `in reply to entry #${entry.reply_to}`) : null,
            h('p', { class: 'body untrusted', title: entry.body }, clip(entry.body, 600)),
          ),
        )
      : h('li', { class: 'empty' }, 'No journal entries yet: the loops write them as the thread grows.'),
  );
}

export async function refreshPersonality() {
  const thread = state.thread;
  const data = await api(`/api/threads/${encodeURIComponent(thread)}/personality`);
  if (thread !== state.thread) return;
  renderIfChanged(byId('personality'), data, () => {
    if (!data.profile) {
      return h('p', { class: 'empty' }, 'No profile yet: it appears after the person’s first messages.');
    }
    const facts = PROFILE_FIELDS.filter((name) => data.profile[name] !== undefined).flatMap(
      (name) => [h('dt', {}, name), h('dd', {}, String(data.profile[name]))],
    );
    facts.push(
      h('dt', {}, 'interests'),
      h('dd', { class: 'untrusted' }, data.profile.interests?.length ? data.profile.interests.join(', ') : '—'),
      h('dt', {}, 'messages seen'),
      h('dd', {}, String(data.profile.messages_seen ?? 0)),
    );
    return [
      h('p', { class: 'muted' }, `Version ${data.version}, updated `, timeEl(data.updated_at)),
      h('dl', { class: 'facts' }, facts),
      data.style_instructions
        ? h('p', { class: 'style untrusted' }, data.style_instructions)
        : null,
      data.history?.length
        ? h(
            'details',
            {},
            h('summary', {}, `Recent changes (${data.history.length})`),
            h(
              'ul',
              { class: 'changes' },
              data.history.map((change) =>
                h('li', {}, timeEl(change.created_at), ' ', h('span', { class: 'untrusted' }, change.reason || '')),
              ),
            ),
          )
        : null,
    ];
  });
}
