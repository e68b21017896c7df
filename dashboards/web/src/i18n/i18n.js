// Every word on screen comes from here; dates and times are formatted here,
// always in Asia/Ho_Chi_Minh, dates as dd/mm/yyyy.
import vi from './vi.js';
import en from './en.js';

export const messages = { vi, en };
export const TIME_ZONE = 'Asia/Ho_Chi_Minh';
let locale = 'vi';

export function setLocale(l) {
  if (messages[l]) {
    locale = l;
    document.documentElement.lang = l;
    try { localStorage.setItem('ioc.locale', l); } catch (e) { /* private mode */ }
  }
}
export function getLocale() { return locale; }
export function savedLocale() {
  try { return localStorage.getItem('ioc.locale'); } catch (e) { return null; }
}

export function t(key, params) {
  let s = messages[locale][key] ?? messages.vi[key];
  if (s === undefined) return key;
  if (params) s = s.replace(/\{(\w+)\}/g, (m, k) => (params[k] ?? m));
  return s;
}

const partsFmt = new Intl.DateTimeFormat('en-GB', {
  timeZone: TIME_ZONE, year: 'numeric', month: '2-digit', day: '2-digit',
  hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
});
function parts(d) {
  const o = {};
  for (const p of partsFmt.formatToParts(d)) o[p.type] = p.value;
  return o;
}
function asDate(v) { return v instanceof Date ? v : new Date(v); }

// fmtDateTime: dd/mm/yyyy HH:MM:SS in Hanoi time.
export function fmtDateTime(v) {
  if (!v) return '';
  const p = parts(asDate(v));
  return `${p.day}/${p.month}/${p.year} ${p.hour}:${p.minute}:${p.second}`;
}
export function fmtDate(v) {
  if (!v) return '';
  const p = parts(asDate(v));
  return `${p.day}/${p.month}/${p.year}`;
}
export function fmtTime(v) {
  if (!v) return '';
  const p = parts(asDate(v));
  return `${p.hour}:${p.minute}:${p.second}`;
}

// parseDate reads dd/mm/yyyy as the start of that day in Hanoi (UTC+7, no
// daylight saving) and returns an ISO string, or null.
export function parseDate(s, endOfDay) {
  const m = /^\s*(\d{1,2})\/(\d{1,2})\/(\d{4})\s*$/.exec(s || '');
  if (!m) return null;
  const [d, mo, y] = [+m[1], +m[2], +m[3]];
  const ms = Date.UTC(y, mo - 1, d) - 7 * 3600e3 + (endOfDay ? 86400e3 : 0);
  const back = new Date(Date.UTC(y, mo - 1, d));
  if (back.getUTCDate() !== d || back.getUTCMonth() !== mo - 1) return null;
  return new Date(ms).toISOString();
}

export function fmtDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
  if (h > 0) return t('dur.h', { h, m: String(m).padStart(2, '0') });
  if (m > 0) return t('dur.m', { m, s: String(s).padStart(2, '0') });
  return t('dur.s', { s });
}

export function fmtNumber(n) {
  return new Intl.NumberFormat(locale === 'vi' ? 'vi-VN' : 'en-GB').format(n);
}

// fmtClock: a running clock, m:ss or h:mm:ss (no words, any language).
export function fmtClock(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}
