// A page that redraws itself every few seconds while it is shown (overview, workers, queues).
import { h, replace } from './dom.js';
import { errorText } from './format.js';

// Draws ``render(root)`` now and every ``everyMs``; a failed draw shows its error in place (a
// 401 has already sent the browser to the sign-in page). Returns the router's view.
export async function refreshing(root, render, everyMs = 5000) {
  const refresh = () => render(root).catch((error) => {
    if (error.status !== 401) replace(root, h('p', { class: 'error' }, errorText(error)));
  });
  await refresh();
  const timer = setInterval(refresh, everyMs);
  return { refresh, leave: () => clearInterval(timer) };
}
