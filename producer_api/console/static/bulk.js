// Retry / revoke every task a filtered list matches: a dry run first (how many, which), then a
// confirmation, then chunk after chunk until the filter is exhausted. Shown by role: operators
// retry, admins also revoke; the server checks the role again on every request.
import { api } from './api.js';
import { h, replace, toast } from './dom.js';
import { errorText, number } from './format.js';
import { can } from './roles.js';

const CHUNK = 100;
const ACTIONS = [
  { action: 'retry', role: 'operator', label: 'Retry matching…', verb: 'retry', done: 'retried' },
  { action: 'revoke', role: 'admin', label: 'Revoke matching…', verb: 'revoke', done: 'revoked' },
];

export class BulkControl {
  constructor() {
    this.el = h('div', { class: 'bulk', 'data-testid': 'bulk' });
    this.filter = {};
  }

  // ``filter``: the list's API filter (no page, no cursor); nothing is offered without one.
  async show(sessionPromise, filter) {
    this.filter = filter;
    this.session = sessionPromise;
    const session = await sessionPromise.catch(() => null);
    const allowed = session ? ACTIONS.filter((a) => can(session, a.role)) : [];
    if (!allowed.length || !Object.keys(filter).length) {
      replace(this.el);
      return;
    }
    replace(this.el, allowed.map((a) => h('button', { type: 'button', class: 'small',
      'data-bulk': a.action, onclick: () => this.dryRun(a) }, a.label)));
  }

  async dryRun(a) {
    let answer;
    try {
      answer = await api('POST', `/tasks/bulk/${a.action}`, { filter: this.filter, dry_run: true });
    } catch (error) {
      toast(errorText(error), 'error');
      return;
    }
    const count = `${answer.exact ? '' : '≥ '}${number(answer.matched)}`;
    if (!answer.matched) {
      replace(this.el, h('span', { class: 'muted' }, `No task to ${a.verb}.`),
        h('button', { type: 'button', class: 'small', onclick: () => this.restore() },
          'OK'));
      return;
    }
    replace(this.el,
      h('span', { 'data-dry-run': String(answer.matched) },
        `${count} task${answer.matched === 1 ? '' : 's'} match. ${a.verb[0].toUpperCase()}`
        + `${a.verb.slice(1)} ${answer.matched === 1 ? 'it' : 'them'}?`),
      h('button', { type: 'button', class: 'small danger', 'data-confirm': a.action,
        onclick: () => this.run(a) }, `Yes, ${a.verb} ${count}`),
      h('button', { type: 'button', class: 'small', onclick: () => this.restore() }, 'Cancel'));
  }

  async run(a) {
    let cursor = null;
    let done = 0;
    let skipped = 0;
    const progress = h('span', { 'data-progress': '' }, `${a.done} 0…`);
    replace(this.el, progress);
    try {
      do {
        const answer = await api('POST', `/tasks/bulk/${a.action}`, {
          filter: this.filter, dry_run: false, limit: CHUNK, cursor });
        done += answer.ids.length;
        skipped += answer.skipped;
        cursor = answer.next_cursor;
        progress.textContent = `${a.done} ${number(done)}…`;
      } while (cursor);
    } catch (error) {
      toast(`${errorText(error)} (after ${number(done)} ${a.done})`, 'error');
      this.restore();
      return;
    }
    toast(`${number(done)} task${done === 1 ? '' : 's'} ${a.done}`
      + (skipped ? ` (${number(skipped)} skipped: state changed or finished)` : ''));
    replace(this.el, h('span', { 'data-bulk-done': String(done) },
      `${number(done)} ${a.done}.`),
    h('button', { type: 'button', class: 'small', onclick: () => this.restore() }, 'OK'));
  }

  restore() {
    this.show(this.session, this.filter);
  }
}
