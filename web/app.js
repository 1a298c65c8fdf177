// Switchboard chat page. Plain browser JavaScript, no build step, no
// dependencies. All user-provided text is rendered with textContent.
'use strict';

(function () {
  // ---- Constants ----------------------------------------------------------

  const TOKEN_STORAGE = 'switchboard.token';
  const STATUS_KEY_STORAGE = 'switchboard.statusKey';
  const DEFAULT_STATUS_KEY = 'system';

  const REFRESH_FRACTION = 0.8; // refresh the JWT at 80% of its remaining lifetime
  const BACKOFF_MIN_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  const MAX_MESSAGES = 1000; // oldest entries are dropped beyond this
  // Status keys and group names: 1–100 letters, digits and - _ . : (as the server's ws.ValidName).
  const VALID_NAME = /^[\p{L}\p{Nd}_.:-]{1,100}$/u;

  // Plain-language texts for the server's close codes (see ws close codes).
  const TEXT = {
    sessionExpired: 'Your session expired, please log in again',
    accountDisabled: 'Your account was disabled',
    accountNotFound: 'Signed out: account not found',
    tooFast: 'You were sending messages too fast and were disconnected',
    tooBig: 'Your message was too big and you were disconnected',
    tooSlow: 'Your connection was too slow to keep up',
    restarting: 'The server is restarting',
    badName: 'That group or key name is not valid',
    badKey: 'Use 1–100 letters, digits, or - _ . :',
    serverError: 'The server had a problem',
    lost: 'Connection lost',
    unreachable: 'Can\'t reach the server. Check your connection and try again.',
  };

  // ---- Elements -----------------------------------------------------------

  const $ = (id) => document.getElementById(id);
  const el = {
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

  // ---- Small helpers ------------------------------------------------------

  function storageGet(key) {
    try { return window.sessionStorage.getItem(key); } catch (e) { return null; }
  }
  function storageSet(key, value) {
    try {
      if (value === null) window.sessionStorage.removeItem(key);
      else window.sessionStorage.setItem(key, value);
    } catch (e) { /* storage unavailable: keep the value in memory only */ }
  }

  function setText(node, text) {
    node.textContent = text == null ? '' : String(text);
  }

  function node(tag, className, text) {
    const n = document.createElement(tag);
    if (className) n.className = className;
    if (text !== undefined) n.textContent = String(text);
    return n;
  }

  // decodeJWT returns the payload of a JWT, or null if it cannot be read.
  // The signature is not checked: the server does that.
  function decodeJWT(token) {
    if (typeof token !== 'string') return null;
    const parts = token.split('.');
    if (parts.length !== 3) return null;
    try {
      let b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
      while (b64.length % 4) b64 += '=';
      const bin = atob(b64);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      const claims = JSON.parse(new TextDecoder().decode(bytes));
      return claims && typeof claims === 'object' ? claims : null;
    } catch (e) {
      return null;
    }
  }

  function wsURL(path) {
    const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    return scheme + '//' + window.location.host + path;
  }

  function parseTime(ts) {
    if (typeof ts !== 'string' || ts === '') return null;
    const d = new Date(ts);
    if (isNaN(d.getTime()) || d.getUTCFullYear() < 1971) return null; // Go's zero time means "never"
    return d;
  }

  function shortTime(d) {
    const now = new Date();
    if (d.toDateString() === now.toDateString()) {
      return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    }
    return d.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  }

  // ---- HTTP API -----------------------------------------------------------

  // api calls the JSON API and resolves to {status, ok, data}; it rejects
  // only when the server cannot be reached.
  async function api(method, path, body, withAuth) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (withAuth && session.token) headers.Authorization = 'Bearer ' + session.token;
    const res = await fetch(path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
    noteServerClock(res);
    let data = null;
    const text = await res.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    return { status: res.status, ok: res.ok, data: data };
  }

  // errorMessage picks a human-readable message out of any of the server's error shapes.
  function errorMessage(data, fallback) {
    if (data && typeof data === 'object') {
      if (data.error && typeof data.error.message === 'string' && data.error.message) return data.error.message;
      if (Array.isArray(data.non_field_errors) && data.non_field_errors.length) return data.non_field_errors.join(' ');
      if (typeof data.detail === 'string') return data.detail;
      if (typeof data.message === 'string') return data.message;
    }
    return fallback;
  }

  // fieldErrors returns {field: message} from {"error":{"fields":{...}}} or DRF-style {"field": ["..."]}.
  function fieldErrors(data) {
    const out = {};
    if (!data || typeof data !== 'object') return out;
    const src = data.error && data.error.fields && typeof data.error.fields === 'object' ? data.error.fields : data;
    for (const name of ['username', 'password', 'email']) {
      const v = src[name];
      if (typeof v === 'string') out[name] = v;
      else if (Array.isArray(v)) out[name] = v.join(' ');
    }
    return out;
  }

  // ---- Session and token refresh ------------------------------------------

  const session = {
    token: null,
    claims: null,
    me: '',
    expiresAt: 0, // ms, server clock
    refreshDueAt: 0, // ms, server clock
    refreshTimer: 0,
    expiryTimer: 0,
    refreshing: null, // in-flight refresh promise
    skewMs: 0, // server clock minus local clock, from the Date header
  };

  function serverNow() {
    return Date.now() + session.skewMs;
  }

  // noteServerClock estimates clock skew from the Date header so that token
  // expiry (server clock) is judged correctly on a machine with a wrong clock.
  function noteServerClock(res) {
    const date = res.headers && res.headers.get('Date');
    if (!date) return;
    const server = Date.parse(date);
    if (isNaN(server)) return;
    const skew = server + 500 - Date.now(); // the header has whole seconds
    session.skewMs = Math.abs(skew) > 5000 ? skew : 0;
  }

  // setToken adopts a token (from login, refresh or storage) and schedules
  // its refresh at 80% of its remaining lifetime. It returns false for a
  // token whose payload cannot be read.
  function setToken(token) {
    const claims = decodeJWT(token);
    if (!claims || typeof claims.exp !== 'number') return false;
    session.token = token;
    session.claims = claims;
    if (typeof claims.username === 'string' && claims.username) session.me = claims.username;
    session.expiresAt = claims.exp * 1000;
    clearTimeout(session.expiryTimer);
    session.expiryTimer = 0;
    const remaining = session.expiresAt - serverNow();
    session.refreshDueAt = serverNow() + Math.max(0, remaining * REFRESH_FRACTION);
    storageSet(TOKEN_STORAGE, token);
    scheduleRefresh(session.refreshDueAt - serverNow());
    return true;
  }

  function scheduleRefresh(delayMs) {
    clearTimeout(session.refreshTimer);
    session.refreshTimer = setTimeout(function () { refreshToken(); }, Math.max(1000, delayMs));
  }

  function clearSession() {
    clearTimeout(session.refreshTimer);
    clearTimeout(session.expiryTimer);
    session.refreshTimer = 0;
    session.expiryTimer = 0;
    session.token = null;
    session.claims = null;
    session.me = '';
    session.expiresAt = 0;
    session.refreshDueAt = 0;
    storageSet(TOKEN_STORAGE, null);
  }

  // refreshToken exchanges the token for a fresh one. It resolves to "ok",
  // "refused" (the server will not refresh it: too old or invalid), "error"
  // (server unreachable; retried soon) or "stale" (logged out meanwhile).
  function refreshToken() {
    if (session.refreshing) return session.refreshing;
    const token = session.token;
    if (!token) return Promise.resolve('stale');
    const p = (async function () {
      try {
        const res = await api('POST', '/api-token-refresh/', { token: token });
        if (session.token !== token) return 'stale';
        if (res.ok && res.data && typeof res.data.token === 'string' && setToken(res.data.token)) return 'ok';
        if (res.status >= 400 && res.status < 500 && res.status !== 429) {
          refreshRefused();
          return 'refused';
        }
      } catch (e) {
        if (session.token !== token) return 'stale';
      }
      retryRefreshSoon();
      return 'error';
    })();
    session.refreshing = p;
    p.finally(function () { if (session.refreshing === p) session.refreshing = null; });
    return p;
  }

  function retryRefreshSoon() {
    const left = session.expiresAt - serverNow();
    if (left <= 0) return; // expired: the next connect attempt decides
    scheduleRefresh(Math.min(10000, left / 4));
  }

  // refreshRefused handles a token that can no longer be extended: the user
  // keeps chatting until it expires, then has to log in again.
  function refreshRefused() {
    clearTimeout(session.refreshTimer);
    const left = session.expiresAt - serverNow();
    if (left <= 0) return;
    if (!session.expiryTimer) {
      addNotice('Your session can\'t be extended any more; you will be asked to log in again in about ' +
        Math.max(1, Math.round(left / 60000)) + ' min.');
    }
    clearTimeout(session.expiryTimer);
    session.expiryTimer = setTimeout(function () { sessionEnded(TEXT.sessionExpired); }, left);
  }

  // ensureFreshToken refreshes the token first if it is near expiry; it is
  // called before every (re)connect. It resolves to false if the session is over.
  async function ensureFreshToken() {
    if (!session.token) return false;
    if (serverNow() < session.refreshDueAt) return true;
    const result = await refreshToken();
    if (!session.token) return false;
    if (result === 'refused' && serverNow() >= session.expiresAt) {
      sessionEnded(TEXT.sessionExpired);
      return false;
    }
    return true; // on "error" try anyway: the socket will report a bad token
  }

  // checkSession asks the server whether the token is still accepted; used
  // when a socket failed before opening (the handshake may have been refused).
  async function checkSession() {
    try {
      const res = await api('GET', '/api/users/me', undefined, true);
      if (res.status === 401) return 'expired';
      if (res.ok && res.data && typeof res.data.username === 'string') {
        if (res.data.is_active === false) return 'disabled';
        return 'ok';
      }
      return 'unknown';
    } catch (e) {
      return 'unknown';
    }
  }

  // ---- Close codes --------------------------------------------------------

  // classifyClose turns a close event into what to do and what to say.
  // action: "logout" (back to login), "stop" (no automatic retry) or "retry".
  // reason: the plain-language text for #close-reason ("" if none).
  // prefix: the start of the "…, reconnecting in Ns…" line.
  function classifyClose(code, reason) {
    const r = String(reason || '').toLowerCase();
    switch (code) {
      case 4001:
        return { action: 'logout', reason: TEXT.sessionExpired };
      case 4003:
        return { action: 'logout', reason: r.indexOf('not found') >= 0 ? TEXT.accountNotFound : TEXT.accountDisabled };
      case 1008:
        return { action: 'stop', reason: TEXT.tooFast };
      case 1009:
        return { action: 'stop', reason: TEXT.tooBig };
      case 4000:
        return { action: 'stop', reason: TEXT.badName };
      case 1013:
        return { action: 'retry', reason: TEXT.tooSlow, prefix: TEXT.tooSlow };
      case 1001:
        return { action: 'retry', reason: TEXT.restarting, prefix: TEXT.restarting };
      case 1011:
        return { action: 'retry', reason: '', prefix: TEXT.serverError };
      default: // 1006 abnormal closure and anything else
        return { action: 'retry', reason: '', prefix: TEXT.lost };
    }
  }

  // ---- LiveSocket ---------------------------------------------------------

  // LiveSocket keeps one WebSocket connected: it refreshes the token before
  // each attempt, parses JSON frames, and reconnects with exponential backoff
  // (1s doubling to 30s, ±20% jitter) unless the close code says not to.
  // onState(state, text, info) gets "connecting", "connected", "reconnecting"
  // or "disconnected" with a line of text for the user.
  class LiveSocket {
    constructor(opts) {
      this.path = opts.path; // function returning "/ws/...?token=..."
      this.onFrame = opts.onFrame;
      this.onState = opts.onState;
      this.ws = null;
      this.active = false;
      this.attempt = 0;
      this.gen = 0;
      this.retryTimer = 0;
      this.countdownTimer = 0;
      this.state = 'idle';
      this.outage = null; // the close that started the current outage
    }

    start() {
      this.stop();
      this.outage = null;
      this.active = true;
      this.attempt = 0;
      this.connect();
    }

    stop() {
      this.active = false;
      this.gen++;
      this.clearTimers();
      const ws = this.ws;
      this.ws = null;
      if (ws) {
        try { ws.close(1000, 'bye'); } catch (e) { /* already closed */ }
      }
      this.state = 'idle';
    }

    // retryNow skips the remaining backoff (or restarts after a "stop" close).
    retryNow() {
      if (!session.token) return;
      if (this.ws && (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)) return;
      this.active = true;
      this.connect();
    }

    waiting() {
      return this.active && this.state === 'reconnecting';
    }

    isOpen() {
      return !!this.ws && this.ws.readyState === WebSocket.OPEN && this.state === 'connected';
    }

    send(text) {
      if (!this.isOpen()) return false;
      this.ws.send(text);
      return true;
    }

    clearTimers() {
      clearTimeout(this.retryTimer);
      clearInterval(this.countdownTimer);
      this.retryTimer = 0;
      this.countdownTimer = 0;
    }

    emit(state, text, info) {
      this.state = state;
      this.onState(state, text, info || null);
    }

    async connect() {
      this.clearTimers();
      if (!this.active) return;
      const gen = ++this.gen;
      this.emit('connecting', this.attempt > 0 ? 'Reconnecting…' : 'Connecting…');
      const fresh = await ensureFreshToken();
      if (!fresh || !this.active || gen !== this.gen) return;

      let ws;
      try {
        ws = new WebSocket(wsURL(this.path()));
      } catch (e) {
        this.closed({ code: 1006, reason: '' }, false, gen);
        return;
      }
      this.ws = ws;
      let opened = false;
      let greeted = false;
      ws.onopen = () => { opened = true; };
      ws.onmessage = (ev) => {
        if (this.ws !== ws) return;
        let frame;
        try { frame = JSON.parse(ev.data); } catch (e) { return; }
        if (!frame || typeof frame !== 'object') return;
        if (!greeted) {
          greeted = true;
          this.attempt = 0; // the server accepted us: start backoff afresh next time
          this.outage = null;
          this.emit('connected', 'Connected');
        }
        this.onFrame(frame);
      };
      ws.onclose = (ev) => {
        if (this.ws !== ws) return;
        this.ws = null;
        this.closed(ev, opened, gen);
      };
    }

    async closed(ev, opened, gen) {
      let info = classifyClose(ev.code, ev.reason);
      info.code = ev.code;
      info.serverReason = ev.reason || '';
      if (info.action === 'retry') {
        // Failed attempts during an outage keep the server's explanation
        // ("The server is restarting") until a connection succeeds.
        if (!opened && this.outage) info = Object.assign({}, this.outage, { code: ev.code });
        else this.outage = info;
      }
      if (info.action === 'logout') {
        sessionEnded(info.reason);
        return;
      }
      if (info.action === 'stop') {
        this.active = false;
        this.emit('disconnected', 'Disconnected: ' + info.reason, info);
        return;
      }
      if (!opened) {
        // The handshake failed; browsers hide the HTTP status, so ask the API
        // whether the token is the problem before retrying blindly.
        this.emit('connecting', TEXT.lost + ', checking…', info);
        const check = await checkSession();
        if (!this.active || gen !== this.gen) return;
        if (check === 'expired') { sessionEnded(TEXT.sessionExpired); return; }
        if (check === 'disabled') { sessionEnded(TEXT.accountDisabled); return; }
      }
      if (!this.active || gen !== this.gen) return;
      this.scheduleRetry(info);
    }

    scheduleRetry(info) {
      this.clearTimers();
      this.attempt++;
      const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, this.attempt - 1));
      const jittered = base * (0.8 + Math.random() * 0.4);
      const delay = Math.round(Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_MIN_MS, jittered)));
      const until = Date.now() + delay;
      let shown = -1;
      const render = () => {
        const secs = Math.max(1, Math.ceil((until - Date.now()) / 1000));
        if (secs === shown) return;
        shown = secs;
        info.retryIn = secs;
        this.emit('reconnecting', info.prefix + ', reconnecting in ' + secs + 's…', info);
      };
      render();
      this.countdownTimer = setInterval(render, 250);
      this.retryTimer = setTimeout(() => this.connect(), delay);
    }
  }

  // ---- Views --------------------------------------------------------------

  function setCloseReason(text) {
    setText(el.closeReason, text || '');
  }

  function showAuth(mode) {
    const register = mode === 'register';
    const form = register ? el.registerForm : el.loginForm;
    const other = register ? el.loginForm : el.registerForm;
    form.querySelector('.creds-slot').appendChild(el.creds);
    el.password.setAttribute('autocomplete', register ? 'new-password' : 'current-password');
    form.hidden = false;
    other.hidden = true;
    el.chat.hidden = true;
    el.auth.hidden = false;
    clearAuthErrors();
    document.title = register ? 'Create account · Switchboard' : 'Log in · Switchboard';
  }

  function clearAuthErrors() {
    setText(el.authError, '');
    for (const name of ['username', 'password', 'email']) {
      setText($(name + '-error'), '');
      el[name].removeAttribute('aria-invalid');
    }
  }

  function setAuthNotice(text) {
    setText(el.authNotice, text);
  }

  function setBusy(form, busy) {
    const button = form.querySelector('button[type="submit"]');
    button.disabled = busy;
    form.setAttribute('aria-busy', busy ? 'true' : 'false');
  }

  function showChat() {
    el.auth.hidden = true;
    el.chat.hidden = false;
    setText(el.me, session.me);
    setText(el.groupName, chat.group || '…');
    document.title = 'Switchboard';
  }

  // ---- Auth forms ---------------------------------------------------------

  el.showRegister.addEventListener('click', function (e) {
    e.preventDefault();
    setAuthNotice('');
    showAuth('register');
    el.username.focus();
  });

  el.showLogin.addEventListener('click', function (e) {
    e.preventDefault();
    setAuthNotice('');
    showAuth('login');
    el.username.focus();
  });

  el.registerForm.addEventListener('submit', async function (e) {
    e.preventDefault();
    clearAuthErrors();
    setAuthNotice('');
    const body = {
      username: el.username.value.trim(),
      password: el.password.value,
      email: el.email.value.trim(),
    };
    setBusy(el.registerForm, true);
    let res;
    try {
      res = await api('POST', '/api/users/', body);
    } catch (err) {
      setText(el.authError, TEXT.unreachable);
      return;
    } finally {
      setBusy(el.registerForm, false);
    }
    if (res.ok) {
      const name = res.data && typeof res.data.username === 'string' ? res.data.username : body.username;
      el.username.value = '';
      el.password.value = '';
      el.email.value = '';
      showAuth('login');
      setAuthNotice('Account created for ' + name + '. You can log in now.');
      el.username.focus();
      return;
    }
    const fields = fieldErrors(res.data);
    let shown = false;
    for (const name of Object.keys(fields)) {
      setText($(name + '-error'), fields[name]);
      el[name].setAttribute('aria-invalid', 'true');
      shown = true;
    }
    const fallback = res.status === 409 ? 'That username is already taken.' : 'Could not create the account.';
    setText(el.authError, errorMessage(res.data, shown ? '' : fallback));
  });

  el.loginForm.addEventListener('submit', async function (e) {
    e.preventDefault();
    clearAuthErrors();
    const body = { username: el.username.value.trim(), password: el.password.value };
    setBusy(el.loginForm, true);
    let res;
    try {
      res = await api('POST', '/api-token-auth/', body);
    } catch (err) {
      setText(el.authError, TEXT.unreachable);
      return;
    } finally {
      setBusy(el.loginForm, false);
    }
    if (res.ok && res.data && typeof res.data.token === 'string' && setToken(res.data.token)) {
      // Empty fields after a later logout, so typing there never appends to old text.
      el.username.value = '';
      el.password.value = '';
      setAuthNotice('');
      setCloseReason('');
      enterChat();
      return;
    }
    const fields = fieldErrors(res.data);
    for (const name of Object.keys(fields)) {
      setText($(name + '-error'), fields[name]);
      el[name].setAttribute('aria-invalid', 'true');
    }
    setText(el.authError, errorMessage(res.data, 'Could not log in.'));
  });

  // ---- Chat ---------------------------------------------------------------

  const chat = {
    group: '',
    online: new Set(),
    pendingPresence: null, // join/leave events that arrive while the presence list loads
    presenceGen: 0,
    wasConnected: false,
    outage: false,
  };

  const chatSocket = new LiveSocket({
    path: function () { return '/ws/chat/?token=' + encodeURIComponent(session.token); },
    onFrame: onChatFrame,
    onState: onChatState,
  });

  const statusSocket = new LiveSocket({
    path: function () {
      return '/ws/status/' + encodeURIComponent(status.key) + '/?token=' + encodeURIComponent(session.token);
    },
    onFrame: onStatusFrame,
    onState: onStatusState,
  });

  function enterChat() {
    resetChat();
    showChat();
    chatSocket.start();
    startStatus();
    verifySession();
  }

  // verifySession confirms a token (e.g. one restored from sessionStorage)
  // with the server and learns the canonical username.
  async function verifySession() {
    if (!(await ensureFreshToken())) return;
    const token = session.token;
    try {
      const res = await api('GET', '/api/users/me', undefined, true);
      if (session.token !== token) return; // logged out or refreshed meanwhile
      if (res.status === 401) { sessionEnded(TEXT.sessionExpired); return; }
      if (res.ok && res.data && typeof res.data.username === 'string' && res.data.username) {
        if (res.data.is_active === false) { sessionEnded(TEXT.accountDisabled); return; }
        if (!chat.group) { session.me = res.data.username; setText(el.me, session.me); }
      }
    } catch (e) { /* offline: the sockets keep retrying */ }
  }

  function resetChat() {
    chat.group = '';
    chat.online = new Set();
    chat.pendingPresence = null;
    chat.presenceGen++;
    chat.wasConnected = false;
    chat.outage = false;
    el.messages.replaceChildren();
    el.messageInput.value = '';
    renderOnline();
  }

  function logout() {
    chatSocket.stop();
    statusSocket.stop();
    clearSession();
    resetChat();
    resetStatus();
    setCloseReason('');
    setAuthNotice('You have logged out.');
    showAuth('login');
  }

  // sessionEnded returns to the login form with a plain-language reason.
  function sessionEnded(reason) {
    chatSocket.stop();
    statusSocket.stop();
    clearSession();
    resetChat();
    resetStatus();
    setText(el.connStatus, 'Disconnected: ' + reason);
    el.connStatus.dataset.state = 'disconnected';
    setCloseReason(reason);
    setAuthNotice('');
    showAuth('login');
  }

  el.logout.addEventListener('click', logout);

  el.reconnect.addEventListener('click', function () {
    chatSocket.retryNow();
    if (!statusSocket.active || statusSocket.waiting()) statusSocket.retryNow();
  });

  function onChatState(state, text, info) {
    setText(el.connStatus, text);
    el.connStatus.dataset.state = state;
    el.reconnect.hidden = !(state === 'reconnecting' || state === 'disconnected');
    el.sendButton.disabled = state !== 'connected';
    el.online.classList.toggle('stale', state !== 'connected');
    if (state === 'connected') return; // #close-reason is cleared by the welcome frame
    if (info && (state === 'reconnecting' || state === 'disconnected')) {
      setCloseReason(info.reason);
      if (chat.wasConnected && !chat.outage) {
        chat.outage = true;
        const why = info.reason || info.prefix || TEXT.lost;
        addNotice('Disconnected: ' + why + '. Messages sent while you are away will not appear here.');
      }
    }
  }

  function onChatFrame(frame) {
    switch (frame.type) {
      case 'welcome':
        onWelcome(frame);
        break;
      case 'message':
        addMessage(frame);
        break;
      case 'join':
      case 'leave':
        onPresence(frame);
        break;
      default:
        break; // unknown frames are ignored so the server can add new ones
    }
  }

  function onWelcome(frame) {
    if (typeof frame.user === 'string' && frame.user) session.me = frame.user;
    chat.group = typeof frame.group === 'string' ? frame.group : '';
    setText(el.me, session.me);
    setText(el.groupName, chat.group || '…');
    document.title = (chat.group ? '#' + chat.group + ' · ' : '') + 'Switchboard';
    setCloseReason('');
    if (chat.outage) addNotice('Reconnected.');
    chat.outage = false;
    chat.wasConnected = true;
    loadPresence(chat.group);
  }

  async function loadPresence(group) {
    const gen = ++chat.presenceGen;
    chat.pendingPresence = [];
    renderOnline();
    let users = null;
    if (group) {
      try {
        const res = await api('GET', '/api/groups/' + encodeURIComponent(group) + '/presence', undefined, true);
        if (res.ok && res.data && Array.isArray(res.data.users)) {
          users = res.data.users.filter(function (u) { return typeof u === 'string'; });
        }
      } catch (e) { /* keep the previous list */ }
    }
    if (gen !== chat.presenceGen) return;
    if (users) chat.online = new Set(users);
    const pending = chat.pendingPresence || [];
    chat.pendingPresence = null;
    for (const ev of pending) applyPresence(ev);
    renderOnline();
  }

  function onPresence(frame) {
    if (typeof frame.user !== 'string' || !frame.user) return;
    const known = chat.online.has(frame.user);
    if (frame.user !== session.me) {
      if (frame.type === 'join' && !known) addNotice(frame.user + ' joined');
      if (frame.type === 'leave' && known) addNotice(frame.user + ' left');
    }
    if (chat.pendingPresence) chat.pendingPresence.push(frame);
    applyPresence(frame);
    renderOnline();
  }

  function applyPresence(frame) {
    if (frame.type === 'join') chat.online.add(frame.user);
    else if (frame.type === 'leave') chat.online.delete(frame.user);
  }

  function renderOnline() {
    const users = new Set(chat.online);
    if (session.me && chat.wasConnected) users.add(session.me); // we are online while connected
    const sorted = Array.from(users).sort(function (a, b) {
      return a.localeCompare(b, undefined, { sensitivity: 'base' });
    });
    const items = sorted.map(function (u) {
      const li = node('li', u === session.me ? 'user self' : 'user', u);
      li.dataset.user = u;
      li.title = u;
      return li;
    });
    el.online.replaceChildren(...items);
    setText(el.onlineCount, sorted.length);
  }

  function nearBottom() {
    const m = el.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  function appendEntry(li, forceScroll) {
    const stick = forceScroll || nearBottom();
    el.messages.appendChild(li);
    while (el.messages.childElementCount > MAX_MESSAGES) el.messages.firstElementChild.remove();
    if (stick) el.messages.scrollTop = el.messages.scrollHeight;
  }

  function addMessage(frame) {
    const user = typeof frame.user === 'string' ? frame.user : '';
    const mine = user !== '' && user === session.me;
    const when = parseTime(frame.ts) || new Date();

    const li = node('li', 'msg ' + (mine ? 'mine' : 'theirs'));
    li.dataset.user = user;
    const meta = node('div', 'meta');
    meta.appendChild(node('span', 'author', user || 'unknown'));
    const time = node('time', 'time', shortTime(when));
    time.dateTime = when.toISOString();
    time.title = when.toLocaleString();
    meta.appendChild(time);
    li.appendChild(meta);
    li.appendChild(node('div', 'text', frame.text == null ? '' : frame.text));
    appendEntry(li, mine);
  }

  // addNotice adds a system line (class "notice", not "msg") to the message list.
  function addNotice(text) {
    if (el.chat.hidden) return;
    const li = node('li', 'notice', text);
    appendEntry(li, false);
  }

  el.sendForm.addEventListener('submit', function (e) {
    e.preventDefault();
    const text = el.messageInput.value;
    if (text.trim() === '') return;
    if (!chatSocket.send(text)) {
      // Keep the text so nothing typed is lost.
      el.sendForm.classList.remove('shake');
      void el.sendForm.offsetWidth; // restart the animation
      el.sendForm.classList.add('shake');
      return;
    }
    el.messageInput.value = '';
    el.messageInput.focus();
  });

  // ---- Live status panel --------------------------------------------------

  const status = { key: DEFAULT_STATUS_KEY, version: -1 };

  function startStatus() {
    const saved = storageGet(STATUS_KEY_STORAGE);
    status.key = saved && VALID_NAME.test(saved) ? saved : DEFAULT_STATUS_KEY;
    el.statusKey.value = status.key;
    resetStatus();
    statusSocket.start();
  }

  function resetStatus() {
    status.version = -1;
    setText(el.statusCurrentKey, status.key);
    setText(el.statusValue, '…');
    setText(el.statusVersion, '–');
    setText(el.statusChanged, '–');
    el.statusChanged.removeAttribute('datetime');
    el.statusChanged.removeAttribute('title');
    el.statusPanel.dataset.key = status.key;
  }

  function watchKey() {
    const key = el.statusKey.value.trim();
    if (!key) return; // keep watching the current key until a new one is entered
    if (!VALID_NAME.test(key)) {
      setText(el.statusError, TEXT.badKey);
      el.statusKey.setAttribute('aria-invalid', 'true');
      return;
    }
    setText(el.statusError, '');
    el.statusKey.removeAttribute('aria-invalid');
    if (key === status.key && statusSocket.active) return;
    status.key = key;
    storageSet(STATUS_KEY_STORAGE, key);
    resetStatus();
    if (session.token) statusSocket.start();
  }

  el.statusForm.addEventListener('submit', function (e) {
    e.preventDefault();
    watchKey();
  });
  el.statusKey.addEventListener('change', watchKey);

  function onStatusFrame(frame) {
    if (frame.type !== 'status') return;
    if (typeof frame.key === 'string' && frame.key !== status.key) return;
    const value = frame.value === undefined ? null : frame.value;
    const version = typeof frame.version === 'number' ? frame.version : 0;
    const changed = version > 0 ? parseTime(frame.ts) : null;

    setText(el.statusCurrentKey, typeof frame.key === 'string' ? frame.key : status.key);
    setText(el.statusValue, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
    setText(el.statusVersion, version);
    if (changed) {
      setText(el.statusChanged, changed.toLocaleString());
      el.statusChanged.dateTime = changed.toISOString();
      el.statusChanged.title = changed.toISOString();
    } else {
      setText(el.statusChanged, version > 0 ? 'unknown' : 'never');
      el.statusChanged.removeAttribute('datetime');
      el.statusChanged.removeAttribute('title');
    }
    el.statusPanel.dataset.version = String(version);
    if (status.version >= 0 && version !== status.version) {
      el.statusPanel.classList.remove('flash');
      void el.statusPanel.offsetWidth;
      el.statusPanel.classList.add('flash');
    }
    status.version = version;
  }

  function onStatusState(state, text, info) {
    el.statusConn.dataset.state = state;
    if (state === 'connected') setText(el.statusConn, 'live');
    else if (state === 'reconnecting') setText(el.statusConn, 'reconnecting in ' + ((info && info.retryIn) || 1) + 's…');
    else if (state === 'disconnected') setText(el.statusConn, info && info.reason === TEXT.badName ? 'invalid key' : 'disconnected');
    else setText(el.statusConn, 'connecting…');
    el.statusConn.title = text;
  }

  // ---- Page lifecycle -----------------------------------------------------

  // Timers are throttled in background tabs: catch up when the tab returns.
  document.addEventListener('visibilitychange', function () {
    if (document.visibilityState !== 'visible' || !session.token) return;
    if (serverNow() >= session.refreshDueAt) refreshToken();
    if (chatSocket.waiting()) chatSocket.retryNow();
    if (statusSocket.waiting()) statusSocket.retryNow();
  });

  window.addEventListener('online', function () {
    if (!session.token) return;
    if (chatSocket.waiting()) chatSocket.retryNow();
    if (statusSocket.waiting()) statusSocket.retryNow();
  });

  function boot() {
    const saved = storageGet(TOKEN_STORAGE);
    if (saved && setToken(saved)) {
      enterChat();
      return;
    }
    storageSet(TOKEN_STORAGE, null);
    showAuth('login');
  }

  boot();
})();
