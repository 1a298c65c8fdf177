// chat.js: the chat view: messages, who is online, the connection line and
// the send form, fed by a Switchboard client's chat connection.

import { el, setText, node, parseTime, shortTime, setCloseReason, restartAnimation } from './dom.js';
import { api } from './api.js';
import { watch } from './connection.js';
import { followPresenceMode } from './presence.js';
import {
  resetTranscript, useEpoch, currentEpoch, lastOffset, isShown, placeMessage, appendEntry, scrollToEnd,
} from './transcript.js';

const HISTORY_LIMIT = 50; // messages shown when the chat opens, from the group's history

const chat = {
  client: null,
  conn: null,
  stop: [], // functions that remove this session's listeners
  me: '',
  group: '',
  online: new Set(),
  pendingPresence: null, // join/leave events that arrive while the presence list loads
  presenceGen: 0,
  wasConnected: false,
  outage: false,
  history: false, // the server keeps the group's history (the welcome has an epoch)
  historyGen: 0,
  reconnectedAt: 0, // the "Reconnected." notice waits for the replay up to this offset
};

// startChat shows the chat and connects it through client; me is the
// username the token names, until the server's welcome says.
export function startChat(client, me) {
  stopChat();
  resetChat();
  chat.client = client;
  chat.me = me || '';
  el.auth.hidden = true;
  el.chat.hidden = false;
  setText(el.me, chat.me);
  setText(el.groupName, '…');
  document.title = 'Switchboard';
  const conn = client.connectChat();
  chat.conn = conn;
  chat.stop = [
    watch(conn, onChatState),
    conn.on('welcome', onWelcome),
    conn.on('message', onMessage),
    conn.on('publish', passOffset),
    conn.on('join', onPresence),
    conn.on('leave', onPresence),
    followPresenceMode(conn, onPresenceMode),
  ];
}

// stopChat closes the chat connection; the view keeps what it shows.
export function stopChat() {
  for (const off of chat.stop) off();
  chat.stop = [];
  if (chat.conn) chat.conn.close();
  chat.conn = null;
  chat.client = null;
}

export function resetChat() {
  chat.group = '';
  chat.online = new Set();
  chat.pendingPresence = null;
  chat.presenceGen++;
  chat.wasConnected = false;
  chat.outage = false;
  chat.history = false;
  chat.historyGen++;
  chat.reconnectedAt = 0;
  resetTranscript();
  el.messageInput.value = '';
  renderOnline();
}

// retryChat reconnects at once (the "Reconnect now" button).
export function retryChat() {
  if (chat.conn) chat.conn.retryNow();
}

// knowMe sets the user's name from the API, unless the welcome already did.
export function knowMe(name) {
  if (chat.group) return;
  chat.me = name;
  setText(el.me, name);
}

// showDisconnected puts reason in the connection line.
export function showDisconnected(reason) {
  setText(el.connStatus, 'Disconnected: ' + reason);
  el.connStatus.dataset.state = 'disconnected';
}

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
      const why = info.reason || info.prefix;
      // With history, a reconnect recovers what was missed (or says so).
      addNotice('Disconnected: ' + why + (chat.history ? '.' : '. Messages sent while you are away will not appear here.'));
    }
  }
}

function onWelcome(frame) {
  if (typeof frame.user === 'string' && frame.user) chat.me = frame.user;
  chat.group = typeof frame.group === 'string' ? frame.group : '';
  setText(el.me, chat.me);
  setText(el.groupName, chat.group || '…');
  document.title = (chat.group ? '#' + chat.group + ' · ' : '') + 'Switchboard';
  setCloseReason('');
  const outage = chat.outage;
  chat.outage = false;
  chat.wasConnected = true;
  chat.reconnectedAt = 0;
  chat.historyGen++; // a history load still under way is for an older welcome
  const epoch = typeof frame.epoch === 'string' ? frame.epoch : '';
  chat.history = epoch !== '' && typeof frame.offset === 'number';
  if (!chat.history) {
    if (outage) addNotice('Reconnected.');
  } else if (frame.recovered === true) {
    // Every missed message follows on the socket, in order, before any
    // live one; the last of them has the welcome's offset.
    useEpoch(epoch);
    if (outage) {
      if (frame.offset > lastOffset()) chat.reconnectedAt = frame.offset;
      else addNotice('Reconnected.');
    }
  } else {
    // Opening the chat, or a recovery the server could not give: show the
    // group's latest messages from history, merged by offset.
    if (frame.recovered === false) addGapMarker();
    else if (outage) addNotice('Reconnected.');
    useEpoch(epoch);
    loadHistory(chat.group, epoch);
  }
  loadPresence(chat.group);
}

// addGapMarker shows that messages sent while the page was away could not
// all be recovered (recovered: false).
function addGapMarker() {
  const li = node('li', 'notice gap', 'Some earlier messages may be missing.');
  li.setAttribute('role', 'note');
  appendEntry(li, true);
}

// loadHistory shows the group's latest messages. Live messages that arrive
// meanwhile are already in place; the two are merged by offset.
async function loadHistory(group, epoch) {
  const gen = chat.historyGen;
  if (!group || !chat.client) return;
  let res;
  try {
    const path = '/api/groups/' + encodeURIComponent(group) + '/history?limit=' + HISTORY_LIMIT;
    res = await api('GET', path, undefined, chat.client.token);
  } catch (e) {
    return; // offline: the live stream still shows what comes next
  }
  if (gen !== chat.historyGen || currentEpoch() !== epoch) return;
  if (!res.ok || !res.data || res.data.epoch !== epoch || !Array.isArray(res.data.messages)) return;
  for (const f of res.data.messages) {
    if (f && typeof f === 'object' && f.type === 'message') addMessage(f, false);
  }
  scrollToEnd();
}

// loadPresence fetches who is online; join/leave frames that arrive
// meanwhile are applied on top of the list.
async function loadPresence(group) {
  const gen = ++chat.presenceGen;
  chat.pendingPresence = [];
  renderOnline();
  let users = null;
  if (group && chat.client) {
    try {
      const res = await api('GET', '/api/groups/' + encodeURIComponent(group) + '/presence', undefined, chat.client.token);
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
  if (frame.user !== chat.me) {
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

// onPresenceMode: count (a number) while the group is too big for a list;
// null, with the list when the server sends it, once it is back.
function onPresenceMode(count, users) {
  chat.presenceCount = count;
  if (users) chat.online = new Set(users);
  renderOnline();
}

function renderOnline() {
  if (typeof chat.presenceCount === 'number') { // count mode: no list
    el.online.replaceChildren();
    setText(el.onlineCount, chat.presenceCount);
    return;
  }
  const users = new Set(chat.online);
  if (chat.me && chat.wasConnected) users.add(chat.me); // we are online while connected
  const sorted = Array.from(users).sort(function (a, b) {
    return a.localeCompare(b, undefined, { sensitivity: 'base' });
  });
  const items = sorted.map(function (u) {
    const li = node('li', u === chat.me ? 'user self' : 'user', u);
    li.dataset.user = u;
    li.title = u;
    return li;
  });
  el.online.replaceChildren(...items);
  setText(el.onlineCount, sorted.length);
}

function onMessage(frame) {
  addMessage(frame, true);
  passOffset(frame);
}

// passOffset adds the "Reconnected." notice once the replay is shown.
function passOffset(frame) {
  if (chat.reconnectedAt && typeof frame.offset === 'number' && frame.offset >= chat.reconnectedAt) {
    chat.reconnectedAt = 0;
    addNotice('Reconnected.');
  }
}

// addMessage shows a message frame once, in offset order; live says it
// came on the socket (the user's own then scrolls into view).
function addMessage(frame, live) {
  if (isShown(frame.offset)) return;
  const user = typeof frame.user === 'string' ? frame.user : '';
  const mine = user !== '' && user === chat.me;
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
  placeMessage(li, frame.offset, mine && live);
}

// addNotice adds a system line (class "notice", not "msg") to the message list.
export function addNotice(text) {
  if (el.chat.hidden) return;
  appendEntry(node('li', 'notice', text), false);
}

el.sendForm.addEventListener('submit', function (e) {
  e.preventDefault();
  const text = el.messageInput.value;
  if (text.trim() === '') return;
  if (!chat.client || !chat.client.send(text)) {
    restartAnimation(el.sendForm, 'shake'); // keep the text so nothing typed is lost
    return;
  }
  el.messageInput.value = '';
  el.messageInput.focus();
});
