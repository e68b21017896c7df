// Measures the operator view in Debian's chromium under the load of issue
// 12 "Measure": a real iocd with N open incidents, ~10,000 devices and 300
// moving units from the simulator, while updates stream (the simulator at
// the devices' own schedules, plus incidents opened and resolved through
// the API). From the browser's performance API:
//   - time to first render: navigation start → the queue holds every open
//     incident and the map has drawn them: at city zoom, where the page
//     opens, the wards' badges count them all (median of --runs page loads);
//   - frame time p50/p95/max from requestAnimationFrame at city zoom, close
//     in with the devices layer, and while panning close in; with a peer in
//     the same browser at the same time: an empty page's frames, which show
//     what the machine gives any page;
//   - JS heap after garbage collection, at the start and the end of a soak
//     (--soak 30m; run it on its own, not in CI).
// Not a test: prints the figures (and --out FILE writes them as JSON).
//   cd dashboards/web && node e2e/measure.mjs [--incidents 2000] [--devices 10000] [--units 300]
//        [--runs 3] [--frames 20] [--churn 2] [--rate -1] [--soak 0] [--ab DIR] [--out FILE]
// --ab DIR[,DIR...] measures other bundles (other builds' dist/) as peers in
// the same sitting: a proxy per DIR serves its page and assets and passes
// everything else (API, /ws) to the same iocd, and the page loads alternate
// between iocd's own bundle ("own") and each DIR's (named by its last
// path element), --runs of each.
// Needs bin/iocd and bin/iocsim (IOC_E2E_IOCD / IOC_E2E_IOCSIM) and
// IOC_TEST_DATABASE_URL, like the tests.
import { writeFileSync, readFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { connect } from 'node:net';
import { join, normalize, basename } from 'node:path';
import { launch } from './browser.mjs';
import { Stack, sleep } from './stack.mjs';

function args() {
  const o = { incidents: 2000, devices: 10000, units: 300, runs: 3, frames: 20, churn: 2, rate: -1, soak: '0', ab: '', out: '' };
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i++) {
    const k = a[i].replace(/^--/, '');
    if (!(k in o)) throw new Error('unknown flag ' + a[i]);
    o[k] = typeof o[k] === 'number' ? Number(a[++i]) : a[++i];
  }
  return o;
}
const opt = args();
const soakMs = (() => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(opt.soak);
  if (!m) throw new Error('bad --soak ' + opt.soak);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2] || 's'];
})();
const log = (...a) => console.log(new Date().toISOString().slice(11, 19), ...a);
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))] : NaN; };
const median = (xs) => pct(xs, 50);
const r1 = (v) => Math.round(v * 10) / 10;

// Hanoi's urban core and some of the rest: points for the seeded incidents.
const BOX = [105.72, 20.95, 105.95, 21.10];
const KINDS = ['accident', 'fire', 'medical', 'crime', 'crowd', 'flooding', 'traffic_congestion'];
const SEVS = ['minor', 'moderate', 'moderate', 'severe', 'extreme'];
let rnd = 1;
const random = () => { rnd = (rnd * 16807) % 2147483647; return rnd / 2147483647; };
const point = () => [BOX[0] + random() * (BOX[2] - BOX[0]), BOX[1] + random() * (BOX[3] - BOX[1])].map((v) => Math.round(v * 1e5) / 1e5);

// abProxy serves dir's index.html (with iocd's own headers, its CSP) and
// assets, and passes every other request and websocket upgrade to iocd.
function abProxy(dir, base) {
  const up = new URL(base);
  const srv = createServer(async (req, res) => {
    const path = req.url.split('?')[0];
    if (req.method === 'GET' && (path === '/' || path.startsWith('/assets/'))) {
      try {
        const body = readFileSync(path === '/' ? join(dir, 'index.html') : join(dir, normalize(path).replace(/^\/+/, '')));
        const head = path === '/' ? await fetch(base + '/') : null;
        const h = {};
        if (head) {
          for (const k of ['content-security-policy', 'content-type', 'cache-control', 'x-content-type-options', 'referrer-policy']) if (head.headers.get(k)) h[k] = head.headers.get(k);
        } else h['content-type'] = path.endsWith('.js') ? 'text/javascript' : path.endsWith('.css') ? 'text/css' : path.endsWith('.svg') ? 'image/svg+xml' : 'text/plain';
        res.writeHead(200, h); res.end(body);
      } catch (e) { res.writeHead(404); res.end(); }
      return;
    }
    const p = request({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode, r.headers); r.pipe(res);
    });
    p.on('error', () => { res.writeHead(502); res.end(); });
    req.pipe(p);
  });
  srv.on('upgrade', (req, sock, head) => {
    const c = connect(Number(up.port), up.hostname, () => {
      c.write(`${req.method} ${req.url} HTTP/1.1\r\n` + Object.entries(req.headers).map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n');
      if (head.length) c.write(head);
      c.pipe(sock); sock.pipe(c);
    });
    c.on('error', () => sock.destroy()); sock.on('error', () => c.destroy());
  });
  return new Promise((r) => srv.listen(0, '127.0.0.1', () => r({ srv, base: `http://127.0.0.1:${srv.address().port}` })));
}

async function openIncident(stack, i) {
  const r = await stack.api('POST', '/api/v1/incidents', { kind: KINDS[i % KINDS.length], severity: SEVS[i % SEVS.length],
    title: `Đo tải ${i}`, location: { type: 'Point', coordinates: point() } });
  if (r.status !== 201) throw new Error('open incident: ' + r.status + ' ' + JSON.stringify(r.body));
  return r.body;
}

async function parallel(n, width, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => { while (next < n) await fn(next++); }));
}

// The devices the simulator makes: sensors, cameras, fixed sources and the
// four call centres.
function simDevices(total, units) {
  const sensors = Math.round(total * 0.85), cameras = Math.round(total * 0.14);
  const sources = Math.max(0, total - sensors - cameras - 4);
  return ['--sensors', String(sensors), '--cameras', String(cameras), '--sources', String(sources), '--units', String(units), '--seed', '7'];
}

// In the page, from the first script on: rAF frame intervals, and the
// moment the queue and the map first show every incident.
function pageProbe(want) {
  const p = window.__probe = { frames: [], firstRender: null, queueAt: null, mapAt: null, mapLoaded: false, hooked: false, recording: false, renders: 0 };
  let last = 0;
  const frame = (t) => {
    if (p.recording && last) p.frames.push(t - last);
    last = t;
    if (p.firstRender === null) {
      const st = window.__iocStore && window.__iocStore.state;
      const h = document.querySelector('[data-view=queue] h2');
      if (p.queueAt === null && st && st.incidents.size >= want && h && document.querySelectorAll('li.q-row').length > 0 &&
          /\d/.test(h.textContent) && Number(h.textContent.replace(/\D/g, '')) >= want) p.queueAt = t;
      // The map: the first frame after its incidents source was loaded
      // with every incident (hooked by the timer below).
      if (p.mapAt === null && p.mapLoaded) p.mapAt = t;
      // The live layer (overlay.js) says what its last draw showed.
      const lm = window.__iocMap;
      if (p.mapAt === null && lm && lm.shown && lm.shown.city >= want) p.mapAt = t;
      if (p.queueAt !== null && p.mapAt !== null) p.firstRender = Math.max(p.queueAt, p.mapAt);
    }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  // Hook the map as soon as it exists: waiting for a frame could miss its
  // first upload when frames take seconds.
  const hook = setInterval(() => {
    const m = window.__iocMap;
    if (!m || p.hooked) return;
    p.hooked = true;
    clearInterval(hook);
    m.map.on('render', () => { if (p.recording) p.renders++; }); // frames the map drew
    m.map.on('sourcedata', (e) => {
      // At city zoom the map draws the incidents as the wards' badges (the
      // city source; a bundle without it uploaded every incident).
      if (p.mapAt === null && !p.mapLoaded && e.isSourceLoaded && ((e.sourceId === 'incidents' && m.incidentCount >= want) ||
          (e.sourceId === 'city' && m.cityCount >= want))) p.mapLoaded = true;
    });
  }, 5);
}

async function frames(page, seconds, during) {
  await page.evaluate(() => { window.__probe.frames = []; window.__probe.renders = 0; window.__probe.recording = true; });
  const end = Date.now() + seconds * 1000;
  if (during) await during(end);
  else await sleep(seconds * 1000);
  const [f, renders] = await page.evaluate(() => { window.__probe.recording = false; return [window.__probe.frames, window.__probe.renders]; });
  // long: frames over 33 ms; renders: frames the map drew (live data, moves).
  return { n: f.length, p50: r1(pct(f, 50)), p95: r1(pct(f, 95)), p99: r1(pct(f, 99)), max: r1(Math.max(...f)),
    long: f.filter((x) => x > 34).length, renders };
}

async function heap(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('HeapProfiler.enable');
  await cdp.send('HeapProfiler.collectGarbage');
  const { usedSize } = await cdp.send('Runtime.getHeapUsage');
  await cdp.detach();
  return usedSize;
}

async function main() {
  const stack = await new Stack({ name: 'ioc_measure' }).start();
  let browser, churn, proxies = [];
  const out = { options: opt, started: new Date().toISOString() };
  try {
    const pw = 'Mat-khau-do-tai-2026';
    const u = await stack.api('POST', '/api/v1/users', { name: 'dieuphoi', role: 'dispatcher', password: pw });
    if (u.status !== 201) throw new Error('user: ' + u.status);

    // Devices first: the simulator as fast as the broker takes it until
    // (nearly) every device has reported once.
    log(`registering ${opt.devices} devices and ${opt.units} units`);
    const dev = simDevices(opt.devices, opt.units);
    const warm = stack.sim(['--rate', '0', '--progress', '0', ...dev]);
    const t0 = Date.now();
    let devices = 0, units = 0;
    while (Date.now() - t0 < 240000) {
      await sleep(3000);
      devices = Number(stack.psql('select count(*) from devices', stack.dbURL));
      units = Number(stack.psql('select count(*) from units_latest', stack.dbURL));
      if (devices >= opt.devices * 0.97 && units >= opt.units) break;
    }
    warm.kill('SIGTERM');
    log(`devices ${devices}, units ${units} after ${Math.round((Date.now() - t0) / 1000)} s`);
    out.devices = devices; out.units = units;

    log(`opening ${opt.incidents} incidents through the API`);
    const ids = [];
    await parallel(opt.incidents, 6, async (i) => { ids.push((await openIncident(stack, i)).id); });
    // The streaming load: the simulator at the devices' own schedules
    // (units every 5 s), and churn/s incidents opened and as many resolved.
    stack.sim(['--rate', String(opt.rate), '--progress', '0', ...dev]);
    let n = opt.incidents, stopChurn = false;
    if (opt.churn > 0) {
      churn = (async () => {
        while (!stopChurn) {
          const t = Date.now();
          try {
            const x = await openIncident(stack, n++);
            ids.push(x.id);
            const old = ids.shift();
            const cur = await stack.api('GET', '/api/v1/incidents/' + old);
            await stack.api('POST', `/api/v1/incidents/${old}/resolve`, { resolution: 'handled', note: 'đo tải' }, undefined, cur.body.version);
          } catch (e) { log('churn:', e.message); }
          await sleep(Math.max(0, 1000 / opt.churn - (Date.now() - t)));
        }
      })();
    }
    const open = await stack.api('GET', '/api/v1/incidents?active=true&limit=1');
    if (open.status !== 200) throw new Error('list: ' + open.status);
    await sleep(5000);

    browser = await launch(['--enable-precise-memory-info']);
    const ctx = await browser.newContext({ viewport: { width: 1920, height: 1080 }, locale: 'vi-VN', timezoneId: 'Asia/Ho_Chi_Minh' });
    const login = await ctx.request.post(stack.base + '/api/v1/login', { data: { name: 'dieuphoi', password: pw } });
    if (!login.ok()) throw new Error('login ' + login.status());
    await ctx.addInitScript(pageProbe, opt.incidents);
    const page = await ctx.newPage();
    page.on('pageerror', (e) => log('page error:', e.message));
    // The peer: an empty page in the same browser, measured at the same time.
    const peerCtx = await browser.newContext({ viewport: { width: 800, height: 600 } });
    const peer = await peerCtx.newPage();
    await peer.evaluate(pageProbe, 1e9);

    out.runs = [];
    const builds = [{ name: 'own', base: stack.base }];
    proxies = [];
    for (const dir of opt.ab ? opt.ab.split(',') : []) {
      const px = await abProxy(dir, stack.base); // the session cookie is the host's, whatever the port
      proxies.push(px);
      builds.push({ name: basename(dir.replace(/\/+$/, '')), base: px.base });
    }
    const loads = [];
    for (let run = 0; run < opt.runs; run++) {
      const order = run % 2 ? [...builds].reverse() : builds; // alternating: ABC CBA ABC
      for (const b of order) loads.push([run, b]);
    }
    for (const [run, build] of loads) {
      await page.goto(build.base + '/?run=' + run + '#/ops', { waitUntil: 'commit' }); // a new document each run
      const end = Date.now() + 60000;
      let pr;
      while (Date.now() < end) {
        pr = await page.evaluate(() => {
          const p = window.__probe;
          const fcp = performance.getEntriesByName('first-contentful-paint')[0];
          return p && p.firstRender !== null && { firstRender: p.firstRender, queueAt: p.queueAt, mapAt: p.mapAt,
            fcp: fcp ? fcp.startTime : null, incidents: window.__iocStore.state.incidents.size, units: window.__iocStore.state.units.size };
        }).catch(() => null);
        if (pr) break;
        await sleep(100);
      }
      if (!pr) {
        const st = await page.evaluate(() => {
          const p = window.__probe, m = window.__iocMap, s = window.__iocStore && window.__iocStore.state;
          let wards = 0;
          if (s) for (const w of s.wards.values()) for (const v of Object.values(w.incidents || {})) wards += v;
          return { queueAt: p && p.queueAt, mapLoaded: p && p.mapLoaded, incidents: s && s.incidents.size, wards,
            cityCount: m && m.cityCount, incidentCount: m && m.incidentCount, zoom: m && m.map.getZoom() };
        }).catch((e) => e.message);
        throw new Error(`the page (${build.name}) did not show the incidents within 60 s: ${JSON.stringify(st)}`);
      }
      log(`run ${run + 1} (${build.name}): first render ${Math.round(pr.firstRender)} ms (queue ${Math.round(pr.queueAt)}, map ${Math.round(pr.mapAt)}, FCP ${Math.round(pr.fcp)}), ${pr.incidents} incidents, ${pr.units} units`);
      await sleep(2000);
      const [city, cityPeer] = await Promise.all([frames(page, opt.frames), frames(peer, opt.frames)]);
      log(`  city zoom: frames p50 ${city.p50} p95 ${city.p95} p99 ${city.p99} max ${city.max} ms (n ${city.n}, ${city.long} over 34 ms, map drew ${city.renders}); peer p95 ${cityPeer.p95}`);
      // Close in: devices from zoom 12, their own subscription for the box.
      await page.evaluate(() => window.__iocMap.map.jumpTo({ center: [105.845, 21.025], zoom: 13 }));
      for (let i = 0; i < 100 && !(await page.evaluate(() => window.__iocStore.state.devices.size)); i++) await sleep(200);
      await sleep(2000);
      const shownDevices = await page.evaluate(() => window.__iocStore.state.devices.size);
      const [close, closePeer] = await Promise.all([frames(page, opt.frames), frames(peer, opt.frames)]);
      log(`  zoom 13, ${shownDevices} devices in view: frames p50 ${close.p50} p95 ${close.p95} p99 ${close.p99} max ${close.max} ms (n ${close.n}, ${close.long} over 34 ms, map drew ${close.renders}); peer p95 ${closePeer.p95}`);
      const pan = await frames(page, Math.max(5, opt.frames / 2), async (until) => {
        let k = 0;
        while (Date.now() < until) {
          await page.mouse.move(900, 500);
          await page.mouse.down();
          for (let s = 0; s < 10; s++) await page.mouse.move(900 + (k % 2 ? -1 : 1) * s * 20, 500 + s * 5);
          await page.mouse.up();
          k++;
        }
      });
      log(`  panning at zoom 13: frames p50 ${pan.p50} p95 ${pan.p95} max ${pan.max} ms`);
      out.runs.push({ build: build.name, ...pr, city, cityPeer, close, closePeer, pan, shownDevices });
    }
    out.medians = {};
    for (const b of builds) {
      const rs = out.runs.filter((r) => r.build === b.name);
      const m = (f) => r1(median(rs.map(f)));
      out.medians[b.name] = { firstRender: m((r) => r.firstRender), queueAt: m((r) => r.queueAt), mapAt: m((r) => r.mapAt),
      cityP95: m((r) => r.city.p95), cityPeerP95: m((r) => r.cityPeer.p95), closeP95: m((r) => r.close.p95),
      closePeerP95: m((r) => r.closePeer.p95), panP95: m((r) => r.pan.p95),
      cityFrames: m((r) => r.city.n), cityP50: m((r) => r.city.p50) };
      log(`medians of ${opt.runs} runs (${b.name}):`, JSON.stringify(out.medians[b.name]));
    }
    out.median = out.medians.own;

    if (soakMs > 0) {
      await page.goto(stack.base + '/?soak=1#/ops');
      await sleep(60000);
      const samples = [];
      const start = await heap(page);
      samples.push({ t: 0, used: start });
      log(`soak: heap after GC at the start ${(start / 1048576).toFixed(1)} MiB`);
      const t1 = Date.now();
      while (Date.now() - t1 < soakMs) {
        await sleep(Math.min(60000, soakMs));
        const used = await heap(page);
        samples.push({ t: Date.now() - t1, used });
        log(`soak: +${Math.round((Date.now() - t1) / 60000)} min heap ${(used / 1048576).toFixed(1)} MiB, ` +
          `${await page.evaluate(() => window.__iocStore.state.incidents.size)} incidents, conn ${await page.evaluate(() => window.__iocStore.state.conn)}`);
      }
      const endUsed = samples[samples.length - 1].used;
      out.soak = { ms: soakMs, startBytes: start, endBytes: endUsed, growth: r1((endUsed - start) / start * 100), samples };
      log(`soak: ${opt.soak}: heap ${(start / 1048576).toFixed(1)} → ${(endUsed / 1048576).toFixed(1)} MiB (${out.soak.growth} %)`);
    }
    stopChurn = true;
    await churn;
    out.incidentsAtEnd = await page.evaluate(() => window.__iocStore.state.incidents.size);
  } finally {
    if (browser) await browser.close();
    for (const px of proxies) px.srv.close();
    await stack.close();
  }
  out.finished = new Date().toISOString();
  if (opt.out) writeFileSync(opt.out, JSON.stringify(out, null, 2));
}

main().catch((e) => { console.error(e); process.exit(1); });
