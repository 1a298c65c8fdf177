package handlers

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"

	"switchboard/middleware"
	"switchboard/models"
	"switchboard/ws"
)

// newUpgrader checks Origin against allowed (empty: the request's own
// host only) and answers a refused upgrade with a JSON 403. Requests with
// no Origin (non-browser clients) are accepted: Origin protects browsers.
func newUpgrader(logger *slog.Logger, allowed []string) *websocket.Upgrader {
	allow := map[string]bool{}
	for _, o := range allowed {
		allow[strings.ToLower(strings.TrimRight(o, "/"))] = true
	}
	return &websocket.Upgrader{
		// switchboard.v1 is echoed when the client asks for it (RFC 6455
		// §4.2.2); without it the legacy protocol is spoken.
		Subprotocols: []string{ws.Subprotocol},
		// No write buffer (our writer sends prebuilt frames straight to
		// the socket) keeps idle sockets cheap. ReadBufferSize stays 0:
		// ws.Accept gives gorilla a reader of ws.ReadBufferSize (288)
		// bytes at the hijack, which the idle read loop waits on.
		WriteBufferPool: &sync.Pool{},
		CheckOrigin: func(r *http.Request) bool {
			origin := r.Header.Get("Origin")
			if origin == "" {
				return true
			}
			if len(allow) > 0 {
				return allow[strings.ToLower(origin)]
			}
			u, err := url.Parse(origin)
			return err == nil && strings.EqualFold(u.Host, r.Host)
		},
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			err := models.Errorf(models.EINVALID, "%s", reason.Error())
			if status == http.StatusForbidden {
				err = models.Errorf(models.EFORBIDDEN, "origin not allowed")
			}
			middleware.WriteHTTPError(w, err)
		},
	}
}

// wsDeps is what the WebSocket handlers share.
type wsDeps struct {
	logger   *slog.Logger
	upgrader *websocket.Upgrader
	auth     *middleware.Auth
	hub      *ws.Hub
	history  *models.HistoryStore // nil: history off
	presence ws.Presence
	cfg      ws.ClientConfig
	now      func() time.Time
	// feed sends presence frames (join/leave, or a count in big groups);
	// nil with PRESENCE_EVENTS=off: presence lists still work, but no
	// presence frame is sent.
	feed *ws.PresenceFeed
}

// accept upgrades and registers a client with the hub, so shutdown can
// close it with 1001. It returns nil when the upgrade failed (the
// upgrader has answered).
func (d *wsDeps) accept(c *gin.Context) *ws.Client {
	client, err := ws.Accept(d.upgrader, c.Writer, c.Request, &d.cfg)
	if err != nil {
		return nil
	}
	if err := d.hub.Add(client); err != nil {
		client.Reject(ws.CloseShutdown)
		return nil
	}
	return client
}

// handleEcho is GET /ws/echo/: no auth; every frame comes back as sent.
func handleEcho(d *wsDeps) gin.HandlerFunc {
	return func(c *gin.Context) {
		client := d.accept(c)
		if client == nil {
			return
		}
		// The read loop runs in its own goroutine so this handler's (and
		// net/http's) stack is freed while the socket stays open.
		go client.Serve(client.Send, client.SendBinary)
	}
}

// handleChat is GET /ws/chat/: the authenticated group chat, in the
// legacy protocol or switchboard.v1 (see session).
func handleChat(d *wsDeps) gin.HandlerFunc {
	return func(c *gin.Context) {
		token, ok := d.handshakeToken(c)
		if !ok {
			return
		}
		client := d.accept(c)
		if client == nil {
			return
		}
		// Plain functions, not method values of d: a method value is a
		// closure allocated per socket and kept while it is open.
		s := &session{d: d, client: client, join: joinChat, text: sendChat}
		s.serve(c, token)
	}
}

// joinChat joins the socket to the user's chat group and welcomes it. The
// writer is held from before the join until the welcome (and, on a
// recovery, the missed messages) are queued ahead of whatever the group
// sent meanwhile: the welcome is always the first frame, a client that
// has read it is already a member, and there is no gap or repeat between
// the replay and the live stream.
func joinChat(s *session, claims middleware.Claims) bool {
	d, client := s.d, s.client
	group := ws.ChatGroup(client.Username)
	client.Hold()
	// Bounded: a database that hangs must not hold the handshake forever.
	jctx, jcancel := context.WithTimeout(context.Background(), 10*time.Second)
	if since, ok := s.query["since"]; ok && d.hub.HistoryOn() {
		// A member coming from a process that is ahead of this one: bring
		// the group here up to its since first, or its recovery would be
		// refused as from the future.
		if after, err := strconv.ParseUint(since, 10, 64); err == nil {
			if err := d.hub.CatchUp(jctx, group, after); err != nil {
				d.logger.Warn("history catch-up", "group", group, "err", err)
			}
		}
	}
	pos, err := d.hub.JoinGroup(jctx, group, client)
	jcancel()
	if err != nil {
		client.Release()
		if errors.Is(err, ws.ErrHubClosed) {
			s.close(ws.CloseShutdown)
		} else {
			d.logger.Error("join chat group", "group", group, "err", err)
			s.close(ws.CloseInternal)
		}
		return false
	}
	welcome := ws.Welcome{Type: "welcome", User: client.Username, Group: group, Exp: claims.Exp.Unix()}
	if d.feed != nil {
		// After the join: a mode switch from now on reaches this socket.
		mode, n := d.feed.Attach(context.Background(), group)
		welcome.Presence = mode
		if mode == ws.PresenceModeCount {
			welcome.Count = &n
		}
	}
	first := [][]byte{nil}
	if d.hub.HistoryOn() {
		welcome.Epoch, welcome.Offset = pos.Epoch, &pos.Offset
		if since, ok := s.query["since"]; ok {
			replay := d.recover(group, pos, since, s.query["epoch"])
			recovered := replay != nil
			welcome.Recovered = &recovered
			first = append(first, replay...)
		}
	}
	// Counted in presence before the welcome goes out (a client that has
	// read it is listed); its own join frame queues behind the welcome.
	d.announce(group, client.Username, ws.PresenceJoin)
	first[0] = ws.Encode(welcome)
	client.SendFirst(first...)
	client.Release()
	// A method value of s (which the read loop keeps anyway) rather than a
	// closure over d, group and name: 16 bytes an open socket, not 48.
	client.OnFinish = s.leaveChat
	return true
}

// leaveChat is a chat socket's OnFinish: the leave announcement and the
// presence feed's detach. The socket's name, and so its group, stays the
// one it joined with (see refresh).
func (s *session) leaveChat() {
	d, username := s.d, s.client.Username
	group := ws.ChatGroup(username)
	d.announce(group, username, ws.PresenceLeave)
	if d.feed != nil {
		d.feed.Detach(group)
	}
}

// recover returns the messages a reconnecting member missed (offsets
// after since, up to pos), or nil when they cannot all be given: another
// epoch, a malformed or future since, more than HISTORY_RECOVERY_MAX, or
// some already trimmed. Never a partial replay.
func (d *wsDeps) recover(group string, pos ws.Position, since, epoch string) [][]byte {
	after, err := strconv.ParseUint(since, 10, 64)
	if err != nil || epoch != pos.Epoch || after > pos.Offset {
		return nil
	}
	n := pos.Offset - after
	if n > uint64(d.hub.HistoryConfig().RecoveryMax) {
		return nil
	}
	if n == 0 {
		return [][]byte{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Shared: in a reconnect storm every member asks for the same range.
	entries, err := d.history.RangeShared(ctx, group, pos.Epoch, after, pos.Offset)
	if err != nil {
		d.logger.Error("recovery read", "group", group, "err", err)
		return nil
	}
	if uint64(len(entries)) != n {
		return nil // trimmed
	}
	out := make([][]byte, len(entries))
	for i, e := range entries {
		out[i] = e.Payload
	}
	return out
}

// sendChat publishes one chat message to the sender's group; in
// switchboard.v1 the sender's own copy carries the id it chose.
func sendChat(s *session, text, id string) {
	d := s.d
	group := ws.ChatGroup(s.client.Username)
	m := ws.ChatMessage{Type: "message", Group: group, User: s.client.Username, Text: text, TS: ws.FormatTS(d.now())}
	// Origin is set even without an id: a message that cannot be stored
	// is not sent, and its sender is closed with 1011 (told), not left
	// to think it went out.
	gm := ws.GroupMessage{Group: group, Origin: s.client, Encode: func(off uint64) []byte {
		m := m
		m.Offset = off
		return ws.Encode(m)
	}}
	if id != "" {
		gm.EncodeOrigin = func(off uint64) []byte {
			m := m
			m.Offset, m.ID = off, id
			return ws.Encode(m)
		}
	}
	if err := d.hub.PublishGroup(context.Background(), gm, false); err != nil {
		d.logger.Warn("publish chat message", "group", group, "err", err)
	}
}

// announce records a member joining or leaving group (typ is
// ws.PresenceJoin or ws.PresenceLeave) and, when it was the user's first
// or last socket there, hands it to the presence feed (a join/leave frame,
// or nothing while the group is big enough to get a count instead).
func (d *wsDeps) announce(group, user, typ string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var (
		changed bool
		err     error
	)
	if typ == ws.PresenceJoin {
		changed, err = d.presence.Join(ctx, group, user)
	} else {
		changed, err = d.presence.Leave(ctx, group, user)
	}
	if err != nil {
		d.logger.Warn("presence", "group", group, "event", typ, "err", err)
		return
	}
	if changed && d.feed != nil {
		d.feed.Announce(ctx, group, user, typ)
	}
}
