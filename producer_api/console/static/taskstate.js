// Folding live events into a task row, by store.lua's rule so the live view agrees with the
// store: a final state (SUCCESS > FAILURE > REVOKED) beats any worker state, which beats PENDING;
// among worker states the latest event wins. The next load shows the store's own answer anyway.
import { EVENT_STATES, STATES } from './facts.js';

const FINAL = new Set(['SUCCESS', 'FAILURE', 'REVOKED']);
const rank = (state) => (FINAL.has(state) ? 2 : state === 'PENDING' || !state ? 0 : 1);

function wins(current, at, state, timestamp) {
  const a = rank(state);
  const b = rank(current);
  if (a !== b) return a > b;
  if (a === 2) return STATES.indexOf(state) <= STATES.indexOf(current);
  return timestamp >= (at || 0);
}

// Apply one event (as /api/v1/events sends it) to ``task`` (a /tasks row); true if it changed.
export function fold(task, event) {
  const kind = EVENT_STATES[event.type];
  if (event.name && !task.name) task.name = event.name;
  if (event.queue && !task.queue) task.queue = event.queue;
  if (task.first_seen === undefined || event.timestamp < task.first_seen) {
    task.first_seen = event.timestamp;
  }
  task.updated = Math.max(task.updated || 0, event.timestamp);
  if (event.progress_current !== undefined) {
    task.progress = { current: event.progress_current, total: event.progress_total };
  }
  if (!kind) return true;
  const state = kind === 'SENT' ? 'PENDING' : kind;
  if (wins(task.state, task.state_at, state, event.timestamp)) {
    task.state = state;
    task.state_at = event.timestamp;
    if (state !== 'PENDING' && event.hostname) task.worker = event.hostname;
  }
  if (event.runtime !== undefined && event.runtime !== null) task.runtime = event.runtime;
  if (event.exception) task.exception = event.exception;
  if (event.retries) task.retries = event.retries;
  return true;
}
