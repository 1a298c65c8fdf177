package middleware

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"switchboard/models"
)

// CookieConfig is the token cookie (rest_framework_jwt's JWT_AUTH_COOKIE).
// An empty Name turns cookie authentication off.
type CookieConfig struct {
	Name     string        // JWT_AUTH_COOKIE
	SameSite http.SameSite // JWT_COOKIE_SAMESITE; zero means Lax
	Secure   bool          // JWT_COOKIE_SECURE
}

// Context key set by RequireUser when the token came from the cookie.
const ContextCookieAuth = "switchboard.cookie_auth"

// ErrCrossSite refuses a cookie-authenticated unsafe request that no page
// of this host sent (CSRF).
var ErrCrossSite = models.Errorf(models.EFORBIDDEN, "cross-site request")

// CookieAuth reports whether tokens are also carried in a cookie.
func (a *Auth) CookieAuth() bool { return a.cookie.Name != "" }

// CookieToken returns the token r's cookie carries, or "" (none, or cookie
// authentication off). It is the one place that reads the cookie.
func (a *Auth) CookieToken(r *http.Request) string {
	if a.cookie.Name == "" {
		return ""
	}
	c, err := r.Cookie(a.cookie.Name)
	if err != nil {
		return ""
	}
	return c.Value
}

// SetTokenCookie puts token in the cookie (HttpOnly, Path=/, SameSite,
// Secure when configured, Expires at the token's exp) when cookie
// authentication is on. The cookie is only set for a request that comes
// from this host's own pages or from no page at all (no Origin and no
// Referer): a foreign page cannot plant a token of its choosing in the
// browser (login CSRF). It is a no-op when cookie authentication is off.
func (a *Auth) SetTokenCookie(c *gin.Context, token string) error {
	if a.cookie.Name == "" {
		return nil
	}
	if present, same := sameHost(c.Request); present && !same {
		return nil
	}
	claims, err := a.Parse(token)
	if err != nil {
		return err // a token we just signed: never happens
	}
	http.SetCookie(c.Writer, a.newCookie(token, claims.Exp))
	return nil
}

// ClearTokenCookie tells the browser to drop the cookie (no-op when cookie
// authentication is off).
func (a *Auth) ClearTokenCookie(c *gin.Context) {
	if a.cookie.Name == "" {
		return
	}
	ck := a.newCookie("", time.Unix(0, 0))
	ck.MaxAge = -1 // Max-Age=0: delete now
	http.SetCookie(c.Writer, ck)
}

func (a *Auth) newCookie(value string, expires time.Time) *http.Cookie {
	sameSite := a.cookie.SameSite
	if sameSite == 0 {
		sameSite = http.SameSiteLaxMode
	}
	return &http.Cookie{
		Name: a.cookie.Name, Value: value, Path: "/", Expires: expires,
		HttpOnly: true, Secure: a.cookie.Secure, SameSite: sameSite,
	}
}

// SameHost reports whether r's Origin, or lacking one its Referer, names
// r's own host. A request with neither header is not same-host: only
// browsers send cookies by themselves, and they send Origin (or at least
// Referer) with every unsafe request from a page.
func SameHost(r *http.Request) bool {
	present, same := sameHost(r)
	return present && same
}

// sameHost reports whether r has an Origin or Referer (Origin wins), and
// whether its host is r's own (case-insensitively, port included, as the
// WebSocket upgrader compares). "null" and unparsable values are foreign.
func sameHost(r *http.Request) (present, same bool) {
	v := r.Header.Get("Origin")
	if v == "" {
		v = r.Header.Get("Referer")
	}
	if v == "" {
		return false, false
	}
	u, err := url.Parse(v)
	return true, err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// unsafeMethod reports whether m may change state (RFC 9110 §9.2.1).
func unsafeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// cookieAuth gives RequireUser the cookie's token when the request has no
// Authorization header (the header wins), by putting it where gin-jwt's
// lookup reads it, so both go through the one parser and user check. A
// cookie-authenticated unsafe request must come from this host's pages
// (SameHost); otherwise it is refused 403 with ErrCrossSite and cookieAuth
// returns false.
func (a *Auth) cookieAuth(c *gin.Context) bool {
	if c.Request.Header.Get("Authorization") != "" {
		return true
	}
	tok := a.CookieToken(c.Request)
	if tok == "" {
		return true
	}
	if unsafeMethod(c.Request.Method) && !SameHost(c.Request) {
		WriteError(c, ErrCrossSite)
		return false
	}
	c.Set(ContextCookieAuth, true)
	c.Request.Header.Set("Authorization", "Bearer "+tok)
	return true
}
