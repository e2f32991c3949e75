// How values read on screen: times, durations, states, JSON.
import { h } from './dom.js';

export function number(value) {
  return value === null || value === undefined ? '—' : Number(value).toLocaleString('en-US');
}

export function dateTime(ts) {
  if (!ts) return '—';
  const d = new Date(ts * 1000);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function ago(ts, now = Date.now() / 1000) {
  if (!ts) return '—';
  const s = Math.max(0, now - ts);
  if (s < 60) return `${Math.floor(s)}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

// A time cell: relative, with the exact time on hover.
export function when(ts) {
  return h('time', { title: dateTime(ts), datetime: ts ? new Date(ts * 1000).toISOString() : null },
    ago(ts));
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  if (seconds < 1) return `${(seconds * 1000).toFixed(seconds < 0.01 ? 2 : 0)} ms`;
  if (seconds < 60) return `${seconds.toFixed(2)} s`;
  const m = Math.floor(seconds / 60);
  return m < 60 ? `${m}m ${Math.round(seconds % 60)}s` : `${Math.floor(m / 60)}h ${m % 60}m`;
}

export function shortId(id) {
  return id && id.length > 13 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id;
}

export function stateBadge(state) {
  const text = state || 'UNKNOWN';
  return h('span', { class: `state state-${text.toLowerCase()}` }, text);
}

// Arguments and results as recorded: JSON when sent through the API, Python repr otherwise.
export function prettyValue(text) {
  if (text === null || text === undefined || text === '') return null;
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

export function errorText(error) {
  return error && error.message ? error.message : String(error);
}
