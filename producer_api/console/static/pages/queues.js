// Broker queues: messages waiting (all priorities together, as the collector polls them), who
// consumes them, and whether an operator paused them. Operators pause and resume; admins purge
// (the confirmation shows the count, which the purge then sends as what it expects to delete);
// anyone may peek at the waiting messages without consuming them.
import { api, get } from '../api.js';
import { h, replace, toast } from '../dom.js';
import { ago, dateTime, errorText, number } from '../format.js';
import { refreshing } from '../refresh.js';
import { can } from '../roles.js';

const PEEK_LIMIT = 20;
const ARMED_MS = 5000;
const path = (queue, action) => `/queues/${encodeURIComponent(queue)}/${action}`;

// Two clicks: the first fetches the live count and asks about exactly that many; the second
// purges, expecting that count (more waiting by then: the server refuses and nothing is lost).
function purgeButton(queue, done) {
  let expected = null;
  let timer = null;
  const button = h('button', { type: 'button', class: 'danger small', 'data-action': 'purge' },
    'Purge');
  const disarm = () => {
    expected = null;
    button.textContent = 'Purge';
    button.classList.remove('armed');
  };
  button.addEventListener('click', async () => {
    try {
      if (expected === null) {
        const waiting = (await get(path(queue, 'messages'), { limit: 1 })).length;
        if (!waiting) { toast(`${queue}: nothing waiting`); return; }
        expected = waiting;
        button.textContent = `Delete ${waiting} waiting? Click again`;
        button.dataset.expected = String(waiting);
        button.classList.add('armed');
        timer = setTimeout(disarm, ARMED_MS);
        return;
      }
      clearTimeout(timer);
      const purged = await api('POST', path(queue, 'purge'), { expected });
      toast(`${queue}: ${purged.purged} messages purged`);
      disarm();
      await done();
    } catch (error) {
      disarm();
      toast(errorText(error), 'error');
    }
  });
  return button;
}

class QueuesView {
  constructor(session) {
    this.session = session;
    this.peekBox = h('section', { class: 'block hidden', 'data-testid': 'peek' });
  }

  async act(queue, action) {
    try {
      const result = await api('POST', path(queue, action));
      const silent = result.no_reply.length ? `; no reply from ${result.no_reply.join(', ')}` : '';
      toast(`${queue} ${result.paused ? 'paused' : 'resumed'}${silent}`,
        result.no_reply.length ? 'error' : 'info');
      await this.refresh();
    } catch (error) { toast(errorText(error), 'error'); }
  }

  async peek(queue) {
    try {
      const page = await get(path(queue, 'messages'), { limit: PEEK_LIMIT });
      replace(this.peekBox,
        h('h2', {}, `Waiting in ${queue}: ${number(page.length)}`),
        h('p', { class: 'muted small' }, `Order: ${page.order}. Nothing was consumed.`),
        page.messages.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'compact' },
          h('thead', {}, h('tr', {}, ['ID', 'Task', 'Priority', 'Args', 'Kwargs', 'ETA']
            .map((c) => h('th', {}, c)))),
          h('tbody', {}, page.messages.map((m) => h('tr', { 'data-message-id': m.id },
            h('td', { class: 'mono' }, m.id), h('td', {}, m.name),
            h('td', {}, m.level || (m.priority ?? '')),
            h('td', { class: 'mono' }, JSON.stringify(m.args ?? null)),
            h('td', { class: 'mono' }, JSON.stringify(m.kwargs ?? null)),
            h('td', {}, m.eta || ''))))))
          : h('p', { class: 'muted' }, 'No message is waiting.'));
      this.peekBox.classList.remove('hidden');
    } catch (error) { toast(errorText(error), 'error'); }
  }

  controls(q) {
    const buttons = [h('button', { type: 'button', class: 'small', 'data-action': 'peek',
      onclick: () => this.peek(q.name) }, 'Peek')];
    if (can(this.session, 'operator')) {
      const action = q.paused ? 'resume' : 'pause';
      buttons.push(h('button', { type: 'button', class: 'small', 'data-action': action,
        onclick: () => this.act(q.name, action) }, q.paused ? 'Resume' : 'Pause'));
    }
    if (can(this.session, 'admin')) buttons.push(purgeButton(q.name, () => this.refresh()));
    return h('td', { class: 'actions' }, h('div', { class: 'actions' }, buttons));
  }

  async render(holder) {
    const queues = await get('/queues');
    replace(holder,
      h('div', { class: 'page-head' }, h('h1', {}, 'Queues')),
      h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Queue', 'State', 'Waiting', 'Consumers', 'Workers',
          'Processes', 'Polled', ''].map((c) => h('th', {}, c)))),
        h('tbody', {}, queues.map((q) => h('tr', { 'data-queue': q.name,
          'data-paused': String(Boolean(q.paused)) },
          h('td', {}, h('a', { href: `/ui/tasks?queue=${encodeURIComponent(q.name)}` }, q.name)),
          h('td', {}, q.paused ? h('span', { class: 'state state-paused' }, 'paused') : 'consuming'),
          h('td', { class: 'num' }, number(q.length)),
          h('td', { class: 'num' }, number(q.consumers)),
          h('td', { class: 'num' }, number(q.workers)),
          h('td', { class: 'num' }, number(q.processes)),
          h('td', { title: dateTime(q.updated) }, ago(q.updated)),
          this.controls(q)))))),
      h('p', { class: 'muted small' }, 'Waiting counts every priority of a queue together, as '
        + 'last polled. A paused queue keeps its messages until it is resumed.'));
  }
}

export async function mount(root, ctx) {
  const view = new QueuesView(await ctx.session);
  const holder = h('div');
  // The peek box is outside the refreshed table: what was peeked stays while the table redraws.
  replace(root, holder, view.peekBox);
  const refreshed = await refreshing(holder, (el) => view.render(el));
  view.refresh = refreshed.refresh;
  return refreshed;
}
