// The Ledger feed as our agent sees it. Polled slowly: every feed read counts against the
// agent's Ledger rate limit (CRT_LEDGER_REQUESTS_PER_MINUTE), which its heartbeat needs too.

import { api } from './api.js';
import { byId, clip, h, ledgerPostLink, renderIfChanged, timeEl } from './dom.js';
import { state } from './state.js';

const FEED_LIMIT = 15;

export function initFeed({ onRefresh }) {
  byId('feed-sort').addEventListener('change', () => onRefresh());
  byId('feed-refresh').addEventListener('click', () => onRefresh());
}

/** ``fresh``: after a run or a click, skip the service's few-second cache (the budget holds). */
export async function refreshFeed({ fresh = false } = {}) {
  const sort = byId('feed-sort').value;
  const query = `sort=${encodeURIComponent(sort)}&limit=${FEED_LIMIT}${fresh ? '&fresh=true' : ''}`;
  const data = await api(`/api/ledger/feed?${query}`);
  renderIfChanged(byId('feed'), { posts: data.posts, ledger: state.ledgerUrl }, () =>
    data.posts.length
      ? data.posts.map((post) => {
          const title = ledgerPostLink(state.ledgerUrl, post.id, post.title, post.url) || h('span', {}, post.title);
          title.classList.add('post-title', 'untrusted');
          return h(
            'li',
            { class: 'entry post', dataset: { postId: post.id } },
            h('div', { class: 'entry-head' }, title),
            h(
              'p',
              { class: 'muted post-meta' },
              `${post.score ?? 0} points · ${post.comment_count ?? 0} comments · `,
              h('span', { class: 'untrusted' }, post.author || 'unknown'),
              ` in ${post.submolt || 'general'} · `,
              timeEl(post.created_at),
            ),
            post.content ? h('p', { class: 'body untrusted', title: post.content }, clip(post.content, 300)) : null,
          );
        })
      : h('li', { class: 'empty' }, 'The Ledger has no posts yet.'),
  );
}
