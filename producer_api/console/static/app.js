// Boot: who am I (the session), the navigation my role may use, then the page the URL names.
import { request, setCsrf } from './api.js';
import { h, replace } from './dom.js';
import { can } from './roles.js';
import { route, start } from './router.js';
import * as enqueue from './pages/enqueue.js';
import * as overview from './pages/overview.js';
import * as queues from './pages/queues.js';
import * as schedules from './pages/schedules.js';
import * as task from './pages/task.js';
import * as tasks from './pages/tasks.js';
import * as tokens from './pages/tokens.js';
import * as workers from './pages/workers.js';

const NAV = [
  ['/ui/', 'Overview', 'viewer'],
  ['/ui/tasks', 'Tasks', 'viewer'],
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
  const session = await request('GET', '/ui/session'); // 401: redirected to the sign-in page
  setCsrf(session.csrf);
  navigation(session);
  route(/^\/ui\/?$/, overview);
  route(/^\/ui\/tasks\/?$/, tasks);
  route(/^\/ui\/tasks\/([^/]+)$/, task);
  route(/^\/ui\/workers\/?$/, workers);
  route(/^\/ui\/queues\/?$/, queues);
  route(/^\/ui\/schedules\/?$/, schedules);
  route(/^\/ui\/enqueue\/?$/, enqueue);
  route(/^\/ui\/tokens\/?$/, tokens);
  await start(document.getElementById('app'), session);
}

boot().catch((error) => {
  if (error.status !== 401) {
    replace(document.getElementById('app'), h('p', { class: 'error' }, String(error.message)));
  }
});
