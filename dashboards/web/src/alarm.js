// The audible alarm for a new severe or extreme incident: a WebAudio beep
// (nothing to download), unless muted. The mute switch is always on screen.
import { store } from './store.js';

let ctx = null;

// unlock: browsers allow sound only after a user gesture (the sign-in
// click, any key or click afterwards).
export function unlockAudio() {
  try {
    if (!ctx) ctx = new (window.AudioContext || window.webkitAudioContext)();
    if (ctx.state === 'suspended') ctx.resume();
  } catch (e) { ctx = null; }
}

export function beep(severity) {
  window.__iocBeeps = (window.__iocBeeps || 0) + 1; // for the browser tests
  if (store.state.muted || !ctx) return;
  const pulses = severity === 'extreme' ? 3 : 2;
  const now = ctx.currentTime;
  for (let i = 0; i < pulses; i++) {
    const o = ctx.createOscillator();
    const g = ctx.createGain();
    o.type = 'square';
    o.frequency.value = severity === 'extreme' ? 1046 : 880;
    g.gain.setValueAtTime(0.0001, now + i * 0.3);
    g.gain.exponentialRampToValueAtTime(0.25, now + i * 0.3 + 0.02);
    g.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.3 + 0.22);
    o.connect(g).connect(ctx.destination);
    o.start(now + i * 0.3);
    o.stop(now + i * 0.3 + 0.25);
  }
}

export function setMuted(m) {
  store.set({ muted: m });
  try { localStorage.setItem('ioc.muted', m ? '1' : '0'); } catch (e) { /* ignore */ }
}
export function savedMuted() {
  try { return localStorage.getItem('ioc.muted') === '1'; } catch (e) { return false; }
}
