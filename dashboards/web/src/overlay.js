// The live layer of the map: ward badges, incidents and their clusters,
// devices and units, drawn by one MapLibre custom layer into the map's own
// WebGL context (docs/dashboards.md "The live layer").
//
// Why not map sources: any upload to a MapLibre source (setData,
// updateData) re-tiles it in a worker and uploads its buckets again, and
// drawn in software (SwiftShader, a wall PC without a GPU) one update cost
// 100–200 ms of frames, even for the 124 ward badges. Nor a 2D canvas
// above the map: in software, compositing a full-size canvas and
// rasterising thousands of circles cost 100 ms to a second per frame.
// Here every item is a textured quad: an update fills a vertex buffer and
// the map draws one frame; panning moves nothing but the matrix.
//
// Images (severity shapes, cluster counts, badges, unit letters, device
// dots) are drawn once each on 2D canvases (sprite(name)) and copied into
// one texture atlas. Positions are Web Mercator (0..1), stored relative to
// an origin near Hanoi so float32 keeps them to a fraction of a pixel.
import Supercluster from 'supercluster';

const mercX = (lng) => lng / 360 + 0.5;
const mercY = (lat) => {
  const s = Math.sin(lat * Math.PI / 180);
  return 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI);
};
const lngOf = (x) => (x - 0.5) * 360;
const latOf = (y) => Math.atan(Math.sinh(Math.PI * (1 - 2 * y))) * 180 / Math.PI;

// at returns an item's mercator position from a GeoJSON point's coordinates.
export function at(coords) { return [mercX(coords[0]), mercY(coords[1])]; }

const lerp = (z, z0, v0, z1, v1) => z <= z0 ? v0 : z >= z1 ? v1 : v0 + (v1 - v0) * (z - z0) / (z1 - z0);

const ORIGIN = [mercX(105.84), mercY(21.03)];
const ATLAS = 2048; // texture atlas side, device pixels
const FLOATS = 6;   // per vertex: position (2), offset in CSS px (2), texture coordinates (2)

const VERTEX = `
attribute vec2 a_pos;
attribute vec2 a_off;
attribute vec2 a_uv;
uniform mat4 u_matrix;
uniform vec2 u_px;
uniform float u_scale;
varying vec2 v_uv;
void main() {
  vec4 p = u_matrix * vec4(a_pos, 0.0, 1.0);
  p.xy += vec2(a_off.x, -a_off.y) * u_scale * u_px * p.w;
  gl_Position = p;
  v_uv = a_uv;
}`;
const FRAGMENT = `
precision mediump float;
uniform sampler2D u_tex;
varying vec2 v_uv;
void main() { gl_FragColor = texture2D(u_tex, v_uv); }`;

// The layers in drawing order (bottom first), each with the zooms it is
// drawn at and the layer toggle that hides it.
const ORDER = ['devices', 'incidents', 'units', 'badges', 'hot'];
const TOGGLE = { devices: 'devices', incidents: 'incidents', units: 'units', badges: 'wards', hot: 'incidents' };

export class LiveLayer {
  // map: the maplibregl.Map; sprite(name) draws a named image on a canvas
  // at pixelRatio device px per CSS px; zooms: {city, device, unit, point, incMin}.
  constructor(map, { sprite, pixelRatio, zooms }) {
    this.id = 'live';
    this.type = 'custom';
    this.renderingMode = '2d';
    this.map = map;
    this.makeSprite = sprite;
    this.spriteRatio = pixelRatio;
    this.z = zooms;
    this.visible = { wards: true, incidents: true, devices: true, units: true };
    this.data = { devices: [], units: [], badges: [], hot: [], incidents: [] };
    this.index = null;      // Supercluster over the incidents
    this.built = {};        // layer → {n quads, items [{x, y, w, h, item}], dirty}
    for (const l of ORDER) this.built[l] = { n: 0, items: [], verts: null, dirty: false };
    this.clusterZoom = null;
    this.sprites = new Map(); // name → {u0, v0, u1, v1, w, h}
    this.uploads = [];        // sprites drawn but not yet copied to the atlas
    this.shelf = { x: 0, y: 0, h: 0 };
    this.shown = { badges: [], hot: [], points: [], clusters: [], devices: 0, units: 0, city: 0 };
    this.listeners = [];
  }

  // ---- data ----

  setIncidents(items) {
    this.data.incidents = items;
    this.index = new Supercluster({ radius: 48, extent: 512, maxZoom: this.z.point - 1,
      map: (p) => ({ worst: p.rank }), reduce: (a, p) => { a.worst = Math.max(a.worst, p.worst); } });
    this.index.load(items.map((x) => ({ type: 'Feature', geometry: { type: 'Point', coordinates: [x.lng, x.lat] }, properties: x })));
    this.clusterZoom = null; // rebuilt for the zoom at the next frame
    this.map.triggerRepaint();
  }

  setCity(badges, hot) { this.data.badges = badges; this.data.hot = hot; this.build('badges'); this.build('hot'); }
  setDevices(items) { this.data.devices = items; this.build('devices'); }
  setUnits(items) { this.data.units = items; this.build('units'); }
  setVisible(layer, on) { if (layer in this.visible) { this.visible[layer] = on; this.map.triggerRepaint(); } }

  // onDraw(fn) calls fn(shown) after every frame the layer draws (the tests
  // note when an incident was first drawn); it returns the function that
  // stops it.
  onDraw(fn) {
    this.listeners.push(fn);
    return () => { this.listeners = this.listeners.filter((f) => f !== fn); };
  }

  clusterExpansionZoom(id) { return this.index ? this.index.getClusterExpansionZoom(id) : this.z.point; }

  // ---- sprites and the atlas ----

  sprite(name) {
    let s = this.sprites.get(name);
    if (s) return s;
    const c = this.makeSprite(name);
    if (!c) return null;
    const sh = this.shelf;
    if (sh.x + c.width + 2 > ATLAS) { sh.x = 0; sh.y += sh.h + 2; sh.h = 0; }
    if (sh.y + c.height + 2 > ATLAS) {
      // Full (counts vary over a day): start the atlas over, and every
      // layer with it.
      this.sprites.clear();
      this.uploads = [];
      this.shelf = { x: 0, y: 0, h: 0 };
      for (const l of ORDER) if (l !== 'incidents') this.built[l].dirty = true;
      this.clusterZoom = null;
      this.restarted = true;
      return this.sprite(name);
    }
    s = { x: sh.x, y: sh.y, u0: sh.x / ATLAS, v0: sh.y / ATLAS, u1: (sh.x + c.width) / ATLAS, v1: (sh.y + c.height) / ATLAS,
      w: c.width / this.spriteRatio, h: c.height / this.spriteRatio };
    sh.x += c.width + 2;
    sh.h = Math.max(sh.h, c.height);
    this.sprites.set(name, s);
    this.uploads.push([s, c]);
    return s;
  }

  // ---- vertex buffers ----

  // quads fills the vertices of items: each [x, y, spriteName, item].
  quads(list) {
    const v = new Float32Array(list.length * 6 * FLOATS);
    const items = [];
    let k = 0, n = 0;
    for (const [x, y, name, item] of list) {
      const s = this.sprite(name);
      if (!s) continue;
      const dx = x - ORIGIN[0], dy = y - ORIGIN[1];
      const hw = s.w / 2, hh = s.h / 2;
      // Two triangles: top-left, top-right, bottom-left; top-right,
      // bottom-right, bottom-left (written in place: this runs for every
      // device each batch).
      const corner = (ox, oy, u, w) => { v[k++] = dx; v[k++] = dy; v[k++] = ox; v[k++] = oy; v[k++] = u; v[k++] = w; };
      corner(-hw, -hh, s.u0, s.v0); corner(hw, -hh, s.u1, s.v0); corner(-hw, hh, s.u0, s.v1);
      corner(hw, -hh, s.u1, s.v0); corner(hw, hh, s.u1, s.v1); corner(-hw, hh, s.u0, s.v1);
      n++;
      if (item) items.push({ x, y, w: s.w, h: s.h, item });
    }
    return { verts: v.subarray(0, k), n, items };
  }

  build(layer) {
    const d = this.data;
    let list;
    if (layer === 'devices') list = d.devices.map((x) => [x.x, x.y, x.online ? 'dev-1' : 'dev-0', null]);
    else if (layer === 'units') list = d.units.map((u) => [u.x, u.y, `unit-${u.kind}-${u.status}`, null]);
    else if (layer === 'badges') list = d.badges.map((w) => [w.x, w.y, `wc-${w.n}-${w.worst}`, null]);
    else if (layer === 'hot') list = d.hot.map((x) => [x.x, x.y, `sev-${x.severity}${x.fresh ? '-new' : ''}`, x]);
    else return;
    const b = this.quads(list);
    this.built[layer] = { ...b, dirty: true };
    this.map.triggerRepaint();
  }

  // buildIncidents makes the incidents' quads for a zoom: clusters below
  // POINT_ZOOM, each incident on its own from there; the most severe and
  // the new ones on top.
  buildIncidents(zoom) {
    this.clusterZoom = zoom;
    const list = [];
    const points = [], clusters = [];
    if (this.index) {
      const feats = this.index.getClusters([-180, -85, 180, 85], zoom);
      const order = (p) => p.cluster ? -1 : p.rank + (p.fresh ? 4 : 0);
      feats.sort((u, v) => order(u.properties) - order(v.properties));
      for (const f of feats) {
        const p = f.properties, c = f.geometry.coordinates;
        const x = mercX(c[0]), y = mercY(c[1]);
        if (p.cluster) {
          list.push([x, y, `cl-${p.point_count}-${p.worst}`, { cluster: p.cluster_id, lng: c[0], lat: c[1] }]);
          clusters.push({ id: p.cluster_id, n: p.point_count, worst: p.worst });
        } else {
          list.push([x, y, `sev-${p.severity}${p.fresh ? '-new' : ''}`, p]);
          points.push({ id: p.id, fresh: p.fresh });
        }
      }
    }
    this.built.incidents = { ...this.quads(list), dirty: true, points, clusters };
  }

  // drawn tells whether a layer is drawn at zoom.
  drawn(layer, zoom) {
    if (!this.visible[TOGGLE[layer]]) return false;
    const z = this.z;
    if (layer === 'devices') return zoom >= z.device;
    if (layer === 'incidents') return zoom >= z.incMin;
    if (layer === 'units') return zoom >= z.unit;
    return zoom < z.city; // badges, hot
  }

  scale(layer, zoom) {
    if (layer === 'devices') return lerp(zoom, 12, 0.5, 16, 1);
    if (layer === 'units') return lerp(zoom, this.z.unit, 0.7, 13, 1);
    return 1;
  }

  // ---- MapLibre's custom layer interface ----

  onAdd(map, gl) {
    this.gl = gl;
    const shader = (type, src) => {
      const s = gl.createShader(type);
      gl.shaderSource(s, src);
      gl.compileShader(s);
      if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error('live layer shader: ' + gl.getShaderInfoLog(s));
      return s;
    };
    const p = this.program = gl.createProgram();
    gl.attachShader(p, shader(gl.VERTEX_SHADER, VERTEX));
    gl.attachShader(p, shader(gl.FRAGMENT_SHADER, FRAGMENT));
    gl.linkProgram(p);
    if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error('live layer program: ' + gl.getProgramInfoLog(p));
    this.loc = {};
    for (const a of ['a_pos', 'a_off', 'a_uv']) this.loc[a] = gl.getAttribLocation(p, a);
    for (const u of ['u_matrix', 'u_px', 'u_scale', 'u_tex']) this.loc[u] = gl.getUniformLocation(p, u);
    this.buffers = {};
    for (const l of ORDER) this.buffers[l] = gl.createBuffer();
    this.texture = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, this.texture);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, ATLAS, ATLAS, 0, gl.RGBA, gl.UNSIGNED_BYTE, null);
    for (const [k, v] of [[gl.TEXTURE_MIN_FILTER, gl.LINEAR], [gl.TEXTURE_MAG_FILTER, gl.LINEAR],
      [gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE], [gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE]]) gl.texParameteri(gl.TEXTURE_2D, k, v);
  }

  onRemove(map, gl) {
    for (const b of Object.values(this.buffers || {})) gl.deleteBuffer(b);
    if (this.texture) gl.deleteTexture(this.texture);
    if (this.program) gl.deleteProgram(this.program);
    this.listeners = [];
  }

  render(gl, opts) {
    const zoom = this.map.getZoom();
    const cz = Math.min(Math.floor(zoom), this.z.point);
    if (this.clusterZoom !== cz) this.buildIncidents(cz);
    if (this.restarted) {
      // The atlas started over: every layer takes its new places.
      this.restarted = false;
      for (const l of ['devices', 'units', 'badges', 'hot']) this.build(l);
      this.buildIncidents(cz);
    }
    if (gl.bindVertexArray) gl.bindVertexArray(null); // not MapLibre's
    gl.bindTexture(gl.TEXTURE_2D, this.texture);
    if (this.uploads.length) {
      gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, true);
      for (const [s, c] of this.uploads) gl.texSubImage2D(gl.TEXTURE_2D, 0, s.x, s.y, gl.RGBA, gl.UNSIGNED_BYTE, c);
      gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
      this.uploads = [];
    }
    gl.useProgram(this.program);
    // The matrix takes world pixels (mercator × the world's size at this
    // zoom); scaled to mercator and moved to the origin in double precision.
    const m = opts.modelViewProjectionMatrix;
    const ws = 512 * 2 ** zoom;
    const mat = new Float32Array(16);
    for (let i = 0; i < 8; i++) mat[i] = m[i] * ws;
    for (let i = 8; i < 12; i++) mat[i] = m[i];
    for (let r = 0; r < 4; r++) mat[12 + r] = (m[r] * ORIGIN[0] + m[4 + r] * ORIGIN[1]) * ws + m[12 + r];
    gl.uniformMatrix4fv(this.loc.u_matrix, false, mat);
    const cv = this.map.getCanvas();
    gl.uniform2f(this.loc.u_px, 2 / cv.clientWidth, 2 / cv.clientHeight);
    gl.uniform1i(this.loc.u_tex, 0);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, this.texture);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    gl.disable(gl.DEPTH_TEST);
    gl.disable(gl.STENCIL_TEST);
    const { a_pos, a_off, a_uv } = this.loc;
    for (const a of [a_pos, a_off, a_uv]) gl.enableVertexAttribArray(a);
    const shown = { badges: [], hot: [], points: [], clusters: [], devices: 0, units: 0, city: 0 };
    for (const l of ORDER) {
      const b = this.built[l];
      gl.bindBuffer(gl.ARRAY_BUFFER, this.buffers[l]);
      if (b.dirty) { gl.bufferData(gl.ARRAY_BUFFER, b.verts, gl.DYNAMIC_DRAW); b.dirty = false; }
      if (!b.n || !this.drawn(l, zoom)) continue;
      gl.vertexAttribPointer(a_pos, 2, gl.FLOAT, false, FLOATS * 4, 0);
      gl.vertexAttribPointer(a_off, 2, gl.FLOAT, false, FLOATS * 4, 8);
      gl.vertexAttribPointer(a_uv, 2, gl.FLOAT, false, FLOATS * 4, 16);
      gl.uniform1f(this.loc.u_scale, this.scale(l, zoom));
      gl.drawArrays(gl.TRIANGLES, 0, b.n * 6);
      if (l === 'devices') shown.devices = b.n;
      else if (l === 'units') shown.units = b.n;
      else if (l === 'incidents') { shown.points = b.points; shown.clusters = b.clusters; }
      else if (l === 'badges') for (const w of this.data.badges) { shown.badges.push({ code: w.code, n: w.n, worst: w.worst }); shown.city += w.n; }
      else if (l === 'hot') for (const x of this.data.hot) { shown.hot.push({ id: x.id, fresh: x.fresh }); if (!x.inWard) shown.city++; }
    }
    for (const a of [a_pos, a_off, a_uv]) gl.disableVertexAttribArray(a);
    gl.bindBuffer(gl.ARRAY_BUFFER, null);
    this.shown = shown;
    for (const fn of this.listeners) fn(shown);
  }

  // hit returns the topmost clickable item (an incident, a cluster) drawn
  // under the point (CSS px), or null.
  hit(px, py) {
    const m = this.map;
    const zoom = m.getZoom();
    // The affine transform mercator → screen, from three projected points.
    const ctr = m.getCenter();
    const cx = mercX(ctr.lng), cy = mercY(ctr.lat);
    const d = 100 / (512 * 2 ** zoom);
    const p0 = m.project(ctr), p1 = m.project([lngOf(cx + d), ctr.lat]), p2 = m.project([ctr.lng, latOf(cy + d)]);
    const a = (p1.x - p0.x) / d, b = (p2.x - p0.x) / d, e = (p1.y - p0.y) / d, f = (p2.y - p0.y) / d;
    for (const l of ['hot', 'incidents']) {
      if (!this.drawn(l, zoom)) continue;
      const items = this.built[l].items;
      for (let i = items.length - 1; i >= 0; i--) {
        const h = items[i];
        const X = p0.x + a * (h.x - cx) + b * (h.y - cy), Y = p0.y + e * (h.x - cx) + f * (h.y - cy);
        if (Math.abs(px - X) <= h.w / 2 + 2 && Math.abs(py - Y) <= h.h / 2 + 2) return h.item;
      }
    }
    return null;
  }
}
