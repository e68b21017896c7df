// Shared view pieces: htm bound to Preact, the store hook, severity badges.
import { h } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import htm from 'htm';
import { store } from '../store.js';
import { t } from '../i18n/i18n.js';

export const html = htm.bind(h);

// useStore re-renders the component when any of the named collections
// change (at most once a frame).
export function useStore(...what) {
  const [, setN] = useState(0);
  useEffect(() => store.subscribe((dirty) => {
    for (const w of what) if (dirty.has(w)) { setN((n) => n + 1); return; }
  }), []);
  return store.state;
}

// The pulse: one clock a second for the whole page. The clocks, the
// queue's live changes and the map's batches all move on it, so what
// changes on screen changes in one frame a second: drawn in software (a
// wall PC without a GPU), every frame that changes anything costs a
// composite of the whole window, 20 ms on a quiet machine and several
// times that on a busy one. onPulse(f) calls f every second; it returns
// the function that stops it.
const pulse = new Set();
let pulseTimer = null;
export function onPulse(f) {
  pulse.add(f);
  if (!pulseTimer) pulseTimer = setInterval(() => { for (const g of [...pulse]) g(); }, 1000);
  return () => {
    pulse.delete(f);
    if (!pulse.size) { clearInterval(pulseTimer); pulseTimer = null; }
  };
}

// useTick re-renders on every pulse (the clocks in the queue and the bar).
export function useTick() {
  const [n, setN] = useState(0);
  useEffect(() => onPulse(() => setN((x) => x + 1)), []);
  return n;
}

// usePacedStore re-renders at the next pulse when any of the paced
// collections changed, and at once when any of the now ones did (misc:
// the connection, the alarms, so a new severe incident shows at once).
export function usePacedStore(paced, now) {
  const [, setN] = useState(0);
  useEffect(() => {
    let due = false;
    const unsub = store.subscribe((dirty) => {
      for (const w of now) if (dirty.has(w)) { due = false; setN((n) => n + 1); return; }
      for (const w of paced) if (dirty.has(w)) due = true;
    });
    const stop = onPulse(() => { if (due) { due = false; setN((n) => n + 1); } });
    return () => { unsub(); stop(); };
  }, []);
  return store.state;
}

const SHAPE = { minor: '●', moderate: '■', severe: '▲', extreme: '◆' };
export const SEV_LEVEL = { minor: 1, moderate: 2, severe: 3, extreme: 4 };

// Severity is shown by shape, number and word as well as colour.
export function SevBadge({ severity, short }) {
  return html`<span class=${'sev sev-' + severity} title=${t('sev.' + severity)}>
    <span class="sev-shape" aria-hidden="true">${SHAPE[severity] || '?'}</span>
    <span class="sev-n">${SEV_LEVEL[severity] || ''}</span>
    ${short ? null : html`<span class="sev-word">${t('sev.' + severity)}</span>`}
  </span>`;
}

export function StatusTag({ status }) {
  return html`<span class=${'status status-' + status}>${t('status.' + status)}</span>`;
}

export function kindName(kind) {
  const s = t('kind.' + kind);
  return s === 'kind.' + kind ? kind : s;
}

export function wardName(x) {
  if (x && x.ward && x.ward.name) return x.ward.name;
  if (x && x.ward && x.ward.code) return store.state.wardNames.get(x.ward.code) || x.ward.code;
  return t('inc.no_ward');
}
