// Inputs generated from a catalog parameter's JSON Schema (the subset producer_api/catalog.py
// allows), and reading them back as JSON values. An empty optional field means "the default".
import { h } from './dom.js';

function simple(schema) {
  // anyOf [X, null] reads as an optional X; anything richer is typed as JSON.
  if (schema.anyOf) {
    const others = schema.anyOf.filter((s) => s.type !== 'null');
    return others.length === 1 ? { ...simple(others[0]), nullable: true } : { kind: 'json' };
  }
  if (schema.enum) return { kind: 'enum', values: schema.enum };
  if (schema.const !== undefined) return { kind: 'enum', values: [schema.const] };
  return { kind: schema.type || 'json', schema };
}

export function parameterInput(param) {
  const spec = simple(param.schema || {});
  const name = `param-${param.name}`;
  const hint = param.required ? 'required' : `default: ${JSON.stringify(param.default)}`;
  let input;
  if (spec.kind === 'enum' || spec.kind === 'boolean') {
    const values = spec.kind === 'boolean' ? [true, false] : spec.values;
    input = h('select', { name },
      h('option', { value: '' }, param.required ? '— choose —' : `(${hint})`),
      values.map((v) => h('option', { value: JSON.stringify(v) }, String(v))));
  } else if (spec.kind === 'integer' || spec.kind === 'number') {
    const s = spec.schema || {};
    input = h('input', { name, type: 'number', step: spec.kind === 'integer' ? '1' : 'any',
      min: s.minimum, max: s.maximum, placeholder: hint });
  } else if (spec.kind === 'string') {
    const s = spec.schema || {};
    input = h('input', { name, type: 'text', minlength: s.minLength, maxlength: s.maxLength,
      placeholder: hint });
  } else {
    input = h('textarea', { name, rows: 2, placeholder: `JSON (${hint})`, class: 'mono' });
  }
  input.dataset.kind = spec.kind;
  if (param.required) input.required = true;
  return h('label', { class: 'param', 'data-param': param.name },
    h('span', {}, param.name, h('small', { class: 'muted' }, ` ${param.type || ''}`)),
    input, h('small', { class: 'field-error' }));
}

// The value an input holds, or undefined for "left empty".
export function parameterValue(input) {
  const raw = input.value.trim();
  if (raw === '') return undefined;
  switch (input.dataset.kind) {
    case 'enum':
    case 'boolean':
    case 'json':
      return JSON.parse(raw);
    case 'integer':
    case 'number':
      return Number(raw);
    default:
      return input.value;
  }
}
