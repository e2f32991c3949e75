// Workers as last seen: alive or not, load, what they run; each links to its tasks. Admins also
// control them by Celery's remote control (pool, consumers, shutdown): what each worker answered,
// and which did not answer, is shown under the controls.
import { api, cached, get } from '../api.js';
import { confirmButton, h, replace, toast } from '../dom.js';
import { ago, dateTime, errorText, number } from '../format.js';
import { refreshing } from '../refresh.js';
import { can } from '../roles.js';

const ALL = '*';

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

// Per-worker answers of a control command (``{"workers": {...}, "no_reply": [...]}``).
function replies(result) {
  const rows = Object.entries(result.workers).map(([host, reply]) => h('tr', {
    'data-reply-worker': host, 'data-result': reply.error ? 'error' : 'ok' },
  h('td', {}, host), h('td', { class: reply.error ? 'error' : '' }, reply.error || reply.ok)));
  return h('div', {},
    rows.length ? h('table', { class: 'compact' }, h('tbody', {}, rows))
      : h('p', { class: 'muted' }, 'No worker answered.'),
    result.no_reply.length ? h('p', { class: 'error', 'data-testid': 'no-reply' },
      `No reply from ${result.no_reply.join(', ')}`) : null);
}

class Controls {
  constructor(queues) {
    this.target = h('select', { name: 'worker' });
    this.result = h('div', { 'data-testid': 'control-result' });
    this.count = h('input', { name: 'n', type: 'number', min: 1, max: 1000, value: 1 });
    this.max = h('input', { name: 'max', type: 'number', min: 1, max: 1000, placeholder: 'max' });
    this.min = h('input', { name: 'min', type: 'number', min: 0, max: 1000, placeholder: 'min' });
    this.queue = h('select', { name: 'queue' }, queues.map((q) => h('option', { value: q }, q)));
    this.setWorkers([]);
  }

  setWorkers(hostnames) {
    const chosen = this.target.value || ALL;
    replace(this.target, h('option', { value: ALL }, 'every worker (*)'),
      hostnames.map((name) => h('option', { value: name }, name)));
    this.target.value = [ALL, ...hostnames].includes(chosen) ? chosen : ALL;
  }

  async send(action, body, done) {
    const who = this.target.value;
    try {
      const result = await api('POST', `/workers/${encodeURIComponent(who)}/${action}`, body);
      replace(this.result, h('h2', {}, `${done} — ${who === ALL ? 'every worker' : who}`),
        replies(result));
    } catch (error) { toast(errorText(error), 'error'); }
  }

  element() {
    const n = () => Number(this.count.value);
    const poolButton = (label, key, done) => h('button', { type: 'button', 'data-action': key,
      onclick: () => this.send('pool', { [key]: n() }, done) }, label);
    const shutdown = confirmButton('Shut down', 'Click again: shut down', () => this.send(
      'shutdown', undefined, 'Shutdown'));
    shutdown.dataset.action = 'shutdown';
    return h('section', { class: 'block fleet-controls', 'data-testid': 'worker-controls' },
      h('h2', {}, 'Control'),
      h('div', { class: 'inline-form' }, h('label', {}, 'Worker', this.target)),
      h('div', { class: 'inline-form' }, h('label', {}, 'Processes', this.count),
        poolButton('Grow pool', 'grow', 'Pool grown'),
        poolButton('Shrink pool', 'shrink', 'Pool shrunk'),
        h('label', {}, 'Autoscale max', this.max), h('label', {}, 'min', this.min),
        h('button', { type: 'button', 'data-action': 'autoscale', onclick: () => this.send(
          'pool', { autoscale: { max: Number(this.max.value), min: Number(this.min.value || 0) } },
          'Autoscale set') }, 'Set autoscale'),
        h('button', { type: 'button', 'data-action': 'restart',
          onclick: () => this.send('pool', { restart: true }, 'Pool restarting') }, 'Restart pool')),
      h('div', { class: 'inline-form' }, h('label', {}, 'Queue', this.queue),
        h('button', { type: 'button', 'data-action': 'add-consumer',
          onclick: () => this.send('consumers', { add: this.queue.value }, 'Consumer added') },
        'Add consumer'),
        h('button', { type: 'button', 'data-action': 'cancel-consumer',
          onclick: () => this.send('consumers', { cancel: this.queue.value }, 'Consumer cancelled') },
        'Cancel consumer'),
        shutdown),
      this.result);
  }
}

async function renderTable(holder, controls) {
  const workers = await get('/workers');
  if (controls) controls.setWorkers(workers.filter((w) => w.alive).map((w) => w.hostname));
  replace(holder,
    h('div', { class: 'page-head' }, h('h1', {}, 'Workers'),
      h('span', { class: 'muted' }, `${workers.filter((w) => w.alive).length} online`)),
    workers.length ? h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['', 'Hostname', 'Active', 'Processed', 'Load', 'Heartbeat',
        'Software', 'PID'].map((c) => h('th', {}, c)))),
      h('tbody', {}, workers.map(row))))
      : h('p', { class: 'muted' }, 'No worker has been seen yet.'));
}

export async function mount(root, ctx) {
  const session = await ctx.session;
  const holder = h('div');
  // Built once, outside the refreshed table: a refresh never resets what an admin is typing.
  const controls = can(session, 'admin') ? new Controls((await cached('/catalog')).queues) : null;
  replace(root, holder, controls ? controls.element() : null);
  return refreshing(holder, (el) => renderTable(el, controls));
}
