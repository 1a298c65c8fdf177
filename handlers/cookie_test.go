package handlers_test

// Issue 14, cookie authentication (JWT_AUTH_COOKIE), on a real listener
// with real HTTP and WebSocket clients: the cookie the token endpoints set,
// REST with the cookie alone and the header winning, the same-host rule for
// cookie-authenticated unsafe requests, refresh and logout through the
// cookie, and sockets authenticated by the cookie at the handshake, which
// the Origin check guards.

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"switchboard/internal/testenv"
	"switchboard/middleware"
	"switchboard/models"
)

const cookieName = "jwt"

// withCookie turns cookie authentication on with c (Name defaults to jwt).
func withCookie(c middleware.CookieConfig) envOption {
	if c.Name == "" {
		c.Name = cookieName
	}
	return withAuth(func(a *middleware.AuthConfig) { a.Cookie = c })
}

// cookieHeader is a request header carrying tok in the cookie, plus the
// name, value pairs of kv (empty values left out, as testenv.Headers).
func cookieHeader(tok string, kv ...string) http.Header {
	h := testenv.Headers(kv...)
	if tok != "" {
		h.Set("Cookie", cookieName+"="+tok)
	}
	return h
}

// tokenCookie returns the jwt cookie the answer sets, or nil.
func tokenCookie(h http.Header) *http.Cookie {
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == cookieName {
			return c
		}
	}
	return nil
}

// cookieLogin logs name in through /api-token-auth/ from the server's own
// page and returns the cookie's value, failing unless the answer is 200
// with the cookie set to the body's token.
func (e *env) cookieLogin(tb testing.TB, name string) string {
	tb.Helper()
	r, err := e.send(tb, http.MethodPost, "/api-token-auth/", testenv.Headers("Origin", e.srv.URL),
		map[string]string{"username": name, "password": "password123"})
	if err != nil || r.status != http.StatusOK {
		tb.Fatalf("POST /api-token-auth/ as %s = %d %s (%v), want 200", name, r.status, r.body, err)
	}
	ck := tokenCookie(r.header)
	tok, _ := r.object(tb, "POST /api-token-auth/")["token"].(string)
	if ck == nil || ck.Value == "" || ck.Value != tok {
		tb.Fatalf("POST /api-token-auth/ as %s: cookie %v, body token %q: want the body's token in the cookie", name, ck, tok)
	}
	return ck.Value
}

func TestCookieLoginSetsCookie(t *testing.T) {
	tests := []struct {
		name         string
		cfg          *middleware.CookieConfig // nil: cookie auth off
		origin       string                   // "" none; "self" the server's own
		wantCookie   bool
		wantSameSite http.SameSite
		wantAttr     []string
	}{
		{"default Lax", &middleware.CookieConfig{}, "self", true, http.SameSiteLaxMode, []string{"HttpOnly", "Path=/", "SameSite=Lax"}},
		{"no Origin (non-browser)", &middleware.CookieConfig{}, "", true, http.SameSiteLaxMode, []string{"HttpOnly", "SameSite=Lax"}},
		{"Strict and Secure", &middleware.CookieConfig{SameSite: http.SameSiteStrictMode, Secure: true}, "self", true, http.SameSiteStrictMode, []string{"HttpOnly", "Secure", "SameSite=Strict"}},
		{"None and Secure", &middleware.CookieConfig{SameSite: http.SameSiteNoneMode, Secure: true}, "self", true, http.SameSiteNoneMode, []string{"HttpOnly", "Secure", "SameSite=None"}},
		{"foreign Origin: no cookie (login CSRF)", &middleware.CookieConfig{}, "http://evil.example", false, 0, nil},
		{"cookie auth off", nil, "self", false, 0, nil},
	}
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					var opts []envOption
					if tt.cfg != nil {
						opts = append(opts, withCookie(*tt.cfg))
					}
					e := newEnv(t, dialect, opts...)
					e.createUser(t, "alice", false)
					origin := tt.origin
					if origin == "self" {
						origin = e.srv.URL
					}
					const req = "POST /api-token-auth/"
					r, err := e.send(t, http.MethodPost, "/api-token-auth/", testenv.Headers("Origin", origin),
						map[string]string{"username": "alice", "password": "password123"})
					if err != nil || r.status != http.StatusOK {
						t.Fatalf("%s = %d %s (%v), want 200", req, r.status, r.body, err)
					}
					tok, _ := r.object(t, req)["token"].(string)
					if tok == "" {
						t.Fatalf("%s body %s: no token (the body must carry it whatever the cookie)", req, r.body)
					}
					ck := tokenCookie(r.header)
					if !tt.wantCookie {
						if ck != nil {
							t.Fatalf("%s Set-Cookie %q, want none", req, r.header.Values("Set-Cookie"))
						}
						return
					}
					if ck == nil {
						t.Fatalf("%s Set-Cookie %q, want a %s cookie", req, r.header.Values("Set-Cookie"), cookieName)
					}
					if ck.Value != tok || !ck.HttpOnly || ck.Path != "/" || ck.SameSite != tt.wantSameSite || ck.Secure != (tt.cfg.Secure) {
						t.Errorf("%s cookie = %+v, want value = body token, HttpOnly, Path=/, SameSite %v, Secure %v", req, ck, tt.wantSameSite, tt.cfg.Secure)
					}
					exp := claimInt(t, jwtSegment(t, tok, 1), "exp")
					if ck.Expires.Unix() != exp || ck.MaxAge != 0 {
						t.Errorf("%s cookie Expires %v (Max-Age %d), want the token's exp %v", req, ck.Expires, ck.MaxAge, time.Unix(exp, 0).UTC())
					}
					raw := strings.Join(r.header.Values("Set-Cookie"), "\n")
					for _, a := range tt.wantAttr {
						if !strings.Contains(raw, "; "+a) {
							t.Errorf("%s Set-Cookie %q lacks %q", req, raw, a)
						}
					}
					if !tt.cfg.Secure && strings.Contains(raw, "Secure") {
						t.Errorf("%s Set-Cookie %q is Secure, want not (JWT_COOKIE_SECURE unset)", req, raw)
					}
				})
			}
		})
	}
}

func TestCookieREST(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect, withCookie(middleware.CookieConfig{}))
			e.createUser(t, "alice", false)
			bob := e.createUser(t, "bob", false)
			tok := e.cookieLogin(t, "alice")

			me := func(h http.Header) (int, map[string]any) {
				t.Helper()
				r, err := e.send(t, http.MethodGet, "/api/users/me", h, nil)
				if err != nil {
					t.Fatal(err)
				}
				return r.status, r.object(t, "GET /api/users/me")
			}
			if status, body := me(cookieHeader(tok)); status != 200 || body["username"] != "alice" {
				t.Errorf("GET /api/users/me with the cookie alone = %d %v, want 200 alice", status, body)
			}
			// A foreign Origin does not matter for a safe method.
			if status, body := me(cookieHeader(tok, "Origin", "http://evil.example")); status != 200 || body["username"] != "alice" {
				t.Errorf("GET /api/users/me with the cookie from a foreign Origin = %d %v, want 200 alice", status, body)
			}
			// The Authorization header wins over the cookie, even a bad one.
			if status, body := me(cookieHeader(tok, "Authorization", "JWT "+e.token(t, bob))); status != 200 || body["username"] != "bob" {
				t.Errorf("GET /api/users/me with bob's header and alice's cookie = %d %v, want 200 bob", status, body)
			}
			if status, body := me(cookieHeader(tok, "Authorization", "JWT not-a-token")); status != 401 {
				t.Errorf("GET /api/users/me with a bad header and a good cookie = %d %v, want 401 (the header wins)", status, body)
			}
			// The cookie's token goes through every token rule: a bad one is 401.
			if status, body := me(cookieHeader("a.b.c")); status != 401 || body["error"].(map[string]any)["message"] != "token invalid" {
				t.Errorf("GET /api/users/me with a garbage cookie = %d %v, want 401 token invalid", status, body)
			}
			if status, body := me(nil); status != 401 || body["error"].(map[string]any)["message"] != "token missing" {
				t.Errorf("GET /api/users/me with nothing = %d %v, want 401 token missing", status, body)
			}
			bobTok := e.token(t, bob)
			if _, err := e.users.Update(t.Context(), bob.ID, updActive(false)); err != nil {
				t.Fatal(err)
			}
			if status, body := me(cookieHeader(bobTok)); status != 401 || body["error"].(map[string]any)["message"] != "user inactive" {
				t.Errorf("GET /api/users/me with an inactive user's cookie = %d %v, want 401 user inactive", status, body)
			}
		})
	}
}

// TestCookieCrossSite: a cookie-authenticated unsafe request needs an
// Origin (or, lacking it, a Referer) on the server's own host; a
// header-authenticated one does not.
func TestCookieCrossSite(t *testing.T) {
	const foreign = "http://evil.example"
	tests := []struct {
		name   string
		header func(e *env, tok string) http.Header
		want   int
	}{
		{"cookie, same-host Origin", func(e *env, tok string) http.Header { return cookieHeader(tok, "Origin", e.srv.URL) }, 204},
		{"cookie, same-host Referer, no Origin", func(e *env, tok string) http.Header {
			return cookieHeader(tok, "Referer", e.srv.URL+"/index.html")
		}, 204},
		{"cookie, foreign Origin", func(e *env, tok string) http.Header { return cookieHeader(tok, "Origin", foreign) }, 403},
		{"cookie, foreign Origin, same-host Referer", func(e *env, tok string) http.Header {
			return cookieHeader(tok, "Origin", foreign, "Referer", e.srv.URL+"/")
		}, 403},
		{"cookie, Origin null", func(e *env, tok string) http.Header { return cookieHeader(tok, "Origin", "null") }, 403},
		{"cookie, same host on another port", func(e *env, tok string) http.Header {
			return cookieHeader(tok, "Origin", "http://127.0.0.1:1")
		}, 403},
		{"cookie, foreign Referer, no Origin", func(e *env, tok string) http.Header {
			return cookieHeader(tok, "Referer", foreign+"/page")
		}, 403},
		{"cookie, no Origin, no Referer", func(e *env, tok string) http.Header { return cookieHeader(tok) }, 403},
		{"header, foreign Origin", func(e *env, tok string) http.Header {
			return testenv.Headers("Authorization", "JWT "+tok, "Origin", foreign)
		}, 204},
		{"header and cookie, no Origin", func(e *env, tok string) http.Header {
			return cookieHeader(tok, "Authorization", "Bearer "+tok)
		}, 204},
	}
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect, withCookie(middleware.CookieConfig{}))
			for i, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					name := "user" + string(rune('a'+i)) // logout-all revokes: a user per case
					e.createUser(t, name, false)
					tok := e.cookieLogin(t, name)
					const req = "POST /api/users/me/logout-all"
					r, err := e.send(t, http.MethodPost, "/api/users/me/logout-all", tt.header(e, tok), nil)
					if err != nil {
						t.Fatal(err)
					}
					if r.status != tt.want {
						t.Fatalf("%s = %d %s, want %d", req, r.status, r.body, tt.want)
					}
					if tt.want == 403 {
						checkCrossSite(t, req, r)
						// Refused before anything happened: the token still works.
						if r := e.rest(t, http.MethodGet, "/api/users/me", "", "JWT "+tok, nil); r.status != 200 {
							t.Errorf("GET /api/users/me after a refused %s = %d, want 200 (nothing revoked)", req, r.status)
						}
					}
				})
			}
			// A staff-only unsafe route answers the cross-site 403 too, before
			// looking at the user.
			boss := e.createUser(t, "boss", true)
			r, err := e.send(t, http.MethodPut, "/api/status/system", cookieHeader(e.token(t, boss), "Origin", foreign), map[string]any{"value": 1})
			if err != nil {
				t.Fatal(err)
			}
			checkCrossSite(t, "PUT /api/status/system (cookie, foreign Origin)", r)
			r, err = e.send(t, http.MethodPut, "/api/status/system", cookieHeader(e.token(t, boss), "Origin", e.srv.URL), map[string]any{"value": 1})
			if err != nil || r.status != 200 {
				t.Errorf("PUT /api/status/system (cookie, same-host Origin) = %d %s (%v), want 200", r.status, r.body, err)
			}
		})
	}
}

// checkCrossSite checks r is 403 {"error":{"code":"forbidden","message":"cross-site request"}}.
func checkCrossSite(tb testing.TB, req string, r restResponse) {
	tb.Helper()
	body := r.object(tb, req)
	e, _ := body["error"].(map[string]any)
	if r.status != 403 || e["code"] != "forbidden" || e["message"] != "cross-site request" {
		tb.Errorf("%s = %d %s, want 403 forbidden \"cross-site request\"", req, r.status, r.body)
	}
}

func TestCookieRefreshAndLogout(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			clock := newAuthClock()
			e := newEnv(t, dialect, withCookie(middleware.CookieConfig{}), withClock(clock))
			e.createUser(t, "alice", false)
			tok := e.cookieLogin(t, "alice")
			self := e.srv.URL
			clock.Advance(10 * time.Second)

			// No body at all: the cookie's token is refreshed and the cookie renewed.
			const refresh = "POST /api-token-refresh/"
			r, err := e.send(t, http.MethodPost, "/api-token-refresh/", cookieHeader(tok, "Origin", self), nil)
			if err != nil || r.status != 200 {
				t.Fatalf("%s with the cookie and no body = %d %s (%v), want 200", refresh, r.status, r.body, err)
			}
			fresh, _ := r.object(t, refresh)["token"].(string)
			ck := tokenCookie(r.header)
			if ck == nil || ck.Value != fresh || !ck.HttpOnly {
				t.Fatalf("%s Set-Cookie %q, want the fresh token %q, HttpOnly", refresh, r.header.Values("Set-Cookie"), fresh)
			}
			oldC, newC := jwtSegment(t, tok, 1), jwtSegment(t, fresh, 1)
			if claimInt(t, newC, "exp") <= claimInt(t, oldC, "exp") || claimInt(t, newC, "orig_iat") != claimInt(t, oldC, "orig_iat") {
				t.Errorf("refreshed claims %v from %v: want a later exp and the same orig_iat", newC, oldC)
			}
			if ck.Expires.Unix() != claimInt(t, newC, "exp") {
				t.Errorf("refreshed cookie Expires %v, want the new exp %d", ck.Expires, claimInt(t, newC, "exp"))
			}
			// An empty JSON object works too; a token in the body wins over the cookie.
			r, err = e.send(t, http.MethodPost, "/api-token-refresh/", cookieHeader(fresh, "Origin", self), map[string]any{})
			if err != nil || r.status != 200 {
				t.Errorf("%s with the cookie and {} = %d %s (%v), want 200", refresh, r.status, r.body, err)
			}
			r, err = e.send(t, http.MethodPost, "/api-token-refresh/", cookieHeader("a.b.c"), map[string]string{"token": fresh})
			if err != nil || r.status != 200 {
				t.Errorf("%s with a body token and a garbage cookie = %d %s (%v), want 200 (the body wins)", refresh, r.status, r.body, err)
			}
			// Using the cookie is cookie authentication: same host only.
			for _, h := range []http.Header{cookieHeader(fresh, "Origin", "http://evil.example"), cookieHeader(fresh)} {
				r, err = e.send(t, http.MethodPost, "/api-token-refresh/", h, nil)
				if err != nil {
					t.Fatal(err)
				}
				checkCrossSite(t, refresh+" with the cookie, Origin "+h.Get("Origin"), r)
				if tokenCookie(r.header) != nil {
					t.Errorf("%s refused, yet Set-Cookie %q", refresh, r.header.Values("Set-Cookie"))
				}
			}
			// Neither body token nor cookie: rest_framework_jwt's 400.
			r, err = e.send(t, http.MethodPost, "/api-token-refresh/", testenv.Headers("Origin", self), nil)
			if err != nil || r.status != 400 || !strings.Contains(string(r.body), `"token"`) {
				t.Errorf("%s with nothing = %d %s (%v), want 400 {\"token\": [...]}", refresh, r.status, r.body, err)
			}

			// Logout clears the cookie from this host's page, not from another site.
			const logout = "POST /api-token-logout/"
			for _, h := range []http.Header{cookieHeader(fresh, "Origin", "http://evil.example"), cookieHeader(fresh)} {
				r, err = e.send(t, http.MethodPost, "/api-token-logout/", h, nil)
				if err != nil {
					t.Fatal(err)
				}
				checkCrossSite(t, logout+" Origin "+h.Get("Origin"), r)
				if tokenCookie(r.header) != nil {
					t.Errorf("%s refused, yet Set-Cookie %q", logout, r.header.Values("Set-Cookie"))
				}
			}
			r, err = e.send(t, http.MethodPost, "/api-token-logout/", cookieHeader(fresh, "Origin", self), nil)
			if err != nil || r.status != 204 {
				t.Fatalf("%s = %d %s (%v), want 204", logout, r.status, r.body, err)
			}
			ck = tokenCookie(r.header)
			if ck == nil || ck.Value != "" || ck.MaxAge >= 0 || !ck.HttpOnly || ck.Path != "/" {
				t.Errorf("%s Set-Cookie %q, want %s cleared (empty, Max-Age=0, HttpOnly, Path=/)", logout, r.header.Values("Set-Cookie"), cookieName)
			}
			// Logout only clears this browser's cookie: it revokes nothing
			// (logout-all does).
			if r := e.rest(t, http.MethodGet, "/api/users/me", "", "JWT "+fresh, nil); r.status != 200 {
				t.Errorf("GET /api/users/me with the logged-out token in the header = %d, want 200 (logout does not revoke)", r.status)
			}
		})
	}
	t.Run("cookie auth off", func(t *testing.T) {
		e := newEnv(t, models.SQLite)
		e.createUser(t, "alice", false)
		tok := e.login(t, "alice", "password123")
		r, err := e.send(t, http.MethodPost, "/api-token-logout/", nil, nil)
		if err != nil || r.status != 204 || len(r.header.Values("Set-Cookie")) != 0 {
			t.Errorf("POST /api-token-logout/ with cookie auth off = %d %q (%v), want 204 and no Set-Cookie", r.status, r.header.Values("Set-Cookie"), err)
		}
		// Without JWT_AUTH_COOKIE a cookie is never read.
		r, err = e.send(t, http.MethodGet, "/api/users/me", cookieHeader(tok), nil)
		if err != nil || r.status != 401 {
			t.Errorf("GET /api/users/me with a cookie, cookie auth off = %d (%v), want 401", r.status, err)
		}
		r, err = e.send(t, http.MethodPost, "/api-token-refresh/", cookieHeader(tok, "Origin", e.srv.URL), nil)
		if err != nil || r.status != 415 {
			t.Errorf("POST /api-token-refresh/ with no body, cookie auth off = %d %s (%v), want 415 as before", r.status, r.body, err)
		}
	})
}

// dialCookie opens path with tok in the cookie and the given Origin ("" for
// none) and subprotocols; it returns the connection or the upgrade's status.
func (e *env) dialCookie(tb testing.TB, path, tok, origin string, protocols ...string) (*websocket.Conn, int) {
	tb.Helper()
	d := *websocket.DefaultDialer
	d.Subprotocols = protocols
	d.HandshakeTimeout = 5 * time.Second
	conn, resp, err := d.Dial(e.wsURL(path), cookieHeader(tok, "Origin", origin))
	if err != nil {
		if resp == nil {
			tb.Fatalf("dial %s: %v", path, err)
		}
		return nil, resp.StatusCode
	}
	tb.Cleanup(func() { conn.Close() })
	return conn, http.StatusSwitchingProtocols
}

func TestCookieWebSocket(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect, withCookie(middleware.CookieConfig{}))
			e.createUser(t, "alice", false)
			e.createUser(t, "anna", false)
			bob := e.createUser(t, "bob", false)
			tok := e.cookieLogin(t, "alice")
			self := e.srv.URL

			// The cookie alone, from the server's own page, joins the chat group.
			conn, status := e.dialCookie(t, "/ws/chat/", tok, self)
			if conn == nil {
				t.Fatalf("chat handshake with the cookie and a same-host Origin = %d, want 101", status)
			}
			if w := readFrame(t, conn); w["type"] != "welcome" || w["user"] != "alice" || w["group"] != "chat-a" {
				t.Fatalf("first frame = %v, want welcome alice in chat-a", w)
			}
			anna := e.chat(t, e.mustUser(t, "anna"))
			if f := readUntil(t, conn, "join"); f["user"] != "alice" {
				t.Errorf("first join frame = %v, want alice's own", f)
			}
			if f := readUntil(t, conn, "join"); f["user"] != "anna" {
				t.Errorf("second join frame = %v, want anna", f)
			}
			if err := conn.WriteMessage(websocket.TextMessage, []byte("hi from the cookie")); err != nil {
				t.Fatal(err)
			}
			if m := readUntil(t, anna, "message"); m["user"] != "alice" || m["text"] != "hi from the cookie" {
				t.Errorf("anna got %v, want alice's message", m)
			}

			// Cross-site WebSocket hijacking: refused at the upgrade.
			for _, origin := range []string{"http://evil.example", "null", "http://127.0.0.1:1", ""} {
				if c, status := e.dialCookie(t, "/ws/chat/", tok, origin); c != nil || status != 403 {
					t.Errorf("chat handshake with the cookie and Origin %q = %d, want 403", origin, status)
				}
				if c, status := e.dialCookie(t, "/ws/status/system/", tok, origin); c != nil || status != 403 {
					t.Errorf("status handshake with the cookie and Origin %q = %d, want 403", origin, status)
				}
			}

			// ?token= wins over the cookie, and needs no Origin (non-browser clients).
			c, status := e.dialCookie(t, "/ws/chat/?token="+e.token(t, bob), tok, "")
			if c == nil {
				t.Fatalf("chat handshake with ?token= and a cookie, no Origin = %d, want 101", status)
			}
			if w := readFrame(t, c); w["user"] != "bob" {
				t.Errorf("welcome = %v, want bob (?token= wins)", w)
			}

			// switchboard.v1: the cookie authenticates, no auth frame needed;
			// one sent anyway replaces the token, as a refresh.
			v1, status := e.dialCookie(t, "/ws/status/system/", tok, self, "switchboard.v1")
			if v1 == nil || v1.Subprotocol() != "switchboard.v1" {
				t.Fatalf("v1 status handshake with the cookie = %d, want 101 with switchboard.v1", status)
			}
			if f := readFrame(t, v1); f["type"] != "status" || f["key"] != "system" {
				t.Fatalf("first v1 frame = %v, want the status value without an auth frame", f)
			}
			if err := v1.WriteJSON(map[string]string{"type": "auth", "token": e.token(t, e.mustUser(t, "alice"))}); err != nil {
				t.Fatal(err)
			}
			if f := readFrame(t, v1); f["type"] != "refreshed" {
				t.Errorf("frame after an auth frame on a cookie socket = %v, want refreshed", f)
			}

			// Revocation applies to cookie-carried tokens unchanged: 4004.
			r, err := e.send(t, http.MethodPost, "/api/users/me/logout-all", cookieHeader(tok, "Origin", self), nil)
			if err != nil || r.status != 204 {
				t.Fatalf("POST /api/users/me/logout-all with the cookie = %d %s (%v), want 204", r.status, r.body, err)
			}
			expectClose(t, conn, 4004, "")
			expectClose(t, v1, 4004, "")
			// And a revoked cookie no longer opens a socket.
			c, _ = e.dialCookie(t, "/ws/chat/", tok, self)
			if c == nil {
				t.Fatal("chat handshake with a revoked cookie: upgrade refused, want 101 then 4004")
			}
			expectClose(t, c, 4004, "")
		})
	}
	t.Run("ALLOWED_ORIGINS", func(t *testing.T) {
		const app = "https://app.example.com"
		e := newEnv(t, models.SQLite, withCookie(middleware.CookieConfig{}), withOrigins(app))
		e.createUser(t, "alice", false)
		tok := e.cookieLogin(t, "alice")
		if c, status := e.dialCookie(t, "/ws/chat/", tok, app); c == nil {
			t.Errorf("chat handshake with the cookie from an allowed origin = %d, want 101", status)
		}
		for _, origin := range []string{"http://evil.example", ""} {
			if c, status := e.dialCookie(t, "/ws/chat/", tok, origin); c != nil || status != 403 {
				t.Errorf("chat handshake with the cookie and Origin %q under ALLOWED_ORIGINS = %d, want 403", origin, status)
			}
		}
	})
	t.Run("cookie auth off", func(t *testing.T) {
		e := newEnv(t, models.SQLite)
		alice := e.createUser(t, "alice", false)
		c, status := e.dialCookie(t, "/ws/chat/", e.token(t, alice), "")
		if c == nil {
			t.Fatalf("chat handshake with a cookie, cookie auth off = %d, want 101 then 4001", status)
		}
		expectClose(t, c, 4001, "token missing")
	})
}

// mustUser loads the user called name.
func (e *env) mustUser(tb testing.TB, name string) *models.User {
	tb.Helper()
	u, err := e.users.GetByUsername(tb.Context(), name)
	if err != nil {
		tb.Fatalf("load %s: %v", name, err)
	}
	return u
}
