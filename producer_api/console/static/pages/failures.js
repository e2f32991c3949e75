// Failures by group: the same exception type and message once ids and numbers are masked.
// Each group links to its tasks (filtered by fingerprint), where they can be retried in bulk.
import { get } from '../api.js';
import { sparkline } from '../charts.js';
import { h, replace } from '../dom.js';
import { ago, dateTime, errorText, number } from '../format.js';

const REFRESH_MS = 10000;

function row(g) {
  const tasks = `/ui/tasks?fingerprint=${encodeURIComponent(g.fingerprint)}`;
  return h('tr', { 'data-fingerprint': g.fingerprint, 'data-count': String(g.count) },
    h('td', { class: 'exc' }, h('a', { href: tasks }, g.exception)),
    h('td', { class: 'exc', title: g.message }, g.message),
    h('td', { class: 'num' }, h('a', { href: tasks, 'data-tasks': '' }, number(g.count))),
    h('td', { class: 'nowrap', title: dateTime(g.last_seen) }, ago(g.last_seen)),
    h('td', { class: 'nowrap', title: dateTime(g.first_seen) }, ago(g.first_seen)),
    h('td', {}, sparkline(g.hourly, { width: 120, height: 24, cls: 'bad',
      label: `failures per hour, last 24 h: ${g.hourly.join(' ')}` })),
    h('td', {}, (g.names || []).map((n) => h('a', {
      href: `/ui/tasks?fingerprint=${encodeURIComponent(g.fingerprint)}&name=${encodeURIComponent(n)}`,
      class: 'tag' }, n))),
    h('td', { class: 'mono' }, g.example_id
      ? h('a', { href: `/ui/tasks/${encodeURIComponent(g.example_id)}` }, 'example') : ''));
}

async function render(root, query) {
  const page = await get('/failures', { limit: 50, cursor: query.get('cursor') });
  const older = page.next_cursor ? `/ui/failures?cursor=${encodeURIComponent(page.next_cursor)}`
    : null;
  replace(root,
    h('div', { class: 'page-head' }, h('h1', {}, 'Failures'),
      h('span', { class: 'muted' }, 'grouped by exception and message (ids, numbers and quoted '
        + 'text masked), most recently seen first')),
    page.items.length ? h('div', { class: 'table-wrap' }, h('table', { 'data-testid': 'failures' },
      h('thead', {}, h('tr', {}, ['Exception', 'Message', 'Failures', 'Last seen', 'First seen',
        'Last 24 h', 'Tasks', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, page.items.map(row))))
      : h('p', { class: 'muted' }, 'No failure recorded.'),
    h('nav', { class: 'pager' },
      query.get('cursor') ? h('a', { href: '/ui/failures' }, '« newest') : null,
      older ? h('a', { href: older, 'data-page': 'older' }, 'older »') : null));
}

export async function mount(root, ctx) {
  let query = ctx.query;
  const refresh = () => render(root, query).catch((error) => {
    if (error.status !== 401) replace(root, h('p', { class: 'error' }, errorText(error)));
  });
  await refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  return {
    update: (next) => { query = next.query; return refresh(); },
    leave: () => clearInterval(timer),
  };
}
