// The HEARTBEAT.md editor. Saves send the sha256 of the version the text was loaded from, so a
// newer version written meanwhile (by the CLI, another tab, an editor) is never overwritten:
// the API answers 409 and the page offers to reload.

import { api } from './api.js';
import { absoluteTime, byId } from './dom.js';

let loadedSha = null; // sha256 of the version in the textarea when it was (re)loaded
let dirty = false;

export function initEditor() {
  const textarea = byId('md-content');
  textarea.addEventListener('input', () => {
    dirty = true;
    byId('md-status').textContent = 'Unsaved changes';
  });
  byId('md-save').addEventListener('click', save);
  byId('md-reload').addEventListener('click', () => reload());
  byId('md-conflict-reload').addEventListener('click', () => reload());
}

/** Poll: take the file's newest version unless the person is editing; then only flag it. */
export async function refreshEditor() {
  const doc = await api('/api/heartbeat/heartbeat.md');
  if (!dirty) {
    show(doc);
  } else if (doc.sha256 !== loadedSha && byId('md-conflict').hidden) {
    conflict('HEARTBEAT.md was changed elsewhere since you started editing. Saving would be refused; reload to get the newer version (copy your text first if you want to keep it).');
  }
}

async function reload() {
  byId('md-status').textContent = 'Reloading…';
  const doc = await api('/api/heartbeat/heartbeat.md');
  dirty = false;
  show(doc);
  byId('md-status').textContent = 'Loaded the current version';
}

function show(doc) {
  loadedSha = doc.sha256;
  const textarea = byId('md-content');
  if (textarea.value !== doc.content) textarea.value = doc.content;
  byId('md-conflict').hidden = true;
  byId('md-empty-warning').hidden = !doc.effectively_empty;
  const size = new TextEncoder().encode(doc.content).length;
  const parts = [doc.path];
  parts.push(doc.exists === false ? 'does not exist yet' : `modified ${absoluteTime(doc.last_modified)}`);
  if (doc.max_bytes) parts.push(`${size} of ${doc.max_bytes} bytes`);
  byId('md-meta').textContent = parts.join(' · ');
}

function conflict(text) {
  byId('md-conflict-text').textContent = text;
  byId('md-conflict').hidden = false;
}

async function save() {
  const status = byId('md-status');
  const button = byId('md-save');
  button.disabled = true;
  status.textContent = 'Saving…';
  try {
    const body = { content: byId('md-content').value };
    if (loadedSha) body.expected_sha256 = loadedSha;
    const doc = await api('/api/heartbeat/heartbeat.md', { method: 'POST', body });
    dirty = false;
    show(doc);
    status.textContent = `Saved at ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    if (error.status === 409) {
      status.textContent = 'Not saved';
      conflict('Not saved: HEARTBEAT.md was changed by someone else after you loaded it, and saving would overwrite their version. Reload to see it (copy your text first if you want to keep it).');
    } else {
      status.textContent = `Not saved: ${error.message}`;
    }
  } finally {
    button.disabled = false;
  }
}
