// Overview: what happened in the last hour and day, throughput and failure rate, workers online,
// queue depths, stuck tasks — each figure a link into the filtered task list.
import { get } from '../api.js';
import { h, replace } from '../dom.js';
import { sparkline, stackedBar } from '../charts.js';
import { STUCK_AFTER_SECONDS } from '../facts.js';
import { number } from '../format.js';
import { refreshing } from '../refresh.js';

const KINDS = ['SENT', 'RECEIVED', 'STARTED', 'SUCCESS', 'FAILURE', 'RETRY', 'REVOKED', 'REJECTED'];
const REFRESH_MS = 10000;

function sums(history) {
  const total = {};
  for (const bucket of history.buckets) {
    for (const [kind, n] of Object.entries(bucket.counts)) total[kind] = (total[kind] || 0) + n;
  }
  return total;
}

function series(history, pick) {
  return history.buckets.map((b) => pick(b.counts));
}

function card(title, ...body) {
  return h('section', { class: 'card' }, h('h2', {}, title), ...body);
}

function tasksLink(query, text) {
  return h('a', { href: `/ui/tasks?${new URLSearchParams(query)}` }, text);
}

async function stuckCount(state) {
  const until = (Date.now() / 1000 - STUCK_AFTER_SECONDS).toFixed(3);
  const count = await get('/tasks/count', { state, until });
  return { state, until, count: count.count };
}

async function render(root) {
  const now = Date.now() / 1000;
  const [stats, minutes, hours, workers, queues, stuck] = await Promise.all([
    get('/stats'),
    get('/history', { granularity: 'minute', since: (now - 59 * 60).toFixed(0) }),
    get('/history', { granularity: 'hour', since: (now - 23 * 3600).toFixed(0) }),
    get('/workers'),
    get('/queues'),
    Promise.all(['STARTED', 'RECEIVED'].map(stuckCount)),
  ]);
  const hour = sums(minutes);
  const day = sums(hours);
  const done = (c) => (c.SUCCESS || 0) + (c.FAILURE || 0);
  const throughput = series(minutes, done);
  const failureRate = series(minutes, (c) => (done(c) ? (c.FAILURE || 0) / done(c) : 0));
  const alive = workers.filter((w) => w.alive);
  replace(root,
    h('div', { class: 'page-head' }, h('h1', {}, 'Overview'),
      h('span', { class: 'muted' }, `${number(stats.tasks_stored)} tasks stored`)),
    h('div', { class: 'cards' },
      card('Last hour / last 24 h',
        h('table', { class: 'compact', 'data-testid': 'by-kind' },
          h('thead', {}, h('tr', {}, h('th', {}, 'events'), h('th', {}, '1 h'), h('th', {}, '24 h'))),
          h('tbody', {}, KINDS.map((kind) => h('tr', {},
            h('td', {}, kind),
            h('td', { class: 'num' }, kind === 'SENT' ? number(hour[kind] || 0)
              : tasksLink({ state: kind, window: '1h' }, number(hour[kind] || 0))),
            h('td', { class: 'num' }, kind === 'SENT' ? number(day[kind] || 0)
              : tasksLink({ state: kind, window: '24h' }, number(day[kind] || 0)))))))),
      card('Throughput (finished per minute, last hour)',
        sparkline(throughput, { label: 'tasks finished per minute', cls: 'ok' }),
        h('p', { class: 'muted' }, `${number(done(hour))} finished, peak ${number(Math.max(0, ...throughput))}/min`)),
      card('Failure rate (per minute, last hour)',
        sparkline(failureRate, { label: 'share of finished tasks that failed', cls: 'bad' }),
        h('p', { class: 'muted' }, done(hour)
          ? `${((100 * (hour.FAILURE || 0)) / done(hour)).toFixed(1)}% of ${number(done(hour))} failed`
          : 'nothing finished'),
        tasksLink({ state: 'FAILURE', window: '1h' }, 'failures of the last hour »')),
      card('Tasks by state (all stored)',
        stackedBar(stats.by_state),
        h('ul', { class: 'plain states' }, Object.entries(stats.by_state).filter(([, n]) => n)
          .map(([state, n]) => h('li', {}, tasksLink({ state }, `${state} ${number(n)}`))))),
      card('Workers',
        h('p', { class: 'big' }, h('a', { href: '/ui/workers' },
          `${alive.length} of ${workers.length} online`)),
        h('ul', { class: 'plain' }, alive.map((w) => h('li', {},
          tasksLink({ worker: w.hostname }, w.hostname), ` · ${number(w.active || 0)} active`)))),
      card('Queues',
        h('table', { class: 'compact' }, h('tbody', {}, queues.map((q) => h('tr', {},
          h('td', {}, tasksLink({ queue: q.name }, q.name)),
          h('td', { class: 'num' }, q.length === undefined ? '—' : number(q.length))))))),
      card(`Stuck (running for more than ${Math.round(STUCK_AFTER_SECONDS / 60)} min)`,
        h('ul', { class: 'plain' }, stuck.map((s) => h('li', { 'data-stuck': s.state },
          tasksLink({ state: s.state, until: s.until }, `${number(s.count)} ${s.state}`)))))));
}

export function mount(root) {
  return refreshing(root, render, REFRESH_MS);
}
