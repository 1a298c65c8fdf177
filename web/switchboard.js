// switchboard.js: a browser client for switchboard's WebSockets.
//
// It knows nothing of any page: no globals, no DOM. Modelled on phoenix.js's
// Socket: one client object owns the sockets, their reconnection timers and
// the token (refreshed before it expires); a page only subscribes to events,
// and every subscription returns a function that removes it.
//
//   import { Switchboard } from './switchboard.js';
//   const client = new Switchboard({ token: () => sessionStorage.getItem('jwt') });
//   client.on('token', (e) => sessionStorage.setItem('jwt', e.token));
//   client.on('logout', (e) => showLogin(e.text));
//   const chat = client.connectChat();
//   chat.on('message', (m) => console.log(m.user, m.text));
//   client.send('hello');
//
// It speaks the switchboard.v1 subprotocol by default: the token travels in
// the socket's first frame ({"type":"auth"}), never in a URL, and a
// refreshed token is handed to open sockets in-band ({"type":"refresh"} →
// "refreshed") without reconnecting. protocol: 'legacy' keeps the old
// protocol (?token= in the URL, plain text frames, reconnect to use a new
// token) for servers that predate switchboard.v1.
//
// Close codes are mapped to kinds by code, never by the reason text (see
// closeKinds). The README's "Using switchboard from any front end" documents
// the options, methods and events.

// Subprotocol is the versioned JSON protocol the client asks for.
export const Subprotocol = 'switchboard.v1';

// LEGACY is the protocol option for the seed's protocol.
export const LEGACY = 'legacy';

// ---- Close codes ------------------------------------------------------------

// CloseCode names the close codes switchboard sends (ws/codes.go) and the
// ones a browser reports by itself (1005, 1006).
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  UNSUPPORTED: 1003,
  NO_STATUS: 1005,
  ABNORMAL: 1006,
  PROTOCOL_ERROR: 1002,
  INVALID_DATA: 1007,
  POLICY: 1008,
  TOO_BIG: 1009,
  INTERNAL: 1011,
  RESTART: 1012,
  TRY_AGAIN: 1013,
  BAD_NAME: 4000,
  UNAUTHORIZED: 4001,
  FORBIDDEN: 4003,
  REVOKED: 4004,
  INSUFFICIENT_STATE: 4005,
});

// Action is what the client does after a close:
//   reconnect  reconnect with backoff;
//   refresh    refresh the token, then reconnect at once (or log out);
//   stop       stay closed: reconnecting blindly would be refused again
//              (Connection.retryNow() tries anyway);
//   logout     the session is over: the client closes and emits "logout".
export const Action = Object.freeze({
  RECONNECT: 'reconnect',
  REFRESH: 'refresh',
  STOP: 'stop',
  LOGOUT: 'logout',
});

function closeKind(kind, action, text) {
  return Object.freeze({ kind: kind, action: action, text: text });
}

// closeKinds maps each close code to {kind, action, text}: text is a
// plain-language sentence a page can show as it is.
export const closeKinds = Object.freeze({
  1000: closeKind('normal', Action.STOP, 'The connection was closed'),
  1001: closeKind('going-away', Action.RECONNECT, 'The server is restarting'),
  1002: closeKind('violation', Action.STOP, 'The server does not speak this page\'s protocol'),
  1003: closeKind('violation', Action.STOP, 'The server does not accept binary messages'),
  1005: closeKind('lost', Action.RECONNECT, 'Connection lost'),
  1006: closeKind('lost', Action.RECONNECT, 'Connection lost'),
  1007: closeKind('violation', Action.STOP, 'A message was not valid text'),
  1008: closeKind('violation', Action.STOP, 'You were sending messages too fast and were disconnected'),
  1009: closeKind('violation', Action.STOP, 'Your message was too big and you were disconnected'),
  1011: closeKind('server-error', Action.RECONNECT, 'The server had a problem'),
  1012: closeKind('going-away', Action.RECONNECT, 'The server is restarting'),
  1013: closeKind('overloaded', Action.RECONNECT, 'Your connection was too slow to keep up'),
  4000: closeKind('bad-name', Action.STOP, 'That group or key name is not valid'),
  4001: closeKind('auth', Action.REFRESH, 'Your session expired, please log in again'),
  4003: closeKind('forbidden', Action.LOGOUT, 'Your account was disabled'),
  // The token was revoked ("log out everywhere", a password change, an
  // administrator): refreshing cannot help, only logging in again.
  4004: closeKind('revoked', Action.LOGOUT, 'You were logged out everywhere, please log in again'),
  // The server could not give this socket some group messages in order
  // (missing from its history): reconnecting with since recovers them,
  // or the welcome says recovered: false and the page marks the gap.
  4005: closeKind('resync', Action.RECONNECT, 'Catching up on missed messages'),
});

// Any other code: a lost connection, retried with backoff.
const unknownClose = closeKinds[1006];

// describeClose returns {code, kind, action, text} for a close code.
export function describeClose(code) {
  const k = Object.prototype.hasOwnProperty.call(closeKinds, code) ? closeKinds[code] : unknownClose;
  return { code: code, kind: k.kind, action: k.action, text: k.text };
}

// ---- Backoff and tokens -----------------------------------------------------

// backoff is the default reconnectAfterMs: 1 s doubling to 30 s, ±20% jitter
// so that clients dropped together do not come back together. tries is 1
// for the first retry.
export function backoff(tries) {
  const n = Math.max(1, tries | 0);
  const base = Math.min(30000, 1000 * Math.pow(2, n - 1));
  const jittered = base * (0.8 + Math.random() * 0.4);
  return Math.round(Math.min(30000, Math.max(1000, jittered)));
}

// decodeToken returns the claims of a JWT ({user_id, username, email, exp,
// orig_iat}), or null if it cannot be read. The signature is not checked:
// the server does that.
export function decodeToken(token) {
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
    return claims && typeof claims === 'object' && !Array.isArray(claims) ? claims : null;
  } catch (e) {
    return null;
  }
}

// ---- Events -----------------------------------------------------------------

// Emitter keeps listeners per event name. on() returns the function that
// removes the listener; a throwing listener is reported and does not stop
// the others or the client.
class Emitter {
  constructor() {
    this._listeners = new Map();
  }

  on(event, fn) {
    if (typeof fn !== 'function') throw new TypeError('listener for "' + event + '" is not a function');
    let set = this._listeners.get(event);
    if (!set) this._listeners.set(event, (set = new Set()));
    const entry = { fn: fn };
    set.add(entry);
    return function off() { set.delete(entry); };
  }

  // off removes listeners by the functions on() returned (one, or an array).
  off(refs) {
    for (const ref of Array.isArray(refs) ? refs : [refs]) {
      if (typeof ref === 'function') ref();
    }
  }

  _emit(event, detail, source) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const entry of Array.from(set)) {
      if (!set.has(entry)) continue; // removed by an earlier listener
      try {
        entry.fn(detail, source);
      } catch (err) {
        queueMicrotask(function () { throw err; });
      }
    }
  }
}

// ---- Connection -------------------------------------------------------------

// Frame types each socket delivers as events of the same name. Others are
// ignored (the server may add new ones), except by "frame" listeners.
// "refreshed" and "error" only come in switchboard.v1.
const FRAME_EVENTS = {
  chat: new Set(['welcome', 'message', 'join', 'leave', 'publish', 'refreshed', 'error']),
  status: new Set(['status', 'refreshed', 'error']),
};

// Connection is one socket kept connected: the chat, or one status key.
// Its events also reach the client's listeners, which get the connection as
// their second argument.
//
// state: "connecting", "open" (the server accepted: its first frame
// arrived), "waiting" (a retry is scheduled), "stopped" (closed, no retry
// until retryNow) or "closed" (close() was called; final).
export class Connection extends Emitter {
  constructor(client, kind, key) {
    super();
    this.client = client;
    this.kind = kind; // "chat" or "status"
    this.key = key; // the status key; undefined for chat
    this._state = 'connecting';
    this._ws = null;
    this._gen = 0; // bumped by every attempt and by close(): stale callbacks check it
    this._attempt = 0; // failed attempts since the server last accepted us
    this._retryTimer = 0;
    this._authRetried = false; // one token refresh per 4001, until accepted again
    this._sentToken = null; // switchboard.v1: the token the open socket holds (auth or refresh frame)
    this._epoch = ''; // chat: the group's epoch from the welcome ('' while unknown, or history off)
    this._offset = 0; // chat: the last offset seen in that epoch
  }

  get state() {
    return this._state;
  }

  // position is where this chat connection is in its group's stream:
  // {epoch, offset} of the last message or publish it delivered (or of the
  // welcome, before any), or null before the first welcome and when the
  // server keeps no history. A reconnect asks for what came after it.
  get position() {
    return this._epoch ? { epoch: this._epoch, offset: this._offset } : null;
  }

  // path is the socket's path below the client's base URL.
  path() {
    return this.kind === 'chat' ? '/ws/chat/' : '/ws/status/' + encodeURIComponent(this.key) + '/';
  }

  // params is the socket URL's query. A chat that has seen a welcome asks
  // for recovery: since and epoch always ride in the URL query, whatever
  // carries the token.
  params(token) {
    const q = this.client.legacy ? { token: token } : {}; // switchboard.v1: the token goes in the first frame
    if (this.kind === 'chat' && this._epoch) {
      q.since = this._offset;
      q.epoch = this._epoch;
    }
    return q;
  }

  // _track follows the chat's position from the frames it delivers. A
  // welcome with recovered: true keeps it (the missed messages follow, in
  // offset order); any other welcome starts from its epoch and offset
  // (recovered: false means the messages after the old position are not
  // coming). Every message and publish moves it on.
  _track(frame) {
    if (this.kind !== 'chat') return;
    if (frame.type === 'welcome') {
      if (typeof frame.epoch !== 'string' || !frame.epoch || typeof frame.offset !== 'number') {
        this._epoch = ''; // history is off
        this._offset = 0;
      } else if (!(frame.recovered === true && frame.epoch === this._epoch)) {
        this._epoch = frame.epoch;
        this._offset = frame.offset;
      }
    } else if ((frame.type === 'message' || frame.type === 'publish') &&
        typeof frame.offset === 'number' && frame.offset > this._offset) {
      this._offset = frame.offset;
    }
  }

  // send sends text on an accepted chat socket; it returns false (and sends
  // nothing) otherwise. In switchboard.v1 an id (a string) may go with it:
  // the sender's own copy of the message carries it back.
  send(text, id) {
    if (this._state !== 'open' || !this._ws || this._ws.readyState !== 1) return false;
    if (this.client.legacy) {
      this._ws.send(String(text));
    } else {
      const frame = { type: 'message', text: String(text) };
      if (id !== undefined && id !== null && id !== '') frame.id = String(id);
      this._ws.send(JSON.stringify(frame));
    }
    return true;
  }

  // _refreshInBand hands token to the open switchboard.v1 socket (a
  // refresh frame, answered "refreshed"); false when it cannot (legacy, or
  // not open: the next connect uses the client's newest token anyway).
  _refreshInBand(token) {
    if (this.client.legacy || this._state !== 'open' || !this._ws || this._ws.readyState !== 1) return false;
    if (!token || token === this._sentToken) return true;
    this._sentToken = token;
    this._ws.send(JSON.stringify({ type: 'refresh', token: token }));
    return true;
  }

  // retryNow connects at once: it skips the rest of a backoff, or restarts
  // after a close that stopped the connection. No-op while connecting or open.
  retryNow() {
    if (this._state === 'closed' || this.client.closed) return;
    if (this._state === 'connecting' || this._state === 'open') return;
    this._connect();
  }

  // close closes the socket for good; no event follows.
  close() {
    if (this._state === 'closed') return;
    this._state = 'closed';
    this._gen++;
    this._clearTimer();
    this._dropSocket();
    this.client._forget(this);
  }

  _emit(event, detail) {
    super._emit(event, detail, this);
    this.client._emit(event, detail, this);
  }

  _clearTimer() {
    clearTimeout(this._retryTimer);
    this._retryTimer = 0;
  }

  _dropSocket() {
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      try { ws.close(1000, 'bye'); } catch (e) { /* already closed */ }
    }
  }

  async _connect() {
    this._clearTimer();
    this._dropSocket();
    if (this._state === 'closed' || this.client.closed) return;
    const gen = ++this._gen;
    this._state = 'connecting';
    this._emit('connecting', { attempt: this._attempt });
    const token = await this.client.freshToken();
    if (gen !== this._gen || !token) return; // closed, or logged out, meanwhile

    let ws;
    try {
      ws = this.client._openSocket(this.path(), this.params(token));
    } catch (e) {
      this._closed(1006, '', false, false, token, gen);
      return;
    }
    this._ws = ws;
    this._sentToken = null;
    let handshake = false; // the WebSocket opened (the token is checked after that)
    let accepted = false; // the server's first frame arrived
    let mismatch = false; // switchboard.v1 asked for and not granted
    ws.onopen = () => {
      handshake = true;
      if (this._ws !== ws || this.client.legacy) return;
      if (ws.protocol !== Subprotocol) {
        // A server without switchboard.v1 would take the auth frame for
        // chat text: never send the token there.
        mismatch = true;
        try { ws.close(1000, 'switchboard.v1 required'); } catch (e) { /* closing */ }
        return;
      }
      this._sentToken = token;
      ws.send(JSON.stringify({ type: 'auth', token: token }));
    };
    ws.onmessage = (ev) => {
      if (this._ws !== ws || typeof ev.data !== 'string') return;
      let frame;
      try { frame = JSON.parse(ev.data); } catch (e) { return; }
      if (!frame || typeof frame !== 'object' || Array.isArray(frame)) return;
      if (!accepted && frame.type !== 'error') {
        accepted = true;
        this._attempt = 0;
        this._authRetried = false;
        this._state = 'open';
        this._emit('open', {});
        // The token was refreshed while this socket authenticated.
        if (!this.client.legacy && this.client.token !== this._sentToken) this._refreshInBand(this.client.token);
      }
      this._track(frame);
      this._emit('frame', frame);
      if (FRAME_EVENTS[this.kind].has(frame.type)) this._emit(frame.type, frame);
    };
    ws.onclose = (ev) => {
      if (this._ws !== ws) return;
      this._ws = null;
      if (mismatch) {
        this._closed(CloseCode.PROTOCOL_ERROR, 'switchboard.v1 not offered by the server', true, false, token, gen);
        return;
      }
      this._closed(ev.code, ev.reason || '', handshake, accepted, token, gen);
    };
  }

  // _closed decides what follows a close, then emits "close" with
  // {code, reason, kind, action, text, wasOpen, reconnect, retryInMs, retryAt}.
  async _closed(code, reason, handshake, accepted, token, gen) {
    let d = describeClose(code);
    if (!handshake && d.action === Action.RECONNECT) {
      // The handshake failed, and browsers hide the HTTP status: ask the
      // API whether the token is the problem before retrying blindly.
      const check = await this.client._checkToken(token);
      if (gen !== this._gen) return;
      if (check === 'unauthorized') d = describeClose(CloseCode.UNAUTHORIZED);
      if (check === 'forbidden') d = describeClose(CloseCode.FORBIDDEN);
      if (check === 'revoked') d = describeClose(CloseCode.REVOKED);
      d.code = code;
    }
    let reconnect = d.action === Action.RECONNECT;
    let delay = -1;
    if (d.action === Action.REFRESH) {
      const got = this._authRetried ? 'refused' : await this.client._recoverToken(token);
      if (gen !== this._gen) return;
      if (got === 'ok') {
        this._authRetried = true;
        reconnect = true;
        delay = 0;
      } else if (got === 'error') {
        reconnect = true; // the server is unreachable: try again later
      } else {
        d.action = Action.LOGOUT;
      }
    }
    const detail = {
      code: d.code, reason: reason, kind: d.kind, action: d.action, text: d.text,
      wasOpen: accepted, reconnect: reconnect, retryInMs: null, retryAt: null,
    };
    if (!reconnect) {
      this._state = 'stopped';
      this._emit('close', detail);
      if (d.action === Action.LOGOUT) this.client._logout(d.kind);
      return;
    }
    this._attempt++;
    if (delay < 0) delay = Math.max(0, Number(this.client._reconnectAfterMs(this._attempt)) || 0);
    detail.retryInMs = delay;
    detail.retryAt = Date.now() + delay;
    this._state = 'waiting';
    this._retryTimer = setTimeout(() => this._connect(), delay);
    this._emit('close', detail);
  }
}

// ---- Client -----------------------------------------------------------------

// Switchboard is one user's session with a switchboard server: its token
// and its sockets.
//
// Options:
//   url               server base URL (http(s): or ws(s):); default: the
//                     page's origin, wss: under https:
//   token             the JWT: a string, or () => string|Promise<string>,
//                     called when the client has none and again when the
//                     server refuses the one it has and it cannot be refreshed
//   refresh           (token) => string|null|Promise: a fresh token, null if
//                     the server refuses to extend this one (throw if
//                     unreachable: retried). Default: POST /api-token-refresh/.
//                     false: never refresh.
//   refreshAt         fraction of the remaining lifetime after which the
//                     token is refreshed (default 0.8)
//   reconnectAfterMs  tries => ms before retry number tries (default backoff)
//   protocol          'switchboard.v1' (default): the token in the first
//                     frame, refreshed in-band; 'legacy': the token in
//                     ?token=, plain text frames, a new token used at the
//                     next connect
//   now               () => ms on the server's clock (default: the local
//                     clock, corrected by the Date headers the client sees)
//   fetch, WebSocket  implementations to use (default: the global ones)
//
// Client events: "token" {token, expiresAt} after a refresh (keep it);
// "expiring" {expiresAt} when the token can no longer be refreshed;
// "logout" {kind, code, text} when the session is over (the client is then
// closed; kind "revoked" after "log out everywhere"). Every connection event
// also reaches client listeners, "refreshed" and "error" frames included.
export class Switchboard extends Emitter {
  constructor(opts) {
    super();
    const o = opts || {};
    this._base = resolveBase(o.url);
    this._tokenSource = o.token;
    this._refreshFn = o.refresh === undefined ? (t) => this._defaultRefresh(t) : (o.refresh || null);
    this._refreshAt = typeof o.refreshAt === 'number' ? o.refreshAt : 0.8;
    this._reconnectAfterMs = o.reconnectAfterMs || backoff;
    const protocol = o.protocol === undefined ? Subprotocol : o.protocol;
    if (protocol !== Subprotocol && protocol !== LEGACY) {
      throw new TypeError('switchboard: protocol must be "' + Subprotocol + '" or "' + LEGACY + '"');
    }
    this.legacy = protocol === LEGACY;
    this._skewMs = 0;
    this._now = o.now || (() => Date.now() + this._skewMs);
    this._fetch = o.fetch || ((input, init) => globalThis.fetch(input, init));
    this._WebSocket = o.WebSocket || globalThis.WebSocket;

    this._token = null;
    this._expiresAt = 0; // ms, server clock; 0: no exp claim
    this._refreshDueAt = 0;
    this._refreshTimer = 0;
    this._expiryTimer = 0;
    this._refreshing = null; // the refresh in flight
    this._conns = new Set();
    this._chat = null;
    this.closed = false;
    if (typeof o.token === 'string') this._adopt(o.token);
  }

  // token is the current JWT (null until one is known), for REST calls.
  get token() {
    return this._token;
  }

  // expiresAt is when the current token expires (ms, server clock; 0 if unknown).
  get expiresAt() {
    return this._expiresAt;
  }

  // setToken replaces the token (e.g. after the user logged in again); open
  // switchboard.v1 sockets get it in-band.
  setToken(token) {
    if (this.closed || typeof token !== 'string' || !token) return;
    this._adopt(token);
    this._handOut(token);
  }

  // protocol is what the sockets speak: 'switchboard.v1' or 'legacy'.
  get protocol() {
    return this.legacy ? LEGACY : Subprotocol;
  }

  // connectChat opens the chat socket of the user's group.
  connectChat() {
    const conn = this._add(new Connection(this, 'chat'));
    this._chat = conn;
    return conn;
  }

  // connectStatus opens a live status socket for key.
  connectStatus(key) {
    return this._add(new Connection(this, 'status', String(key)));
  }

  // send sends text to the group on the newest chat connection (with an
  // optional id, switchboard.v1); false if it is not open.
  send(text, id) {
    return !!this._chat && this._chat.send(text, id);
  }

  // reconnectNow catches up after timers were throttled (a background tab)
  // or the network came back: it refreshes a token that is due and retries
  // every connection waiting for its backoff.
  reconnectNow() {
    if (this.closed) return;
    if (this._token && this._refreshFn && this._expiresAt && this._now() >= this._refreshDueAt) this._refreshScheduled();
    for (const c of Array.from(this._conns)) {
      if (c.state === 'waiting') c.retryNow();
    }
  }

  // close closes every connection and stops the timers, for good.
  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this._refreshTimer);
    clearTimeout(this._expiryTimer);
    for (const c of Array.from(this._conns)) c.close();
    this._chat = null;
  }

  // freshToken resolves to a token good to use now, refreshing it first
  // when it is due; null when the session is over.
  async freshToken() {
    if (this.closed) return null;
    if (!this._token) {
      await this._pullToken();
      if (this.closed) return null;
      if (!this._token) {
        this._logout('auth');
        return null;
      }
    }
    if (this._refreshFn && this._expiresAt && this._now() >= this._refreshDueAt) {
      const result = await this._refresh();
      if (this.closed) return null;
      if (result === 'refused' && this._now() >= this._expiresAt) {
        this._logout('auth');
        return null;
      }
    }
    return this._token; // on "error" try anyway: the socket reports a bad token
  }

  // ---- internals ----

  _add(conn) {
    if (this.closed) throw new Error('switchboard: client is closed');
    this._conns.add(conn);
    queueMicrotask(() => conn._connect()); // listeners added right after connect*() see every event
    return conn;
  }

  _forget(conn) {
    this._conns.delete(conn);
    if (this._chat === conn) this._chat = null;
  }

  _openSocket(path, params) {
    const q = new URLSearchParams();
    for (const k of Object.keys(params)) {
      if (params[k] !== undefined && params[k] !== null) q.set(k, String(params[k]));
    }
    const query = q.toString();
    const url = this._base.ws + path + (query ? '?' + query : '');
    return this.legacy ? new this._WebSocket(url) : new this._WebSocket(url, [Subprotocol]);
  }

  // _handOut gives a new token to every open switchboard.v1 socket, so
  // none has to reconnect before its old token expires.
  _handOut(token) {
    for (const c of Array.from(this._conns)) c._refreshInBand(token);
  }

  // _adopt makes token current and schedules its refresh at refreshAt of
  // its remaining lifetime (not sooner than in a second).
  _adopt(token) {
    const claims = decodeToken(token);
    this._token = token;
    this._expiresAt = claims && typeof claims.exp === 'number' ? claims.exp * 1000 : 0;
    clearTimeout(this._refreshTimer);
    clearTimeout(this._expiryTimer);
    this._refreshTimer = 0;
    this._expiryTimer = 0;
    if (!this._expiresAt) return;
    const now = this._now();
    this._refreshDueAt = now + Math.max(0, (this._expiresAt - now) * this._refreshAt);
    if (this._refreshFn) this._scheduleRefresh(this._refreshDueAt - now);
  }

  _scheduleRefresh(delayMs) {
    clearTimeout(this._refreshTimer);
    this._refreshTimer = setTimeout(() => this._refreshScheduled(), Math.max(1000, delayMs));
  }

  async _refreshScheduled() {
    const result = await this._refresh();
    if (result === 'refused') this._refreshRefused();
  }

  // _refresh exchanges the token for a fresh one, once at a time. It
  // resolves to "ok", "refused" (the server will not extend it), "error"
  // (unreachable; retried soon) or "stale" (replaced or closed meanwhile).
  _refresh() {
    if (this._refreshing) return this._refreshing;
    const token = this._token;
    if (!token || !this._refreshFn || this.closed) return Promise.resolve('refused');
    const p = (async () => {
      let fresh;
      try {
        fresh = await this._refreshFn(token);
      } catch (e) {
        if (this.closed || this._token !== token) return 'stale';
        this._retryRefreshSoon();
        return 'error';
      }
      if (this.closed || this._token !== token) return 'stale';
      if (typeof fresh !== 'string' || !fresh) return 'refused';
      this._adopt(fresh);
      this._emit('token', { token: fresh, expiresAt: this._expiresAt });
      this._handOut(fresh);
      return 'ok';
    })();
    this._refreshing = p;
    p.finally(() => { if (this._refreshing === p) this._refreshing = null; });
    return p;
  }

  _retryRefreshSoon() {
    const left = this._expiresAt - this._now();
    if (left <= 0) return; // expired: the next connect decides
    this._scheduleRefresh(Math.min(10000, left / 4));
  }

  // _refreshRefused handles a token that can no longer be extended: it is
  // used until it expires, then the session is over.
  _refreshRefused() {
    clearTimeout(this._refreshTimer);
    const left = this._expiresAt - this._now();
    if (left <= 0 || this.closed) return;
    if (!this._expiryTimer) this._emit('expiring', { expiresAt: this._expiresAt });
    clearTimeout(this._expiryTimer);
    this._expiryTimer = setTimeout(() => this._logout('auth'), left);
  }

  // _recoverToken finds a token to retry with after the server refused
  // used: one refreshed meanwhile, a refreshed one, or a new one from the
  // token option. "ok", "error" (unreachable) or "refused".
  async _recoverToken(used) {
    if (this.closed) return 'refused';
    if (this._token && this._token !== used) return 'ok';
    const result = await this._refresh();
    if (result === 'ok' || (result === 'stale' && !this.closed)) return 'ok';
    if (await this._pullToken()) return 'ok';
    return result === 'error' ? 'error' : 'refused';
  }

  // _pullToken asks the token option for a token; true if it gave a new one.
  async _pullToken() {
    if (typeof this._tokenSource !== 'function') return false;
    let t;
    try { t = await this._tokenSource(); } catch (e) { return false; }
    if (this.closed || typeof t !== 'string' || !t || t === this._token) return false;
    this._adopt(t);
    return true;
  }

  _logout(kind) {
    if (this.closed) return;
    const code = kind === 'forbidden' ? CloseCode.FORBIDDEN : kind === 'revoked' ? CloseCode.REVOKED : CloseCode.UNAUTHORIZED;
    const d = describeClose(code);
    this.close();
    this._emit('logout', { kind: d.kind, code: d.code, text: d.text });
  }

  // _request calls the REST API; it resolves to {status, data} and rejects
  // only when the server cannot be reached.
  async _request(method, path, body, token) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = 'Bearer ' + token;
    const res = await this._fetch(this._base.http + path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
    this._noteServerClock(res);
    let data = null;
    try { data = JSON.parse(await res.text()); } catch (e) { data = null; }
    return { status: res.status, data: data };
  }

  // _noteServerClock estimates the clock skew from the Date header, so that
  // expiry (server clock) is judged right on a machine with a wrong clock.
  _noteServerClock(res) {
    const date = res && res.headers && res.headers.get('Date');
    const server = date ? Date.parse(date) : NaN;
    if (isNaN(server)) return;
    const skew = server + 500 - Date.now(); // the header has whole seconds
    this._skewMs = Math.abs(skew) > 5000 ? skew : 0;
  }

  async _defaultRefresh(token) {
    const res = await this._request('POST', '/api-token-refresh/', { token: token });
    if (res.status === 200 && res.data && typeof res.data.token === 'string') return res.data.token;
    if (res.status >= 400 && res.status < 500 && res.status !== 429) return null;
    throw new Error('token refresh: HTTP ' + res.status);
  }

  // _checkToken asks the API whether token is still accepted:
  // "unauthorized", "revoked", "forbidden" (inactive), "ok" or "unknown".
  async _checkToken(token) {
    try {
      const res = await this._request('GET', '/api/users/me', undefined, token);
      if (res.status === 401) {
        const e = res.data && res.data.error;
        return e && e.message === 'token revoked' ? 'revoked' : 'unauthorized';
      }
      if (res.status === 200 && res.data && typeof res.data.username === 'string') {
        return res.data.is_active === false ? 'forbidden' : 'ok';
      }
    } catch (e) { /* unreachable */ }
    return 'unknown';
  }
}

// resolveBase returns the WebSocket and HTTP base URLs for url (default:
// the page's origin), without a trailing slash.
function resolveBase(url) {
  const loc = globalThis.location;
  const u = new URL(url || '/', loc ? loc.href : undefined);
  const secure = u.protocol === 'https:' || u.protocol === 'wss:';
  const rest = '//' + u.host + u.pathname.replace(/\/+$/, '');
  return { ws: (secure ? 'wss:' : 'ws:') + rest, http: (secure ? 'https:' : 'http:') + rest };
}
