// End-to-end tests of the control-room app in Debian's chromium against a
// real iocd (with PostgreSQL/PostGIS, the project's Mosquitto and the
// simulator), as issue 12 "Show it" asks. Saves a screenshot of each view
// in docs/screens/. Run from deploy/test.sh, or:
//   cd dashboards/web && node --test e2e/run.mjs      (IOC_E2E_KEEP=1 keeps logs)
// Needs: bin paths in IOC_E2E_IOCD / IOC_E2E_IOCSIM (built by the caller),
// IOC_TEST_DATABASE_URL (a superuser URL to the postgres database).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { launch } from './browser.mjs';
import { Stack, screens, sleep } from './stack.mjs';

const userPassword = 'Mat-khau-truc-2026';
let stack, browser;

// until polls fn in the page (page.evaluate, which the page's CSP allows;
// waitForFunction would need eval).
async function until(page, fn, arg, timeout = 20000) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await page.evaluate(fn, arg);
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out waiting for ' + fn.toString().slice(0, 160));
    await sleep(25);
  }
}
// waitFor: a selector present in the page (Playwright's own waiting polls
// with code the page's CSP refuses to evaluate).
async function waitFor(page, selector, timeout = 20000) {
  await until(page, (sel) => !!document.querySelector(sel), selector, timeout);
}
// showRow: the incident is in the page's store, and its queue row (the
// queue draws only the rows in view) once selected.
async function showRow(page, id, timeout = 20000) {
  await until(page, (x) => window.__iocStore.state.incidents.has(x), id, timeout);
  await page.evaluate((x) => window.__iocStore.set({ selected: x }), id);
  await waitFor(page, `li.q-row[data-id="${id}"]`, timeout);
}
// live: the page is on the websocket (not the HTTP fallback), has had its
// snapshot (an epoch) and a heartbeat from the server.
async function live(page, timeout = 30000) {
  await until(page, () => {
    const s = window.__iocStore.state, l = window.__iocLive;
    return s.conn === 'open' && l && l.snapshotSeen && !!l.epoch && !!s.lastBeat;
  }, null, timeout);
}
const incidentAt = ([lon, lat]) => {
  for (const x of window.__iocStore.state.incidents.values()) {
    const c = x.location && x.location.coordinates;
    if (c && Math.abs(c[0] - lon) < 1e-6 && Math.abs(c[1] - lat) < 1e-6) return x.id;
  }
  return null;
};

async function signIn(name, password, viewport = { width: 1440, height: 900 }) {
  const ctx = await browser.newContext({ viewport, locale: 'vi-VN', timezoneId: 'Asia/Ho_Chi_Minh', acceptDownloads: true });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.log(`[${name}] page error:`, e.message));
  await page.goto(stack.base + '/');
  await waitFor(page, '[data-view=login]');
  await page.fill('input[name=name]', name);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  return { ctx, page };
}
async function mapReady(page) {
  await until(page, () => window.__iocMapReady && window.__iocMap.map.isSourceLoaded('wards'), null, 20000);
}
// pixelNear reads the map's pixel (dx, dy) CSS px from an incident, in a
// frame the live layer has just drawn (the drawing buffer is read before
// the browser presents it).
async function pixelNear(page, id, dx, dy) {
  return page.evaluate(([id, dx, dy]) => new Promise((done) => {
    const m = window.__iocMap, live = m.live;
    const c = window.__iocStore.state.incidents.get(id).location.coordinates;
    const stop = live.onDraw(() => {
      stop();
      const gl = live.gl, r = m.map.getPixelRatio(), p = m.map.project(c);
      const out = new Uint8Array(4);
      gl.readPixels(Math.round((p.x + dx) * r), Math.round(gl.drawingBufferHeight - (p.y + dy) * r), 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, out);
      done([...out]);
    });
    m.map.triggerRepaint();
  }), [id, dx, dy]);
}
async function shot(page, name) {
  await page.screenshot({ path: join(screens, name + '.png') });
}

before(async () => {
  mkdirSync(screens, { recursive: true });
  stack = await new Stack().start();
  for (const [name, role] of [['dieuphoi', 'dispatcher'], ['trucban', 'operator'], ['phantich', 'analyst']]) {
    const r = await stack.api('POST', '/api/v1/users', { name, role, password: userPassword });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }
  stack.sim(['--rate', '50', '--sensors', '300', '--cameras', '60', '--progress', '0']);
  browser = await launch();
});

after(async () => {
  if (browser) await browser.close();
  if (stack) await stack.close();
});

const P1 = [105.85234, 21.02871]; // Hoàn Kiếm
const P2 = [105.77512, 21.03012]; // west of the centre, another ward
const P3 = [105.84123, 21.00456];
let A, B, incidentId;

test('log in; the map shows the wards', async () => {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'vi-VN' });
  const page = await ctx.newPage();
  await page.goto(stack.base + '/');
  await waitFor(page, '[data-view=login]');
  assert.match(await page.textContent('h1'), /Trung tâm điều hành/);
  // A wrong password is refused and said so.
  await page.fill('input[name=name]', 'dieuphoi');
  await page.fill('input[name=password]', 'sai-mat-khau');
  await page.click('button[type=submit]');
  await waitFor(page, '[data-view=login] .error');
  assert.equal(await page.$('[data-view=operator]'), null);
  await page.fill('input[name=password]', '');
  await shot(page, 'login');
  await ctx.close();
  A = await signIn('dieuphoi', userPassword);
  await waitFor(A.page, '[data-view=operator]');
  assert.match(await A.page.textContent('[data-test=user]'), /dieuphoi · Điều phối/);
  await mapReady(A.page);
  const wards = await until(A.page, async () => {
    const d = await window.__iocMap.map.getSource('wards').getData();
    return d.features.length >= 100 && window.__iocMap.map.queryRenderedFeatures({ layers: ['wards-line'] }).length > 0 && d.features.length;
  }, null, 30000);
  assert.ok(wards >= 100, `map has ${wards} wards`);
  // On the websocket, with a heartbeat shown as the last update.
  await live(A.page);
  await until(A.page, () => /Cập nhật lúc \d\d:\d\d:\d\d/.test(document.querySelector('[data-test=last-update]').textContent));
});

test('a scripted incident appears in the queue and on the map within 2 s', async () => {
  B = await signIn('trucban', userPassword, { width: 1280, height: 800 });
  await waitFor(B.page, '[data-view=operator]');
  await live(B.page);
  // The page notes when each incident's websocket frame arrived, its queue
  // row was drawn and the map held it (its own clock: the test's polling
  // does not count). At city zoom, where the page opens, the map draws the
  // wards and, one by one, only the new severe and extreme incidents: the
  // city source's markers.
  assert.ok(await A.page.evaluate(() => window.__iocMap.map.getZoom() < 11), 'page does not open at the wards scale');
  await A.page.evaluate(() => {
    const seen = window.__e2e = { frame: {}, row: {}, map: {} };
    window.addEventListener('ioc:incident', (e) => { seen.frame[e.detail.incident.id] ??= Date.now(); });
    new MutationObserver(() => {
      const now = Date.now();
      for (const li of document.querySelectorAll('li.q-row')) seen.row[li.dataset.id] ??= now;
    }).observe(document.body, { subtree: true, childList: true });
    // The live layer (the canvas above the map) reports what each draw showed.
    window.__iocMap.live.onDraw((shown) => {
      const now = Date.now();
      for (const h of shown.hot) seen.map[h.id] ??= now;
    });
  });
  const t0 = Date.now();
  stack.publishEmergency('one', ...P1);
  incidentId = await until(A.page, incidentAt, P1, 30000);
  const seen = await until(A.page, (id) => {
    const e = window.__e2e;
    return e.row[id] && e.map[id] && { frame: e.frame[id], row: e.row[id], map: e.map[id], opened: window.__iocStore.state.incidents.get(id).opened_at };
  }, incidentId);
  const inQueue = seen.row - t0, onMap = seen.map - t0;
  console.log(`# MQTT emergency → queue row ${inQueue} ms, → drawn on the map ${onMap} ms (issue 12 target 2000 ms); ` +
    `iocd opened it at +${Date.parse(seen.opened) - t0} ms, its websocket frame reached the page at +${seen.frame - t0} ms`);
  await showRow(A.page, incidentId);
  // Timings are not asserted unless asked (IOC_E2E_LATENCY_MS): the
  // shared test machine's load decides them more than the code.
  const limit = Number(process.env.IOC_E2E_LATENCY_MS || 0);
  if (limit) assert.ok(onMap <= limit && inQueue <= limit, `incident took ${inQueue}/${onMap} ms to queue/map (limit ${limit})`);
  // New extreme incident: the alarm strip shows and the beep was played.
  await waitFor(A.page, '[data-test=alarms]');
  assert.match(await A.page.textContent('[data-test=alarms]'), /Đặc biệt nghiêm trọng/);
  assert.ok(await A.page.evaluate(() => window.__iocBeeps > 0), 'no alarm beep');
  // It stands out as new, in the queue and on the map: at city zoom its
  // marker is drawn (the new-incident marker) and its ward's badge counts
  // it (the streams' wards layer, refreshed every 3 s).
  assert.ok(await A.page.$(`li.q-row.fresh[data-id="${incidentId}"]`), 'queue row not marked new');
  await until(A.page, (id) => window.__iocMap.shown.hot.some((f) => f.id === id && f.fresh), incidentId);
  // And the frame has it: the pixel just left of the marker's centre (its
  // number is white) is the extreme severity's red.
  const px = await pixelNear(A.page, incidentId, -7, 0);
  assert.ok(px[0] > 150 && px[1] < 90 && px[2] < 90, `the new extreme incident's marker is not drawn: pixel ${px}`);
  const ward = await A.page.evaluate((id) => window.__iocStore.state.incidents.get(id).ward.code, incidentId);
  await until(A.page, async (code) => {
    const w = window.__iocStore.state.wards.get(code);
    const n = w && w.incidents ? Object.values(w.incidents).reduce((a, b) => a + b, 0) : 0;
    return n > 0 && window.__iocMap.shown.badges.some((b) => b.code === code && b.n === n && b.worst === 3) &&
      window.__iocMap.map.getFeatureState({ source: 'wards', id: code }).worst === 3;
  }, ward, 10000);
  await showRow(B.page, incidentId);
  // Close in, the incidents are drawn one by one (clusters until zoom 14),
  // this one marked new.
  await A.page.evaluate((c) => window.__iocMap.map.jumpTo({ center: c, zoom: 12.5 }), P1);
  await until(A.page, (id) => {
    const f = window.__iocMap.incidentData.find((x) => x.id === id);
    return f && f.fresh && (window.__iocMap.shown.points.length + window.__iocMap.shown.clusters.length) > 0;
  }, incidentId, 10000);
  // Close in, the devices layer subscribes for the map's box.
  await until(A.page, () => window.__iocStore.state.devices.size > 0, null, 20000);
  await until(A.page, () => window.__iocMap.shown.devices > 0, null, 20000);
  await sleep(500);
  await shot(A.page, 'operator');
});

test('acknowledging in one browser updates the second; a conflict is shown', async () => {
  // A camera 50 m from the incident with a snapshot: the detail lists the
  // nearby cameras nearest first, as the server answers, with its link.
  const snap = 'https://vms.hanoi.example/snap/e2e-cam-near/1.jpg';
  stack.publishCamera('e2e-cam-near', P1[0] + 0.0005, P1[1], snap);
  const nearQ = `/api/v1/devices?near=${P1[0]},${P1[1]}&radius_m=1000&kind=camera&limit=5`;
  for (let i = 0; ; i++) {
    const r = await stack.api('GET', nearQ);
    if (r.status === 200 && r.body.items[0]?.id === 'e2e-cam-near' && r.body.items[0].snapshot_url === snap) break;
    if (i > 100) assert.fail('the camera did not arrive: ' + JSON.stringify(r.body));
    await sleep(100);
  }
  await A.page.evaluate((id) => window.__iocStore.set({ selected: id }), incidentId);
  await waitFor(A.page, `li.q-row[data-id="${incidentId}"]`);
  await A.page.click(`li.q-row[data-id="${incidentId}"]`);
  await waitFor(A.page, `[data-view=incident][data-id="${incidentId}"]`);
  await B.page.evaluate((id) => window.__iocStore.set({ selected: id }), incidentId);
  await waitFor(B.page, `li.q-row[data-id="${incidentId}"]`);
  await B.page.click(`li.q-row[data-id="${incidentId}"]`);
  await waitFor(B.page, `[data-view=incident][data-id="${incidentId}"] [data-act=ack]`);
  await waitFor(A.page, '[data-test=cameras] [data-camera]');
  // (Compared by order, not with a second answer of the server: the
  // simulator's cameras keep turning up for the first time.)
  const shown = await A.page.evaluate(() => [...document.querySelectorAll('[data-test=cameras] [data-camera]')]
    .map((li) => ({ id: li.dataset.camera, m: Number(li.dataset.distance) })));
  assert.equal(shown[0].id, 'e2e-cam-near');
  assert.ok(shown.length <= 5 && shown.every((c, i) => i === 0 || c.m >= shown[i - 1].m), JSON.stringify(shown));
  assert.equal(await A.page.getAttribute('[data-camera="e2e-cam-near"] a', 'href'), snap);
  await A.page.click('[data-view=incident] [data-act=ack]');
  // B's queue row changes state without a reload.
  await until(B.page, (id) => {
    const row = document.querySelector(`li.q-row[data-id="${id}"] .status`);
    return row && row.classList.contains('status-acknowledged');
  }, incidentId);
  await waitFor(B.page, '[data-test=changed]');
  // B acts on the version it saw: refused, and shown with what changed.
  await B.page.click('[data-view=incident] [data-act=ack]');
  await waitFor(B.page, '[data-test=conflict]');
  const text = await B.page.textContent('[data-test=conflict]');
  assert.match(text, /Mới → Đã tiếp nhận/);
  assert.match(text, /dieuphoi/);
  await shot(B.page, 'conflict');
  // A dispatches the nearest available unit with one click: the
  // simulator's units are on the map, so one is suggested.
  await waitFor(A.page, '[data-act=dispatch-nearest]', 20000);
  const unit = (await A.page.textContent('[data-act=dispatch-nearest]')).match(/(\S+-\d+)/)[1];
  await A.page.click('[data-act=dispatch-nearest]');
  await until(A.page, (id) => window.__iocStore.state.incidents.get(id)?.status === 'dispatched', incidentId);
  await until(B.page, (id) => window.__iocStore.state.incidents.get(id)?.status === 'dispatched', incidentId);
  assert.deepEqual((await stack.api('GET', '/api/v1/incidents/' + incidentId)).body.units, [unit]);
  // The unit sent is not offered again.
  await until(A.page, (u) => { const n = document.querySelector('[data-test=nearest]'); return n && !n.textContent.includes(u + ' '); }, unit);
  await sleep(500);
  await shot(A.page, 'incident');
  await A.page.evaluate(() => document.querySelector('[data-test=cameras]').scrollIntoView({ block: 'center' }));
  await shot(A.page, 'incident-cameras');
  // One browser at a time from here: the machine is small.
  await B.ctx.close();
  await A.ctx.close();
});

test('a ward-scoped operator does not see other wards', async () => {
  const one = await stack.api('POST', '/api/v1/incidents', { kind: 'accident', severity: 'moderate', title: 'E2E phường 1', location: { type: 'Point', coordinates: P1 } });
  const two = await stack.api('POST', '/api/v1/incidents', { kind: 'accident', severity: 'moderate', title: 'E2E phường 2', location: { type: 'Point', coordinates: P2 } });
  assert.equal(one.status, 201); assert.equal(two.status, 201);
  const w1 = one.body.ward.code, w2 = two.body.ward.code;
  assert.notEqual(w1, w2);
  const r = await stack.api('POST', '/api/v1/users', { name: 'phuong1', role: 'operator', wards: [w1], password: userPassword });
  assert.equal(r.status, 201);
  const S = await signIn('phuong1', userPassword);
  await live(S.page);
  await showRow(S.page, one.body.id, 15000);
  // An incident opened in the other ward while the operator watches does
  // not arrive either; one in its own ward does.
  const three = await stack.api('POST', '/api/v1/incidents', { kind: 'fire', severity: 'severe', title: 'E2E phường 2 mới', location: { type: 'Point', coordinates: P2 } });
  const four = await stack.api('POST', '/api/v1/incidents', { kind: 'fire', severity: 'severe', title: 'E2E phường 1 mới', location: { type: 'Point', coordinates: P1 } });
  await showRow(S.page, four.body.id, 15000);
  await sleep(1000);
  const seen = await S.page.evaluate(() => [...window.__iocStore.state.incidents.values()].map((x) => [x.id, x.ward && x.ward.code]));
  assert.ok(seen.length > 0 && seen.every(([, w]) => w === w1), `scoped operator sees wards ${[...new Set(seen.map((x) => x[1]))]}`);
  assert.ok(!seen.some(([id]) => id === two.body.id || id === three.body.id), 'an incident of another ward is in the store');
  assert.equal(await S.page.$(`li.q-row[data-id="${two.body.id}"]`), null);
  const mapWards = await S.page.evaluate(() => window.__iocStore.state.areas.features.map((f) => f.properties.code));
  assert.deepEqual(mapWards, [w1]);
  const statWards = await S.page.evaluate(() => [...window.__iocStore.state.wards.keys()]);
  assert.ok(statWards.every((w) => w === w1), `the wards layer shows ${statWards}`);
  await shot(S.page, 'operator-ward-scoped');
  await S.ctx.close();
});

test('the analyst search finds the incident and exports it', async () => {
  const made = await stack.api('POST', '/api/v1/incidents', { kind: 'fire', severity: 'severe', title: 'E2E phân tích kho hàng', location: { type: 'Point', coordinates: [105.8301, 21.0402] } });
  assert.equal(made.status, 201);
  // It was acknowledged after a while, so the response times have a figure.
  assert.equal((await stack.api('POST', `/api/v1/incidents/${made.body.id}/ack`, {}, undefined, made.body.version)).status, 200);
  const N = await signIn('phantich', userPassword);
  await waitFor(N.page, '[data-view=analyst]');
  await N.page.fill('input[name=q]', 'phân tích kho');
  await N.page.click('[data-act=search]');
  await waitFor(N.page, `table.results tr[data-id="${made.body.id}"]`);
  const rows = await N.page.$$eval('table.results tbody tr', (r) => r.length);
  assert.equal(rows, 1);
  const row = await N.page.textContent(`table.results tr[data-id="${made.body.id}"]`);
  assert.match(row, /\d\d\/\d\d\/\d{4} \d\d:\d\d:\d\d/); // dd/mm/yyyy, Hanoi time
  assert.match(row, new RegExp(made.body.ward.name));
  // On the analyst's map too.
  await until(N.page, async (id) => {
    // The map takes the results once its style has loaded: until then, not yet.
    const m = window.__iocAnalystMap;
    if (!m || !m.live) return false;
    const d = m.incidentData;
    return d.length === 1 && d[0].id === id && m.shown.points.some((x) => x.id === id);
  }, made.body.id);
  // Charts from the statistics routes: by hour, ward, kind, severity, and
  // the response times with the acknowledgement above.
  await waitFor(N.page, '[data-test=charts] [data-chart=response]', 20000);
  for (const c of ['hour', 'ward', 'kind', 'severity', 'ack-by-ward']) assert.ok(await N.page.$(`[data-chart=${c}]`), `no ${c} chart`);
  assert.match(await N.page.textContent('[data-chart=ward]'), new RegExp(made.body.ward.name));
  assert.match(await N.page.textContent('[data-chart=response]'), /1 sự cố: trung vị/);
  // The exports, downloaded by the browser itself (its session cookie).
  for (const ext of ['geojson', 'csv']) {
    const href = await N.page.getAttribute(`[data-export=${ext}]`, 'href');
    assert.match(href, new RegExp(`^/api/v1/incidents\\.${ext}\\?`));
    assert.match(href, /q=/);
    const [dl] = await Promise.all([N.page.waitForEvent('download'), N.page.click(`[data-export=${ext}]`)]);
    const body = readFileSync(await dl.path(), 'utf8');
    assert.match(body, new RegExp(made.body.id), `.${ext} lacks the incident`);
    if (ext === 'geojson') assert.equal(JSON.parse(body).features.length, 1);
    else assert.equal(body.trim().split(/\r?\n/).length, 2, 'csv: a header and one row');
  }
  const [cap] = await Promise.all([N.page.waitForEvent('download'), N.page.click(`tr[data-id="${made.body.id}"] [data-export=cap]`)]);
  const xml = readFileSync(await cap.path(), 'utf8');
  assert.match(xml, /<alert[\s>]/);
  assert.match(xml, new RegExp(made.body.id));
  await sleep(1000);
  await shot(N.page, 'analyst');
  await N.ctx.close();
});

test('iocd restarted: the banner shows, then the incident raised meanwhile is in the queue', async () => {
  A = await signIn('dieuphoi', userPassword);
  await waitFor(A.page, '[data-view=operator]');
  await live(A.page);
  const epoch = await A.page.evaluate(() => window.__iocLive.epoch);
  await stack.stopIocd();
  await waitFor(A.page, '[data-test=banner-down]', 20000);
  await shot(A.page, 'connection-lost');
  stack.publishEmergency('while-down', ...P3); // the broker holds it for iocd's session
  stack.startIocd();
  await stack.waitHealthy();
  const id = await until(A.page, incidentAt, P3, 30000);
  await showRow(A.page, id);
  await until(A.page, () => !document.querySelector('[data-test=banner-down]') && window.__iocStore.state.conn === 'open', null);
  // It came back by resuming (since + epoch), not by a reset.
  const after = await A.page.evaluate(() => ({ epoch: window.__iocLive.epoch, notice: window.__iocStore.state.notice }));
  assert.equal(after.epoch, epoch);
  assert.ok(!after.notice || after.notice.key !== 'conn.reset', 'the client was reset instead of resumed');
  await A.ctx.close();
});

test('a reset reloads the view', async () => {
  A = await signIn('dieuphoi', userPassword);
  await waitFor(A.page, '[data-view=operator]');
  await live(A.page);
  // An incident the page holds is resolved while iocd is down, and the
  // event log starts over (as after a restore from backup): the client
  // must be reset and drop it.
  const x = await stack.api('POST', '/api/v1/incidents', { kind: 'crowd', severity: 'minor', title: 'E2E trước khôi phục', location: { type: 'Point', coordinates: P3 } });
  await showRow(A.page, x.body.id);
  await stack.stopIocd();
  await waitFor(A.page, '[data-test=banner-down]', 20000);
  stack.psql(`UPDATE incidents SET status = 'resolved', resolved_at = now(), resolution = 'handled' WHERE id = '${x.body.id}';
    UPDATE incident_log_epoch SET epoch = gen_random_uuid()::text`, stack.dbURL);
  stack.startIocd();
  await stack.waitHealthy();
  await until(A.page, (id) => window.__iocStore.state.conn === 'open' && !window.__iocStore.state.incidents.has(id), x.body.id, 30000);
  const s = await A.page.evaluate(() => ({ notice: window.__iocStore.state.notice, epoch: window.__iocLive.epoch }));
  assert.equal(s.notice && s.notice.key, 'conn.reset');
  await A.ctx.close();
});

test('large-screen mode', async () => {
  const W = await signIn('trucban', userPassword, { width: 1920, height: 1080 });
  await waitFor(W.page, '[data-view=operator]');
  await W.page.goto(stack.base + '/?wall=1#/ops');
  await waitFor(W.page, '.operator.wall');
  await mapReady(W.page);
  await live(W.page);
  assert.equal(await W.page.$('[data-act=pick]'), null);
  await sleep(1500);
  await shot(W.page, 'wall');
  await W.ctx.close();
});
