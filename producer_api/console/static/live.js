// Live events over Server-Sent Events, delivered in batches so a busy stream cannot freeze the tab.
//
// Each message is kept as its raw text until the flush (JSON.parse only what is shown), and the
// page gets one callback per ``interval`` ms, however many events arrived. While paused, events
// are only counted.
import { EVENT_STATES, PROGRESS_EVENT } from './facts.js';
import { request } from './api.js';

const TYPES = [...Object.keys(EVENT_STATES), PROGRESS_EVENT];

export class LiveStream {
  constructor(query, onBatch, { interval = 250, onStatus = () => {} } = {}) {
    this.query = query;
    this.onBatch = onBatch;
    this.onStatus = onStatus;
    this.interval = interval;
    this.buffer = [];
    this.timer = null;
    this.paused = false;
    this.missed = 0;
    this.received = 0;
    this.source = null;
  }

  start() {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(this.query || {})) if (v) params.set(k, v);
    const text = params.toString();
    this.source = new EventSource(`/api/v1/events${text ? `?${text}` : ''}`);
    const receive = (message) => {
      this.received += 1;
      this.buffer.push(message.data);
      if (this.timer === null) this.timer = setTimeout(() => this.flush(), this.interval);
    };
    for (const type of TYPES) this.source.addEventListener(type, receive);
    this.source.onopen = () => this.onStatus('live');
    this.source.onerror = () => {
      if (this.source.readyState === EventSource.CLOSED) {
        this.onStatus('closed');
        // Closed for good (not a reconnect): most likely the session ended; this redirects.
        request('GET', '/ui/session').catch(() => {});
      } else {
        this.onStatus('reconnecting');
      }
    };
    return this;
  }

  flush() {
    this.timer = null;
    const raw = this.buffer;
    this.buffer = [];
    if (!raw.length) return;
    if (this.paused) {
      this.missed += raw.length;
      this.onStatus('paused');
      return;
    }
    this.onBatch(raw.map((text) => JSON.parse(text)));
  }

  pause() {
    this.paused = true;
    this.missed = 0;
    this.onStatus('paused');
  }

  resume() {
    this.paused = false;
    this.onStatus('live');
  }

  stop() {
    if (this.source) this.source.close();
    clearTimeout(this.timer);
    this.timer = null;
  }
}
