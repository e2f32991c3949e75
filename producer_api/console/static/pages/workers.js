// Workers as last seen: alive or not, load, what they run; each links to its tasks.
import { get } from '../api.js';
import { h, replace } from '../dom.js';
import { ago, dateTime, errorText, number } from '../format.js';

const REFRESH_MS = 5000;

function row(w) {
  return h('tr', { 'data-worker': w.hostname, 'data-alive': String(w.alive) },
    h('td', {}, h('span', { class: `dot ${w.alive ? 'on' : 'off'}` }), w.alive ? 'online' : 'offline'),
    h('td', {}, h('a', { href: `/ui/tasks?worker=${encodeURIComponent(w.hostname)}` }, w.hostname)),
    h('td', { class: 'num' }, number(w.active)),
    h('td', { class: 'num' }, number(w.processed)),
    h('td', { class: 'num' }, (w.loadavg || []).map((l) => l.toFixed(2)).join(' ')),
    h('td', { title: dateTime(w.last_heartbeat) }, ago(w.last_heartbeat)),
    h('td', {}, [w.sw_ident, w.sw_ver].filter(Boolean).join(' ')),
    h('td', { class: 'num' }, w.pid || ''));
}

async function render(root) {
  const workers = await get('/workers');
  replace(root,
    h('div', { class: 'page-head' }, h('h1', {}, 'Workers'),
      h('span', { class: 'muted' }, `${workers.filter((w) => w.alive).length} online`)),
    workers.length ? h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['', 'Hostname', 'Active', 'Processed', 'Load', 'Heartbeat',
        'Software', 'PID'].map((c) => h('th', {}, c)))),
      h('tbody', {}, workers.map(row))))
      : h('p', { class: 'muted' }, 'No worker has been seen yet.'));
}

export async function mount(root) {
  const refresh = () => render(root).catch((error) => {
    if (error.status !== 401) replace(root, h('p', { class: 'error' }, errorText(error)));
  });
  await refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  return { leave: () => clearInterval(timer) };
}
