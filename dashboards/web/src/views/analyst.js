// The analyst's view: history search (time range, ward, kind, severity,
// status, text, an area drawn on the map), results as a table and on the
// map, exports, and charts from /api/v1/stats (counts and response times).
import { useEffect, useRef, useState } from 'preact/hooks';
import { html, useStore, SevBadge, StatusTag, kindName, wardName } from './common.js';
import { CityMap } from '../map.js';
import { api, exportURL, capURL } from '../api.js';
import { can } from '../store.js';
import { t, fmtDateTime, fmtDate, parseDate, fmtNumber, fmtDuration } from '../i18n/i18n.js';

const KINDS = ['accident', 'fire', 'medical', 'crime', 'rescue', 'flooding', 'hazmat', 'crowd', 'intrusion', 'traffic_congestion', 'device_offline'];

function Bars({ title, items, label, value = (i) => i.count, fmt = fmtNumber, test }) {
  if (!items || !items.length) return null;
  const max = Math.max(1, ...items.map(value));
  const W = 360, rowH = 18, shown = items.slice(0, 24);
  return html`<figure class="chart" data-chart=${test}><figcaption>${title}</figcaption>
    <svg width=${W} height=${shown.length * rowH + 4} role="img" aria-label=${title}>
      ${shown.map((it, i) => html`<g transform=${`translate(0,${i * rowH})`}>
        <text x="0" y="13" class="chart-label">${label(it)}</text>
        <rect x="130" y="3" height="12" width=${Math.max(1, (W - 200) * value(it) / max)} class="chart-bar" />
        <text x=${134 + (W - 200) * value(it) / max} y="13" class="chart-value">${fmt(value(it))}</text>
      </g>`)}
    </svg></figure>`;
}

// ResponseTimes: for acknowledge, dispatch and resolve, the median and
// 90th percentile from opening against the target, and the share within
// it (GET /api/v1/stats/response-times, all the matching incidents).
function ResponseTimes({ report }) {
  if (!report || !report.all) return null;
  const W = 460, rowH = 44;
  const stages = ['acknowledge', 'dispatch', 'resolve'];
  const dur = (v) => (v === null || v === undefined ? '–' : fmtDuration(v * 1000));
  return html`<figure class="chart" data-chart="response"><figcaption>${t('an.response')}</figcaption>
    <svg width=${W} height=${stages.length * rowH + 4} role="img" aria-label=${t('an.response')}>
      ${stages.map((k, i) => {
        const st = report.all[k] || {};
        const target = (report.targets_s || {})[k] || 0;
        const scale = Math.max(1, st.p90_s || 0, target) * 1.1;
        const x = (v) => 130 + (W - 140) * Math.min(1, (v || 0) / scale);
        const within = st.within_target === null || st.within_target === undefined ? '–' : Math.round(st.within_target * 100) + ' %';
        return html`<g transform=${`translate(0,${i * rowH})`}>
          <text x="0" y="13" class="chart-label">${t('an.stage_' + k)}</text>
          ${st.p90_s !== null && st.p90_s !== undefined ? html`<rect x="130" y="4" height="12" width=${Math.max(1, x(st.p90_s) - 130)} class="chart-bar-light" />` : null}
          ${st.p50_s !== null && st.p50_s !== undefined ? html`<rect x="130" y="4" height="12" width=${Math.max(1, x(st.p50_s) - 130)} class="chart-bar" />` : null}
          ${target ? html`<line x1=${x(target)} x2=${x(target)} y1="0" y2="20" class="chart-target" />` : null}
          <text x="0" y="34" class="chart-value">${t('an.response_line', { n: fmtNumber(st.reached || 0), p50: dur(st.p50_s), p90: dur(st.p90_s), w: within, target: dur(target) })}</text>
        </g>`;
      })}
    </svg></figure>`;
}

export function Analyst() {
  const s = useStore('misc');
  const mapBox = useRef(null);
  const mapRef = useRef(null);
  const weekAgo = new Date(Date.now() - 7 * 86400e3);
  const [form, setForm] = useState({ from: fmtDate(weekAgo), to: fmtDate(new Date()), ward: '', kind: '', severity: '', status: '', q: '' });
  const [bbox, setBbox] = useState(null);
  const [drawing, setDrawing] = useState(false);
  const [items, setItems] = useState(null);
  const [next, setNext] = useState(null);
  const [filter, setFilter] = useState(null);
  const [err, setErr] = useState(null);
  const [stats, setStats] = useState(null);

  useEffect(() => {
    const map = new CityMap({ container: mapBox.current, config: s.config, areas: s.areas, analyst: true,
      onArea: (b) => { setBbox(b); setDrawing(false); } });
    mapRef.current = map;
    window.__iocAnalystMap = map; // read by the browser tests
    return () => map.remove();
  }, []);
  useEffect(() => { mapRef.current && mapRef.current.setMode(drawing ? 'area' : null); }, [drawing]);

  function buildFilter() {
    const f = { ward: form.ward, kind: form.kind, severity: form.severity, status: form.status, q: form.q.trim() };
    if (form.from) { const v = parseDate(form.from, false); if (!v) throw new Error(t('an.bad_date', { v: form.from })); f.from = v; }
    if (form.to) { const v = parseDate(form.to, true); if (!v) throw new Error(t('an.bad_date', { v: form.to })); f.to = v; }
    if (bbox) f.bbox = bbox.join(',');
    return f;
  }

  async function search(ev) {
    ev && ev.preventDefault();
    setErr(null);
    let f;
    try { f = buildFilter(); } catch (e) { setErr(e.message); return; }
    try {
      const page = await api.incidents({ ...f, limit: 200 });
      setItems(page.items); setNext(page.next_cursor || null); setFilter(f);
      mapRef.current.setResults(page.items);
      loadStats(f);
    } catch (e) { setErr(t('inc.error', { m: e.message })); }
  }
  async function more() {
    const page = await api.incidents({ ...filter, limit: 200, cursor: next });
    const all = [...items, ...page.items];
    setItems(all); setNext(page.next_cursor || null);
    mapRef.current.setResults(all);
  }
  // loadStats asks one statistic at a time: they are heavy requests, of
  // which the server runs only a few per caller at once.
  async function loadStats(f) {
    if (!can('stats:read')) return;
    setStats(null);
    try {
      const out = {};
      for (const g of ['hour', 'ward', 'kind', 'severity']) out[g] = await api.stats(g, f);
      out.response = await api.responseTimes('ward', f);
      setStats(out);
    } catch (e) {
      setStats({ error: e.message });
    }
  }
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const wards = s.areas ? s.areas.features.map((f) => f.properties).sort((a, b) => a.name.localeCompare(b.name, 'vi')) : [];

  return html`<div class="analyst" data-view="analyst">
    <form class="search" onSubmit=${search}>
      <h2>${t('an.title')}</h2>
      <label>${t('an.from')} <input name="from" value=${form.from} onInput=${set('from')} placeholder="dd/mm/yyyy" /></label>
      <label>${t('an.to')} <input name="to" value=${form.to} onInput=${set('to')} placeholder="dd/mm/yyyy" /></label>
      <label>${t('an.ward')} <select name="ward" value=${form.ward} onChange=${set('ward')}><option value="">${t('an.any')}</option>
        ${wards.map((w) => html`<option value=${w.code}>${w.name}</option>`)}</select></label>
      <label>${t('an.kind')} <select name="kind" value=${form.kind} onChange=${set('kind')}><option value="">${t('an.any')}</option>
        ${KINDS.map((k) => html`<option value=${k}>${kindName(k)}</option>`)}</select></label>
      <label>${t('an.severity')} <select name="severity" value=${form.severity} onChange=${set('severity')}><option value="">${t('an.any')}</option>
        ${['minor', 'moderate', 'severe', 'extreme'].map((k) => html`<option value=${k}>${t('sev.' + k)}</option>`)}</select></label>
      <label>${t('an.status')} <select name="status" value=${form.status} onChange=${set('status')}><option value="">${t('an.any')}</option>
        ${['new', 'acknowledged', 'dispatched', 'resolved'].map((k) => html`<option value=${k}>${t('status.' + k)}</option>`)}</select></label>
      <label>${t('an.q')} <input name="q" value=${form.q} onInput=${set('q')} maxlength="200" /></label>
      <div class="row">
        <button type="button" class=${drawing ? 'primary' : ''} onClick=${() => setDrawing(!drawing)}>${t('map.draw_area')}</button>
        ${bbox ? html`<button type="button" onClick=${() => { setBbox(null); mapRef.current.showArea(null); }}>${t('map.clear_area')}</button>` : null}
      </div>
      ${drawing ? html`<p class="muted">${t('map.draw_hint')}</p>` : null}
      ${bbox ? html`<p class="muted">${t('an.area', { b: bbox.join(', ') })}</p>` : null}
      <button class="primary" type="submit" data-act="search">${t('an.search')}</button>
      ${err ? html`<p class="error">${err}</p>` : null}
      ${filter && can('export:read') ? html`<p class="exports">${t('an.export')}
        <a href=${exportURL('geojson', filter)} download data-export="geojson">GeoJSON</a>
        <a href=${exportURL('csv', filter)} download data-export="csv">CSV</a></p>` : null}
    </form>
    <div class="an-main">
      <div class="map an-map" ref=${mapBox}></div>
      <div class="an-results">
        ${items === null ? null : items.length === 0 ? html`<p class="muted">${t('an.none')}</p>` : html`
          <p>${t('an.results', { n: fmtNumber(items.length) })}${next ? '+' : ''}</p>
          <table class="results"><thead><tr><th>${t('an.col_opened')}</th><th>${t('an.col_sev')}</th><th>${t('an.col_kind')}</th>
            <th>${t('an.col_title')}</th><th>${t('an.col_ward')}</th><th>${t('an.col_status')}</th><th>${t('an.col_resolved')}</th><th>CAP</th></tr></thead>
          <tbody>${items.map((x) => html`<tr key=${x.id} data-id=${x.id} onClick=${() => mapRef.current.flyTo(x)}>
            <td>${fmtDateTime(x.opened_at)}</td><td><${SevBadge} severity=${x.severity} /></td><td>${kindName(x.kind)}</td>
            <td>${x.title || ''}</td><td>${wardName(x)}</td><td><${StatusTag} status=${x.status} /></td><td>${fmtDateTime(x.resolved_at)}</td>
            <td>${can('export:read') ? html`<a href=${capURL(x.id)} download data-export="cap">.cap</a>` : null}</td></tr>`)}</tbody></table>
          ${next ? html`<button onClick=${more}>${t('an.more')}</button>` : null}`}
        ${stats && stats.error ? html`<p class="error" data-test="stats-error">${t('an.stats_error', { m: stats.error })}</p>` : stats ? html`<section class="charts" data-test="charts"><h3>${t('an.charts')}</h3>
          <${Bars} test="hour" title=${t('an.by_hour')} items=${stats.hour.items.filter((i) => i.count > 0).slice(-24)} label=${(i) => `${i.key.slice(8, 10)}/${i.key.slice(5, 7)} ${i.key.slice(11, 16)}`} />
          <${Bars} test="ward" title=${t('an.by_ward')} items=${stats.ward.items} label=${(i) => i.name || i.key || t('inc.no_ward')} />
          <${Bars} test="kind" title=${t('an.by_kind')} items=${stats.kind.items} label=${(i) => kindName(i.key)} />
          <${Bars} test="severity" title=${t('an.by_severity')} items=${stats.severity.items} label=${(i) => t('sev.' + i.key)} />
          <${ResponseTimes} report=${stats.response} />
          <${Bars} test="ack-by-ward" title=${t('an.ack_by_ward')} items=${stats.response.items.filter((i) => i.acknowledge && i.acknowledge.p50_s !== null).sort((a, b) => b.acknowledge.p50_s - a.acknowledge.p50_s)}
            label=${(i) => i.name || i.key || t('inc.no_ward')} value=${(i) => i.acknowledge.p50_s} fmt=${(v) => fmtDuration(v * 1000)} />
        </section>` : null}
      </div>
    </div>
  </div>`;
}
