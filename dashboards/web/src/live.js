// The one websocket client (/ws, docs/dashboards.md "Live updates"). It
// owns connecting, reconnecting with backoff, resuming with since+epoch,
// the heartbeat watchdog, and feeding the store. Two instances run: the
// city-wide one (incidents, units, wards: the queue never loses an
// incident to the map's viewport) and the map's devices one, whose bbox
// follows panning.
import { store } from './store.js';
import { activeIncidents, api } from './api.js';

const SEVERE = new Set(['severe', 'extreme']);

export class LiveClient {
  constructor({ layers, resume = false, primary = false }) {
    this.layers = layers;
    this.resume = resume;
    this.primary = primary;
    this.filter = {};
    this.ws = null;
    this.stopped = true;
    this.attempt = 0;
    this.heartbeatMs = 5000;
    this.lastFrame = 0;
    this.seq = 0;
    this.epoch = null;
    this.watchdog = null;
    this.retryTimer = null;
    this.pollTimer = null;
    this.snapshotSeen = false;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
    this.watchdog = setInterval(() => this.checkStale(), 1000);
  }

  stop() {
    this.stopped = true;
    clearInterval(this.watchdog);
    clearTimeout(this.retryTimer);
    clearInterval(this.pollTimer);
    this.pollTimer = null;
    if (this.ws) { this.ws.onclose = null; this.ws.close(1000); this.ws = null; }
  }

  // setFilter replaces the subscription (the map was panned); the server
  // answers with a new snapshot.
  setFilter(filter) {
    this.filter = filter;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.subscribe(false);
  }

  connect() {
    if (this.stopped) return;
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
    if (this.primary) store.set({ conn: this.attempt ? 'down' : 'connecting', attempts: this.attempt });
    let ws;
    try { ws = new WebSocket(url); } catch (e) { this.retry(); return; }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.lastFrame = Date.now();
      this.subscribe(this.resume && this.epoch !== null);
    };
    ws.onmessage = (ev) => {
      this.lastFrame = Date.now();
      let m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      this.handle(m);
    };
    ws.onclose = (ev) => {
      this.ws = null;
      if (this.stopped) return;
      if (ev.code === 4001) {
        // session_ended: sign in again.
        store.set({ conn: 'down', notice: { key: 'conn.session' } });
        this.stop();
        window.dispatchEvent(new CustomEvent('ioc:signed-out'));
        return;
      }
      if (!opened && this.attempt >= 1) {
        this.probe();
        return;
      }
      this.retry();
    };
  }

  // probe tells a server without /ws (answers 404) from one that is down:
  // the former is read over HTTP every few seconds instead.
  async probe() {
    try {
      const r = await fetch('/ws', { credentials: 'same-origin' });
      if (r.status === 404 && this.primary) { this.poll(); return; }
      if (r.status === 401) { window.dispatchEvent(new CustomEvent('ioc:signed-out')); return; }
    } catch (e) { /* down: retry below */ }
    this.retry();
  }

  poll() {
    if (this.pollTimer) return;
    const once = async () => {
      try {
        const [list, units] = await Promise.all([activeIncidents(), api.units()]);
        const before = new Set(store.state.incidents.keys());
        store.replaceIncidents(list);
        if (this.snapshotSeen) {
          for (const x of list) if (!before.has(x.id)) { store.state.fresh.set(x.id, Date.now()); if (SEVERE.has(x.severity)) store.raise(x); }
        }
        this.snapshotSeen = true;
        store.state.units.clear();
        for (const u of units.items) store.state.units.set(u.id, u);
        store.touch('units');
        store.set({ conn: 'polling', lastBeat: new Date().toISOString(), lastBeatLocal: Date.now() });
      } catch (e) {
        store.set({ conn: 'down' });
      }
    };
    once();
    this.pollTimer = setInterval(once, 3000);
  }

  retry() {
    if (this.stopped) return;
    this.attempt++;
    if (this.primary) store.set({ conn: 'down', attempts: this.attempt });
    // Backoff with jitter, capped at 10 s.
    const base = Math.min(10000, 500 * 2 ** Math.min(this.attempt - 1, 5));
    const wait = base / 2 + Math.random() * base / 2;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), wait);
  }

  checkStale() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    const limit = Math.max(3 * this.heartbeatMs, 10000);
    if (Date.now() - this.lastFrame > limit) {
      // The socket looks open but nothing arrives: start over.
      this.ws.close(4100, 'stale');
    }
  }

  subscribe(withResume) {
    // batch: each round of device and unit updates in one "updates" frame
    // (docs/streams.md), one message event instead of one per device.
    const m = { type: 'subscribe', layers: this.layers, batch: true, ...this.filter };
    if (withResume) { m.since = this.seq; m.epoch = this.epoch; }
    this.ws.send(JSON.stringify(m));
  }

  handle(m) {
    const s = store.state;
    switch (m.type) {
      case 'welcome':
        this.heartbeatMs = m.heartbeat_ms || 5000;
        if (this.primary) {
          this.attempt = 0;
          store.set({ conn: 'open', attempts: 0, epoch: m.epoch });
        }
        break;
      case 'snapshot': {
        this.seq = m.seq || 0;
        this.epoch = m.epoch ?? this.epoch;
        // Empty layers may be left out of the frame: every subscribed layer
        // is replaced.
        const has = (l) => this.layers.includes(l);
        if (has('incidents')) store.replaceIncidents(m.incidents || []);
        if (has('devices')) { s.devices.clear(); for (const d of m.devices || []) s.devices.set(d.id, d); store.touch('devices'); }
        if (has('units')) { s.units.clear(); for (const u of m.units || []) s.units.set(u.id, u); store.touch('units'); }
        if (has('wards')) { s.wards.clear(); this.putWards(m.wards || []); }
        this.snapshotSeen = true;
        if (this.primary) store.set({ conn: 'open', seq: this.seq, epoch: this.epoch });
        break;
      }
      case 'incident': {
        if (typeof m.seq === 'number') {
          if (m.seq <= this.seq) break; // already applied (resume overlap)
          this.seq = m.seq;
        }
        const x = m.incident;
        const isNew = store.putIncident(x, true);
        if (isNew && m.op === 'opened' && SEVERE.has(x.severity)) store.raise(x);
        else if (m.op === 'updated' && SEVERE.has(x.severity) && isNew && x.status === 'new') store.raise(x);
        window.dispatchEvent(new CustomEvent('ioc:incident', { detail: m }));
        if (this.primary) s.seq = this.seq;
        break;
      }
      case 'device': s.devices.set(m.device.id, m.device); store.touch('devices'); break;
      case 'unit': s.units.set(m.unit.id, m.unit); store.touch('units'); break;
      case 'updates':
        if (m.devices && m.devices.length) { for (const d of m.devices) s.devices.set(d.id, d); store.touch('devices'); }
        if (m.units && m.units.length) { for (const u of m.units) s.units.set(u.id, u); store.touch('units'); }
        break;
      case 'wards': this.putWards(m.wards); break;
      case 'heartbeat':
        if (this.primary) {
          s.lastBeat = m.at; s.lastBeatLocal = Date.now();
          if (m.epoch && this.epoch && m.epoch !== this.epoch) {
            // The server's stream started over: a subscribe with our old
            // epoch gets reset + snapshot.
            this.subscribe(true);
          }
          store.touch('misc');
        }
        break;
      case 'reset':
        // The view reloads: drop everything; a fresh snapshot follows.
        this.seq = 0;
        if (this.layers.includes('incidents')) { s.incidents.clear(); s.fresh.clear(); store.touch('incidents'); }
        if (this.layers.includes('devices')) { s.devices.clear(); store.touch('devices'); }
        if (this.layers.includes('units')) { s.units.clear(); store.touch('units'); }
        if (this.primary) store.set({ notice: { key: 'conn.reset', params: { r: m.reason || '' } } });
        break;
      case 'status':
        s.sources = { ...s.sources, [m.source]: { ok: !!m.ok, message: m.message || '' } };
        store.touch('misc');
        break;
      case 'error':
        console.warn('ws error', m.code, m.message);
        break;
      default:
        break;
    }
  }

  putWards(list) {
    const w = store.state.wards;
    for (const x of list) w.set(x.code, x);
    store.touch('wards');
  }
}
