// Enqueue a catalog task (operator): a form per task, generated from its parameters' schemas.
import { api, cached } from '../api.js';
import { h, replace, toast } from '../dom.js';
import { errorText } from '../format.js';
import { parameterInput, parameterValue } from '../forms.js';
import { navigate, setQuery } from '../router.js';

function form(catalog, spec) {
  const params = spec.parameters || [];
  const queue = h('select', { name: 'queue' }, catalog.queues.map((q) =>
    h('option', { value: q, selected: q === spec.queue }, q)));
  const priority = h('select', { name: 'priority' }, catalog.priorities.levels.map((p) =>
    h('option', { value: p, selected: p === catalog.priorities.default }, p)));
  const countdown = h('input', { name: 'countdown', type: 'number', min: 0, step: 'any',
    placeholder: 'now' });
  const fields = params.map(parameterInput);
  const el = h('form', { class: 'enqueue', 'data-task': spec.name },
    spec.description ? h('p', { class: 'muted' }, spec.description) : null,
    fields.length ? h('fieldset', {}, h('legend', {}, 'Parameters'), fields)
      : h('p', { class: 'muted' }, 'This task takes no parameters.'),
    h('fieldset', {}, h('legend', {}, 'Delivery'),
      h('label', {}, 'Queue', queue), h('label', {}, 'Priority', priority),
      h('label', {}, 'Countdown (s)', countdown)),
    h('p', { class: 'error hidden form-error' }),
    h('button', { type: 'submit', 'data-action': 'enqueue' }, `Send ${spec.name}`));
  el.addEventListener('submit', async (event) => {
    event.preventDefault();
    for (const box of el.querySelectorAll('.field-error')) box.textContent = '';
    const problem = el.querySelector('.form-error');
    problem.classList.add('hidden');
    const kwargs = {};
    try {
      for (const param of params) {
        const value = parameterValue(el.elements[`param-${param.name}`]);
        if (value !== undefined) kwargs[param.name] = value;
      }
    } catch (error) {
      problem.textContent = `Not valid JSON: ${error.message}`;
      problem.classList.remove('hidden');
      return;
    }
    const body = { name: spec.name, kwargs, queue: queue.value, priority: priority.value };
    if (countdown.value) body.countdown = Number(countdown.value);
    try {
      const sent = await api('POST', '/tasks', body);
      toast(`${spec.name} sent`);
      navigate(`/ui/tasks/${encodeURIComponent(sent.id)}`);
    } catch (error) {
      const where = error.details && error.details.field;
      const param = where && where.startsWith('kwargs.') ? where.slice(7) : null;
      const box = param && el.querySelector(`[data-param="${CSS.escape(param)}"] .field-error`);
      if (box) box.textContent = errorText(error);
      problem.textContent = errorText(error);
      problem.classList.remove('hidden');
    }
  });
  return el;
}

export async function mount(root, ctx) {
  const catalog = await cached('/catalog', 300);
  const render = (query) => {
    const chosen = catalog.tasks.find((t) => t.name === query.get('name'));
    const picker = h('select', { name: 'task', 'aria-label': 'task' },
      h('option', { value: '' }, '— choose a task —'),
      catalog.tasks.map((t) => h('option', { value: t.name, selected: t === chosen }, t.name)));
    picker.addEventListener('change', () => setQuery({ name: picker.value }));
    replace(root, h('div', { class: 'page-head' }, h('h1', {}, 'Enqueue a task')),
      h('label', { class: 'task-picker' }, 'Task ', picker),
      chosen ? form(catalog, chosen) : null);
  };
  render(ctx.query);
  return { update: (next) => render(next.query) };
}
