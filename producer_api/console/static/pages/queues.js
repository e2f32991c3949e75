// Broker queues: messages waiting (all priorities together, as the collector polls them), and
// who consumes them.
import { get } from '../api.js';
import { h, replace } from '../dom.js';
import { ago, dateTime, errorText, number } from '../format.js';

const REFRESH_MS = 5000;

async function render(root) {
  const queues = await get('/queues');
  replace(root,
    h('div', { class: 'page-head' }, h('h1', {}, 'Queues')),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Queue', 'Waiting', 'Consumers', 'Workers', 'Processes',
        'Polled'].map((c) => h('th', {}, c)))),
      h('tbody', {}, queues.map((q) => h('tr', { 'data-queue': q.name },
        h('td', {}, h('a', { href: `/ui/tasks?queue=${encodeURIComponent(q.name)}` }, q.name)),
        h('td', { class: 'num' }, number(q.length)),
        h('td', { class: 'num' }, number(q.consumers)),
        h('td', { class: 'num' }, number(q.workers)),
        h('td', { class: 'num' }, number(q.processes)),
        h('td', { title: dateTime(q.updated) }, ago(q.updated))))))),
    h('p', { class: 'muted small' }, 'Waiting counts every priority of a queue together: the API '
      + 'does not report them per priority yet.'));
}

export async function mount(root) {
  const refresh = () => render(root).catch((error) => {
    if (error.status !== 401) replace(root, h('p', { class: 'error' }, errorText(error)));
  });
  await refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  return { leave: () => clearInterval(timer) };
}
