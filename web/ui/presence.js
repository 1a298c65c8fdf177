// presence.js: a big group's presence. Past PRESENCE_EVENTS_MAX users the
// server stops join/leave frames and sends {"type":"presence","mode":"count",
// "count":n} (at most once a second while it changes); back under 90% it
// sends {"type":"presence","mode":"events","users":[...]} and join/leave
// frames resume. The welcome says which mode the group is in.

// followPresenceMode calls render(count) with the number online while the
// group is in count mode, and render(null, users) when it is back to a
// list. It returns the function that removes its listeners.
export function followPresenceMode(conn, render) {
  const offs = [
    conn.on('welcome', function (w) {
      if (w.presence === 'count' && typeof w.count === 'number') render(w.count);
      else render(null);
    }),
    conn.on('frame', function (f) {
      if (f.type !== 'presence') return;
      if (f.mode === 'count' && typeof f.count === 'number') render(f.count);
      else if (f.mode === 'events' && Array.isArray(f.users)) {
        render(null, f.users.filter(function (u) { return typeof u === 'string'; }));
      }
    }),
  ];
  return function () { for (const off of offs) off(); };
}
