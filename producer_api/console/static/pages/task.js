// One task: its record, arguments and result, traceback, live progress, timeline, family and
// workflow tree, annotations, and the actions the signed-in role may take.
import { api, ApiError, get } from '../api.js';
import { confirmButton, h, replace, toast } from '../dom.js';
import { stackedBar } from '../charts.js';
import { READY_STATES, RETRYABLE_STATES } from '../facts.js';
import {
  dateTime, duration, errorText, number, prettyValue, shortId, stateBadge,
} from '../format.js';
import { LiveStream } from '../live.js';
import { can } from '../roles.js';
import { navigate } from '../router.js';
import { taskLink } from './tasks.js';

const RELOAD_MS = 400;

function field(label, value) {
  if (value === null || value === undefined || value === '') return null;
  return [h('dt', {}, label), h('dd', {}, value)];
}

function block(title, text, attrs = {}) {
  const pretty = prettyValue(text);
  if (pretty === null) return null;
  return h('section', { class: 'block' }, h('h2', {}, title), h('pre', attrs, pretty));
}

function progressBar(progress, state) {
  if (!progress) return null;
  const total = progress.total || null;
  const pct = total ? Math.max(0, Math.min(100, (100 * progress.current) / total)) : null;
  const label = total ? `${number(progress.current)} / ${number(total)} (${pct.toFixed(0)}%)`
    : number(progress.current);
  return h('section', { class: 'block' }, h('h2', {}, 'Progress'),
    h('div', { class: `progress ${READY_STATES.includes(state) ? 'done' : ''}`,
      role: 'progressbar', 'aria-valuenow': pct ?? progress.current, 'aria-valuemin': 0,
      'aria-valuemax': total ?? null, 'data-progress': pct === null ? '' : pct.toFixed(1) },
    h('div', { class: 'bar', style: null, 'data-width': pct ?? 100 }),
    h('span', {}, label)));
}

function timeline(entries) {
  if (!entries || !entries.length) return null;
  const first = entries[0].timestamp;
  return h('section', { class: 'block' }, h('h2', {}, `Timeline (${entries.length} events)`),
    h('table', { class: 'timeline' },
      h('thead', {}, h('tr', {}, ['Time', '+', 'Event', 'Host', 'Details'].map((c) =>
        h('th', {}, c)))),
      h('tbody', {}, entries.map((e) => h('tr', { 'data-event': e.type },
        h('td', { class: 'nowrap' }, dateTime(e.timestamp)),
        h('td', { class: 'num muted' }, `+${duration(e.timestamp - first)}`),
        h('td', {}, e.type),
        h('td', {}, e.hostname || ''),
        h('td', { class: 'mono small' }, Object.entries(e.fields || {})
          .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`)
          .join('  ')))))));
}

function treeNode(node, currentId) {
  const label = node.virtual ? h('span', { class: 'muted' }, 'group / chord')
    : taskLink(node, node.name || '(unnamed)');
  return h('li', { 'data-task-id': node.id, 'data-state': node.state || (node.virtual ? 'GROUP' : 'UNKNOWN'),
    'data-role': node.role || null, class: node.id === currentId ? 'current' : null },
  h('span', { class: 'node' }, node.virtual ? null : stateBadge(node.state), ' ', label, ' ',
    node.role === 'chord_body' ? h('span', { class: 'label' }, 'chord body') : null,
    h('span', { class: 'mono muted' }, shortId(node.id)),
    node.runtime !== undefined ? h('span', { class: 'muted' }, ` ${duration(node.runtime)}`) : null,
    node.exception ? h('span', { class: 'exc' }, ` ${node.exception}`) : null),
  node.children && node.children.length
    ? h('ul', {}, node.children.map((c) => treeNode(c, currentId))) : null);
}

function workflow(tree, currentId, always = false) {
  if (!tree || (tree.total < 2 && !always)) return null;
  return h('section', { class: 'block', 'data-testid': 'workflow' },
    h('h2', {}, 'Workflow'),
    h('p', { class: 'rollup', 'data-rollup': tree.state, 'data-total': tree.total },
      h('span', { class: `state state-rollup-${tree.state}` }, tree.state), ' ',
      `${number(tree.total)} tasks: `,
      Object.entries(tree.by_state).map(([s, n]) => `${s} ${n}`).join(', '),
      tree.truncated ? ' (truncated)' : ''),
    stackedBar(tree.by_state),
    h('ul', { class: 'tree' }, treeNode(tree.root, currentId)));
}

function family(task) {
  const items = [];
  if (task.parent_id) {
    items.push(h('li', {}, 'parent ', taskLink({ id: task.parent_id }, task.parent_id)));
  }
  if (task.root_id && task.root_id !== task.parent_id) {
    items.push(h('li', {}, 'root ', taskLink({ id: task.root_id }, task.root_id)));
  }
  const children = task.children || [];
  return h('section', { class: 'block' }, h('h2', {}, `Family (${children.length} children)`),
    items.length ? h('ul', { class: 'plain' }, items) : null,
    h('ul', { class: 'plain children', 'data-testid': 'children' },
      children.map((id) => h('li', { 'data-task-id': id }, 'child ', taskLink({ id }, id)))));
}

function labelsText(labels) {
  return Object.entries(labels || {}).map(([k, v]) => `${k}=${v}`).join('\n');
}

function parseLabels(text) {
  const labels = {};
  for (const line of text.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const at = line.indexOf('=');
    if (at < 1) throw new Error(`label "${line}" is not key=value`);
    labels[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return labels;
}

class TaskView {
  constructor(root, ctx) {
    this.root = root;
    this.id = ctx.params[0];
    this.session = ctx.session;
    this.reloadTimer = null;
    this.live = new LiveStream({ task_id: this.id }, (events) => this.onEvents(events),
      { interval: 150 }).start();
  }

  async load() {
    let task;
    let tree = null;
    try {
      [task, tree] = await Promise.all([
        get(`/tasks/${encodeURIComponent(this.id)}`),
        get(`/tasks/${encodeURIComponent(this.id)}/tree`).catch(() => null),
      ]);
    } catch (error) {
      const missing = error instanceof ApiError && error.status === 404;
      const tree = missing ? await get(`/tasks/${encodeURIComponent(this.id)}/tree`)
        .catch(() => null) : null;
      if (tree) {
        // A group or chord sent as a whole: its id is no task's, but it is a workflow.
        replace(this.root, h('div', { class: 'page-head' }, h('h1', {}, 'Workflow'),
          h('div', { class: 'mono muted' }, this.id)), workflow(tree, null, true));
        return;
      }
      const text = missing ? `No task ${this.id} is known (never seen, expired, or deleted).`
        : errorText(error);
      replace(this.root, h('h1', {}, 'Task'), h('p', { class: 'error' }, text));
      return;
    }
    this.task = task;
    this.render(task, tree);
  }

  render(task, tree) {
    const editing = this.root.querySelector('.annotate textarea:focus');
    if (editing) return; // do not throw away what is being typed; the next reload catches up
    replace(this.root,
      h('div', { class: 'page-head' },
        h('h1', {}, task.name || '(unnamed task)', ' ', stateBadge(task.state)),
        h('div', { class: 'mono muted', 'data-task-id': task.id, 'data-state': task.state || 'UNKNOWN' },
          task.id)),
      this.actions(task),
      progressBar(task.progress, task.state),
      h('section', { class: 'block' }, h('dl', { class: 'facts' },
        field('State', task.state), field('Worker', task.worker), field('Queue', task.queue),
        field('Routing key', task.routing_key), field('Priority', task.priority),
        field('Retries', task.retries), field('Runtime', task.runtime !== undefined
          ? duration(task.runtime) : null),
        field('Sent', task.sent && dateTime(task.sent)),
        field('Received', task.received && dateTime(task.received)),
        field('Started', task.started && dateTime(task.started)),
        field('Succeeded', task.succeeded && dateTime(task.succeeded)),
        field('Failed', task.failed && dateTime(task.failed)),
        field('Retried', task.retried && dateTime(task.retried)),
        field('Revoked', task.revoked && dateTime(task.revoked)),
        field('ETA', task.eta), field('Expires', task.expires),
        field('Exception', task.exception))),
      block('Arguments', task.args), block('Keyword arguments', task.kwargs),
      block('Result', task.result),
      block('Traceback', task.traceback, { class: 'traceback', 'data-testid': 'traceback' }),
      this.annotations(task),
      workflow(tree, task.id),
      family(task),
      timeline(task.timeline));
    for (const bar of this.root.querySelectorAll('.progress .bar')) {
      bar.style.width = `${bar.dataset.width}%`; // CSSOM, allowed by the style-src policy
    }
  }

  actions(task) {
    const buttons = [];
    const id = encodeURIComponent(task.id);
    if (can(this.session, 'operator') && RETRYABLE_STATES.includes(task.state)) {
      buttons.push(h('button', { type: 'button', 'data-action': 'retry', onclick: async (e) => {
        e.target.disabled = true;
        try {
          const sent = await api('POST', `/tasks/${id}/retry`);
          toast(h('span', {}, 'Retried as ', taskLink(sent, sent.id)));
          this.awaitChild(sent.id);
        } catch (error) { toast(errorText(error), 'error'); } finally { e.target.disabled = false; }
      } }, 'Retry'));
    }
    if (can(this.session, 'admin') && !READY_STATES.includes(task.state)) {
      buttons.push(h('button', { type: 'button', 'data-action': 'revoke', onclick: () =>
        this.revoke(false) }, 'Revoke'));
      buttons.push(confirmButton('Terminate', 'Click again to kill it', () => this.revoke(true)));
      buttons.at(-1).dataset.action = 'terminate';
    }
    if (can(this.session, 'admin') && READY_STATES.includes(task.state)) {
      const del = confirmButton('Delete record', 'Click again to delete', async () => {
        try {
          await api('DELETE', `/tasks/${id}`);
          toast(`Task ${task.id} deleted`);
          navigate('/ui/tasks');
        } catch (error) { toast(errorText(error), 'error'); }
      });
      del.dataset.action = 'delete';
      buttons.push(del);
    }
    if (!buttons.length) return null;
    return h('div', { class: 'actions', 'data-testid': 'actions' }, buttons);
  }

  // The new task shows up as a child once the collector has stored its task-sent event.
  async awaitChild(childId, tries = 20) {
    for (let i = 0; i < tries && !this.left; i += 1) {
      await new Promise((resolve) => { setTimeout(resolve, 300); });
      await this.load();
      if ((this.task?.children || []).includes(childId)) return;
    }
  }

  async revoke(terminate) {
    try {
      await api('POST', `/tasks/${encodeURIComponent(this.id)}/revoke`, { terminate });
      toast(terminate ? 'Terminate sent' : 'Revoke sent');
      this.scheduleReload();
    } catch (error) { toast(errorText(error), 'error'); }
  }

  annotations(task) {
    const shown = h('div', {},
      task.note ? h('p', { class: 'note', 'data-testid': 'note' }, task.note) : null,
      task.labels ? h('p', {}, Object.entries(task.labels).map(([k, v]) =>
        h('span', { class: 'label' }, `${k}=${v}`))) : null);
    if (!can(this.session, 'operator')) {
      if (!task.note && !task.labels) return null;
      return h('section', { class: 'block' }, h('h2', {}, 'Annotations'), shown);
    }
    const note = h('textarea', { name: 'note', rows: 2, maxlength: 2000 }, task.note || '');
    const labels = h('textarea', { name: 'labels', rows: 2, placeholder: 'key=value per line' },
      labelsText(task.labels));
    const form = h('form', { class: 'annotate', onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api('PATCH', `/tasks/${encodeURIComponent(task.id)}`,
          { note: note.value, labels: parseLabels(labels.value) });
        toast('Annotations saved');
        document.activeElement?.blur();
        this.load();
      } catch (error) { toast(errorText(error), 'error'); }
    } },
    h('label', {}, 'Note', note), h('label', {}, 'Labels', labels),
    h('button', { type: 'submit', 'data-action': 'annotate' }, 'Save annotations'));
    return h('section', { class: 'block' }, h('h2', {}, 'Annotations'), shown, form);
  }

  onEvents(events) {
    for (const event of events) {
      if (event.progress_current !== undefined && this.task) {
        this.task.progress = { current: event.progress_current, total: event.progress_total };
        const bar = this.root.querySelector('.progress');
        const fresh = progressBar(this.task.progress, this.task.state);
        if (bar) bar.closest('section').replaceWith(fresh);
        const inner = fresh.querySelector('.bar');
        inner.style.width = `${inner.dataset.width}%`;
      }
    }
    this.scheduleReload();
  }

  scheduleReload() {
    if (this.reloadTimer !== null) return;
    this.reloadTimer = setTimeout(() => {
      this.reloadTimer = null;
      this.load();
    }, RELOAD_MS);
  }

  leave() {
    this.left = true;
    this.live.stop();
    clearTimeout(this.reloadTimer);
  }
}

export async function mount(root, ctx) {
  const view = new TaskView(root, { ...ctx, session: await ctx.session });
  await view.load();
  return view;
}
