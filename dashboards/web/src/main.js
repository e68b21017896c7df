// The app shell: configuration, sign-in state, the routes (#/ops,
// #/ops/<incident id>, #/analyst), the top bar (connection state, last
// update, mute switch always visible) and the banners.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { html, useStore, useTick } from './views/common.js';
import { Login } from './views/login.js';
import { Operator } from './views/operator.js';
import { Analyst } from './views/analyst.js';
import { store, can } from './store.js';
import { api, setUnauthenticatedHandler } from './api.js';
import { LiveClient } from './live.js';
import { t, setLocale, getLocale, savedLocale, fmtTime } from './i18n/i18n.js';
import { setMuted, savedMuted, unlockAudio } from './alarm.js';

const params = new URLSearchParams(location.search);
const WALL = params.get('wall') === '1';

function parseRoute() {
  const h = location.hash.replace(/^#\/?/, '');
  const [view, id] = h.split('/');
  return { view: view || '', id: id ? decodeURIComponent(id) : null };
}
export function go(view, id) {
  location.hash = '#/' + view + (id ? '/' + encodeURIComponent(id) : '');
}

let live = null;
function startLive() {
  if (live) return;
  live = new LiveClient({ layers: ['incidents', 'units', 'wards'], resume: true, primary: true });
  window.__iocLive = live;
  live.start();
}
function stopLive() {
  if (live) { live.stop(); live = null; }
  store.clearLive();
}

function Banner() {
  const s = useStore('misc');
  useTick();
  const out = [];
  const staleMs = (s.config && s.config.heartbeat_stale_ms) || 15000;
  if (s.conn === 'down') out.push(html`<div class="banner banner-down" role="alert" data-test="banner-down">${t('conn.down', { n: s.attempts })}</div>`);
  else if (s.conn === 'connecting') out.push(html`<div class="banner banner-info">${t('conn.connecting')}</div>`);
  else if (s.conn === 'open' && s.lastBeatLocal && Date.now() - s.lastBeatLocal > staleMs)
    out.push(html`<div class="banner banner-down" role="alert" data-test="banner-stale">${t('conn.stale', { t: fmtTime(s.lastBeat) })}</div>`);
  else if (s.conn === 'polling') out.push(html`<div class="banner banner-info">${t('conn.polling')}</div>`);
  for (const [src, st] of Object.entries(s.sources)) {
    if (!st.ok) out.push(html`<div class="banner banner-warn" role="alert">${t('conn.source', { s: src, m: st.message })}</div>`);
  }
  if (s.notice) out.push(html`<div class="banner banner-info" onClick=${() => store.set({ notice: null })}>${t(s.notice.key, s.notice.params)}</div>`);
  return out.length ? html`<div class="banners">${out}</div>` : null;
}

function TopBar({ route }) {
  const s = useStore('misc');
  const u = s.user;
  async function logout() {
    try { await api.logout(); } catch (e) { /* gone anyway */ }
    stopLive();
    store.set({ user: null });
    go('login');
  }
  const toggleLang = () => { setLocale(getLocale() === 'vi' ? 'en' : 'vi'); store.touch('misc', 'incidents'); };
  return html`<header class="topbar">
    <span class="brand">${t('app.short')}</span>
    ${!WALL ? html`<nav>
      <a href="#/ops" class=${route.view === 'ops' ? 'active' : ''}>${t('nav.operator')}</a>
      ${can('stats:read') || can('export:read') ? html`<a href="#/analyst" class=${route.view === 'analyst' ? 'active' : ''}>${t('nav.analyst')}</a>` : null}
    </nav>` : null}
    <span class="spacer"></span>
    <span class=${'conn conn-' + s.conn} data-test="last-update">
      ${s.lastBeat ? t('conn.last', { t: fmtTime(s.lastBeat) }) : t('conn.never')}
    </span>
    <button class=${'mute' + (s.muted ? ' muted' : '')} data-test="mute" aria-pressed=${s.muted} title="m"
      onClick=${() => { unlockAudio(); setMuted(!s.muted); }}>${s.muted ? t('nav.muted') : t('nav.sound')}</button>
    ${!WALL ? html`<button class="lang" onClick=${toggleLang}>${t('nav.lang')}</button>` : null}
    ${u ? html`<span class="user" data-test="user">${u.name} · ${t('role.' + u.role)} · ${u.wards && u.wards.length ? t('user.wards', { n: u.wards.length }) : t('user.city')}</span>` : null}
    ${u && !WALL ? html`<button onClick=${logout}>${t('nav.logout')}</button>` : null}
  </header>`;
}

function App() {
  const s = useStore('misc');
  const [route, setRoute] = useState(parseRoute());
  const [booted, setBooted] = useState(false);
  useEffect(() => {
    const onHash = () => setRoute(parseRoute());
    window.addEventListener('hashchange', onHash);
    const signedOut = () => { stopLive(); store.set({ user: null }); go('login'); };
    window.addEventListener('ioc:signed-out', signedOut);
    setUnauthenticatedHandler(() => { if (store.state.user) { store.set({ notice: { key: 'conn.session' } }); signedOut(); } });
    const unlock = () => unlockAudio();
    window.addEventListener('keydown', unlock);
    window.addEventListener('pointerdown', unlock);
    (async () => {
      // The configuration and who is signed in, asked together: the first
      // render waits for both.
      const [cfg, me] = await Promise.all([api.config().catch(() => null), api.me().catch(() => null)]);
      if (cfg) store.set({ config: cfg });
      setLocale(savedLocale() || (cfg && cfg.locale) || 'vi');
      store.set({ muted: savedMuted() });
      if (me) {
        try { await signedIn(me); } catch (e) { /* not signed in */ }
      }
      setBooted(true);
    })();
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  async function signedIn(me) {
    // The live stream starts while the wards load: its snapshot is what
    // the first render waits for longest.
    startLive();
    try {
      const areas = await api.areas();
      const names = new Map(areas.features.map((f) => [f.properties.code, f.properties.name]));
      store.set({ areas, wardNames: names });
    } catch (e) { /* the map shows without wards */ }
    store.set({ user: me });
    const r = parseRoute();
    if (!r.view || r.view === 'login') go(can('incidents:ack') || !can('stats:read') ? 'ops' : 'analyst');
  }

  if (!booted) return html`<div class="boot">${t('app.short')}</div>`;
  if (!s.user || route.view === 'login') {
    return html`<${Login} onSignedIn=${async (me) => { await signedIn(me); setRoute(parseRoute()); }}
      notice=${s.notice ? t(s.notice.key, s.notice.params) : null} />`;
  }
  return html`<div class=${'app' + (WALL ? ' wall' : '')}>
    <${TopBar} route=${route} />
    <${Banner} />
    ${route.view === 'analyst' && !WALL ? html`<${Analyst} />` : html`<${Operator} route=${route} go=${go} wall=${WALL} />`}
  </div>`;
}

if (WALL) document.documentElement.classList.add('wall');
window.__iocStore = store; // read by the browser tests
render(html`<${App} />`, document.getElementById('app'));
