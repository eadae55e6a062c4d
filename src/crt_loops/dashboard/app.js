// The dashboard's entry point: polling, the API token prompt, and the header.
//
// Live updates are plain polling (short requests every POLL_MS, nothing held open), paused while
// the tab is hidden. Cheap views refresh on every tick; the thread list's configs (one request),
// the thread's journal and profile, HEARTBEAT.md and the Ledger's status every SLOW_EVERY ticks
// (and at once when the thread changes or a chat reply lands); the feed every FEED_EVERY ticks.
// A tick's reads other than the Ledger's come in one GET /api/dashboard/poll (see pollOnce).

import { api, dropPrefetched, getToken, onUnauthorized, prefetch, setToken } from './api.js';
import { initChat, MESSAGES_LIMIT, refreshMessages } from './chat.js';
import { initApprovals, refreshApprovals } from './approvals.js';
import { initConfig, refreshConfig, resetConfig } from './config.js';
import { byId, refreshTimes } from './dom.js';
import { initEditor, refreshEditor } from './editor.js';
import { initFeed, refreshFeed } from './feed.js';
import { JOURNAL_LIMIT, refreshJournal, refreshPersonality } from './insights.js';
import { initLoops, renderLoops } from './loops.js';
import { state } from './state.js';
import { initThreads, MAX_LISTED_CONFIGS, refreshThreads, THREADS_LIMIT } from './threads.js';
import { HISTORY_LIMIT, initTimeline, refreshTimeline } from './timeline.js';

const POLL_MS = 3000;
const SLOW_EVERY = 5;
const FEED_EVERY = 10;

let tickNo = 0;
let timer = null;
let ticking = false;
let needToken = false;
let unreachable = false;

/** Run one view's refresh; show its error in its own slot (401 and "unreachable" are global). */
async function section(slotId, refresh) {
  const slot = slotId ? byId(slotId) : null;
  try {
    await refresh();
    if (slot) slot.hidden = true;
  } catch (error) {
    if (error.status === 0) unreachable = true;
    if (error.status === 401 || error.status === 0 || !slot) return;
    slot.textContent = error.message;
    slot.hidden = false;
  }
}

async function refreshLoops() {
  const [loops, heartbeat] = await Promise.all([api('/api/loops'), api('/api/heartbeat/status')]);
  renderLoops(loops.loops, heartbeat);
  const llm = heartbeat.llm || {};
  const pill = byId('llm-status');
  const server = llm.backend === 'openai' ? 'OpenAI-compatible server' : 'Ollama';
  const missing = llm.models && llm.model && !llm.models.some((m) => m === llm.model || m === `${llm.model}:latest`);
  pill.textContent = `LLM ${llm.model || ''}: ${llm.available ? (missing ? 'model missing' : 'available') : 'unreachable'}`;
  pill.className = `pill ${llm.available && !missing ? 'pill-ok' : 'pill-warn'}`;
  const models = llm.models ? `; models: ${llm.models.join(', ') || 'none'}` : '';
  const tokens = llm.prompt_tokens ? `; ${llm.prompt_tokens} prompt / ${llm.cached_tokens || 0} cached / ${llm.completion_tokens || 0} generated tokens since start` : '';
  pill.title = llm.available
    ? `${server} at ${llm.host}${models}${tokens}`
    : `${server} at ${llm.host} is not reachable${llm.last_error ? `: ${llm.last_error}` : ''}`;
}

async function refreshLedgerStatus() {
  const pill = byId('ledger-status');
  let ledger;
  try {
    ledger = await api('/api/ledger/status');
  } catch (error) {
    if (error.status === 0 || error.status === 401) throw error;
    pill.textContent = 'Ledger: unavailable';
    pill.className = 'pill pill-warn';
    pill.title = error.message;
    return;
  }
  state.ledgerUrl = ledger.url || null;
  const where = ledger.embedded ? 'embedded' : 'remote';
  pill.textContent = `Ledger (${where}): ${ledger.reachable ? 'reachable' : 'unreachable'}`;
  pill.className = `pill ${ledger.reachable ? 'pill-ok' : 'pill-warn'}`;
  pill.title = `${ledger.url} as ${ledger.agent_name}${ledger.error ? ` (${ledger.error})` : ''}`;
}

/** The selected thread's views; ``all`` false (a fast tick) leaves out the journal and the
 * personality profile, which the thinking loops change minutes apart, not seconds. */
function threadViews(all = true) {
  const views = [
    section('chat-error', refreshMessages),
    section('hb-error', refreshConfig),
    section('timeline-error', refreshTimeline),
  ];
  if (all) {
    views.push(section('journal-error', refreshJournal), section('personality-error', refreshPersonality));
  }
  return views;
}

async function tick() {
  const slow = tickNo % SLOW_EVERY === 0;
  const feed = tickNo % FEED_EVERY === 0;
  tickNo += 1;
  unreachable = false;
  if (slow) await section(null, refreshLedgerStatus); // links in the views need its URL
  if (needToken) return; // one 401 is enough to ask; the rest would only repeat it
  await section(null, () => pollOnce(slow));
  if (needToken) return;
  const jobs = [section('loops-error', refreshLoops), section('threads-error', () => refreshThreads(slow))];
  jobs.push(section('approvals-error', refreshApprovals));
  jobs.push(...threadViews(slow));
  if (slow) jobs.push(section('md-error', refreshEditor));
  if (tickNo === 1) jobs.push(section(null, fillPickers));
  if (feed) jobs.push(section('feed-error', refreshFeed));
  await Promise.all(jobs);
  dropPrefetched();
  refreshTimes();
  showBanner(
    unreachable ? `Cannot reach the service at ${location.origin}; retrying every ${POLL_MS / 1000} s.` : '',
  );
  if (!needToken) byId('updated').textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

/** The tick's reads in one request: the views below then find their GETs' answers in hand
 * (api.js). If it fails, each view fetches its own and shows its own error, as before. */
async function pollOnce(slow) {
  const query = new URLSearchParams({
    slow: String(slow),
    threads_limit: String(THREADS_LIMIT),
    messages_limit: String(MESSAGES_LIMIT),
    history_limit: String(HISTORY_LIMIT),
    journal_limit: String(JOURNAL_LIMIT),
    configs_limit: String(MAX_LISTED_CONFIGS),
  });
  if (state.thread) query.set('thread_id', state.thread);
  const answer = await api(`/api/dashboard/poll?${query}`);
  prefetch(answer.parts);
}

/** The model and time-zone fields' suggestions: the server's models, the IANA zones. */
async function fillPickers() {
  const [models, zones] = await Promise.all([api('/api/llm/models'), api('/api/timezones')]);
  const options = (names) => names.map((name) => Object.assign(document.createElement('option'), { value: name }));
  byId('model-options').replaceChildren(...options(models.models));
  byId('cfg-model').placeholder = `service default (${models.default})`;
  byId('cfg-model').title = models.error ? `Models could not be listed: ${models.error}` : '';
  byId('timezone-options').replaceChildren(...options(zones.timezones));
}

function schedule(delay = POLL_MS) {
  clearTimeout(timer);
  timer = setTimeout(poll, delay);
}

async function poll() {
  if (document.hidden) {
    byId('updated').textContent = 'Paused while the tab is hidden';
    return; // visibilitychange starts it again
  }
  if (needToken || ticking) return;
  ticking = true;
  try {
    await tick();
  } finally {
    ticking = false;
    if (!needToken) schedule();
  }
}

function refreshNow({ full = false } = {}) {
  if (full) tickNo = 0;
  schedule(0);
}

function showBanner(text) {
  const banner = byId('banner');
  banner.textContent = text;
  banner.hidden = !text;
}

// -- the API token -------------------------------------------------------------------------

function askForToken(reason) {
  const dialog = byId('token-dialog');
  byId('token-reason').textContent = reason;
  byId('token-input').value = '';
  if (!dialog.open) dialog.showModal();
  byId('token-input').focus();
}

function initToken() {
  onUnauthorized(() => {
    if (needToken) return;
    needToken = true;
    clearTimeout(timer);
    byId('updated').textContent = 'Waiting for the API token';
    askForToken(
      getToken()
        ? 'The stored API token was rejected: enter the current CRT_API_TOKEN.'
        : 'This service has CRT_API_TOKEN set: enter the token to continue.',
    );
  });
  byId('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = byId('token-input').value.trim();
    if (!token) {
      byId('token-reason').textContent = 'Enter a token (or close this and set none).';
      return;
    }
    setToken(token);
    byId('token-dialog').close();
    needToken = false;
    refreshNow({ full: true });
  });
  byId('token-forget').addEventListener('click', () => {
    setToken('');
    byId('token-input').value = '';
    byId('token-reason').textContent = 'The stored token was removed from this browser.';
  });
  byId('token-cancel').addEventListener('click', () => byId('token-dialog').close());
  byId('token-button').addEventListener('click', () =>
    askForToken(
      getToken()
        ? 'A token is stored in this browser. Enter a new one to replace it.'
        : 'No token is stored. Enter one if this service has CRT_API_TOKEN set.',
    ),
  );
  byId('token-dialog').addEventListener('close', () => {
    if (needToken) showBanner('The API needs a token: use the “API token” button above.');
  });
}

// -- start ---------------------------------------------------------------------------------

function onThreadSelected() {
  resetConfig();
  for (const id of ['messages', 'timeline', 'journal', 'personality']) delete byId(id).dataset.signature;
  return Promise.all(threadViews());
}

initToken();
initLoops({ onChange: () => section('loops-error', refreshLoops) });
initThreads({ onSelected: onThreadSelected });
initConfig({
  onChanged: async ({ ran = false } = {}) => {
    const jobs = [...threadViews(), section('threads-error', () => refreshThreads(true))];
    if (ran) {
      jobs.push(section('feed-error', () => refreshFeed({ fresh: true })));
      jobs.push(section('loops-error', refreshLoops));
    }
    await Promise.all(jobs);
    refreshTimes();
  },
});
initFeed({ onRefresh: () => section('feed-error', () => refreshFeed({ fresh: true })) });
initChat({ onChange: () => Promise.all(threadViews()) });
initTimeline({ onChange: () => section('timeline-error', refreshTimeline) });
initApprovals({
  onChanged: async () => {
    await Promise.all([
      section('approvals-error', refreshApprovals),
      section('timeline-error', refreshTimeline),
      section('feed-error', () => refreshFeed({ fresh: true })),
    ]);
    refreshTimes();
  },
});
initEditor();
document.addEventListener('visibilitychange', () => {
  if (!document.hidden) refreshNow();
});
refreshNow({ full: true });
