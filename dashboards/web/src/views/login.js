// Sign-in view.
import { useState } from 'preact/hooks';
import { html } from './common.js';
import { t } from '../i18n/i18n.js';
import { api } from '../api.js';
import { unlockAudio } from '../alarm.js';

export function Login({ onSignedIn, notice }) {
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState(notice || null);
  const [busy, setBusy] = useState(false);

  async function submit(ev) {
    ev.preventDefault();
    unlockAudio();
    setBusy(true);
    setError(null);
    try {
      await api.login(name.trim(), password);
      const me = await api.me();
      onSignedIn(me);
    } catch (e) {
      if (e.status === 429) setError(t('login.locked', { s: e.retryAfter || 60 }));
      else if (e.status === 503) setError(t('login.busy'));
      else if (e.status === 0) setError(t('err.network'));
      else setError(t('login.failed'));
    } finally {
      setBusy(false);
    }
  }

  return html`<main class="login">
    <form class="login-box" onSubmit=${submit} data-view="login">
      <h1>${t('app.title')}</h1>
      <h2>${t('login.title')}</h2>
      <label>${t('login.name')}
        <input name="name" autocomplete="username" value=${name} onInput=${(e) => setName(e.target.value)} required autofocus />
      </label>
      <label>${t('login.password')}
        <input name="password" type="password" autocomplete="current-password" value=${password}
          onInput=${(e) => setPassword(e.target.value)} required />
      </label>
      ${error ? html`<p class="error" role="alert">${error}</p>` : null}
      <button type="submit" disabled=${busy}>${t('login.submit')}</button>
    </form>
  </main>`;
}
