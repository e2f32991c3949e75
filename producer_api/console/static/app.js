// Boot: who am I (the session), the navigation my role may use, then the page the URL names.
import { request, setCsrf } from './api.js';
import { h, replace } from './dom.js';
import { can } from './roles.js';
import { route, start } from './router.js';

const NAV = [
  ['/ui/', 'Overview', 'viewer'],
  ['/ui/tasks', 'Tasks', 'viewer'],
  ['/ui/failures', 'Failures', 'viewer'],
  ['/ui/workers', 'Workers', 'viewer'],
  ['/ui/queues', 'Queues', 'viewer'],
  ['/ui/schedules', 'Schedules', 'viewer'],
  ['/ui/enqueue', 'Enqueue', 'operator'],
  ['/ui/tokens', 'Tokens', 'admin'],
];

function navigation(session) {
  const nav = document.getElementById('nav');
  const links = NAV.filter(([, , role]) => can(session, role))
    .map(([href, label]) => h('a', { href, 'data-nav': href }, label));
  replace(nav, links);
  const highlight = () => {
    for (const link of links) {
      const href = link.getAttribute('href');
      const here = href === '/ui/' ? location.pathname === '/ui/'
        : location.pathname.startsWith(href);
      link.classList.toggle('active', here);
    }
  };
  document.addEventListener('console:navigate', highlight);
  highlight();
  const signOut = async () => {
    try { await request('POST', '/ui/logout'); } finally {
      location.assign('/ui/login?reason=signed-out');
    }
  };
  replace(document.getElementById('who'),
    h('span', { class: 'who-name', title: `token ${session.token_id}` }, session.name),
    h('span', { class: `role role-${session.role}`, 'data-role': session.role }, session.role),
    h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out'));
}

async function boot() {
  // The page's own requests start at once, beside this one: the tasks list does not wait for it.
  const session = request('GET', '/ui/session'); // 401: redirected to the sign-in page
  session.then((signedIn) => {
    setCsrf(signedIn.csrf);
    navigation(signedIn);
  }, () => {});
  // Each page's module is loaded when first visited.
  route(/^\/ui\/?$/, () => import('./pages/overview.js'));
  route(/^\/ui\/tasks\/?$/, () => import('./pages/tasks.js'));
  route(/^\/ui\/tasks\/([^/]+)$/, () => import('./pages/task.js'));
  route(/^\/ui\/failures\/?$/, () => import('./pages/failures.js'));
  route(/^\/ui\/workers\/?$/, () => import('./pages/workers.js'));
  route(/^\/ui\/queues\/?$/, () => import('./pages/queues.js'));
  route(/^\/ui\/schedules\/?$/, () => import('./pages/schedules.js'));
  route(/^\/ui\/enqueue\/?$/, () => import('./pages/enqueue.js'));
  route(/^\/ui\/tokens\/?$/, () => import('./pages/tokens.js'));
  await start(document.getElementById('app'), session);
}

boot().catch((error) => {
  if (error.status !== 401) {
    replace(document.getElementById('app'), h('p', { class: 'error' }, String(error.message)));
  }
});
