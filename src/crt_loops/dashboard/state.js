// Page state shared by the views. One selected thread at a time; the hash keeps it across reloads.

const fromHash = new URLSearchParams(location.hash.slice(1)).get('thread');

export const state = {
  thread: fromHash && /^[A-Za-z0-9_-]{1,64}$/.test(fromHash) ? fromHash : 'default',
  ledgerUrl: null, // from GET /api/ledger/status; Ledger post links need it
  configs: new Map(), // thread_id -> GET .../heartbeat/config view
};

export function selectThread(threadId) {
  state.thread = threadId;
  history.replaceState(null, '', `#thread=${encodeURIComponent(threadId)}`);
}
