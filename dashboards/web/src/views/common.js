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

// useTick re-renders every ms milliseconds (clocks in the queue).
export function useTick(ms) {
  const [n, setN] = useState(0);
  useEffect(() => { const i = setInterval(() => setN((x) => x + 1), ms); return () => clearInterval(i); }, [ms]);
  return n;
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
