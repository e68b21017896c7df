// The operator's view: the live map, the incident queue, the alarm strip
// for new severe/extreme incidents, an incident's detail, and opening an
// incident by clicking the map. Keyboard shortcuts for the frequent actions.
import { useEffect, useRef, useState, useMemo } from 'preact/hooks';
import { html, useStore, usePacedStore, onPulse, SevBadge, kindName, wardName } from './common.js';
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
  const s = usePacedStore(['incidents'], ['misc']); // the queue's list: on the pulse (common.js)
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
    // What the store changed goes to the map in batches, on the page's
    // pulse (common.js: once a second, with the queue's changes and the
    // clocks): a batch fills the live layer's buffers (overlay.js) and the
    // map draws one frame. Drawn in software (SwiftShader, a wall PC
    // without a GPU) any frame the map draws costs 20 ms on a quiet machine
    // and 100–250 ms on a busy one, whatever it holds (an empty map panned
    // costs the same): so live data makes the page draw at most one frame
    // a second, and the other fifty or so frames of that second cost
    // nothing. A new severe or extreme incident, the first fill and a
    // layer the zoom reaches go at once.
    const dirty = new Set();
    const hidden = new Set(); // changed, but not drawn at this zoom
    let timer = null, filled = false;
    map.map.on('moveend', () => {
      // A layer the zoom now reaches is drawn at once.
      let revealed = false;
      for (const k of hidden) if (map.shows(k)) { hidden.delete(k); dirty.add(k); revealed = true; }
      if (revealed) now();
    });
    const flush = () => {
      clearTimeout(timer);
      timer = null;
      // At the wards' scale (below city zoom) the incidents are not drawn
      // one by one: only the ward layer and the new severe ones (the city
      // scale) change; the incidents go when the zoom reaches them.
      if (dirty.has('incidents')) {
        if (map.shows('incidents')) map.setIncidents([...store.state.incidents.values()], store.state.fresh);
        else hidden.add('incidents');
      }
      if (dirty.has('incidents') || dirty.has('wards')) {
        const w = store.state.wards.size ? store.state.wards : wardCountsFromIncidents(store.state.incidents);
        map.setCity(w, store.state.areas, store.state.incidents, store.state.fresh);
        if (w.size) filled = true;
      }
      if (dirty.has('units')) {
        if (!map.ready || map.shows('units')) map.setUnits(store.state.units);
        else hidden.add('units'); // given when the zoom reaches the layer
      }
      if (dirty.has('devices')) map.setDevices(store.state.devices);
      dirty.clear();
    };
    const now = () => { if (!timer) timer = setTimeout(flush, 0); };
    const stopPulse = onPulse(() => { if (dirty.size) flush(); });
    // An incident stays marked new for two minutes: look again now and then.
    const freshTimer = setInterval(() => { if (store.state.fresh.size) dirty.add('incidents'); }, 15000);
    const onIncident = (e) => {
      const m = e.detail;
      if (m.op === 'opened' && (m.incident.severity === 'severe' || m.incident.severity === 'extreme')) {
        dirty.add('incidents');
        now();
      }
    };
    window.addEventListener('ioc:incident', onIncident);
    const unsub = store.subscribe((d) => {
      let any = false;
      for (const k of ['incidents', 'devices', 'units', 'wards']) if (d.has(k)) { dirty.add(k); any = true; }
      if (any && !filled) now(); // the first fill goes at once
    });
    dirty.add('incidents'); dirty.add('units'); flush();
    const onResize = () => map.resize();
    window.addEventListener('resize', onResize);
    return () => { unsub(); clearTimeout(timer); stopPulse(); clearInterval(freshTimer); window.removeEventListener('ioc:incident', onIncident); devices.stop(); map.remove(); window.removeEventListener('resize', onResize); };
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
