// transcript.js: the chat's message list (#messages) in the group's order.
//
// Group messages carry offsets (per group, +1 per message, within an
// epoch). A message is shown once per offset and in offset order, whichever
// way it arrives: live on the socket, replayed after a reconnect, or read
// from GET /api/groups/{group}/history. Notices (presence, connection, the
// gap marker) have no offset and are appended where they happen.

import { el } from './dom.js';

const MAX_ENTRIES = 1000; // oldest entries are dropped beyond this

const state = {
  epoch: '', // the epoch the offsets below belong to ('' while unknown)
  shown: new Map(), // offset → li of the messages shown in that epoch
  last: 0, // the highest offset shown in that epoch
};

// resetTranscript empties the list.
export function resetTranscript() {
  state.epoch = '';
  state.shown = new Map();
  state.last = 0;
  el.messages.replaceChildren();
}

// useEpoch makes epoch the one offsets are compared in. Another epoch
// means the group's history was reset: the messages shown so far stay,
// but their offsets no longer say anything about new ones.
export function useEpoch(epoch) {
  if (epoch === state.epoch) return;
  state.epoch = epoch;
  state.shown = new Map();
  state.last = 0;
}

export function currentEpoch() {
  return state.epoch;
}

// lastOffset is the highest offset shown in the current epoch (0: none).
export function lastOffset() {
  return state.last;
}

// isShown reports whether the message with offset is already in the list.
export function isShown(offset) {
  return typeof offset === 'number' && state.shown.has(offset);
}

function nearBottom() {
  const m = el.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
}

// scrollToEnd shows the newest entry.
export function scrollToEnd() {
  el.messages.scrollTop = el.messages.scrollHeight;
}

// placeMessage shows li, the message with offset (a number; undefined when
// the server keeps no history), in offset order, and returns true; false
// (and nothing changes) when that offset is already shown. A message newer
// than every shown one is appended; an older one goes right before the
// first shown message after it.
export function placeMessage(li, offset, forceScroll) {
  const stick = forceScroll || nearBottom();
  let next = null;
  if (typeof offset === 'number') {
    if (state.shown.has(offset)) return false;
    if (offset < state.last) next = firstAfter(offset);
    li.dataset.offset = String(offset);
    state.shown.set(offset, li);
    if (offset > state.last) state.last = offset;
  }
  if (next) el.messages.insertBefore(li, next);
  else el.messages.appendChild(li);
  trim();
  if (stick) scrollToEnd();
  return true;
}

// appendEntry appends li (a notice) at the end of the list.
export function appendEntry(li, forceScroll) {
  const stick = forceScroll || nearBottom();
  el.messages.appendChild(li);
  trim();
  if (stick) scrollToEnd();
}

function firstAfter(offset) {
  let best = null;
  let bestOffset = Infinity;
  for (const [o, li] of state.shown) {
    if (o > offset && o < bestOffset) {
      best = li;
      bestOffset = o;
    }
  }
  return best;
}

function trim() {
  while (el.messages.childElementCount > MAX_ENTRIES) {
    const first = el.messages.firstElementChild;
    const o = first.dataset.offset === undefined ? NaN : Number(first.dataset.offset);
    if (state.shown.get(o) === first) state.shown.delete(o);
    first.remove();
  }
}
