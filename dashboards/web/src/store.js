// The one store the views read; the websocket client (live.js) feeds it.
// Collections are Maps mutated in place; each has a revision number that
// moves with every change, so a view re-renders (or the map re-uploads a
// source) only when what it reads has changed, and at most once a frame.

export const SEVERITIES = ['minor', 'moderate', 'severe', 'extreme'];
export const sevRank = (s) => SEVERITIES.indexOf(s);
export const ACTIVE = ['new', 'acknowledged', 'dispatched'];

const state = {
  config: null,
  user: null,            // {name, role, wards, actions}
  conn: 'idle',          // idle | connecting | open | down | polling
  attempts: 0,
  lastBeat: null,        // server time of the last heartbeat (ISO)
  lastBeatLocal: 0,      // Date.now() when it arrived
  epoch: null,
  seq: 0,
  sources: {},           // source -> {ok, message}
  notice: null,          // {key, params} one-line information (reset, ...)
  incidents: new Map(),  // id -> incident (active only)
  fresh: new Map(),      // id -> ms when it was opened live (new ones stand out)
  devices: new Map(),
  units: new Map(),
  wards: new Map(),      // code -> {name, incidents:{..}, devices:{online, offline}}
  areas: null,           // GeoJSON FeatureCollection
  wardNames: new Map(),
  alarms: [],            // [{id, severity, kind, ward, at}]
  muted: false,
  selected: null,        // queue selection (incident id)
  rev: { incidents: 0, devices: 0, units: 0, wards: 0, misc: 0 },
};

const listeners = new Set();
let scheduled = false;
let dirty = new Set();

function flush() {
  scheduled = false;
  const d = dirty;
  dirty = new Set();
  for (const f of listeners) f(d);
}

export const store = {
  state,
  // touch marks collections changed and schedules one notification.
  touch(...what) {
    for (const w of what) { state.rev[w] = (state.rev[w] || 0) + 1; dirty.add(w); }
    if (!scheduled) {
      scheduled = true;
      (typeof requestAnimationFrame === 'function' && !document.hidden ? requestAnimationFrame : setTimeout)(flush);
    }
  },
  set(patch) {
    Object.assign(state, patch);
    store.touch('misc');
  },
  subscribe(f) { listeners.add(f); return () => listeners.delete(f); },

  // Incident events. An active incident stays until it is resolved: the
  // queue never filters by creation time.
  putIncident(x, live) {
    const had = state.incidents.has(x.id);
    if (x.status === 'resolved') {
      state.incidents.delete(x.id);
      state.fresh.delete(x.id);
    } else {
      state.incidents.set(x.id, x);
      if (live && !had) state.fresh.set(x.id, Date.now());
    }
    store.touch('incidents');
    return !had;
  },
  replaceIncidents(list) {
    state.incidents.clear();
    for (const x of list) if (x.status !== 'resolved') state.incidents.set(x.id, x);
    store.touch('incidents');
  },
  clearLive() {
    state.incidents.clear(); state.devices.clear(); state.units.clear(); state.fresh.clear();
    store.touch('incidents', 'devices', 'units');
  },
  raise(x) {
    if (state.alarms.some((a) => a.id === x.id)) return;
    state.alarms = [{ id: x.id, severity: x.severity, kind: x.kind, ward: x.ward, at: Date.now() }, ...state.alarms].slice(0, 5);
    store.touch('misc');
  },
  dismiss(id) {
    state.alarms = state.alarms.filter((a) => a.id !== id);
    store.touch('misc');
  },
};

// can tells whether the signed-in user may do an action (the server's own
// list from /api/v1/me; the server still enforces it).
export function can(action) {
  const u = state.user;
  return !!(u && u.actions && u.actions.includes(action));
}

// sortQueue: severity first (extreme on top), then the oldest first.
export function sortQueue(list) {
  return list.sort((a, b) => sevRank(b.severity) - sevRank(a.severity) ||
    (a.opened_at < b.opened_at ? -1 : a.opened_at > b.opened_at ? 1 : (a.id < b.id ? -1 : 1)));
}

// stateClock: since when the incident is in its status, and the target for
// leaving it (ms), from the app's configuration.
export function stateClock(x, cfg) {
  const ackT = (cfg?.ack_target_s || 120) * 1000, dispT = (cfg?.dispatch_target_s || 600) * 1000;
  if (x.status === 'new') return { since: Date.parse(x.opened_at), target: ackT };
  if (x.status === 'acknowledged') return { since: Date.parse(x.acknowledged_at || x.updated_at), target: dispT };
  return { since: Date.parse(x.dispatched_at || x.updated_at), target: 0 };
}
