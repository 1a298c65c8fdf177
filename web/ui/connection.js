// connection.js: turns a Switchboard connection's events into the page's
// connection states, with the line of text to show for each.

import { Action } from '../switchboard.js';

// Kinds whose text explains a close well enough for the #close-reason
// banner; a lost connection or a server error only shows in the status line.
const QUIET_KINDS = new Set(['lost', 'server-error']);

// watch calls render(state, text, info) as conn's state changes: state is
// "connecting", "connected", "reconnecting" (counting down to the retry) or
// "disconnected". info, after a close, is {code, kind, reason, prefix,
// retryIn}: reason is the banner text ("" for none), prefix starts the
// "…, reconnecting in Ns…" line. It returns the function that stops watching.
export function watch(conn, render) {
  let outage = null; // the close that started the current outage
  let countdown = 0;
  const stopCountdown = () => {
    clearInterval(countdown);
    countdown = 0;
  };

  const offs = [
    conn.on('connecting', function (e) {
      stopCountdown();
      render('connecting', e.attempt > 0 ? 'Reconnecting…' : 'Connecting…', null);
    }),
    conn.on('open', function () {
      stopCountdown();
      outage = null;
      render('connected', 'Connected', null);
    }),
    conn.on('close', function (e) {
      stopCountdown();
      if (e.action === Action.REFRESH && e.reconnect) {
        render('connecting', 'Reconnecting…', null); // with a fresh token, at once
        return;
      }
      let info = { code: e.code, kind: e.kind, reason: QUIET_KINDS.has(e.kind) ? '' : e.text, prefix: e.text };
      if (!e.reconnect) {
        render('disconnected', 'Disconnected: ' + (info.reason || info.prefix), info);
        return;
      }
      // Failed attempts during an outage keep the server's explanation
      // ("The server is restarting") until a connection succeeds.
      if (!e.wasOpen && outage) info = Object.assign({}, outage, { code: e.code });
      else outage = info;
      let shown = -1;
      const tick = function () {
        const secs = Math.max(1, Math.ceil((e.retryAt - Date.now()) / 1000));
        if (secs === shown) return;
        shown = secs;
        info.retryIn = secs;
        render('reconnecting', info.prefix + ', reconnecting in ' + secs + 's…', info);
      };
      tick();
      countdown = setInterval(tick, 250);
    }),
  ];
  return function unwatch() {
    stopCountdown();
    for (const off of offs) off();
  };
}
