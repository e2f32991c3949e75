// Tasks: every filter the API has, in the URL; cursor pages; counts; rows that change live.
import { cached, get, timedRequest, queryString } from '../api.js';
import { BulkControl } from '../bulk.js';
import { h, replace } from '../dom.js';
import { STATES } from '../facts.js';
import { dateTime, duration, errorText, number, shortId, stateBadge } from '../format.js';
import { LiveStream } from '../live.js';
import { setQuery } from '../router.js';
import { fold } from '../taskstate.js';

const WINDOWS = { '15m': 900, '1h': 3600, '6h': 21600, '24h': 86400, '7d': 604800 };
const FILTERS = ['state', 'name', 'queue', 'worker', 'exception', 'fingerprint', 'q'];
// Filters a task seen on the live stream cannot be checked against (the server's index and
// records can): with one of them, rows are only refreshed, never inserted from the stream.
const SERVER_ONLY = ['exception', 'fingerprint', 'q'];
const LIMITS = ['25', '50', '100', '200'];
const SEEN_MAX = 5000; // tasks remembered from the stream, so a later event can be filtered
const COUNT_REFRESH_MS = 2000;

// The API query a console URL stands for: filters, a time window (relative to now) or bounds.
export function apiQuery(query) {
  const q = {};
  for (const f of FILTERS) if (query.get(f)) q[f] = query.get(f);
  const span = WINDOWS[query.get('window')];
  if (span) q.since = (Date.now() / 1000 - span).toFixed(3);
  if (query.get('since')) q.since = query.get('since');
  if (query.get('until')) q.until = query.get('until');
  return q;
}

export function taskLink(task, text) {
  return h('a', { href: `/ui/tasks/${encodeURIComponent(task.id)}` }, text);
}

export function taskRow(task) {
  return h('tr', { 'data-task-id': task.id, 'data-state': task.state || 'UNKNOWN' },
    h('td', {}, stateBadge(task.state)),
    h('td', { class: 'name' }, taskLink(task, task.name || '(unnamed)')),
    h('td', { class: 'mono' }, taskLink(task, shortId(task.id))),
    h('td', {}, task.queue || ''),
    h('td', {}, task.worker || ''),
    h('td', { class: 'nowrap' }, dateTime(task.first_seen)),
    h('td', { class: 'num' }, duration(task.runtime)),
    h('td', { class: 'num' }, task.retries || ''),
    h('td', { class: 'exc', title: task.exception || null }, task.exception || ''));
}

function select(name, label, options, current) {
  return h('label', {}, label,
    h('select', { name },
      options.map(([value, text]) => h('option', { value, selected: value === (current || '') },
        text))));
}

class TasksView {
  constructor(root, ctx) {
    this.root = root;
    this.session = ctx.session;
    this.bulk = new BulkControl();
    this.rows = new Map(); // id -> { task, tr }
    this.seen = new Map(); // id -> partial task from the stream
    this.seq = 0;
    this.countTimer = null;
    this.form = h('form', { class: 'filters', onsubmit: (e) => e.preventDefault() });
    this.form.addEventListener('change', (e) => this.changed(e.target));
    this.countEl = h('span', { class: 'count', 'data-count': '' }, '…');
    this.timingEl = h('span', { class: 'timing muted' });
    this.liveEl = h('span', { class: 'live-status' }, 'connecting');
    this.pauseButton = h('button', { type: 'button', class: 'small', 'data-action': 'pause',
      onclick: () => this.togglePause() }, 'Pause live');
    this.tbody = h('tbody');
    this.pager = h('nav', { class: 'pager' });
    this.errorEl = h('p', { class: 'error hidden' });
    replace(root,
      h('div', { class: 'page-head' }, h('h1', {}, 'Tasks'),
        h('div', { class: 'status-line' }, this.countEl, this.liveEl, this.pauseButton,
          this.timingEl)),
      this.form, this.bulk.el, this.errorEl,
      h('div', { class: 'table-wrap' },
        h('table', { class: 'tasks', 'data-testid': 'tasks' },
          h('thead', {}, h('tr', {}, ['State', 'Name', 'ID', 'Queue', 'Worker', 'First seen',
            'Runtime', 'Retries', 'Exception'].map((c) => h('th', {}, c)))),
          this.tbody)),
      this.pager);
    this.options = { names: [], queues: [], workers: [] };
    this.renderForm(ctx.query);
    this.live = new LiveStream({}, (events) => this.apply(events), {
      onStatus: (status) => this.liveStatus(status),
    }).start();
  }

  renderForm(query) {
    const { names, queues, workers } = this.options;
    const all = [['', 'all']];
    replace(this.form,
      select('state', 'State', [...all, ...STATES.map((s) => [s, s])], query.get('state')),
      h('label', {}, 'Name',
        h('input', { name: 'name', list: 'task-names', value: query.get('name') || '',
          placeholder: 'any task', autocomplete: 'off' }),
        h('datalist', { id: 'task-names' }, names.map((n) => h('option', { value: n })))),
      select('queue', 'Queue', [...all, ...queues.map((q) => [q, q])], query.get('queue')),
      select('worker', 'Worker', [...all, ...workers.map((w) => [w, w])], query.get('worker')),
      h('label', {}, 'Exception',
        h('input', { name: 'exception', value: query.get('exception') || '',
          placeholder: 'e.g. KeyError', autocomplete: 'off', size: 14 })),
      h('label', {}, 'Search',
        h('input', { name: 'q', type: 'search', value: query.get('q') || '',
          placeholder: 'text in args, kwargs, result, exception', autocomplete: 'off',
          size: 28 })),
      query.get('fingerprint') ? h('label', {}, 'Failure group',
        h('input', { name: 'fingerprint', value: query.get('fingerprint'), size: 16,
          class: 'mono' })) : null,
      select('window', 'Seen', [['', 'any time'], ...Object.keys(WINDOWS).map((w) => [w,
        `last ${w}`])], query.get('window')),
      select('limit', 'Rows', LIMITS.map((l) => [l, l]), query.get('limit') || '50'),
      h('a', { href: '/ui/tasks', class: 'clear' }, 'clear filters'));
    // A value from the URL that no option lists (e.g. a worker gone since) stays selected.
    this.syncForm(query);
  }

  // The form shows what the URL says (after Back, a shared link, a clear) without re-rendering
  // the text field being typed in.
  syncForm(query) {
    for (const el of this.form.elements) {
      if (!el.name || (el === document.activeElement && el.tagName === 'INPUT')) continue;
      const value = query.get(el.name) || (el.name === 'limit' ? '50' : '');
      if (el.tagName === 'SELECT' && value && ![...el.options].some((o) => o.value === value)) {
        el.append(h('option', { value }, value));
      }
      el.value = value;
    }
  }

  async loadOptions() {
    const [catalog, stats, workers, queues] = await Promise.all([
      cached('/catalog', 300), cached('/stats', 30), cached('/workers', 30),
      cached('/queues', 60)].map((p) => p.catch(() => null)));
    const names = new Set((catalog?.tasks || []).map((t) => t.name));
    for (const n of Object.keys(stats?.by_name || {})) names.add(n);
    this.options = {
      names: [...names].sort(),
      queues: (queues || []).map((q) => q.name),
      workers: (workers || []).map((w) => w.hostname).sort(),
    };
    const typing = document.activeElement?.name === 'name' && this.form.contains(document.activeElement);
    if (!typing) this.renderForm(new URLSearchParams(location.search));
  }

  changed(target) {
    const name = target.name;
    if (!name) return;
    const change = { [name]: target.value, cursor: null };
    if (name === 'limit' && target.value === '50') change.limit = null;
    this.changeStarted = performance.now();
    setQuery(change);
  }

  async update(ctx) {
    const started = this.changeStarted || performance.now();
    this.changeStarted = null;
    this.syncForm(ctx.query);
    await this.load(ctx.query, started, 'filter');
  }

  async load(query, started = performance.now(), kind = 'first') {
    const seq = ++this.seq;
    this.query = query;
    const q = apiQuery(query);
    const page = { ...q, limit: query.get('limit') || '50', cursor: query.get('cursor') };
    this.countEl.textContent = '…';
    const counted = timedRequest('GET', `/api/v1/tasks/count${queryString(q)}`);
    let listed;
    try {
      listed = await timedRequest('GET', `/api/v1/tasks${queryString(page)}`);
    } catch (error) {
      if (seq !== this.seq) return;
      this.errorEl.textContent = errorText(error);
      this.errorEl.classList.remove('hidden');
      return;
    }
    if (seq !== this.seq) return; // a newer filter change won
    this.errorEl.classList.add('hidden');
    this.render(listed.data);
    this.bulk.show(this.session, q);
    this.catchUp(query, listed.data.items);
    this.pagerFor(query, listed.data.next_cursor);
    const renderMs = performance.now() - started;
    this.timing(kind, renderMs, listed.serverMs);
    counted.then((c) => { if (seq === this.seq) this.showCount(c.data); }).catch(() => {
      if (seq === this.seq) this.countEl.textContent = 'count unavailable';
    });
    if (kind === 'first') this.loadOptions();
  }

  render(data) {
    this.rows.clear();
    const fragment = document.createDocumentFragment();
    for (const task of data.items) {
      task.state_at = task.updated;
      const tr = taskRow(task);
      this.rows.set(task.id, { task, tr });
      fragment.append(tr);
    }
    this.tbody.replaceChildren(fragment);
    if (!data.items.length) {
      this.tbody.append(h('tr', { class: 'empty' }, h('td', { colspan: 9 }, data.exact === false
        ? 'No match in the records searched so far: older » searches on.' : 'No tasks match.')));
    }
  }

  pagerFor(query, nextCursor) {
    const newest = new URLSearchParams(query);
    newest.delete('cursor');
    const older = new URLSearchParams(query);
    if (nextCursor) older.set('cursor', nextCursor);
    const text = (params) => (params.toString() ? `?${params}` : '');
    replace(this.pager,
      query.get('cursor') ? h('a', { href: `/ui/tasks${text(newest)}`, 'data-page': 'newest' },
        '« newest') : null,
      nextCursor ? h('a', { href: `/ui/tasks${text(older)}`, 'data-page': 'older' }, 'older »')
        : null);
  }

  showCount(count) {
    this.count = count.count;
    this.countEl.textContent = `${count.exact ? '' : '≥ '}${number(count.count)} tasks`;
    this.countEl.dataset.count = String(count.count);
  }

  timing(kind, renderMs, apiMs) {
    // Kept on the element for the benchmark (bench/ui.py) and shown for the curious.
    const at = performance.now();
    this.renders = (this.renders || 0) + 1;
    Object.assign(this.root.dataset, { renderKind: kind, renderMs: renderMs.toFixed(1),
      apiMs: apiMs === null ? '' : apiMs.toFixed(1), renderedAt: at.toFixed(1),
      renderSeq: String(this.renders) });
    this.timingEl.textContent = `rendered in ${renderMs.toFixed(0)} ms`
      + (apiMs === null ? '' : ` · API ${apiMs.toFixed(1)} ms`);
    document.dispatchEvent(new CustomEvent('console:rendered', { detail: { kind, renderMs,
      apiMs, at } }));
  }

  liveStatus(status) {
    const missed = this.live && this.live.missed;
    this.liveEl.textContent = status === 'paused' && missed
      ? `paused · ${number(missed)} events since` : status;
    this.liveEl.dataset.status = status;
  }

  // Called at every flush: how many events the stream delivered (shown on hover, read by
  // bench/ui.py to check the stream really was busy).
  countReceived() {
    this.liveEl.dataset.received = String(this.live.received);
    this.liveEl.title = `${number(this.live.received)} events received`;
  }

  togglePause() {
    if (this.live.paused) {
      this.live.resume();
      this.pauseButton.textContent = 'Pause live';
      this.load(this.query, performance.now(), 'resume');
    } else {
      this.live.pause();
      this.pauseButton.textContent = 'Resume live';
    }
  }

  // New and changed tasks from the stream. Rows are inserted only on the first page of an
  // open-ended list; everywhere else rows already shown are kept current.
  apply(events) {
    this.countReceived();
    const query = this.query;
    if (!query) return;
    const inserting = !query.get('cursor') && !query.get('until');
    const wanted = apiQuery(query);
    const changed = new Set();
    const inserted = [];
    for (const event of events) {
      if (!event.uuid) continue;
      // A row's task (read from the API) knows most; a task only seen on the stream, less.
      let task = this.rows.get(event.uuid)?.task || this.seen.get(event.uuid);
      if (!task) task = { id: event.uuid };
      fold(task, event);
      this.remember(task);
      const row = this.rows.get(event.uuid);
      if (row) {
        row.task = task;
        changed.add(event.uuid);
      } else if (inserting && matches(task, wanted)) {
        const entry = { task, tr: null };
        this.rows.set(task.id, entry);
        inserted.push(entry);
      }
    }
    if (!changed.size && !inserted.length) return;
    this.tbody.querySelector('tr.empty')?.remove();
    for (const id of changed) {
      const row = this.rows.get(id);
      if (!row.tr) continue;
      if (wanted.state && row.task.state !== wanted.state) {
        row.tr.remove();
        this.rows.delete(id);
        continue;
      }
      const tr = taskRow(row.task);
      row.tr.replaceWith(tr);
      row.tr = tr;
    }
    if (inserted.length) {
      const fragment = document.createDocumentFragment();
      for (const entry of inserted.reverse()) {
        entry.tr = taskRow(entry.task);
        fragment.append(entry.tr);
      }
      this.tbody.prepend(fragment);
      this.trim(Number(query.get('limit') || 50));
      this.refreshCountSoon(wanted);
    }
  }

  // Tasks the stream brought while the list was on its way, newer than its newest row.
  catchUp(query, items) {
    if (query.get('cursor') || query.get('until')) return;
    const newest = items.length ? items[0].first_seen : 0;
    const wanted = apiQuery(query);
    const missed = [...this.seen.values()].filter((t) => t.first_seen > newest
      && !this.rows.has(t.id) && matches(t, wanted));
    if (!missed.length) return;
    this.tbody.querySelector('tr.empty')?.remove();
    missed.sort((a, b) => b.first_seen - a.first_seen);
    const fragment = document.createDocumentFragment();
    for (const task of missed) {
      const tr = taskRow(task);
      this.rows.set(task.id, { task, tr });
      fragment.append(tr);
    }
    this.tbody.prepend(fragment);
    this.trim(Number(query.get('limit') || 50));
  }

  remember(task) {
    this.seen.delete(task.id);
    this.seen.set(task.id, task);
    if (this.seen.size > SEEN_MAX) this.seen.delete(this.seen.keys().next().value);
  }

  trim(limit) {
    while (this.tbody.rows.length > limit) {
      const last = this.tbody.rows[this.tbody.rows.length - 1];
      this.rows.delete(last.dataset.taskId);
      last.remove();
    }
  }

  refreshCountSoon(wanted) {
    if (this.countTimer !== null) return;
    const seq = this.seq;
    this.countTimer = setTimeout(async () => {
      this.countTimer = null;
      try {
        const count = await get('/tasks/count', wanted);
        if (seq === this.seq) this.showCount(count);
      } catch { /* the next change retries */ }
    }, COUNT_REFRESH_MS);
  }

  leave() {
    this.live.stop();
    clearTimeout(this.countTimer);
    this.seq += 1;
  }
}

function matches(task, wanted) {
  if (SERVER_ONLY.some((f) => wanted[f])) return false;
  if (wanted.state && task.state !== wanted.state) return false;
  if (wanted.name && task.name !== wanted.name) return false;
  if (wanted.queue && task.queue !== wanted.queue) return false;
  if (wanted.worker && task.worker !== wanted.worker) return false;
  return true;
}

export function mount(root, ctx) {
  const view = new TasksView(root, ctx);
  view.load(ctx.query, performance.now(), 'first');
  return view;
}
