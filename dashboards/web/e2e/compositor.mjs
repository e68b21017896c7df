// What a changed frame costs in the test's Chromium (SwiftShader), apart
// from the app: a page with MapLibre and the wards only, for 15 s each,
//   map:  the map repainted once a second (triggerRepaint), nothing else;
//   dom:  one text node changed once a second, the map untouched;
//   both: the two in the same task;
//   pan:  the map panned every frame.
// It prints the frames, how many were over 34 ms, and the map's repaints.
// docs/dashboards.md (fifth session) quotes it. Not a test.
//   cd dashboards/web && node e2e/compositor.mjs   (IOC_SHARED_DATA: the wards' directory)
import { readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { launch } from './browser.mjs';

const dir = mkdtempSync(join(tmpdir(), 'ioc-compositor-'));
await build({ stdin: { contents: "import m from 'maplibre-gl'; window.maplibregl = m;", resolveDir: process.cwd() },
  bundle: true, outfile: join(dir, 'bundle.js'), format: 'iife', logLevel: 'error' });
const wards = readFileSync(join(process.env.IOC_SHARED_DATA || '../../../shared/data/hanoi', 'wards.geojson'), 'utf8');
const b = await launch();
const page = await (await b.newContext({ viewport: { width: 1920, height: 1080 } })).newPage();
await page.route('http://bench/**', (r) => {
  const u = r.request().url();
  if (u.endsWith('/bundle.js')) return r.fulfill({ body: readFileSync(join(dir, 'bundle.js')), contentType: 'text/javascript' });
  if (u.endsWith('/wards.json')) return r.fulfill({ body: wards, contentType: 'application/json' });
  return r.fulfill({ contentType: 'text/html', body: '<html><body style="margin:0"><div id=m style="width:1440px;height:1040px"></div>' +
    '<div id=d style="position:absolute;left:1450px;top:10px">0</div><script src="/bundle.js"></script></body></html>' });
});
await page.goto('http://bench/');
for (const mode of ['map', 'dom', 'both', 'pan']) {
  const r = await page.evaluate(async (mode) => {
    if (!window.map) {
      const data = await (await fetch('/wards.json')).json();
      window.map = new maplibregl.Map({ container: 'm', style: { version: 8, sources: { w: { type: 'geojson', data } }, layers: [
        { id: 'bg', type: 'background', paint: { 'background-color': '#e8edf1' } },
        { id: 'f', type: 'fill', source: 'w', paint: { 'fill-color': '#90a4ae', 'fill-opacity': 0.12 } },
        { id: 'l', type: 'line', source: 'w', paint: { 'line-color': '#37474f', 'line-width': 1 } }] },
        center: [105.84, 21.03], zoom: 10.2, fadeDuration: 0, pixelRatio: 0.5 });
      await new Promise((res) => map.once('idle', res));
    }
    const frames = [];
    let last = 0, renders = 0, n = 0;
    const onRender = () => renders++;
    map.on('render', onRender);
    const tick = setInterval(() => {
      if (mode === 'map' || mode === 'both') map.triggerRepaint();
      if (mode === 'dom' || mode === 'both') document.getElementById('d').textContent = String(Date.now());
    }, 1000);
    await new Promise((done) => {
      const t0 = performance.now();
      const f = (t) => {
        if (last) frames.push(t - last);
        last = t;
        if (mode === 'pan') map.panBy([n++ % 2 ? 3 : -3, 0], { duration: 0 });
        if (t - t0 < 15000) requestAnimationFrame(f); else done();
      };
      requestAnimationFrame(f);
    });
    clearInterval(tick);
    map.off('render', onRender);
    const s = [...frames].sort((a, b) => a - b);
    return { frames: frames.length, over34: frames.filter((x) => x > 34).length, mapRepaints: renders,
      p50: Math.round(s[Math.floor(s.length / 2)]), p95: Math.round(s[Math.floor(s.length * 0.95)]) };
  }, mode);
  console.log(mode.padEnd(5), JSON.stringify(r));
}
await b.close();
