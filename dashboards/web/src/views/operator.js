// The operator's view: the live map, the incident queue, the alarm strip
// for new severe/extreme incidents, an incident's detail, and opening an
// incident by clicking the map. Keyboard shortcuts for the frequent actions.
import { useEffect, useRef, useState, useMemo } from 'preact/hooks';
import { html, useStore, SevBadge, kindName, wardName } from './common.js';
import { Queue, sortedIncidents } from './queue.js';
import { IncidentDetail } from './incident.js';
import { CityMap, DEVICE_ZOOM } from '../map.js';
import { store, can } from '../store.js';
import { LiveClient } from '../live.js';
import { api } from '../api.js';
import { t } from '../i18n/i18n.js';
import { beep, setMuted } from '../alarm.js';

const OPEN_KINDS = ['accident', 'fire', 'medical', 'crime', 'rescue', 'flooding', 'hazmat', 'crowd', 'traffic_congestion'];

function wardCountsFromIncidents(incidents) {
  const out = new Map();
  for (const x of incidents.values()) {
    const code = x.ward && x.ward.code;
    if (!code) continue;
    let w = out.get(code);
    if (!w) out.set(code, (w = { code, incidents: { minor: 0, moderate: 0, severe: 0, extreme: 0 } }));
    w.incidents[x.severity] = (w.incidents[x.severity] || 0) + 1;
  }
  return out;
}

function NewIncident({ at, onDone, onCancel }) {
  const [kind, setKind] = useState('accident');
  const [severity, setSeverity] = useState('moderate');
  const [title, setTitle] = useState('');
  const [note, setNote] = useState('');
  const [err, setErr] = useState(null);
  const [busy, setBusy] = useState(false);
  async function submit(e) {
    e.preventDefault();
    setBusy(true); setErr(null);
    try {
      const x = await api.open({ kind, severity, title, note, location: { type: 'Point', coordinates: [at.lng, at.lat] } });
      store.putIncident(x, true);
      onDone(x);
    } catch (e2) {
      setErr(e2.status === 403 ? t('err.forbidden') : t('inc.error', { m: e2.message }));
    } finally { setBusy(false); }
  }
  return html`<div class="dialog" role="dialog" aria-modal="true" data-view="new-incident">
    <form onSubmit=${submit}>
      <h2>${t('new.title')}</h2>
      <p class="muted">${t('new.at', { lat: at.lat.toFixed(5), lon: at.lng.toFixed(5) })}</p>
      <label>${t('inc.kind')} <select name="kind" value=${kind} onChange=${(e) => setKind(e.target.value)}>
        ${OPEN_KINDS.map((k) => html`<option value=${k}>${kindName(k)}</option>`)}</select></label>
      <label>${t('inc.severity')} <select name="severity" value=${severity} onChange=${(e) => setSeverity(e.target.value)}>
        ${['minor', 'moderate', 'severe', 'extreme'].map((s) => html`<option value=${s}>${t('sev.' + s)}</option>`)}</select></label>
      <label>${t('new.title_field')} <input name="title" maxlength="200" value=${title} onInput=${(e) => setTitle(e.target.value)} /></label>
      <label>${t('inc.note')} <textarea name="note" maxlength="2000" value=${note} onInput=${(e) => setNote(e.target.value)}></textarea></label>
      ${err ? html`<p class="error">${err}</p>` : null}
      <div class="row"><button class="primary" type="submit" disabled=${busy}>${t('new.submit')}</button>
        <button type="button" onClick=${onCancel}>${t('new.cancel')}</button></div>
    </form>
  </div>`;
}

function Alarms({ onOpen }) {
  const s = useStore('misc');
  if (!s.alarms.length) return null;
  return html`<div class="alarms" role="alert" data-test="alarms">
    ${s.alarms.map((a) => html`<div class=${'alarm alarm-' + a.severity} key=${a.id}>
      <${SevBadge} severity=${a.severity} />
      <b>${t('alarm.title', { sev: t('sev.' + a.severity).toLowerCase() })}</b>
      <span>${kindName(a.kind)} · ${wardName(a)}</span>
      <button onClick=${() => { store.dismiss(a.id); onOpen(a.id); }}>${t('alarm.view')}</button>
      <button onClick=${() => store.dismiss(a.id)}>${t('alarm.dismiss')}</button>
    </div>`)}
  </div>`;
}

function Legend() {
  return html`<div class="legend">
    <b>${t('map.legend')}</b>
    ${['minor', 'moderate', 'severe', 'extreme'].map((s) => html`<div><${SevBadge} severity=${s} /></div>`)}
    <div><span class="dot on"></span> ${t('map.devices_online')}</div>
    <div><span class="dot off"></span> ${t('map.devices_offline')}</div>
  </div>`;
}

export function Operator({ route, go, wall }) {
  const s = useStore('incidents', 'misc');
  const mapBox = useRef(null);
  const mapRef = useRef(null);
  const devicesRef = useRef(null);
  const [layers, setLayers] = useState({ wards: true, incidents: true, devices: true, units: true });
  const [picking, setPicking] = useState(false);
  const [newAt, setNewAt] = useState(null);
  const [help, setHelp] = useState(false);
  const openId = route.id || null;
  const list = useMemo(() => sortedIncidents(), [s.rev.incidents]);
  const listRef = useRef(list);
  listRef.current = list;
  const layersRef = useRef(layers);
  layersRef.current = layers;

  // The map, and the devices stream whose bbox follows it.
  useEffect(() => {
    const devices = new LiveClient({ layers: ['devices'] });
    devicesRef.current = devices;
    const onView = ({ bbox, zoom }) => {
      if (zoom >= DEVICE_ZOOM && layersRef.current.devices) {
        devices.setFilter({ bbox });
        devices.start();
      } else {
        devices.stop();
        if (store.state.devices.size) { store.state.devices.clear(); store.touch('devices'); }
      }
    };
    const map = new CityMap({
      container: mapBox.current, config: s.config, areas: s.areas,
      fitAreas: !!(s.user && s.user.wards && s.user.wards.length), // a ward-scoped user sees its wards
      onSelect: (id) => go('ops', id),
      onPick: (at) => { setPicking(false); setNewAt(at); },
      onView,
      onReady: () => { window.__iocMapReady = true; },
    });
    mapRef.current = map;
    window.__iocMap = map;
    // The map's sources are re-uploaded together, in one batch, and the
    // next batch waits until the map has drawn this one (its 'idle') and
    // then at least IDLE_MIN, or twice as long as that draw took (at most
    // IDLE_MAX), whatever the event rate; a new severe or extreme incident
    // waits half as long (at least IDLE_MIN). Each upload makes the map re-tile and draw, and drawn
    // in software (SwiftShader, a wall PC without a GPU) one draw can take
    // hundreds of milliseconds: with the map idle at least 20 frames for
    // every one or two long ones, the 95th percentile frame is a short one.
    // The queue and the alarm are DOM and follow the store at once. The
    // first batch with incidents goes at once. Devices at most every second.
    const IDLE_MIN = 1000, IDLE_MAX = 4000;
    const dirty = new Set();
    const hidden = new Set(); // changed, but not drawn at this zoom
    map.map.on('moveend', () => {
      // The operator moved the map: what it shows next (devices for the
      // new box, units once close enough) goes with the next urgent batch.
      urgent = true;
      let revealed = false;
      for (const k of hidden) if (map.shows(k)) { hidden.delete(k); dirty.add(k); revealed = true; }
      // A layer the zoom now reaches is drawn at once, not after the wait.
      if (revealed && !drawing) { clearTimeout(timer); timer = null; flush(); return; }
      if (dirty.size) schedule();
    });
    let cityFilled = false;
    let urgent = false, idle = IDLE_MIN, last = 0, drawnAt = 0, timer = null, devAt = 0, drawing = false, batches = 0;
    const flush = () => {
      timer = null;
      last = Date.now();
      let drawn = false; // whether anything was uploaded (else the map will not draw, nor go idle)
      // At the wards' scale (below city zoom) the incidents are not drawn
      // one by one: only the ward layer and the new severe ones (the city
      // source) change; the incidents go when the zoom reaches them.
      if (dirty.has('incidents')) {
        if (map.shows('incidents')) drawn = map.setIncidents([...store.state.incidents.values()], store.state.fresh) || drawn;
        else hidden.add('incidents');
      }
      if (dirty.has('incidents') || dirty.has('wards')) {
        const w = store.state.wards.size ? store.state.wards : wardCountsFromIncidents(store.state.incidents);
        drawn = map.setCity(w, store.state.areas, store.state.incidents, store.state.fresh) || drawn;
        if (w.size) cityFilled = true;
      }
      if (dirty.has('units')) {
        if (!map.ready || map.shows('units')) drawn = map.setUnits(store.state.units) || drawn;
        else hidden.add('units'); // uploaded when the zoom reaches the layer
      }
      let devLater = false;
      if (dirty.has('devices')) {
        if (last - devAt >= 1000) { devAt = last; drawn = map.setDevices(store.state.devices) || drawn; } else devLater = true;
      }
      dirty.clear();
      if (devLater) dirty.add('devices');
      if (!map.ready) { if (dirty.size) schedule(); return; } // the map replays what it was given
      if (!drawn) { if (dirty.size) schedule(); return; }
      drawing = true;
      const batch = ++batches;
      const done = () => {
        if (!drawing || batch !== batches) return;
        drawing = false;
        clearTimeout(cap);
        drawnAt = Date.now();
        idle = Math.min(IDLE_MAX, Math.max(IDLE_MIN, 2 * (drawnAt - last)));
        window.__iocMapGap = drawnAt - last + idle; // read by the measurements
        if (dirty.size) schedule();
      };
      const cap = setTimeout(done, 3000); // a map kept moving never goes idle
      map.map.once('idle', done);
    };
    // The first fill goes at once: the ward layer when the snapshot (with
    // the wards layer) arrives, the incidents when their layer is drawn.
    const firstFill = () => (!cityFilled && (store.state.wards.size > 0 || store.state.incidents.size > 0) && (dirty.has('wards') || dirty.has('incidents'))) ||
      (!map.incidentCount && store.state.incidents.size > 0 && dirty.has('incidents') && map.shows('incidents'));
    const schedule = () => {
      if (firstFill()) { clearTimeout(timer); timer = null; flush(); return; }
      if (timer || drawing) return;
      timer = setTimeout(() => { urgent = false; flush(); }, Math.max(0, drawnAt + (urgent ? Math.max(IDLE_MIN, idle / 2) : idle) - Date.now()));
    };
    const onIncident = (e) => {
      const m = e.detail;
      if (m.op === 'opened' && (m.incident.severity === 'severe' || m.incident.severity === 'extreme')) {
        urgent = true;
        if (timer && !drawing) { clearTimeout(timer); timer = null; schedule(); }
      }
    };
    window.addEventListener('ioc:incident', onIncident);
    const unsub = store.subscribe((d) => {
      let any = false;
      for (const k of ['incidents', 'devices', 'units', 'wards']) if (d.has(k)) { dirty.add(k); any = true; }
      if (any) schedule();
    });
    dirty.add('incidents'); dirty.add('units'); flush();
    const onResize = () => map.resize();
    window.addEventListener('resize', onResize);
    return () => { unsub(); clearTimeout(timer); window.removeEventListener('ioc:incident', onIncident); devices.stop(); map.remove(); window.removeEventListener('resize', onResize); };
  }, []);

  useEffect(() => { for (const [k, v] of Object.entries(layers)) mapRef.current && mapRef.current.setVisible(k, v); }, [layers]);
  useEffect(() => { mapRef.current && mapRef.current.setMode(picking ? 'pick' : null); }, [picking]);

  // The alarm sounds for each new severe or extreme incident.
  const beeped = useRef(new Set());
  useEffect(() => {
    for (const a of s.alarms) if (!beeped.current.has(a.id)) { beeped.current.add(a.id); beep(a.severity); }
  }, [s.alarms]);

  // Keyboard shortcuts.
  useEffect(() => {
    const onKey = (ev) => {
      const tag = (ev.target && ev.target.tagName) || '';
      if (['INPUT', 'TEXTAREA', 'SELECT'].includes(tag) || ev.ctrlKey || ev.metaKey || ev.altKey) {
        if (ev.key === 'Escape' && ev.target.blur) ev.target.blur();
        return;
      }
      const l = listRef.current;
      const sel = store.state.selected;
      const i = l.findIndex((x) => x.id === sel);
      switch (ev.key) {
        case 'j': store.set({ selected: (l[Math.min(l.length - 1, i + 1)] || {}).id || null }); break;
        case 'k': store.set({ selected: (l[Math.max(0, i - 1)] || {}).id || null }); break;
        case 'Enter': if (sel) go('ops', sel); break;
        case 'Escape': setPicking(false); setNewAt(null); setHelp(false); if (route.id) go('ops'); break;
        case 'n': if (can('incidents:open')) setPicking(true); break;
        case 'm': setMuted(!store.state.muted); break;
        case '?': setHelp((h) => !h); break;
        case 'a': case 'd': case 'r': case 'c':
          ev.preventDefault();
          window.dispatchEvent(new CustomEvent('ioc:key', { detail: ev.key }));
          break;
        default: return;
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [route.id]);

  const openIncident = (id) => { store.set({ selected: id }); go('ops', id); };

  return html`<div class=${'operator' + (wall ? ' wall' : '')} data-view="operator">
    <div class="ops-body">
      <div class="map-wrap">
        <${Alarms} onOpen=${openIncident} />
        <div class="map" ref=${mapBox} data-test="map"></div>
        <div class="map-tools">
          <b>${t('map.layers')}</b>
          ${['wards', 'incidents', 'devices', 'units'].map((k) => html`<label><input type="checkbox" data-layer=${k} checked=${layers[k]}
            onChange=${(e) => setLayers({ ...layers, [k]: e.target.checked })} /> ${t('map.' + k)}</label>`)}
          ${can('incidents:open') && !wall ? html`<button class=${picking ? 'primary' : ''} data-act="pick" onClick=${() => setPicking(!picking)}>${t('map.open_here')} (n)</button>` : null}
        </div>
        ${picking ? html`<div class="map-hint">${t('map.click_to_open')}</div>` : null}
        <${Legend} />
      </div>
      <div class="side">
        ${openId && !wall ? html`<${IncidentDetail} id=${openId} onClose=${() => go('ops')} onLocate=${(x) => mapRef.current.flyTo(x)} />` : null}
        <${Queue} list=${list} selected=${openId || s.selected} onOpen=${openIncident} />
      </div>
    </div>
    ${newAt ? html`<${NewIncident} at=${newAt} onCancel=${() => setNewAt(null)} onDone=${(x) => { setNewAt(null); openIncident(x.id); }} />` : null}
    ${help ? html`<div class="dialog" onClick=${() => setHelp(false)}><div class="help"><h2>${t('help.title')}</h2><ul>
      ${['jk', 'enter', 'a', 'd', 'r', 'c', 'n', 'm', 'esc'].map((k) => html`<li>${t('help.' + k)}</li>`)}</ul></div></div>` : null}
  </div>`;
}
