// The live layer of the map: ward badges, incidents and their clusters,
// devices and units, drawn with the 2D canvas API on one canvas above
// MapLibre's (docs/dashboards.md "The live layer").
//
// Why not map sources: any upload to a MapLibre source (setData,
// updateData) re-tiles it in a worker and uploads its buckets again, and
// drawn in software (SwiftShader, a wall PC without a GPU) that made one
// update cost 100–200 ms of frames, even for the 124 ward badges. Here an
// update redraws this canvas alone (a few milliseconds: sprites and a path
// of circles), and the map itself draws only when it moves. The canvas is
// redrawn in the map's own 'render' event, so the two never drift apart
// while panning.
//
// Positions are kept in Web Mercator (0..1); a draw projects three points
// through the map and maps every item with that affine transform (exact
// for a map without pitch, which the CityMap does not allow).
import Supercluster from 'supercluster';

const mercX = (lng) => lng / 360 + 0.5;
const mercY = (lat) => {
  const s = Math.sin(lat * Math.PI / 180);
  return 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI);
};
const lngOf = (x) => (x - 0.5) * 360;
const latOf = (y) => Math.atan(Math.sinh(Math.PI * (1 - 2 * y))) * 180 / Math.PI;

// at returns an item's mercator position from a GeoJSON point.
export function at(coords) { return [mercX(coords[0]), mercY(coords[1])]; }

const lerp = (z, z0, v0, z1, v1) => z <= z0 ? v0 : z >= z1 ? v1 : v0 + (v1 - v0) * (z - z0) / (z1 - z0);

const SPRITES_MAX = 600; // sprites kept (cluster counts and badges vary over a day)

export class Overlay {
  // map: the maplibregl.Map; sprite(name) draws a named image (a canvas at
  // pixelRatio px per CSS px); zooms: {city, device, unit, point, incMin}.
  constructor(map, { sprite, pixelRatio, zooms }) {
    this.map = map;
    this.makeSprite = sprite;
    this.spriteRatio = pixelRatio;
    this.z = zooms;
    this.sprites = new Map();
    this.ratio = Math.max(1, Math.min(2, window.devicePixelRatio || 1));
    const c = this.canvas = document.createElement('canvas');
    c.className = 'map-live';
    c.style.cssText = 'position:absolute;left:0;top:0;pointer-events:none';
    map.getCanvasContainer().after(c); // below the map's controls
    this.g = c.getContext('2d');
    this.visible = { wards: true, incidents: true, devices: true, units: true };
    this.badges = []; // {code, x, y, n, worst}
    this.hot = [];    // {id, x, y, severity, rank, fresh}: new severe incidents and those outside every ward
    this.incidents = [];
    this.index = null; // Supercluster over this.incidents
    this.devices = [];
    this.units = [];
    this.hits = [];    // what the last draw put where, topmost last: {x, y, r, item}
    this.shown = { badges: [], hot: [], points: [], clusters: [], devices: 0, units: 0, city: 0 };
    this.viewKey = '';
    this.dirty = true;
    this.frame = 0;
    this.listeners = [];
    this.onRender = () => this.draw();
    this.onResize = () => { this.size(); this.dirty = true; };
    map.on('render', this.onRender);
    map.on('resize', this.onResize);
    this.size();
  }

  size() {
    const box = this.map.getContainer();
    const w = box.clientWidth, h = box.clientHeight;
    this.w = w; this.h = h;
    this.canvas.width = Math.round(w * this.ratio);
    this.canvas.height = Math.round(h * this.ratio);
    this.canvas.style.width = w + 'px';
    this.canvas.style.height = h + 'px';
  }

  // request redraws at the next frame (what is drawn changed, the map did not move).
  request() {
    this.dirty = true;
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); });
  }

  setIncidents(items) {
    this.incidents = items;
    this.index = new Supercluster({ radius: 48, extent: 512, maxZoom: this.z.point - 1,
      map: (p) => ({ worst: p.rank }), reduce: (a, p) => { a.worst = Math.max(a.worst, p.worst); } });
    this.index.load(items.map((x) => ({ type: 'Feature', geometry: { type: 'Point', coordinates: [x.lng, x.lat] }, properties: x })));
    this.request();
  }

  setCity(badges, hot) { this.badges = badges; this.hot = hot; this.request(); }
  setDevices(items) { this.devices = items; this.request(); }
  setUnits(items) { this.units = items; this.request(); }
  setVisible(layer, on) { if (layer in this.visible) { this.visible[layer] = on; this.request(); } }

  // onDraw(fn) calls fn after every draw (the tests note when an incident was first drawn).
  onDraw(fn) { this.listeners.push(fn); }

  sprite(name) {
    let s = this.sprites.get(name);
    if (!s) {
      if (this.sprites.size >= SPRITES_MAX) this.sprites.clear();
      const c = this.makeSprite(name);
      if (!c) return null;
      s = { c, w: c.width / this.spriteRatio, h: c.height / this.spriteRatio };
      this.sprites.set(name, s);
    }
    return s;
  }

  clusterExpansionZoom(id) { return this.index ? this.index.getClusterExpansionZoom(id) : this.z.point; }

  // hit returns the topmost drawn item under the point (CSS px), or null.
  hit(x, y) {
    for (let i = this.hits.length - 1; i >= 0; i--) {
      const h = this.hits[i];
      const dx = x - h.x, dy = y - h.y;
      if (dx * dx + dy * dy <= (h.r + 3) * (h.r + 3)) return h.item;
    }
    return null;
  }

  draw() {
    const m = this.map;
    const zoom = m.getZoom();
    const ctr = m.getCenter();
    const key = `${ctr.lng},${ctr.lat},${zoom},${m.getBearing()},${this.w},${this.h}`;
    if (!this.dirty && key === this.viewKey) return;
    this.dirty = false;
    this.viewKey = key;
    // The affine transform mercator → screen, from three projected points.
    const cx = mercX(ctr.lng), cy = mercY(ctr.lat);
    const d = 100 / (512 * 2 ** zoom); // about 100 px
    const p0 = m.project(ctr);
    const p1 = m.project([lngOf(cx + d), ctr.lat]);
    const p2 = m.project([ctr.lng, latOf(cy + d)]);
    const a = (p1.x - p0.x) / d, b = (p2.x - p0.x) / d, e = (p1.y - p0.y) / d, f = (p2.y - p0.y) / d;
    const ox = p0.x - a * cx - b * cy, oy = p0.y - e * cx - f * cy;
    const W = this.w, H = this.h, PAD = 40;
    const g = this.g;
    g.setTransform(this.ratio, 0, 0, this.ratio, 0, 0);
    g.clearRect(0, 0, W, H);
    const hits = [];
    const shown = { badges: [], hot: [], points: [], clusters: [], devices: 0, units: 0, city: 0 };
    const sx = (x, y) => ox + a * x + b * y;
    const sy = (x, y) => oy + e * x + f * y;
    const onScreen = (X, Y) => X > -PAD && Y > -PAD && X < W + PAD && Y < H + PAD;
    const put = (name, X, Y, scale, item) => {
      const s = this.sprite(name);
      if (!s) return;
      const w = s.w * scale, h = s.h * scale;
      g.drawImage(s.c, X - w / 2, Y - h / 2, w, h);
      if (item) hits.push({ x: X, y: Y, r: Math.max(w, h) / 2, item });
    };
    const z = this.z;

    // Devices: two paths of circles (online, offline), not a sprite each.
    if (this.visible.devices && zoom >= z.device && this.devices.length) {
      const r = lerp(zoom, 12, 2.5, 16, 5);
      for (const online of [true, false]) {
        g.beginPath();
        let n = 0;
        for (const x of this.devices) {
          if (x.online !== online) continue;
          const X = sx(x.x, x.y), Y = sy(x.x, x.y);
          if (!onScreen(X, Y)) continue;
          g.moveTo(X + r, Y);
          g.arc(X, Y, r, 0, Math.PI * 2);
          n++;
        }
        if (!n) continue;
        shown.devices += n;
        g.fillStyle = online ? '#43a047' : '#9e9e9e';
        g.fill();
        g.lineWidth = online ? 0.5 : 1.5;
        g.strokeStyle = online ? '#ffffff' : '#c62828';
        g.stroke();
      }
    }

    // Incidents one by one close in, in clusters at middle zoom; the most
    // severe and the new ones on top.
    if (this.visible.incidents && zoom >= z.incMin && this.index) {
      const bl = m.unproject([-PAD, H + PAD]), tr = m.unproject([W + PAD, -PAD]);
      const west = Math.min(bl.lng, tr.lng), east = Math.max(bl.lng, tr.lng);
      const south = Math.min(bl.lat, tr.lat), north = Math.max(bl.lat, tr.lat);
      const feats = this.index.getClusters([west, south, east, north], Math.floor(zoom));
      const order = (p) => p.cluster ? -1 : p.rank + (p.fresh ? 4 : 0);
      feats.sort((u, v) => order(u.properties) - order(v.properties));
      for (const ft of feats) {
        const p = ft.properties, c = ft.geometry.coordinates;
        const x = mercX(c[0]), y = mercY(c[1]);
        const X = sx(x, y), Y = sy(x, y);
        if (p.cluster) {
          put(`cl-${p.point_count}-${p.worst}`, X, Y, 1, { cluster: p.cluster_id, lng: c[0], lat: c[1] });
          shown.clusters.push({ id: p.cluster_id, n: p.point_count, worst: p.worst });
        } else {
          put(`sev-${p.severity}${p.fresh ? '-new' : ''}`, X, Y, 1, p);
          shown.points.push({ id: p.id, fresh: p.fresh });
        }
      }
    }

    if (this.visible.units && zoom >= z.unit && this.units.length) {
      const scale = lerp(zoom, z.unit, 0.7, 13, 1);
      for (const u of this.units) {
        const X = sx(u.x, u.y), Y = sy(u.x, u.y);
        if (!onScreen(X, Y)) continue;
        put(`unit-${u.kind}-${u.status}`, X, Y, scale, null);
        shown.units++;
      }
    }

    // The wards' scale: each ward's badge and, one by one, the new severe
    // incidents and those outside every ward.
    if (zoom < z.city) {
      if (this.visible.wards) {
        for (const w of this.badges) {
          const X = sx(w.x, w.y), Y = sy(w.x, w.y);
          if (!onScreen(X, Y)) continue;
          put(`wc-${w.n}-${w.worst}`, X, Y, 1, null);
          shown.badges.push({ code: w.code, n: w.n, worst: w.worst });
          shown.city += w.n;
        }
      }
      if (this.visible.incidents) {
        for (const x of this.hot) {
          const X = sx(x.x, x.y), Y = sy(x.x, x.y);
          if (!onScreen(X, Y)) continue;
          put(`sev-${x.severity}${x.fresh ? '-new' : ''}`, X, Y, 1, x);
          shown.hot.push({ id: x.id, fresh: x.fresh });
          if (!x.inWard) shown.city++; // one counted in a badge is not counted twice
        }
      }
    }
    this.hits = hits;
    this.shown = shown;
    for (const fn of this.listeners) fn(shown);
  }

  remove() {
    cancelAnimationFrame(this.frame);
    this.map.off('render', this.onRender);
    this.map.off('resize', this.onResize);
    this.canvas.remove();
    this.sprites.clear();
    this.listeners = [];
  }
}
