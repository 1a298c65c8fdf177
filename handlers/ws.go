package handlers

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
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
		// A small read buffer and no write buffer (our writer sends
		// prebuilt frames straight to the socket) keep idle sockets cheap.
		ReadBufferSize:  512,
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
	presence ws.Presence
	cfg      ws.ClientConfig
	now      func() time.Time
	// presenceEvents sends join/leave frames (PRESENCE_EVENTS, default
	// on). Off, presence lists still work: in a group of n members every
	// connect costs n frames, so n connects cost n²/2.
	presenceEvents bool
}

// accept upgrades and registers a client with the hub, so shutdown can
// close it with 1001. It returns nil when the upgrade failed (the
// upgrader has answered).
func (d *wsDeps) accept(c *gin.Context) *ws.Client {
	conn, err := d.upgrader.Upgrade(c.Writer, c.Request, nil)
	if err != nil {
		return nil
	}
	client := ws.NewClient(conn, &d.cfg)
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
		client := d.accept(c)
		if client == nil {
			return
		}
		s := &session{d: d, client: client, join: d.joinChat, text: d.sendChat}
		s.serve(c)
	}
}

// joinChat welcomes the user and joins the socket to its chat group. The
// welcome is queued before joining, so it is always the first frame, and
// held until the join, so a client that has read it is already a member.
func (d *wsDeps) joinChat(s *session, claims middleware.Claims) bool {
	u, client := s.user, s.client
	group := ws.ChatGroup(u.Username)
	channel := ws.GroupChannel(group)
	client.Hold()
	client.Send(ws.Encode(ws.Welcome{Type: "welcome", User: u.Username, Group: group, Exp: claims.Exp.Unix()}))
	err := d.hub.Join(channel, client)
	client.Release()
	if err != nil {
		s.close(ws.CloseShutdown)
		return false
	}
	d.announce(channel, group, u.Username, ws.PresenceJoin)
	username := u.Username
	client.OnFinish = func() { d.announce(channel, group, username, ws.PresenceLeave) }
	return true
}

// sendChat publishes one chat message to the sender's group; in
// switchboard.v1 the sender's own copy carries the id it chose.
func (d *wsDeps) sendChat(s *session, text, id string) {
	group := ws.ChatGroup(s.user.Username)
	m := ws.ChatMessage{Type: "message", Group: group, User: s.user.Username, Text: text, TS: ws.FormatTS(d.now())}
	msg := ws.Message{Payload: ws.Encode(m)}
	if id != "" {
		m.ID = id
		msg.Origin, msg.OriginPayload = s.client, ws.Encode(m)
	}
	if err := d.hub.Publish(context.Background(), ws.GroupChannel(group), msg); err != nil {
		d.logger.Warn("publish chat message", "group", group, "err", err)
	}
}

// announce records a member joining or leaving group (typ is
// ws.PresenceJoin or ws.PresenceLeave) and tells the group when it was the
// user's first or last socket there.
func (d *wsDeps) announce(channel, group, user, typ string) {
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
	if changed && d.presenceEvents {
		payload := ws.Encode(ws.PresenceEvent{Type: typ, User: user})
		if err := d.hub.Publish(ctx, channel, ws.Message{Payload: payload}); err != nil {
			d.logger.Warn("publish presence", "group", group, "err", err)
		}
	}
}
