// An incident's detail and the dispatcher's actions on it. The view pins
// the version the operator is looking at: every action is sent with
// If-Match of that version, so an action decided on stale information is
// refused (409) and the conflict is shown with what changed.
import { useEffect, useState, useRef } from 'preact/hooks';
import { html, SevBadge, StatusTag, kindName, wardName } from './common.js';
import { api, capURL } from '../api.js';
import { can, store } from '../store.js';
import { t, fmtDateTime, fmtNumber } from '../i18n/i18n.js';

// changes lists what differs between the version seen and the current one.
export function changes(a, b) {
  if (!a || !b) return [];
  const out = [];
  const val = (f, v) => {
    if (v === null || v === undefined || v === '') return t('inc.none');
    if (f === 'status') return t('status.' + v);
    if (f === 'severity') return t('sev.' + v);
    if (f === 'kind') return kindName(v);
    if (f === 'resolution') return t('resolution.' + v);
    if (f === 'units') return v.length ? v.join(', ') : t('inc.none');
    return String(v);
  };
  for (const f of ['status', 'severity', 'kind', 'resolution', 'units', 'version']) {
    const x = a[f], y = b[f];
    if (JSON.stringify(x ?? null) !== JSON.stringify(y ?? null)) out.push({ f: t('field.' + f), a: val(f, x), b: val(f, y) });
  }
  return out;
}

function newerEntries(seen, now) {
  if (!seen || !now || !now.timeline) return [];
  return now.timeline.filter((e) => e.at > seen.updated_at).slice(-5);
}

function actionName(a) {
  const s = t('action.' + a);
  return s === 'action.' + a ? a : s;
}

function ChangeList({ seen, now }) {
  const ch = changes(seen, now);
  const who = newerEntries(seen, now);
  return html`<div class="changes">
    <p>${t('inc.changes')}</p>
    <ul>${ch.map((c) => html`<li>${t('inc.change_line', c)}</li>`)}</ul>
    ${who.length ? html`<ul class="who">${who.map((e) => html`<li>${actionName(e.action)} ${t('inc.by', { who: e.actor, t: fmtDateTime(e.at) })}</li>`)}</ul>` : null}
  </div>`;
}

// How far around the incident the detail looks for cameras.
const CAMERA_RADIUS_M = 1000;

// NearbyCameras lists the cameras nearest the incident with a link to each
// one's latest snapshot (none when it sent none in the last hour).
function NearbyCameras({ cameras }) {
  return html`<section class="cameras" data-test="cameras">
    <h3>${t('inc.cameras', { d: fmtNumber(CAMERA_RADIUS_M) })}</h3>
    ${cameras === null ? html`<p>${t('inc.loading')}</p>` : cameras.length === 0 ? html`<p class="muted">${t('inc.no_cameras')}</p>` : html`
      <ul>${cameras.map((c) => html`<li data-camera=${c.id} data-distance=${c.distance_m}>
        <b>${c.id}</b> · ${t('inc.distance', { d: fmtNumber(c.distance_m ?? 0) })}${c.online ? '' : ' · ' + t('inc.offline')}
        ${/^https?:\/\//.test(c.snapshot_url || '') ? html` · <a href=${c.snapshot_url} target="_blank" rel="noopener noreferrer">${t('inc.snapshot')}</a>` : html` · <span class="muted">${t('inc.no_snapshot')}</span>`}
      </li>`)}</ul>`}
  </section>`;
}

export function IncidentDetail({ id, onClose, onLocate }) {
  const [inc, setInc] = useState(null);
  const [err, setErr] = useState(null);
  const [conflict, setConflict] = useState(null); // {seen, now}
  const [changed, setChanged] = useState(null);   // live: a newer version seen on the stream
  const [msg, setMsg] = useState(null);
  const [busy, setBusy] = useState(false);
  const [nearest, setNearest] = useState(null);
  const [cameras, setCameras] = useState(null);
  const [picked, setPicked] = useState([]);
  const [resolving, setResolving] = useState(false);
  const [resolution, setResolution] = useState('handled');
  const [note, setNote] = useState('');
  const [comment, setComment] = useState('');
  const commentRef = useRef(null);
  const incRef = useRef(null);
  incRef.current = inc;

  async function load() {
    setErr(null);
    try {
      const x = await api.incident(id);
      setInc(x);
      setChanged(null);
      if (can('devices:read') && x.location) {
        api.camerasNear(x.location.coordinates, CAMERA_RADIUS_M).then((r) => setCameras(r.items || [])).catch(() => setCameras([]));
      }
      if (x.status !== 'resolved' && can('incidents:dispatch')) {
        api.nearestUnits(id, 5).then((r) => setNearest(r.items || [])).catch(() => setNearest([]));
      }
      return x;
    } catch (e) {
      setErr(e.status === 404 ? t('inc.not_found') : t('inc.error', { m: e.message }));
      return null;
    }
  }

  useEffect(() => {
    setInc(null); setConflict(null); setMsg(null); setNearest(null); setCameras(null); setPicked([]); setResolving(false);
    load();
    const onEvent = (ev) => {
      const x = ev.detail.incident;
      const cur = incRef.current;
      if (x.id !== id || !cur) return;
      if (x.version > cur.version) setChanged(x);
    };
    window.addEventListener('ioc:incident', onEvent);
    return () => window.removeEventListener('ioc:incident', onEvent);
  }, [id]);

  async function act(action, body) {
    if (!inc || busy) return;
    setBusy(true); setMsg(null);
    const seen = inc;
    try {
      await api.act(id, action, action === 'comment' ? undefined : seen.version, body);
      setConflict(null);
      setMsg(t('inc.done', { a: actionName(action) }));
      setResolving(false);
      if (action === 'comment') setComment('');
      await load();
    } catch (e) {
      if (e.status === 409) {
        const now = await api.incident(id).catch(() => null);
        setConflict({ seen, now });
      } else if (e.status === 422) {
        setMsg(t('inc.invalid', { m: e.message }));
      } else if (e.status === 403) {
        setMsg(t('err.forbidden'));
      } else {
        setMsg(t('inc.error', { m: e.message }));
      }
    } finally {
      setBusy(false);
    }
  }

  async function reloadAfterConflict() {
    const x = await load();
    if (x) setConflict(null);
  }

  // Keyboard shortcuts act on the open incident (operator.js routes them).
  useEffect(() => {
    const onKey = (ev) => {
      const k = ev.detail;
      if (!incRef.current) return;
      const x = incRef.current;
      if (k === 'a' && x.status === 'new' && can('incidents:ack')) act('ack', {});
      else if (k === 'd' && nearestRef.current && nearestRef.current.length && can('incidents:dispatch') && x.status !== 'resolved')
        act('dispatch', { unit_ids: [nearestRef.current[0].id] });
      else if (k === 'r' && x.status !== 'resolved' && can('incidents:resolve')) setResolving(true);
      else if (k === 'c' && commentRef.current) commentRef.current.focus();
    };
    window.addEventListener('ioc:key', onKey);
    return () => window.removeEventListener('ioc:key', onKey);
  }, [id, busy]);
  // The units offered: the nearest available ones not already on it (the
  // field units report their own status, so one just dispatched may
  // still say available).
  const offer = nearest && inc ? nearest.filter((u) => !(inc.units || []).includes(u.id)) : nearest;
  const nearestRef = useRef(null);
  nearestRef.current = offer;

  if (err) return html`<aside class="detail" data-view="incident"><button class="close" onClick=${onClose}>${t('inc.close')} ✕</button><p class="error">${err}</p></aside>`;
  if (!inc) return html`<aside class="detail" data-view="incident"><p>${t('inc.loading')}</p></aside>`;
  const active = inc.status !== 'resolved';
  const c = inc.location?.coordinates || [];
  return html`<aside class="detail" data-view="incident" data-id=${inc.id} data-version=${inc.version}>
    <header>
      <${SevBadge} severity=${inc.severity} />
      <h2>${inc.title || kindName(inc.kind)}</h2>
      <button class="close" onClick=${onClose} title="Esc">${t('inc.close')} ✕</button>
    </header>
    ${conflict ? html`<div class="conflict" role="alert" data-test="conflict">
      <strong>${t('inc.conflict')}</strong>
      <${ChangeList} seen=${conflict.seen} now=${conflict.now} />
      <button onClick=${reloadAfterConflict}>${t('inc.reload')}</button>
    </div>` : changed ? html`<div class="changed" role="status" data-test="changed">
      <strong>${t('inc.changed')}</strong>
      <${ChangeList} seen=${inc} now=${changed} />
      <button onClick=${load}>${t('inc.reload')}</button>
    </div>` : null}
    ${msg ? html`<p class="msg" role="status">${msg}</p>` : null}
    <dl class="facts">
      <dt>${t('inc.status')}</dt><dd><${StatusTag} status=${inc.status} />${inc.resolution ? ' · ' + t('resolution.' + inc.resolution) : ''}</dd>
      <dt>${t('inc.kind')}</dt><dd>${kindName(inc.kind)}</dd>
      <dt>${t('inc.ward')}</dt><dd>${wardName(inc)}</dd>
      <dt>${t('inc.opened')}</dt><dd>${fmtDateTime(inc.opened_at)}</dd>
      <dt>${t('inc.opened_by')}</dt><dd>${inc.opened_by}</dd>
      <dt>${t('inc.location')}</dt><dd><a href="#" onClick=${(e) => { e.preventDefault(); onLocate && onLocate(inc); }}>${c[1]?.toFixed(5)}, ${c[0]?.toFixed(5)}</a></dd>
      <dt>${t('inc.units')}</dt><dd>${inc.units && inc.units.length ? inc.units.join(', ') : t('inc.none')}</dd>
      <dt>${t('inc.version')}</dt><dd>${inc.version}</dd>
    </dl>
    <div class="actions">
      ${active && inc.status === 'new' && can('incidents:ack') ? html`<button class="primary" data-act="ack" disabled=${busy} onClick=${() => act('ack', {})}>${t('inc.ack')} (a)</button>` : null}
      ${active && can('incidents:resolve') ? html`<button data-act="resolve" disabled=${busy} onClick=${() => setResolving(!resolving)}>${t('inc.resolve')} (r)</button>` : null}
      ${!active && can('incidents:reopen') ? html`<button data-act="reopen" disabled=${busy} onClick=${() => act('reopen', {})}>${t('inc.reopen')}</button>` : null}
      ${can('export:read') ? html`<a class="button" href=${capURL(inc.id)} download>${t('inc.cap')}</a>` : null}
    </div>
    ${resolving ? html`<form class="resolve" onSubmit=${(e) => { e.preventDefault(); act('resolve', { resolution, note }); }}>
      <label>${t('inc.resolution')} <select value=${resolution} onChange=${(e) => setResolution(e.target.value)}>
        ${['handled', 'false_alarm', 'duplicate'].map((r) => html`<option value=${r}>${t('resolution.' + r)}</option>`)}
      </select></label>
      <label>${t('inc.note')} <input value=${note} maxlength="2000" onInput=${(e) => setNote(e.target.value)} /></label>
      <button class="primary" type="submit" disabled=${busy}>${t('inc.resolve')}</button>
    </form>` : null}
    ${active && can('incidents:dispatch') ? html`<section class="nearest" data-test="nearest">
      <h3>${t('inc.nearest')}</h3>
      ${offer === null ? html`<p>${t('inc.loading')}</p>` : offer.length === 0 ? html`<p class="muted">${t('inc.no_units')}</p>` : html`
        <button class="primary" data-act="dispatch-nearest" disabled=${busy} onClick=${() => act('dispatch', { unit_ids: [offer[0].id] })}>
          ${t('inc.dispatch_nearest', { u: offer[0].id, d: t('inc.distance', { d: fmtNumber(Math.round(offer[0].distance_m || 0)) }) })} (d)</button>
        <ul>${offer.map((u) => html`<li><label><input type="checkbox" checked=${picked.includes(u.id)}
          onChange=${(e) => setPicked(e.target.checked ? [...picked, u.id] : picked.filter((p) => p !== u.id))} />
          ${u.id} · ${t('unit.' + u.kind)} · ${t('ustatus.' + u.status)} · ${t('inc.distance', { d: fmtNumber(Math.round(u.distance_m || 0)) })}</label></li>`)}</ul>
        ${picked.length ? html`<button disabled=${busy} onClick=${() => act('dispatch', { unit_ids: picked })}>${t('inc.dispatch_selected')}</button>` : null}`}
    </section>` : null}
    ${can('incidents:comment') ? html`<form class="comment" onSubmit=${(e) => { e.preventDefault(); if (comment.trim()) act('comment', { text: comment }); }}>
      <input ref=${commentRef} placeholder=${t('inc.comment') + ' (c)'} value=${comment} maxlength="4000" onInput=${(e) => setComment(e.target.value)} />
      <button type="submit" disabled=${busy || !comment.trim()}>${t('inc.comment_send')}</button>
    </form>` : null}
    ${can('devices:read') ? html`<${NearbyCameras} cameras=${cameras} />` : null}
    <section class="evidence">
      <h3>${t('inc.evidence', { n: inc.evidence_count ?? (inc.evidence || []).length })}</h3>
      <ul>${(inc.evidence || []).map((e) => html`<li>
        <b>${e.device_id}</b> · ${e.kind} · ${fmtDateTime(e.observed_at)}
        ${e.detail && e.detail.event ? ' · ' + e.detail.event : ''}${e.detail && e.detail.type ? ' · ' + e.detail.type : ''}
        ${e.detail && e.detail.note ? html`<div class="note">${e.detail.note}</div>` : null}
        ${e.detail && /^https?:\/\//.test(e.detail.snapshot_url || '') ? html` · <a href=${e.detail.snapshot_url} target="_blank" rel="noopener noreferrer">${t('inc.snapshot')}</a>` : null}
      </li>`)}</ul>
    </section>
    <section class="timeline">
      <h3>${t('inc.timeline')}</h3>
      <ol>${(inc.timeline || []).slice().reverse().map((e) => html`<li>
        <time>${fmtDateTime(e.at)}</time> <b>${e.actor}</b> ${actionName(e.action)}
        ${e.detail && e.detail.text ? html`<div class="note">${e.detail.text}</div>` : null}
      </li>`)}</ol>
    </section>
  </aside>`;
}
