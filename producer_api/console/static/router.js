// URL-addressable pages with the History API: every page and filter is a link, Back works.
//
// A route names a loader of its page module (``() => import(...)``), which exports
// mount(root, ctx) -> view (ctx.session is a promise of the signed-in session: a page that
// shows role-dependent controls awaits it); a view may have update(ctx) (same page, new
// query: keep the live stream, refetch the rows) and leave() (stop timers and streams).

const routes = [];
let current = null;
let root = null;
let session = null;

export function route(pattern, load) {
  routes.push({ pattern, load });
}

export function navigate(url, { replace = false } = {}) {
  const target = new URL(url, location.href);
  if (target.href === location.href && !replace) return render();
  history[replace ? 'replaceState' : 'pushState'](null, '', target.pathname + target.search);
  return render();
}

// Change some query parameters of the current page (filters), as a new history entry.
export function setQuery(changes, { replace = false } = {}) {
  const params = new URLSearchParams(location.search);
  for (const [key, value] of Object.entries(changes)) {
    if (value === null || value === undefined || value === '') params.delete(key);
    else params.set(key, value);
  }
  const text = params.toString();
  return navigate(location.pathname + (text ? `?${text}` : ''), { replace });
}

function match() {
  for (const { pattern, load } of routes) {
    const found = pattern.exec(location.pathname);
    if (found) return { load, params: found.slice(1).map(decodeURIComponent) };
  }
  return null;
}

async function render() {
  const found = match();
  if (found) found.page = await found.load();
  const ctx = { params: found ? found.params : [], query: new URLSearchParams(location.search),
    session };
  document.dispatchEvent(new CustomEvent('console:navigate'));
  if (current && found && current.page === found.page && current.view.update
      && current.key === found.params.join('/')) {
    return current.view.update(ctx);
  }
  if (current && current.view.leave) current.view.leave();
  current = null;
  root.replaceChildren();
  window.scrollTo(0, 0);
  if (!found) {
    root.textContent = 'No such page.';
    return undefined;
  }
  const view = (await found.page.mount(root, ctx)) || {};
  current = { page: found.page, view, key: found.params.join('/') };
  return undefined;
}

export function start(mainElement, signedIn) {
  root = mainElement;
  session = signedIn;
  window.addEventListener('popstate', () => render());
  document.addEventListener('click', (event) => {
    const link = event.target.closest('a[href]');
    if (!link || event.defaultPrevented || event.button !== 0 || link.target
        || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const url = new URL(link.href);
    if (url.origin !== location.origin || !url.pathname.startsWith('/ui/')) return;
    event.preventDefault();
    navigate(url.href);
  });
  return render();
}
