package handlers

import (
	"context"
	"errors"
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

// authenticate checks ?token= with the REST code path and closes the
// socket with 4001/4003 and the reason on failure.
func (d *wsDeps) authenticate(c *gin.Context, client *ws.Client) (*models.User, bool) {
	u, _, err := d.auth.Authenticate(c.Request.Context(), c.Query("token"))
	if err != nil {
		r := ws.CloseInternal
		var ae *middleware.AuthError
		if errors.As(err, &ae) {
			r = ws.CloseReason{Code: ws.CodeUnauthenticated, Reason: ae.Reason}
			if ae.Reason == middleware.ReasonUserNotFound || ae.Reason == middleware.ReasonUserInactive {
				r.Code = ws.CodeForbidden
			}
		} else {
			d.logger.Error("websocket auth", "err", err)
		}
		client.Reject(r)
		return nil, false
	}
	client.UserID, client.Username = u.ID, u.Username
	return u, true
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

// handleChat is GET /ws/chat/?token=<JWT>: the authenticated group chat.
func handleChat(d *wsDeps) gin.HandlerFunc {
	return func(c *gin.Context) {
		client := d.accept(c)
		if client == nil {
			return
		}
		u, ok := d.authenticate(c, client)
		if !ok {
			return
		}
		group := ws.ChatGroup(u.Username)
		channel := ws.GroupChannel(group)
		// The welcome is queued before joining, so it is always the first
		// frame, and held until the join, so a client that has read it is
		// already a member.
		client.Hold()
		client.Send(ws.Encode(ws.Welcome{Type: "welcome", User: u.Username, Group: group}))
		err := d.hub.Join(channel, client)
		client.Release()
		if err != nil {
			client.Reject(ws.CloseShutdown)
			return
		}
		d.announce(channel, group, u.Username, ws.PresenceJoin)

		username := u.Username
		client.OnFinish = func() { d.announce(channel, group, username, ws.PresenceLeave) }
		go func() {
			client.Serve(func(text []byte) {
				payload := ws.Encode(ws.ChatMessage{
					Type: "message", Group: group, User: username,
					Text: string(text), TS: ws.FormatTS(d.now()),
				})
				if err := d.hub.Publish(context.Background(), channel, ws.Message{Payload: payload}); err != nil {
					d.logger.Warn("publish chat message", "group", group, "err", err)
				}
			}, nil)
		}()
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
