// The map (MapLibre GL, WebGL). Base layer: the ward boundaries from
// GET /api/v1/areas, so it works offline; raster tiles only when the
// configuration names a tile server. What changes live (ward badges,
// incidents and clusters, devices, units) is not in map sources: it is
// drawn by the live layer (overlay.js, a custom layer in the map's own
// WebGL context) from images drawn here at run time, so nothing is fetched
// from outside and an update costs no re-tiling.
import maplibregl from 'maplibre-gl';
import { sevRank } from './store.js';
import { LiveLayer, at } from './overlay.js';

export const HANOI = { center: [105.84, 21.03], zoom: 10.2 };
export const CITY_ZOOM = 11;   // below: the wards map; from here: clusters
export const POINT_ZOOM = 14;  // from here: every incident on its own
export const DEVICE_ZOOM = 12; // devices from here
// Units from city zoom on: below it the map shows the wards alone, so the
// 300 units' moves (each unit every 5 s) do not
// redraw it; at the wards' scale a unit's symbol says little anyway.
export const UNIT_ZOOM = CITY_ZOOM;
const FRESH_MS = 120000; // an incident opened live is drawn as new for 2 minutes

export const SEV_COLOR = { minor: '#2e7d32', moderate: '#f9a825', severe: '#e65100', extreme: '#b71c1c' };
const RANK_COLOR = ['#2e7d32', '#f9a825', '#e65100', '#b71c1c'];
const UNIT_COLOR = { available: '#1565c0', dispatched: '#6a1b9a', en_route: '#6a1b9a', on_scene: '#4e342e', out_of_service: '#757575' };
const UNIT_LETTER = { police: 'P', fire: 'F', ambulance: 'A', rescue: 'R', traffic_police: 'T' };
const PR = 2; // images drawn at twice the CSS size

function canvas(w, h) {
  const c = document.createElement('canvas');
  c.width = w * PR; c.height = h * PR;
  const g = c.getContext('2d');
  g.scale(PR, PR);
  return [c, g];
}

function path(g, shape, cx, cy, r) {
  g.beginPath();
  if (shape === 'circle') g.arc(cx, cy, r, 0, Math.PI * 2);
  else if (shape === 'square') g.rect(cx - r * 0.85, cy - r * 0.85, r * 1.7, r * 1.7);
  else if (shape === 'triangle') { g.moveTo(cx, cy - r * 1.1); g.lineTo(cx + r, cy + r * 0.75); g.lineTo(cx - r, cy + r * 0.75); g.closePath(); }
  else if (shape === 'diamond') { g.moveTo(cx, cy - r * 1.15); g.lineTo(cx + r * 1.15, cy); g.lineTo(cx, cy + r * 1.15); g.lineTo(cx - r * 1.15, cy); g.closePath(); }
}

const SEV_SHAPE = { minor: 'circle', moderate: 'square', severe: 'triangle', extreme: 'diamond' };

// drawImage makes the image a style asks for by name.
function drawImage(name) {
  let m;
  if ((m = /^sev-(\w+?)(-new)?$/.exec(name))) {
    const sev = m[1], fresh = !!m[2];
    const size = fresh ? 34 : 26;
    const [c, g] = canvas(size, size);
    const r = size / 2 - 4;
    path(g, SEV_SHAPE[sev] || 'circle', size / 2, size / 2 + (sev === 'severe' ? 1 : 0), r);
    g.fillStyle = SEV_COLOR[sev] || '#555';
    g.fill();
    g.lineWidth = fresh ? 3 : 2;
    g.strokeStyle = fresh ? '#00e5ff' : '#fff';
    g.stroke();
    g.fillStyle = '#fff';
    g.font = `bold ${fresh ? 14 : 12}px sans-serif`;
    g.textAlign = 'center'; g.textBaseline = 'middle';
    g.fillText(String(sevRank(sev) + 1), size / 2, size / 2 + 2);
    return c;
  }
  if ((m = /^cl-(\d+)-(\d)$/.exec(name))) {
    const n = +m[1], worst = +m[2];
    const label = n >= 1000 ? Math.round(n / 100) / 10 + 'k' : String(n);
    const size = 30 + Math.min(18, label.length * 4);
    const [c, g] = canvas(size, size);
    path(g, 'circle', size / 2, size / 2, size / 2 - 2);
    g.fillStyle = RANK_COLOR[worst] || '#555'; g.globalAlpha = 0.9; g.fill(); g.globalAlpha = 1;
    g.lineWidth = 2; g.strokeStyle = '#fff'; g.stroke();
    g.fillStyle = '#fff'; g.font = 'bold 13px sans-serif'; g.textAlign = 'center'; g.textBaseline = 'middle';
    g.fillText(label, size / 2, size / 2 + 1);
    return c;
  }
  if ((m = /^wc-(\d+)-(-?\d)$/.exec(name))) {
    const n = +m[1], worst = +m[2];
    const label = String(n);
    const w = 18 + label.length * 8, h = 20;
    const [c, g] = canvas(w, h);
    g.beginPath(); g.roundRect ? g.roundRect(1, 1, w - 2, h - 2, 9) : g.rect(1, 1, w - 2, h - 2);
    g.fillStyle = worst >= 0 ? RANK_COLOR[worst] : '#546e7a'; g.fill();
    g.lineWidth = 1.5; g.strokeStyle = '#fff'; g.stroke();
    g.fillStyle = '#fff'; g.font = 'bold 12px sans-serif'; g.textAlign = 'center'; g.textBaseline = 'middle';
    g.fillText(label, w / 2, h / 2 + 1);
    return c;
  }
  if ((m = /^dev-([01])$/.exec(name))) {
    // A device: green when online, grey with a red ring when not (drawn
    // at radius 5, scaled 0.5–1 with the zoom).
    const on = m[1] === '1';
    const [c, g] = canvas(14, 14);
    g.beginPath(); g.arc(7, 7, 5, 0, Math.PI * 2);
    g.fillStyle = on ? '#43a047' : '#9e9e9e'; g.fill();
    g.lineWidth = on ? 1 : 2.5; g.strokeStyle = on ? '#ffffff' : '#c62828'; g.stroke();
    return c;
  }
  if ((m = /^unit-(\w+?)-(\w+)$/.exec(name))) {
    const [c, g] = canvas(22, 22);
    g.beginPath(); g.rect(2, 2, 18, 18);
    g.fillStyle = UNIT_COLOR[m[2]] || '#1565c0'; g.fill();
    g.lineWidth = 2; g.strokeStyle = '#fff'; g.stroke();
    g.fillStyle = '#fff'; g.font = 'bold 12px sans-serif'; g.textAlign = 'center'; g.textBaseline = 'middle';
    g.fillText(UNIT_LETTER[m[1]] || 'U', 11, 12);
    return c;
  }
  return null;
}

// labelPoint: a point for a ward's badge (centre of its largest ring's
// bounding box, good enough for a badge).
function labelPoint(geom) {
  const polys = geom.type === 'Polygon' ? [geom.coordinates] : geom.coordinates;
  let best = null, bestA = -1;
  for (const p of polys) {
    const ring = p[0];
    let a = 0;
    for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) a += (ring[j][0] - ring[i][0]) * (ring[j][1] + ring[i][1]);
    a = Math.abs(a);
    if (a > bestA) { bestA = a; best = ring; }
  }
  let sx = 0, sy = 0;
  for (const c of best) { sx += c[0]; sy += c[1]; }
  return [sx / best.length, sy / best.length];
}

function fc(features) { return { type: 'FeatureCollection', features }; }

// Drawn in software (no GPU: SwiftShader, llvmpipe, Windows' basic
// renderer), a frame costs in proportion to the pixels drawn: there the map
// draws at SOFT_PIXEL_RATIO (the browser scales the canvas up), elsewhere
// at the screen's own ratio.
export const SOFT_PIXEL_RATIO = 0.5;
export function softwareGL(canvas) {
  try {
    const gl = canvas.getContext('webgl2') || canvas.getContext('webgl'); // the map's own context
    if (!gl) return false;
    const ext = gl.getExtension('WEBGL_debug_renderer_info');
    const r = String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    return /swiftshader|llvmpipe|softpipe|software|basic render/i.test(r);
  } catch (e) {
    return false;
  }
}

export class CityMap {
  // opts: {container, config, areas, onSelect(id), onPick(lngLat), onView({bbox, zoom}), onArea(bbox), analyst}
  constructor(opts) {
    this.opts = opts;
    this.ready = false;
    this.pending = {};
    this.mode = null; // null | 'pick' | 'area'
    this.live = null;           // the live layer (overlay.js), from the map's load
    this.wardState = new Map(); // code → "worst/n" last set as feature-state
    this.incidentKey = '';
    this.incidentData = [];     // what the live layer was last given (read by the tests)
    this.cityKey = '';
    this.cityCount = 0;         // incidents the city scale counts (a badge's count or a marker)
    this.areaStart = null;
    const cfg = opts.config || {};
    const sources = {
      wards: { type: 'geojson', data: opts.areas || fc([]), promoteId: 'code' },
    };
    const layers = [{ id: 'bg', type: 'background', paint: { 'background-color': '#e8edf1' } }];
    if (cfg.tile_url) {
      sources.tiles = { type: 'raster', tiles: [cfg.tile_url], tileSize: 256, attribution: cfg.tile_attribution || '' };
      layers.push({ id: 'tiles', type: 'raster', source: 'tiles' });
    }
    this.map = new maplibregl.Map({
      container: opts.container,
      style: { version: 8, sources, layers },
      center: HANOI.center, zoom: HANOI.zoom, minZoom: 8, maxZoom: 18,
      attributionControl: { compact: true, customAttribution: 'Ranh giới © OpenStreetMap contributors (ODbL)' },
      fadeDuration: 0,
      // No pitch: the live layer's projection is affine (overlay.js).
      maxPitch: 0, pitchWithRotate: false, touchPitch: false,
      preserveDrawingBuffer: !!opts.screenshots,
    });
    this.software = softwareGL(this.map.getCanvas());
    if (this.software) this.map.setPixelRatio(Math.min(window.devicePixelRatio || 1, 1) * SOFT_PIXEL_RATIO);
    this.map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-right');
    this.map.addControl(new maplibregl.ScaleControl({ unit: 'metric' }), 'bottom-left');
    this.map.on('load', () => this.setup());
    let viewTimer = null;
    this.map.on('moveend', () => {
      clearTimeout(viewTimer);
      viewTimer = setTimeout(() => this.opts.onView && this.opts.onView(this.view()), 400); // debounced
    });
  }

  view() {
    const b = this.map.getBounds();
    const r = (v) => Math.round(v * 1e5) / 1e5;
    return { bbox: [r(b.getWest()), r(b.getSouth()), r(b.getEast()), r(b.getNorth())], zoom: this.map.getZoom() };
  }

  setup() {
    const m = this.map;
    const analyst = !!this.opts.analyst;
    m.addLayer({ id: 'wards-fill', type: 'fill', source: 'wards', paint: {
      'fill-color': ['match', ['coalesce', ['feature-state', 'worst'], -1],
        0, RANK_COLOR[0], 1, RANK_COLOR[1], 2, RANK_COLOR[2], 3, RANK_COLOR[3], '#90a4ae'],
      'fill-opacity': ['interpolate', ['linear'], ['zoom'], 9, ['case', ['>=', ['coalesce', ['feature-state', 'worst'], -1], 0], 0.45, 0.12], CITY_ZOOM, 0.25, 13, 0.06],
    } });
    m.addLayer({ id: 'wards-line', type: 'line', source: 'wards', paint: {
      'line-color': '#37474f', 'line-width': ['interpolate', ['linear'], ['zoom'], 9, 0.6, 14, 1.6], 'line-opacity': 0.8 } });
    this.live = new LiveLayer(m, { sprite: drawImage, pixelRatio: PR, zooms: {
      city: CITY_ZOOM, device: DEVICE_ZOOM, unit: UNIT_ZOOM, point: POINT_ZOOM, incMin: analyst ? 0 : CITY_ZOOM } });
    m.addLayer(this.live);

    m.addSource('area', { type: 'geojson', data: fc([]) });
    m.addLayer({ id: 'area', type: 'line', source: 'area', paint: { 'line-color': '#0d47a1', 'line-width': 2, 'line-dasharray': [2, 1] } });

    m.on('mousemove', (e) => {
      if (this.mode) return;
      const over = this.live.hit(e.point.x, e.point.y) ||
        (m.getZoom() < CITY_ZOOM && m.queryRenderedFeatures(e.point, { layers: ['wards-fill'] }).length);
      m.getCanvas().style.cursor = over ? 'pointer' : '';
    });
    m.on('click', (e) => this.click(e));
    this.ready = true;
    if (this.opts.fitAreas && this.opts.areas && this.opts.areas.features.length) this.fitAreas(this.opts.areas);
    for (const [k, v] of Object.entries(this.pending)) this[k](...v);
    this.pending = {};
    this.opts.onReady && this.opts.onReady();
  }

  click(e) {
    const m = this.map;
    if (this.mode === 'pick') {
      this.setMode(null);
      this.opts.onPick && this.opts.onPick(e.lngLat);
      return;
    }
    if (this.mode === 'area') {
      if (!this.areaStart) { this.areaStart = e.lngLat; return; }
      const a = this.areaStart, b = e.lngLat;
      this.areaStart = null;
      this.setMode(null);
      const bbox = [Math.min(a.lng, b.lng), Math.min(a.lat, b.lat), Math.max(a.lng, b.lng), Math.max(a.lat, b.lat)]
        .map((v) => Math.round(v * 1e5) / 1e5);
      this.showArea(bbox);
      this.opts.onArea && this.opts.onArea(bbox);
      return;
    }
    const hit = this.live.hit(e.point.x, e.point.y);
    if (hit) {
      if (hit.cluster !== undefined) {
        m.easeTo({ center: [hit.lng, hit.lat], zoom: Math.min(this.live.clusterExpansionZoom(hit.cluster), POINT_ZOOM) });
      } else {
        this.opts.onSelect && this.opts.onSelect(hit.id);
      }
      return;
    }
    if (m.getZoom() < CITY_ZOOM) {
      const w = m.queryRenderedFeatures(e.point, { layers: ['wards-fill'] });
      if (w.length) m.easeTo({ center: e.lngLat, zoom: CITY_ZOOM + 1 });
    }
  }

  setMode(mode) {
    this.mode = mode;
    this.areaStart = null;
    this.map.getCanvas().style.cursor = mode ? 'crosshair' : '';
  }

  defer(name, args) {
    if (!this.ready) { this.pending[name] = args; return true; }
    return false;
  }

  // shows tells whether a live layer is drawn at the current zoom (the
  // operator view uploads only those; the rest when the zoom reaches them).
  shows(layer) {
    const z = this.map.getZoom();
    if (layer === 'units') return z >= UNIT_ZOOM;
    if (layer === 'devices') return z >= DEVICE_ZOOM;
    if (layer === 'incidents') return !!this.opts.analyst || z >= CITY_ZOOM;
    return true;
  }

  // setIncidents gives the live layer the incidents if what it draws of
  // them changed; it returns whether they changed.
  setIncidents(list, fresh) {
    if (this.defer('setIncidents', [list, fresh])) return true;
    const now = Date.now();
    const items = [];
    let key = '';
    for (const x of list) {
      if (!x.location || !x.location.coordinates) continue;
      const f = fresh && fresh.get(x.id);
      const c = x.location.coordinates;
      const p = { id: x.id, severity: x.severity, rank: sevRank(x.severity), status: x.status, fresh: !!(f && now - f < FRESH_MS), lng: c[0], lat: c[1] };
      items.push(p);
      key += `${p.id},${p.severity},${p.status},${p.fresh},${c} `;
    }
    this.incidentCount = items.length; // read by the measurements
    this.incidentData = items;
    if (key === this.incidentKey) return false;
    this.incidentKey = key;
    this.live.setIncidents(items);
    return true;
  }

  setDevices(devices) {
    if (this.defer('setDevices', [devices])) return true;
    const items = [];
    for (const d of devices.values()) {
      const loc = d.location || d.fixed_location;
      if (!loc) continue;
      const [x, y] = at(loc.coordinates);
      items.push({ id: d.id, x, y, online: !!d.online });
    }
    this.live.setDevices(items);
    return true;
  }

  setUnits(units) {
    if (this.defer('setUnits', [units])) return true;
    const items = [];
    for (const u of units.values()) {
      if (!u.location) continue;
      const [x, y] = at(u.location.coordinates);
      items.push({ id: u.id, x, y, kind: u.kind, status: u.status });
    }
    this.live.setUnits(items);
    return true;
  }

  // setCity draws the wards' scale from the streams' wards layer: each
  // ward coloured by its worst open incident (feature-state of the wards
  // source) with a badge of the count, and one by one the new severe and
  // extreme incidents (fresh: id → ms opened live) and those outside every
  // ward. It returns whether what it draws changed.
  setCity(stats, areas, incidents, fresh) {
    if (this.defer('setCity', [stats, areas, incidents, fresh])) return true;
    if (!areas) return false;
    const badges = [], hot = [];
    const states = new Map();
    let total = 0;
    for (const f of areas.features) {
      const code = f.properties.code;
      const s = stats.get(code);
      let n = 0, worst = -1;
      if (s && s.incidents) {
        ['minor', 'moderate', 'severe', 'extreme'].forEach((k, i) => { const c = s.incidents[k] || 0; n += c; if (c > 0) worst = i; });
      }
      total += n;
      const st = worst + '/' + n;
      if (this.wardState.get(code) !== st) { this.wardState.set(code, st); states.set(code, { worst, n }); }
      if (n > 0) {
        if (!f._label) f._label = at(labelPoint(f.geometry));
        badges.push({ code, x: f._label[0], y: f._label[1], n, worst });
      }
    }
    const now = Date.now();
    const marker = (x, isNew, inWard) => {
      const [mx, my] = at(x.location.coordinates);
      hot.push({ id: x.id, x: mx, y: my, severity: x.severity, rank: sevRank(x.severity), fresh: isNew, inWard });
      if (!inWard) total++;
    };
    const seen = new Set();
    if (fresh) {
      for (const [id, t] of fresh) {
        const x = incidents.get(id);
        if (!x || now - t >= FRESH_MS || !(x.severity === 'severe' || x.severity === 'extreme') || !x.location) continue;
        seen.add(id);
        marker(x, true, !!(x.ward && x.ward.code)); // one in a ward is counted in its badge as well
      }
    }
    // An incident outside every ward has no badge: it is drawn on its own.
    for (const x of incidents.values()) if (!(x.ward && x.ward.code) && x.location && !seen.has(x.id)) marker(x, false, false);
    hot.sort((u, v) => u.rank - v.rank);
    this.cityCount = total;
    // The colours change with the badges: feature-state repaints the map,
    // the live layer draws in the same frame.
    for (const [code, st] of states) this.map.setFeatureState({ source: 'wards', id: code }, st);
    const key = badges.map((w) => `${w.code}:${w.n}:${w.worst}`).join(' ') + '|' + hot.map((x) => `${x.id}@${x.x},${x.y}${x.severity}${x.fresh}`).join(' ');
    if (key === this.cityKey) return states.size > 0;
    this.cityKey = key;
    this.live.setCity(badges, hot);
    return true;
  }

  setResults(list) {
    this.incidentKey = null; // the analyst's results: always shown anew
    this.setIncidents(list, null);
  }

  showArea(bbox) {
    if (this.defer('showArea', [bbox])) return;
    const feats = bbox ? [{ type: 'Feature', geometry: { type: 'LineString', coordinates: [
      [bbox[0], bbox[1]], [bbox[2], bbox[1]], [bbox[2], bbox[3]], [bbox[0], bbox[3]], [bbox[0], bbox[1]]] }, properties: {} }] : [];
    this.map.getSource('area').setData(fc(feats));
  }

  setVisible(layer, on) {
    if (this.defer('setVisible_' + layer, [layer, on])) return;
    this.live.setVisible(layer, on);
    if (layer === 'wards') for (const id of ['wards-fill', 'wards-line']) this.map.setLayoutProperty(id, 'visibility', on ? 'visible' : 'none');
  }

  // shown: what the live layer drew last (read by the tests and measurements).
  get shown() { return this.live ? this.live.shown : null; }

  flyTo(x) {
    if (x && x.location) this.map.easeTo({ center: x.location.coordinates, zoom: Math.max(this.map.getZoom(), POINT_ZOOM + 0.5) });
  }

  // fitAreas shows the given wards (a ward-scoped user's own) filling the map.
  fitAreas(areas) {
    let b = [Infinity, Infinity, -Infinity, -Infinity];
    const walk = (c) => {
      if (typeof c[0] === 'number') { b = [Math.min(b[0], c[0]), Math.min(b[1], c[1]), Math.max(b[2], c[0]), Math.max(b[3], c[1])]; return; }
      for (const x of c) walk(x);
    };
    for (const f of areas.features) walk(f.geometry.coordinates);
    if (b[0] <= b[2]) this.map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding: 40, duration: 0, maxZoom: 15 });
  }

  resize() { this.map.resize(); }
  remove() { this.map.remove(); } // removes the live layer too (its onRemove)
}
// setVisible may be deferred per layer.
for (const l of ['wards', 'incidents', 'devices', 'units']) {
  CityMap.prototype['setVisible_' + l] = function (layer, on) { this.setVisible(layer, on); };
}
