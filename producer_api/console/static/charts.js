// Small inline SVG charts: no library, no canvas, crisp at any zoom.
import { svg } from './dom.js';

export function sparkline(values, { width = 240, height = 40, label = '', cls = '' } = {}) {
  const max = Math.max(1e-9, ...values);
  const step = values.length > 1 ? width / (values.length - 1) : width;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`);
  const area = `0,${height} ${points.join(' ')} ${width},${height}`;
  return svg('svg', {
    class: `sparkline ${cls}`, viewBox: `0 0 ${width} ${height}`, width, height,
    role: 'img', 'aria-label': label, preserveAspectRatio: 'none',
  },
  svg('polygon', { points: area, class: 'area' }),
  svg('polyline', { points: points.join(' '), class: 'line' }),
  svg('title', {}, document.createTextNode(label)));
}

// Horizontal stacked bar of counts by key, coloured by state class.
export function stackedBar(counts, { width = 320, height = 14 } = {}) {
  const total = Object.values(counts).reduce((a, b) => a + b, 0) || 1;
  let x = 0;
  const parts = Object.entries(counts).filter(([, n]) => n > 0).map(([key, n]) => {
    const w = (n / total) * width;
    const rect = svg('rect', { x: x.toFixed(1), y: 0, width: w.toFixed(1), height,
      class: `fill-${key.toLowerCase()}` }, svg('title', {}, document.createTextNode(`${key} ${n}`)));
    x += w;
    return rect;
  });
  return svg('svg', { class: 'stacked', viewBox: `0 0 ${width} ${height}`, width, height,
    role: 'img', preserveAspectRatio: 'none' }, ...parts);
}
