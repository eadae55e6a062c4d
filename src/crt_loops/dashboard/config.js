// The selected thread's heartbeat: its last run and schedule, run-now and dry-run, and the config
// form. The form sends only the fields a person changed (the API's update is partial), shows the
// API's 422 messages next to their fields, and is never overwritten by polling while edited.

import { api, cleanMessage, detailText, fieldOf } from './api.js';
import { badge, byId, formatDuration, h, timeEl } from './dom.js';
import { state } from './state.js';

const CHECKS = ['enabled', 'dry_run', 'skip_when_unchanged'];
const NULLABLE = ['model', 'timezone', 'active_hours_start', 'active_hours_end'];
const NUMBERS = ['max_tokens', 'temperature', 'max_actions'];
const TEXTS = ['target', 'submolt'];
const FIELDS = [...CHECKS, 'every_seconds', ...NULLABLE, ...NUMBERS, ...TEXTS];

let loaded = null; // the config the form was last filled from
let loadedThread = null;
let dirty = false;
let afterChange = async () => {};

const input = (name) => byId(`cfg-${name}`);

export function initConfig({ onChanged }) {
  afterChange = onChanged;
  const form = byId('config-form');
  form.addEventListener('input', () => {
    dirty = true;
    byId('config-status').textContent = 'Unsaved changes';
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    save();
  });
  byId('cfg-discard').addEventListener('click', () => {
    dirty = false;
    clearErrors();
    if (loaded) fill(loaded);
    byId('config-status').textContent = '';
  });
  byId('run-now').addEventListener('click', () => runNow(false));
  byId('dry-run').addEventListener('click', () => runNow(true));
}

/** A different thread was selected: forget the edit in progress. */
export function resetConfig() {
  dirty = false;
  loaded = null;
  loadedThread = null;
  clearErrors();
  byId('config-status').textContent = '';
  byId('run-status').textContent = '';
}

export async function refreshConfig() {
  const thread = state.thread;
  const view = await api(`/api/threads/${encodeURIComponent(thread)}/heartbeat/config`);
  if (thread !== state.thread) return;
  state.configs.set(thread, view);
  render(view);
}

function render(view) {
  byId('hb-thread').textContent = view.thread_id;
  const summary = [
    ['Last outcome', view.last_outcome ? [badge(view.last_outcome), ' ', view.last_reason || ''] : 'no run yet'],
    ['Last run', timeEl(view.last_run)],
    ['Next due', view.config.enabled ? timeEl(view.next_due_at) : 'not scheduled (disabled)'],
    ['Failures in a row', String(view.consecutive_failures ?? 0)],
  ];
  if (view.last_summary) summary.push(['Last summary', h('span', { class: 'untrusted' }, view.last_summary)]);
  byId('hb-summary').replaceChildren(
    ...summary.flatMap(([label, value]) => [h('dt', {}, label), h('dd', {}, value)]),
  );
  const changedThread = loadedThread !== view.thread_id;
  if (changedThread || (!dirty && JSON.stringify(view.config) !== JSON.stringify(loaded))) {
    loadedThread = view.thread_id;
    fill(view.config);
  }
}

function fill(config) {
  loaded = config;
  for (const name of CHECKS) input(name).checked = Boolean(config[name]);
  input('every_seconds').value = formatDuration(config.every_seconds);
  for (const name of [...NULLABLE, ...NUMBERS, ...TEXTS]) {
    input(name).value = config[name] === null || config[name] === undefined ? '' : String(config[name]);
  }
}

function formValue(name) {
  const el = input(name);
  if (CHECKS.includes(name)) return el.checked;
  const text = el.value.trim();
  if (NULLABLE.includes(name)) return text === '' ? null : text;
  if (NUMBERS.includes(name)) {
    // A number field reads "" for anything it cannot parse; send the raw text (or null) so the
    // API's own message, not a silent default, tells the person what is wrong.
    if (text === '') return el.validity.badInput ? 'not a number' : null;
    return Number.isFinite(Number(text)) ? Number(text) : text;
  }
  return text;
}

function changedFields() {
  const patch = {};
  for (const name of FIELDS) {
    const value = formValue(name);
    const before = loaded ? loaded[name] : undefined;
    if (name === 'every_seconds') {
      if (value !== formatDuration(before) && value !== String(before)) patch[name] = value;
    } else if (value !== before) {
      patch[name] = value;
    }
  }
  return patch;
}

function clearErrors() {
  for (const name of FIELDS) {
    byId(`cfg-${name}-error`).textContent = '';
    input(name).removeAttribute('aria-invalid');
  }
  const formError = byId('config-error');
  formError.hidden = true;
  formError.textContent = '';
}

function showErrors(detail) {
  const general = [];
  if (Array.isArray(detail)) {
    for (const item of detail) {
      const name = fieldOf(item);
      const slot = FIELDS.includes(name) ? byId(`cfg-${name}-error`) : null;
      if (slot) {
        slot.textContent = [slot.textContent, cleanMessage(item.msg)].filter(Boolean).join(' ');
        input(name).setAttribute('aria-invalid', 'true');
      } else {
        general.push(detailText([item]));
      }
    }
  } else {
    general.push(detailText(detail));
  }
  if (general.length) {
    const formError = byId('config-error');
    formError.textContent = general.join(' ');
    formError.hidden = false;
  }
  const first = byId('config-form').querySelector('[aria-invalid="true"]');
  if (first) first.focus();
}

async function save() {
  const thread = state.thread;
  const patch = changedFields();
  clearErrors();
  const status = byId('config-status');
  if (!Object.keys(patch).length) {
    dirty = false;
    status.textContent = 'Nothing changed';
    return;
  }
  const button = byId('cfg-save');
  button.disabled = true;
  status.textContent = 'Saving…';
  try {
    const view = await api(`/api/threads/${encodeURIComponent(thread)}/heartbeat/config`, {
      method: 'POST',
      body: patch,
    });
    dirty = false;
    status.textContent = `Saved at ${new Date().toLocaleTimeString()}`;
    if (thread === state.thread) {
      state.configs.set(thread, view);
      fill(view.config);
      render(view);
    }
    await afterChange();
  } catch (error) {
    if (error.status === 422) {
      status.textContent = 'Not saved: fix the marked fields';
      showErrors(error.detail);
    } else if (error.status !== 401) {
      status.textContent = `Not saved: ${error.message}`;
    } else {
      status.textContent = 'Not saved: the API token is needed';
    }
  } finally {
    button.disabled = false;
  }
}

async function runNow(dryRun) {
  const thread = state.thread;
  const status = byId('run-status');
  const buttons = [byId('run-now'), byId('dry-run')];
  for (const b of buttons) b.disabled = true;
  status.replaceChildren(dryRun ? 'Dry run in progress…' : 'Heartbeat run in progress…');
  try {
    const path = `/api/threads/${encodeURIComponent(thread)}/heartbeat/run-now`;
    const run = await api(dryRun ? `${path}?dry_run=true` : path, { method: 'POST' });
    const count = run.actions.length;
    status.replaceChildren(
      `${dryRun ? 'Dry run' : 'Run'} finished: `,
      badge(run.outcome),
      run.reason ? ` ${run.reason}` : '',
      ` · ${count} action${count === 1 ? '' : 's'}`,
    );
  } catch (error) {
    const message =
      error.status === 409
        ? 'A heartbeat run for this thread is already in progress; try again when it ends.'
        : `Run failed to start: ${error.message}`;
    status.replaceChildren(message);
  } finally {
    for (const b of buttons) b.disabled = false;
  }
  await afterChange({ ran: true });
}
