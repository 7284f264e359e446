// Sign-in shared by the analysts' pages: the JWT in this tab's sessionStorage (never a cookie),
// the sign-in form and the sign-out button of templates/*/index.html.

import { $ } from './dom.js';

const TOKEN_KEY = 'siem.token';

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

export function showSignin(message = '') {
  $('app').hidden = true;
  $('signin').hidden = false;
  const error = $('signin-error');
  error.textContent = message;
  error.hidden = !message;
  $('signin-password').value = '';
  ($('signin-username').value ? $('signin-password') : $('signin-username')).focus();
}

/**
 * Wire #signin-form and #signout: `start()` opens the page once signed in (its failure shows
 * the sign-in form again with the reason); `signOutLocally(message)` is the page's own clean-up.
 */
export function bindSignin({ api, start, signOutLocally }) {
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
      await start();
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
}
