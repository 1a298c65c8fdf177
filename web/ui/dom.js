// dom.js: the page's elements and small DOM helpers. User-provided text is
// only ever set with textContent.

export const $ = (id) => document.getElementById(id);

// el holds every element the page's modules use, by role.
export const el = {
  closeReason: $('close-reason'),
  auth: $('auth'),
  authNotice: $('auth-notice'),
  authError: $('auth-error'),
  loginForm: $('login-form'),
  registerForm: $('register-form'),
  creds: $('creds'),
  username: $('username'),
  password: $('password'),
  email: $('email'),
  showRegister: $('show-register'),
  showLogin: $('show-login'),
  chat: $('chat'),
  groupName: $('group-name'),
  me: $('me'),
  logout: $('logout'),
  logoutAll: $('logout-all'),
  connStatus: $('conn-status'),
  reconnect: $('reconnect'),
  online: $('online'),
  onlineCount: $('online-count'),
  messages: $('messages'),
  sendForm: $('send-form'),
  messageInput: $('message-input'),
  sendButton: $('send-button'),
  statusPanel: $('status-panel'),
  statusConn: $('status-conn'),
  statusForm: $('status-form'),
  statusKey: $('status-key'),
  statusError: $('status-error'),
  statusCurrentKey: $('status-current-key'),
  statusValue: $('status-value'),
  statusVersion: $('status-version'),
  statusChanged: $('status-changed'),
};

// Texts of the page itself; the texts for close codes come from
// switchboard.js (closeKinds).
export const TEXT = {
  badKey: 'Use 1–100 letters, digits, or - _ . :',
  unreachable: 'Can\'t reach the server. Check your connection and try again.',
};

export function setText(n, text) {
  n.textContent = text == null ? '' : String(text);
}

export function node(tag, className, text) {
  const n = document.createElement(tag);
  if (className) n.className = className;
  if (text !== undefined) n.textContent = String(text);
  return n;
}

// restartAnimation replays a CSS animation class on n.
export function restartAnimation(n, className) {
  n.classList.remove(className);
  void n.offsetWidth; // restart the animation
  n.classList.add(className);
}

export function setCloseReason(text) {
  setText(el.closeReason, text || '');
}

export function storageGet(key) {
  try { return window.sessionStorage.getItem(key); } catch (e) { return null; }
}

export function storageSet(key, value) {
  try {
    if (value === null) window.sessionStorage.removeItem(key);
    else window.sessionStorage.setItem(key, value);
  } catch (e) { /* storage unavailable: keep the value in memory only */ }
}

export function parseTime(ts) {
  if (typeof ts !== 'string' || ts === '') return null;
  const d = new Date(ts);
  if (isNaN(d.getTime()) || d.getUTCFullYear() < 1971) return null; // Go's zero time means "never"
  return d;
}

export function shortTime(d) {
  const now = new Date();
  if (d.toDateString() === now.toDateString()) {
    return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }
  return d.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}
