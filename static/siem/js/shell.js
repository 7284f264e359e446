// The frame every analyst page shares: sign-in (JWT in sessionStorage), sign-out, the REST
// client, the one-time WebSocket ticket, the connection indicator and the UTC clock.
// The dashboard, the alert page and the incident page all start through createShell().

import { createApi } from './api.js';
import { $, formatClock } from './dom.js';

const TOKEN_KEY = 'siem.token';
export const TRIAGE_ROLES = new Set(['admin', 'analyst']);

// sessionStorage: the token lives as long as this tab, never in a cookie or on disk for long.
export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

/**
 * createShell({onSignedIn, onSignedOut}) → {api, wsCredential, showConnection, signOutLocally, boot}
 * onSignedIn(me) runs after a sign-in (or on load with a stored token) with /auth/me's answer;
 * onSignedOut() stops sockets and clears the page before the sign-in form shows again.
 */
export function createShell({ onSignedIn, onSignedOut = () => {} }) {
  const api = createApi({
    base: document.body.dataset.apiBase,
    getToken: () => session.token,
    onUnauthorized: (reason) => signOutLocally(`Your session ended (${reason}). Please sign in again.`),
  });

  function showSignin(message = '') {
    $('app').hidden = true;
    $('signin').hidden = false;
    const error = $('signin-error');
    error.textContent = message;
    error.hidden = !message;
    $('signin-password').value = '';
    ($('signin-username').value ? $('signin-password') : $('signin-username')).focus();
  }

  function signOutLocally(message) {
    onSignedOut();
    session.token = null;
    showSignin(message);
  }

  async function enter() {
    const me = await api.get('/auth/me');
    $('whoami').textContent = `${me.username} · ${me.role || 'no role'}`;
    $('signin').hidden = true;
    $('app').hidden = false;
    await onSignedIn(me);
  }

  $('signin-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const username = $('signin-username').value.trim();
    const password = $('signin-password').value;
    if (!username || !password) {
      showSignin('Enter your user name and password.');
      return;
    }
    const button = $('signin-submit');
    button.disabled = true;
    button.textContent = 'Signing in…';
    try {
      const answer = await api.post('/auth/login', { username, password });
      session.token = answer.access_token;
      await enter();
    } catch (err) {
      session.token = null;
      showSignin(err.status === 401 ? 'Wrong user name or password.' : `Sign-in failed: ${err.message}`);
    } finally {
      button.disabled = false;
      button.textContent = 'Sign in';
    }
  });

  $('signout').addEventListener('click', async () => {
    try {
      await api.post('/auth/logout');
    } catch {
      // Signing out locally is what matters; a server that cannot be reached expires the token.
    }
    signOutLocally('');
  });

  /** A one-time ticket for each socket: the access token itself never goes into a URL. */
  async function wsCredential() {
    const answer = await api.post('/auth/ws-ticket');
    return { ticket: answer.ticket };
  }

  let countdown = null;
  function showConnection({ state, attempt, retryAt, reason }) {
    const box = $('connection');
    const text = $('connection-text');
    box.dataset.state = state;
    box.title = reason || '';
    clearInterval(countdown);
    if (state === 'live') text.textContent = 'Live';
    else if (state === 'connecting') text.textContent = attempt ? `Reconnecting (attempt ${attempt})…` : 'Connecting…';
    else if (state === 'reconnecting') {
      const tick = () => {
        const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
        text.textContent = `Connection lost — retrying in ${seconds} s`;
      };
      tick();
      countdown = setInterval(tick, 1000);
    } else text.textContent = 'Offline';
  }

  const tickClock = () => {
    $('clock').textContent = `${formatClock(Date.now())} UTC`;
  };
  tickClock();
  setInterval(tickClock, 1000);

  async function boot() {
    if (!session.token) {
      showSignin();
      return;
    }
    try {
      await enter();
    } catch (err) {
      if (err.status !== 401) showSignin(`Could not open the page: ${err.message}`);
    }
  }

  return { api, wsCredential, showConnection, signOutLocally, boot };
}
