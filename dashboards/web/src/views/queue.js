// The incident queue: every active incident, severity first then oldest,
// with the time in its current state against the targets (a breach is
// shown in words as well as colour). Rows are windowed so 2,000 open
// incidents cost no more to draw than the forty on screen.
import { useMemo, useRef, useState, useEffect } from 'preact/hooks';
import { html, usePacedStore, useTick, SevBadge, StatusTag, kindName, wardName } from './common.js';
import { store, sortQueue, stateClock } from '../store.js';
import { t, fmtDuration, fmtClock, fmtTime } from '../i18n/i18n.js';

const ROW = 58;

export function sortedIncidents() {
  return sortQueue([...store.state.incidents.values()]);
}

export function Queue({ onOpen, selected, list }) {
  const s = usePacedStore(['incidents'], ['misc']);
  useTick();
  const box = useRef(null);
  const [scroll, setScroll] = useState(0);
  const [height, setHeight] = useState(600);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  // Keep the selected row in view.
  useEffect(() => {
    const el = box.current;
    const i = list.findIndex((x) => x.id === selected);
    if (!el || i < 0) return;
    if (i * ROW < el.scrollTop) el.scrollTop = i * ROW;
    else if ((i + 1) * ROW > el.scrollTop + el.clientHeight) el.scrollTop = (i + 1) * ROW - el.clientHeight;
  }, [selected]);
  const now = Date.now();
  const first = Math.max(0, Math.floor(scroll / ROW) - 5);
  const last = Math.min(list.length, Math.ceil((scroll + height) / ROW) + 5);
  const rows = [];
  for (let i = first; i < last; i++) {
    const x = list[i];
    const clk = stateClock(x, s.config);
    const inState = now - clk.since;
    const breach = clk.target > 0 && inState > clk.target;
    const fresh = s.fresh.get(x.id);
    rows.push(html`<li key=${x.id} class=${'q-row' + (x.id === selected ? ' selected' : '') + (breach ? ' breach' : '') +
        (fresh && now - fresh < 120000 ? ' fresh' : '') + ' q-' + x.severity}
      style=${{ top: i * ROW + 'px' }} data-id=${x.id} onClick=${() => onOpen(x.id)}>
      <${SevBadge} severity=${x.severity} short=${true} />
      <div class="q-main">
        <div class="q-title">${fresh && now - fresh < 120000 ? html`<b class="q-newtag">${t('queue.new')}</b> ` : null}${x.title || kindName(x.kind)}</div>
        <div class="q-sub">${kindName(x.kind)} · ${wardName(x)} · ${fmtTime(x.opened_at)}</div>
      </div>
      <div class="q-clock">
        <div><${StatusTag} status=${x.status} />${breach ? html` <b class="breach-tag">⚠ ${t('queue.breach')}</b>` : null}</div>
        <div class=${'q-time' + (breach ? ' breach' : '')} title=${t('queue.in_state', { t: fmtDuration(inState) }) + (clk.target ? ' · ' + t('queue.target', { t: fmtDuration(clk.target) }) : '')}>
          ${fmtClock(inState)}${clk.target ? html` / ${fmtClock(clk.target)}` : null}
        </div>
      </div>
    </li>`);
  }
  return html`<section class="queue" data-view="queue">
    <h2>${t('queue.title', { n: list.length })}</h2>
    <div class="q-scroll" ref=${box} onScroll=${(e) => setScroll(e.target.scrollTop)}>
      ${list.length === 0 ? html`<p class="muted">${t('queue.empty')}</p>` : null}
      <ul class="q-list" style=${{ height: list.length * ROW + 'px' }}>${rows}</ul>
    </div>
  </section>`;
}
