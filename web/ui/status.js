// status.js: the live status panel: one status key watched through a
// Switchboard client, its value pushed by the server.

import { el, TEXT, setText, storageGet, storageSet, parseTime, restartAnimation } from './dom.js';
import { watch } from './connection.js';

const STATUS_KEY_STORAGE = 'switchboard.statusKey';
const DEFAULT_STATUS_KEY = 'system';
// Status keys: 1–100 letters, digits and - _ . : (as the server's ws.ValidName).
const VALID_NAME = /^[\p{L}\p{Nd}_.:-]{1,100}$/u;

const status = {
  client: null,
  conn: null,
  stop: [], // functions that remove the connection's listeners
  key: DEFAULT_STATUS_KEY,
  version: -1,
};

// startStatus watches the saved key (or "system") through client.
export function startStatus(client) {
  status.client = client;
  const saved = storageGet(STATUS_KEY_STORAGE);
  status.key = saved && VALID_NAME.test(saved) ? saved : DEFAULT_STATUS_KEY;
  el.statusKey.value = status.key;
  resetStatus();
  connect();
}

// stopStatus closes the status connection and forgets the client.
export function stopStatus() {
  disconnect();
  status.client = null;
}

// retryStatus reconnects at once if the panel is waiting or stopped.
export function retryStatus() {
  if (status.conn && (status.conn.state === 'waiting' || status.conn.state === 'stopped')) status.conn.retryNow();
}

export function resetStatus() {
  status.version = -1;
  setText(el.statusCurrentKey, status.key);
  setText(el.statusValue, '…');
  setText(el.statusVersion, '–');
  setText(el.statusChanged, '–');
  el.statusChanged.removeAttribute('datetime');
  el.statusChanged.removeAttribute('title');
  el.statusPanel.dataset.key = status.key;
}

function connect() {
  disconnect();
  const conn = status.client.connectStatus(status.key);
  status.conn = conn;
  status.stop = [watch(conn, onStatusState), conn.on('status', onStatusFrame)];
}

function disconnect() {
  for (const off of status.stop) off();
  status.stop = [];
  if (status.conn) status.conn.close();
  status.conn = null;
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
  if (key === status.key && status.conn && status.conn.state !== 'stopped') return;
  status.key = key;
  storageSet(STATUS_KEY_STORAGE, key);
  resetStatus();
  if (status.client) connect();
}

el.statusForm.addEventListener('submit', function (e) {
  e.preventDefault();
  watchKey();
});
el.statusKey.addEventListener('change', watchKey);

function onStatusFrame(frame) {
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
  if (status.version >= 0 && version !== status.version) restartAnimation(el.statusPanel, 'flash');
  status.version = version;
}

function onStatusState(state, text, info) {
  el.statusConn.dataset.state = state;
  if (state === 'connected') setText(el.statusConn, 'live');
  else if (state === 'reconnecting') setText(el.statusConn, 'reconnecting in ' + ((info && info.retryIn) || 1) + 's…');
  else if (state === 'disconnected') setText(el.statusConn, info && info.kind === 'bad-name' ? 'invalid key' : 'disconnected');
  else setText(el.statusConn, 'connecting…');
  el.statusConn.title = text;
}
