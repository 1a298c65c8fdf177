package handlers

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"switchboard/middleware"
	"switchboard/ws"
)

// session is one authenticated socket (chat or status) in either
// protocol: legacy (every text frame is chat text, the token in ?token=)
// or switchboard.v1 (JSON frames both ways; the token in ?token= or an
// auth frame; in-band refresh). Its onText runs in the client's read loop,
// so the protocol state needs no lock; only authed is shared with the
// auth timer.
type session struct {
	d       *wsDeps
	client  *ws.Client
	v1      bool
	serving bool // the read loop has been started (set before it starts)
	authed  atomic.Bool
	// query is the upgrade's query string (since and epoch for recovery
	// always ride there, whatever carries the token); nil without them.
	query map[string]string

	// join makes the authenticated client a member (welcome, group join,
	// first status value); false means it closed the socket (s.close).
	join func(s *session, claims middleware.Claims) bool
	// text handles chat text once authenticated (nil: ignored, as on
	// status sockets).
	text func(s *session, text, id string)
}

// serve authenticates the socket (with token, the handshake's ?token= or
// cookie (handshakeToken), or a switchboard.v1 auth frame within
// AuthTimeout) and runs its read loop. It returns at once; the read loop
// runs in its own goroutine so this handler's (and net/http's) stack is
// freed while the socket stays open.
func (s *session) serve(c *gin.Context, token string) {
	s.v1 = s.client.Subprotocol() == ws.Subprotocol
	for _, k := range []string{"since", "epoch"} {
		if v, ok := c.GetQuery(k); ok {
			if s.query == nil {
				s.query = map[string]string{}
			}
			s.query[k] = v
		}
	}
	if token != "" || !s.v1 {
		if !s.authenticate(c.Request.Context(), token) {
			return
		}
	} else {
		t := time.AfterFunc(s.d.cfg.AuthTimeout, func() {
			if !s.authed.Load() {
				s.client.Close(ws.CloseTokenMissing)
			}
		})
		s.client.OnFinish = func() { t.Stop() }
	}
	s.serving = true
	go s.client.Serve(s.onText, nil)
}

// close closes the socket with r, draining it if the read loop has not
// started yet.
func (s *session) close(r ws.CloseReason) {
	if s.serving {
		s.client.Close(r)
	} else {
		s.client.Reject(r)
	}
}

// authenticate checks a token with the REST code path and, on success,
// joins; on failure it closes the socket with the reason's close code.
func (s *session) authenticate(ctx context.Context, token string) bool {
	lookedUp := time.Now()
	u, claims, err := s.d.auth.AuthenticateSocket(ctx, token)
	if err != nil {
		s.reject(err)
		return false
	}
	// The socket keeps the user's id and name (on the client), not the
	// whole record: every byte an idle socket holds is multiplied by the
	// sockets a process keeps open.
	if !s.setToken(u.ID, u.Username, claims, lookedUp) {
		return false
	}
	s.authed.Store(true)
	return s.join(s, claims)
}

// setToken names the socket's user and token to the hub (which closes it
// if a revocation arrived since lookedUp) and records the expiry.
func (s *session) setToken(userID int64, username string, claims middleware.Claims, lookedUp time.Time) bool {
	if r, ok := s.d.hub.Identify(s.client, userID, username, claims.Version, lookedUp); !ok {
		s.close(r)
		return false
	}
	exp := claims.Exp
	if !s.d.cfg.EnforceExpiry {
		exp = time.Time{}
	}
	s.client.SetExpiry(exp)
	return true
}

// reject closes the socket for an authentication failure.
func (s *session) reject(err error) {
	r := authCloseReason(err)
	if r == ws.CloseInternal {
		s.d.logger.Error("websocket auth", "err", err)
	}
	s.close(r)
}

// authCloseReason maps an authentication failure to its close: 4001 for
// the token (missing, expired, invalid), 4003 for the user (not found,
// inactive), 4004 for a revoked token, 1011 for anything else.
func authCloseReason(err error) ws.CloseReason {
	var ae *middleware.AuthError
	if !errors.As(err, &ae) {
		return ws.CloseInternal
	}
	switch ae.Reason {
	case middleware.ReasonUserNotFound, middleware.ReasonUserInactive:
		return ws.CloseReason{Code: ws.CodeForbidden, Reason: ae.Reason}
	case middleware.ReasonTokenRevoked:
		return ws.CloseTokenRevoked
	}
	return ws.CloseReason{Code: ws.CodeUnauthenticated, Reason: ae.Reason}
}

// onText handles one text frame from the client.
func (s *session) onText(b []byte) {
	if !s.v1 {
		if s.text != nil {
			s.text(s, string(b), "")
		}
		return
	}
	f, err := ws.ParseClientFrame(b)
	if err != nil {
		s.protocolError(err.Error())
		return
	}
	switch {
	case f.Type == ws.FrameAuth && !s.authed.Load():
		s.authenticate(context.Background(), f.Token)
	case !s.authed.Load():
		s.protocolError("not authenticated: send an auth frame first")
	case f.Type == ws.FrameAuth || f.Type == ws.FrameRefresh:
		s.refresh(f.Token)
	case f.Type == ws.FrameMessage && s.text != nil:
		s.text(s, f.Text, f.ID)
	default:
		s.protocolError("this socket takes no " + f.Type + " frames")
	}
}

// refresh replaces the socket's token with a fresh one for the same user;
// an invalid token, or one for another user, closes the socket.
func (s *session) refresh(token string) {
	lookedUp := time.Now()
	u, claims, err := s.d.auth.AuthenticateSocket(context.Background(), token)
	if err == nil && u.ID != s.client.UserID {
		err = &middleware.AuthError{Reason: middleware.ReasonTokenInvalid}
	}
	if err != nil {
		s.reject(err)
		return
	}
	// The name stays the one the socket joined its group with.
	if !s.setToken(u.ID, s.client.Username, claims, lookedUp) {
		return
	}
	s.client.Send(ws.Encode(ws.Refreshed{Type: "refreshed", Exp: claims.Exp.Unix()}))
}

// protocolError answers a frame the server cannot use without closing: a
// client bug must not drop the user.
func (s *session) protocolError(reason string) {
	s.client.CountProtocolError()
	s.client.Send(ws.Encode(ws.ErrorFrame{Type: "error", Reason: reason}))
}
