package handlers

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"

	"switchboard/middleware"
	"switchboard/models"
)

// Cookie authentication (JWT_AUTH_COOKIE): the token endpoints set the
// token in an HttpOnly cookie as well as returning it, RequireUser takes
// it when there is no Authorization header (middleware/cookie.go), and the
// WebSocket handshake takes it when there is no ?token=. Every use of the
// cookie goes through the same parser and user check as a header or
// ?token= would.

// cookieTokenField reads the token endpoints' fields like decodeFields
// and, with cookie authentication on, fills in a missing "token" from the
// cookie, so a page can refresh without ever reading the token; then no
// body at all is needed. Using the cookie is cookie authentication of an
// unsafe request, so it needs a same-host Origin or Referer
// (middleware.ErrCrossSite otherwise).
func cookieTokenField(c *gin.Context, auth *middleware.Auth) (map[string]string, error) {
	in := map[string]string{}
	bodyless := c.Request.ContentLength == 0 && c.GetHeader("Content-Type") == ""
	if !auth.CookieAuth() || !bodyless {
		var err error
		if in, err = decodeFields(c); err != nil {
			return nil, err
		}
	}
	if in["token"] != "" {
		return in, nil
	}
	if tok := auth.CookieToken(c.Request); tok != "" {
		if !middleware.SameHost(c.Request) {
			return nil, middleware.ErrCrossSite
		}
		in["token"] = tok
	}
	return in, nil
}

// handleLogoutToken is POST /api-token-logout/ → 204: the token cookie is
// cleared ("log out this browser"). It does not revoke the token: the page
// closes its own sockets, a copy of the token held elsewhere stays valid
// until its exp (JWT_EXPIRATION), and POST /api/users/me/logout-all revokes
// every token of the user. With cookie authentication on, it needs a
// same-host Origin or Referer, so another site cannot log the browser out;
// with it off there is no cookie and it does nothing.
func handleLogoutToken(auth *middleware.Auth) gin.HandlerFunc {
	return func(c *gin.Context) {
		if auth.CookieAuth() && !middleware.SameHost(c.Request) {
			middleware.WriteError(c, middleware.ErrCrossSite)
			return
		}
		auth.ClearTokenCookie(c)
		c.Status(http.StatusNoContent)
	}
}

// errOriginRequired refuses a cookie-authenticated WebSocket handshake
// without an Origin header.
var errOriginRequired = models.Errorf(models.EFORBIDDEN, "origin required with cookie authentication")

// handshakeToken returns the token of a socket's upgrade request: ?token=
// wins; otherwise the token cookie (JWT_AUTH_COOKIE), so a socket it
// authenticates needs no switchboard.v1 auth frame. A cookie-carried token
// is only taken from a page the upgrader's Origin check admits (same host
// or ALLOWED_ORIGINS): that check is what stops cross-site WebSocket
// hijacking, since browsers send the cookie on a handshake from any page.
// The upgrader lets a request without Origin through (a non-browser
// client), so such a request carrying the cookie is refused 403 here:
// browsers always send Origin on a handshake, and only browsers send
// cookies by themselves. ok is false when the refusal has been written.
func (d *wsDeps) handshakeToken(c *gin.Context) (token string, ok bool) {
	if tok := c.Query("token"); tok != "" {
		return tok, true
	}
	tok := d.auth.CookieToken(c.Request)
	if tok != "" && c.GetHeader("Origin") == "" && websocket.IsWebSocketUpgrade(c.Request) {
		middleware.WriteError(c, errOriginRequired)
		return "", false
	}
	return tok, true
}
