// Beat's schedule: pause/resume and edit (admin), run now (operator: sends the task once through
// POST /tasks, outside beat's own count — the API has no "run this entry now" of its own).
import { api, get } from '../api.js';
import { h, replace, toast } from '../dom.js';
import { dateTime, errorText, number } from '../format.js';
import { can } from '../roles.js';
import { taskLink } from './tasks.js';

const CRON_FIELDS = ['minute', 'hour', 'day_of_month', 'month_of_year', 'day_of_week'];

function timing(s) {
  if (s.interval) return `every ${number(s.interval.every)} s`;
  if (s.crontab) return `cron ${CRON_FIELDS.map((f) => s.crontab[f] ?? '*').join(' ')}`;
  return '—';
}

function isoTime(text) {
  return text ? dateTime(Date.parse(text) / 1000) : '—';
}

class SchedulesView {
  constructor(root, session) {
    this.root = root;
    this.session = session;
  }

  async load() {
    try {
      const list = await get('/schedules');
      this.render(list.items);
    } catch (error) {
      if (error.status !== 401) replace(this.root, h('p', { class: 'error' }, errorText(error)));
    }
  }

  render(items) {
    const operator = can(this.session, 'operator');
    replace(this.root,
      h('div', { class: 'page-head' }, h('h1', {}, 'Schedules'),
        h('span', { class: 'muted' }, `${items.length} entries in beat's schedule`)),
      h('div', { class: 'table-wrap' }, h('table', { class: 'schedules' },
        h('thead', {}, h('tr', {}, ['Name', 'Task', 'When', 'State', 'Last run', 'Next run', 'Runs',
          ''].map((c) => h('th', {}, c)))),
        h('tbody', {}, items.map((s) => this.row(s))))),
      operator ? h('p', { class: 'muted small' }, '“Run now” sends the entry\'s task with its '
        + 'arguments once, through the API; beat\'s next run and run count are unchanged.')
        : null);
  }

  row(s) {
    const admin = can(this.session, 'admin');
    const buttons = [];
    if (admin) {
      buttons.push(h('button', { type: 'button', class: 'small',
        'data-action': s.enabled ? 'pause' : 'resume',
        onclick: () => this.patch(s.name, { enabled: !s.enabled }, s.enabled ? 'paused' : 'resumed'),
      }, s.enabled ? 'Pause' : 'Resume'));
      buttons.push(h('button', { type: 'button', class: 'small', 'data-action': 'edit',
        onclick: (e) => this.toggleEditor(e.target.closest('tr'), s) }, 'Edit'));
    }
    if (can(this.session, 'operator')) {
      buttons.push(h('button', { type: 'button', class: 'small', 'data-action': 'run-now',
        title: 'Send the task once now (beat\'s schedule is unchanged)',
        onclick: () => this.runNow(s) }, 'Run now'));
    }
    return h('tr', { 'data-schedule': s.name, 'data-enabled': String(s.enabled) },
      h('td', {}, s.name),
      h('td', {}, h('a', { href: `/ui/tasks?name=${encodeURIComponent(s.task)}` }, s.task)),
      h('td', { class: 'mono' }, timing(s)),
      h('td', {}, s.enabled ? 'active' : h('span', { class: 'state state-paused' }, 'paused')),
      h('td', { class: 'nowrap' }, isoTime(s.last_run_at)),
      h('td', { class: 'nowrap' }, s.enabled ? isoTime(s.next_run_at) : '—'),
      h('td', { class: 'num' }, number(s.total_run_count)),
      h('td', { class: 'actions' }, buttons));
  }

  toggleEditor(tr, s) {
    const open = tr.nextElementSibling;
    if (open && open.classList.contains('editor')) {
      open.remove();
      return;
    }
    const kind = h('select', { name: 'kind' },
      h('option', { value: 'interval', selected: !!s.interval }, 'interval'),
      h('option', { value: 'crontab', selected: !!s.crontab }, 'crontab'));
    const every = h('input', { name: 'every', type: 'number', min: 1, step: 'any',
      value: s.interval ? s.interval.every : 60 });
    const cron = CRON_FIELDS.map((f) => h('label', {}, f.replace(/_/g, ' '),
      h('input', { name: f, value: s.crontab ? s.crontab[f] ?? '*' : '*', size: 6 })));
    const intervalBox = h('span', { class: 'interval' }, h('label', {}, 'every (s)', every));
    const cronBox = h('span', { class: 'cron' }, cron);
    const sync = () => {
      intervalBox.hidden = kind.value !== 'interval';
      cronBox.hidden = kind.value !== 'crontab';
    };
    kind.addEventListener('change', sync);
    sync();
    const form = h('form', { class: 'inline-form', onsubmit: (e) => {
      e.preventDefault();
      const change = kind.value === 'interval' ? { interval: { every: Number(every.value) } }
        : { crontab: Object.fromEntries(CRON_FIELDS.map((f) => [f, form.elements[f].value])) };
      this.patch(s.name, change, 'changed');
    } }, kind, intervalBox, cronBox, h('button', { type: 'submit', 'data-action': 'save' }, 'Save'));
    tr.after(h('tr', { class: 'editor' }, h('td', { colspan: 8 }, form)));
  }

  async patch(name, change, verb) {
    try {
      await api('PATCH', `/schedules/${encodeURIComponent(name)}`, change);
      toast(`Schedule ${name} ${verb}`);
      await this.load();
    } catch (error) { toast(errorText(error), 'error'); }
  }

  async runNow(s) {
    try {
      const sent = await api('POST', '/tasks', { name: s.task, args: s.args || [],
        kwargs: s.kwargs || {}, queue: s.queue || null });
      toast(h('span', {}, `${s.task} sent: `, taskLink(sent, sent.id)));
    } catch (error) { toast(errorText(error), 'error'); }
  }
}

export async function mount(root, ctx) {
  const view = new SchedulesView(root, await ctx.session);
  await view.load();
  return view;
}
