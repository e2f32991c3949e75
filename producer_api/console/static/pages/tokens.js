// Tokens (admin): list, create (the secret is shown once, here, and never again), revoke; and a
// one-time sign-in link for your own token, to open the console in another browser.
import { api, get } from '../api.js';
import { confirmButton, h, replace, toast } from '../dom.js';
import { dateTime, errorText } from '../format.js';

const ROLES = ['viewer', 'operator', 'admin'];

class TokensView {
  constructor(root, session) {
    this.root = root;
    this.session = session;
    this.secretBox = h('div', { class: 'secret hidden', 'data-testid': 'new-secret' });
  }

  async load() {
    try {
      const list = await get('/tokens');
      this.render(list.tokens);
    } catch (error) {
      if (error.status !== 401) replace(this.root, h('p', { class: 'error' }, errorText(error)));
    }
  }

  render(tokens) {
    const name = h('input', { name: 'name', required: true, pattern: '[\\w.@-]+', maxlength: 100,
      placeholder: 'who or what uses it' });
    const role = h('select', { name: 'role' }, ROLES.map((r) => h('option', { value: r }, r)));
    const create = h('form', { class: 'inline-form', onsubmit: async (e) => {
      e.preventDefault();
      try {
        const made = await api('POST', '/tokens', { name: name.value, role: role.value });
        this.showSecret(made);
        await this.load();
      } catch (error) { toast(errorText(error), 'error'); }
    } }, h('label', {}, 'Name', name), h('label', {}, 'Role', role),
    h('button', { type: 'submit', 'data-action': 'create-token' }, 'Create token'));
    replace(this.root,
      h('div', { class: 'page-head' }, h('h1', {}, 'Tokens')),
      h('section', { class: 'block' }, h('h2', {}, 'New token'), create, this.secretBox),
      h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, ['ID', 'Name', 'Role', 'Created', ''].map((c) => h('th', {}, c)))),
        h('tbody', {}, tokens.map((t) => h('tr', { 'data-token-id': t.id },
          h('td', { class: 'mono' }, t.id), h('td', {}, t.name), h('td', {}, t.role),
          h('td', {}, dateTime(t.created)),
          h('td', {}, t.id === this.session.token_id ? h('span', { class: 'muted' }, 'you')
            : this.revokeButton(t))))))),
      h('section', { class: 'block' }, h('h2', {}, 'Sign in elsewhere'),
        h('p', { class: 'muted' }, 'A link that signs one browser in as you, once, within minutes.'),
        h('button', { type: 'button', 'data-action': 'login-link', onclick: () => this.link() },
          'Create a one-time sign-in link')));
  }

  revokeButton(t) {
    const button = confirmButton('Revoke', 'Click again to revoke', async () => {
      try {
        await api('DELETE', `/tokens/${encodeURIComponent(t.id)}`);
        toast(`Token ${t.name} revoked: its sessions end now`);
        await this.load();
      } catch (error) { toast(errorText(error), 'error'); }
    });
    button.dataset.action = 'revoke-token';
    return button;
  }

  showSecret(made) {
    replace(this.secretBox,
      h('p', {}, `Token for ${made.name} (${made.role}). Copy it now: it is not stored and will `
        + 'not be shown again.'),
      h('input', { readonly: true, value: made.token, class: 'mono wide', 'aria-label': 'new token',
        onfocus: (e) => e.target.select() }));
    this.secretBox.classList.remove('hidden');
  }

  async link() {
    try {
      const made = await api('POST', '/ui/login-links');
      const url = new URL(made.path, location.origin).href;
      replace(this.secretBox, h('p', {}, `Valid once, for ${Math.round(made.expires_in / 60)} min:`),
        h('input', { readonly: true, value: url, class: 'mono wide', 'aria-label': 'sign-in link',
          onfocus: (e) => e.target.select() }));
      this.secretBox.classList.remove('hidden');
    } catch (error) { toast(errorText(error), 'error'); }
  }
}

export async function mount(root, ctx) {
  const view = new TokensView(root, await ctx.session);
  await view.load();
  return view;
}
