// app.js: the chat page's entry module. It keeps the session (the token in
// sessionStorage and one Switchboard client per login) and wires the views:
// ui/auth.js (forms), ui/chat.js (messages, presence), ui/status.js (live
// status). Plain browser modules, no build step, no dependencies.

import { Switchboard, decodeToken, describeClose, CloseCode } from './switchboard.js';
import { el, TEXT, storageGet, storageSet, setCloseReason } from './ui/dom.js';
import { api, apiFetch, serverNow, errorMessage } from './ui/api.js';
import { initAuth, showAuth, setAuthNotice } from './ui/auth.js';
import { startChat, stopChat, resetChat, retryChat, knowMe, showDisconnected, addNotice } from './ui/chat.js';
import { startStatus, stopStatus, resetStatus, retryStatus } from './ui/status.js';

const TOKEN_STORAGE = 'switchboard.token';
const SESSION_EXPIRED = describeClose(CloseCode.UNAUTHORIZED).text;
const ACCOUNT_DISABLED = describeClose(CloseCode.FORBIDDEN).text;
const LOGGED_OUT_EVERYWHERE = describeClose(CloseCode.REVOKED).text;

let client = null; // the logged-in session's client; null when logged out

// startSession adopts a token (from login or storage) and enters the chat.
// It returns false for a token whose payload cannot be read.
function startSession(token) {
  const claims = decodeToken(token);
  if (!claims || typeof claims.exp !== 'number') return false;
  endClient();
  storageSet(TOKEN_STORAGE, token);
  const c = new Switchboard({ token: token, fetch: apiFetch, now: serverNow });
  client = c;
  c.on('token', function (e) { storageSet(TOKEN_STORAGE, e.token); });
  c.on('expiring', function (e) {
    addNotice('Your session can\'t be extended any more; you will be asked to log in again in about ' +
      Math.max(1, Math.round((e.expiresAt - serverNow()) / 60000)) + ' min.');
  });
  c.on('logout', function (e) { sessionEnded(e.text); });
  startChat(c, typeof claims.username === 'string' ? claims.username : '');
  startStatus(c);
  verifySession(c);
  return true;
}

// verifySession confirms a token (e.g. one restored from sessionStorage)
// with the server and learns the canonical username.
async function verifySession(c) {
  const token = await c.freshToken();
  if (!token || c !== client) return;
  try {
    const res = await api('GET', '/api/users/me', undefined, token);
    if (c !== client || c.token !== token) return; // logged out or refreshed meanwhile
    if (res.status === 401) {
      const revoked = res.data && res.data.error && res.data.error.message === 'token revoked';
      sessionEnded(revoked ? LOGGED_OUT_EVERYWHERE : SESSION_EXPIRED);
      return;
    }
    if (res.ok && res.data && typeof res.data.username === 'string' && res.data.username) {
      if (res.data.is_active === false) { sessionEnded(ACCOUNT_DISABLED); return; }
      knowMe(res.data.username);
    }
  } catch (e) { /* offline: the sockets keep retrying */ }
}

function endClient() {
  stopChat();
  stopStatus();
  if (client) client.close();
  client = null;
  storageSet(TOKEN_STORAGE, null);
}

function logout() {
  endClient();
  resetChat();
  resetStatus();
  setCloseReason('');
  setAuthNotice('You have logged out.');
  showAuth('login');
}

// logoutEverywhere ends every token of the user (POST
// /api/users/me/logout-all): every tab and device is logged out, their
// sockets closed with 4004. This tab closes its client first, so it shows
// that it asked for it rather than the "logged out everywhere" reason the
// other tabs show.
async function logoutEverywhere() {
  const c = client;
  if (!c) return;
  el.logoutAll.disabled = true;
  const token = await c.freshToken();
  if (c !== client) { el.logoutAll.disabled = false; return; } // the session ended meanwhile
  endClient();
  resetChat();
  resetStatus();
  setCloseReason('');
  let notice = 'You have logged out on every device.';
  if (token) {
    try {
      const res = await api('POST', '/api/users/me/logout-all', undefined, token);
      if (res.status === 401) notice = 'Your session had already ended. You have logged out here.';
      else if (res.status !== 204) notice = 'Logging out your other devices failed (' + errorMessage(res.data, 'HTTP ' + res.status) + '). You have logged out here; log in and try again.';
    } catch (e) {
      notice = TEXT.unreachable + ' You have logged out here only.';
    }
  }
  el.logoutAll.disabled = false;
  setAuthNotice(notice);
  showAuth('login');
}

// sessionEnded returns to the login form with a plain-language reason.
function sessionEnded(reason) {
  endClient();
  resetChat();
  resetStatus();
  showDisconnected(reason);
  setCloseReason(reason);
  setAuthNotice('');
  showAuth('login');
}

initAuth(startSession);

el.logout.addEventListener('click', logout);
el.logoutAll.addEventListener('click', logoutEverywhere);

el.reconnect.addEventListener('click', function () {
  retryChat();
  retryStatus();
});

// Timers are throttled in background tabs: catch up when the tab returns,
// and when the network does.
document.addEventListener('visibilitychange', function () {
  if (document.visibilityState === 'visible' && client) client.reconnectNow();
});
window.addEventListener('online', function () {
  if (client) client.reconnectNow();
});

function boot() {
  const saved = storageGet(TOKEN_STORAGE);
  if (saved && startSession(saved)) return;
  storageSet(TOKEN_STORAGE, null);
  showAuth('login');
}

boot();
