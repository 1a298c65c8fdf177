package main

// Issue 14 with real processes: the cookie settings (JWT_AUTH_COOKIE,
// JWT_COOKIE_SAMESITE, JWT_COOKIE_SECURE) and the start-up warning, and a
// socket authenticated by the cookie alone living by the same token rules
// as any other: closed 4001 "token expired" at exp + WS_TOKEN_GRACE while
// the page refreshes the cookie and reconnects, and 4004 after
// logout-all.

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"switchboard/internal/testenv"
)

func TestLoadConfigCookie(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		env      map[string]string
		wantErr  string // substring; "" means success
		wantName string
		sameSite http.SameSite
		secure   bool
	}{
		{"off by default", nil, "", "", http.SameSiteLaxMode, false},
		{"on, Lax by default", map[string]string{"JWT_AUTH_COOKIE": "jwt"}, "", "jwt", http.SameSiteLaxMode, false},
		{"Strict", map[string]string{"JWT_AUTH_COOKIE": "jwt", "JWT_COOKIE_SAMESITE": "Strict"}, "", "jwt", http.SameSiteStrictMode, false},
		{"lax lower case", map[string]string{"JWT_AUTH_COOKIE": "jwt", "JWT_COOKIE_SAMESITE": "lax"}, "", "jwt", http.SameSiteLaxMode, false},
		{"None with Secure", map[string]string{"JWT_AUTH_COOKIE": "jwt", "JWT_COOKIE_SAMESITE": "None", "JWT_COOKIE_SECURE": "true"}, "", "jwt", http.SameSiteNoneMode, true},
		{"Secure", map[string]string{"JWT_AUTH_COOKIE": "jwt", "JWT_COOKIE_SECURE": "true"}, "", "jwt", http.SameSiteLaxMode, true},
		{"None without Secure", map[string]string{"JWT_AUTH_COOKIE": "jwt", "JWT_COOKIE_SAMESITE": "None"}, "requires JWT_COOKIE_SECURE=true", "", 0, false},
		{"None with Secure false", map[string]string{"JWT_AUTH_COOKIE": "jwt", "JWT_COOKIE_SAMESITE": "None", "JWT_COOKIE_SECURE": "false"}, "requires JWT_COOKIE_SECURE=true", "", 0, false},
		{"bad SameSite", map[string]string{"JWT_AUTH_COOKIE": "jwt", "JWT_COOKIE_SAMESITE": "Loose"}, "JWT_COOKIE_SAMESITE", "", 0, false},
		{"bad Secure", map[string]string{"JWT_AUTH_COOKIE": "jwt", "JWT_COOKIE_SECURE": "yes please"}, "JWT_COOKIE_SECURE", "", 0, false},
		{"bad cookie name", map[string]string{"JWT_AUTH_COOKIE": "j w;t"}, "JWT_AUTH_COOKIE", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(envOf(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("loadConfig(%v) = %v, want an error containing %q", tt.env, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("loadConfig(%v) = %v", tt.env, err)
			}
			if c := cfg.Cookie; c.Name != tt.wantName || c.SameSite != tt.sameSite || c.Secure != tt.secure {
				t.Errorf("loadConfig(%v).Cookie = %+v, want name %q, SameSite %v, Secure %v", tt.env, c, tt.wantName, tt.sameSite, tt.secure)
			}
		})
	}
}

func TestInsecureCookieWarning(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  map[string]string
		warn bool
	}{
		{map[string]string{"JWT_AUTH_COOKIE": "jwt", "ADDR": "0.0.0.0:8000"}, true},
		{map[string]string{"JWT_AUTH_COOKIE": "jwt", "ADDR": ":8000"}, true},
		{map[string]string{"JWT_AUTH_COOKIE": "jwt", "ADDR": "10.1.2.3:8000"}, true},
		{map[string]string{"JWT_AUTH_COOKIE": "jwt", "ADDR": "switchboard.internal:8000"}, true},
		{map[string]string{"JWT_AUTH_COOKIE": "jwt"}, false}, // 127.0.0.1:8000
		{map[string]string{"JWT_AUTH_COOKIE": "jwt", "ADDR": "localhost:8000"}, false},
		{map[string]string{"JWT_AUTH_COOKIE": "jwt", "ADDR": "[::1]:8000"}, false},
		{map[string]string{"JWT_AUTH_COOKIE": "jwt", "ADDR": "127.0.0.2:8000"}, false},
		{map[string]string{"JWT_AUTH_COOKIE": "jwt", "ADDR": "0.0.0.0:8000", "JWT_COOKIE_SECURE": "true"}, false},
		{map[string]string{"ADDR": "0.0.0.0:8000"}, false}, // cookie auth off
	}
	for _, tt := range tests {
		cfg, err := loadConfig(envOf(tt.env))
		if err != nil {
			t.Fatalf("loadConfig(%v) = %v", tt.env, err)
		}
		var buf bytes.Buffer
		warnInsecureCookie(cfg, slog.New(slog.NewTextHandler(&buf, nil)))
		got := strings.Contains(buf.String(), "level=WARN") && strings.Contains(buf.String(), "JWT_COOKIE_SECURE=true")
		if got != tt.warn {
			t.Errorf("start-up with %v: warned %v (log %q), want %v", tt.env, got, buf.String(), tt.warn)
		}
	}
}

// cookieLogin logs name in as the server's own page would (Origin: the
// server) and returns the token cookie's value.
func (p *proc) cookieLogin(name string) string {
	p.t.Helper()
	r, err := testenv.Send(http.MethodPost, p.url("/api-token-auth/"), testenv.Headers("Origin", p.url("")),
		map[string]string{"username": name, "password": "password123"})
	if err != nil || r.Status != 200 {
		p.t.Fatalf("cookie login %s = %d %s (%v)", name, r.Status, r.Body, err)
	}
	return setCookie(p.t, r.Header)
}

// setCookie returns the value of the jwt cookie an answer sets.
func setCookie(t testing.TB, h http.Header) string {
	t.Helper()
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == "jwt" && c.Value != "" && c.HttpOnly {
			return c.Value
		}
	}
	t.Fatalf("no HttpOnly jwt cookie in Set-Cookie %q", h.Values("Set-Cookie"))
	return ""
}

// cookieRequest sends method path from the server's own page with tok in
// the cookie and no Authorization header.
func (p *proc) cookieRequest(method, path, tok string) testenv.Response {
	p.t.Helper()
	r, err := testenv.Send(method, p.url(path), testenv.Headers("Origin", p.url(""), "Cookie", "jwt="+tok), nil)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// cookieSock opens path on p with tok in the cookie and the server's own
// Origin, as a page of p would (protocols: subprotocols to ask for).
func (p *proc) cookieSock(path, tok string, protocols ...string) *sock {
	p.t.Helper()
	d := *websocket.DefaultDialer
	d.Subprotocols = protocols
	conn, resp, err := d.Dial(p.wsURL(path), testenv.Headers("Origin", p.url(""), "Cookie", "jwt="+tok))
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		p.t.Fatalf("dial %s with the cookie: %v (status %d)", path, err, status)
	}
	return newSock(p.t, conn)
}

// TestCookieSocketExpiryAndRevocation: JWT_EXPIRATION=3s and
// WS_TOKEN_GRACE=1s. Sockets opened with the cookie alone (legacy chat,
// switchboard.v1 status with no auth frame) close 4001 "token expired"
// within a sweep of exp + grace, like any other; meanwhile the page
// refreshes through the cookie (no token in the body), reconnects with the
// renewed cookie and is welcome. Logout-all through the cookie then closes
// it 4004, and the cookie no longer opens a socket. No token reaches the
// access log.
func TestCookieSocketExpiryAndRevocation(t *testing.T) {
	const grace = time.Second
	c := newCluster(t, "")
	c.extra = []string{"JWT_AUTH_COOKIE=jwt", "JWT_EXPIRATION=3s", "WS_TOKEN_GRACE=1s", "LOG_LEVEL=info"}
	p := c.start("A")
	p.register("alice", false)
	tok := p.cookieLogin("alice")
	tokens := []string{tok}
	exp := tokenExp(t, tok)

	chat := p.cookieSock("/ws/chat/", tok)
	if w := chat.next("welcome", 5*time.Second); w == nil || w["user"] != "alice" || w["group"] != "chat-a" {
		t.Fatalf("cookie chat welcome = %v, want alice in chat-a", w)
	}
	status := p.cookieSock("/ws/status/system/", tok, v1)
	if f := status.next("status", 5*time.Second); f == nil {
		t.Fatal("cookie v1 status socket: no status frame without an auth frame")
	}

	socks := map[string]*sock{"legacy chat": chat, "v1 status": status}
	until := exp.Add(grace + 2500*time.Millisecond)
	results := watchCloses(socks, until)
	// The page refreshes through the cookie every second, never reading
	// the token: no body, the renewed token comes back in Set-Cookie.
	cur := tok
	for time.Now().Before(until) {
		next := time.Now().Add(time.Second)
		r := p.cookieRequest(http.MethodPost, "/api-token-refresh/", cur)
		if r.Status != 200 {
			t.Fatalf("POST /api-token-refresh/ with the cookie = %d %s, want 200", r.Status, r.Body)
		}
		cur = setCookie(t, r.Header)
		tokens = append(tokens, cur)
		time.Sleep(time.Until(next))
	}
	for range socks {
		r := <-results
		if !r.ok || r.ce == nil || r.ce.Code != 4001 || r.ce.Text != "token expired" {
			t.Errorf("%s: close = %v (closed %v), want 4001 token expired", r.name, r.ce, r.ok)
			continue
		}
		if d := r.at.Sub(exp.Add(grace)); d < 0 || d > 2*time.Second {
			t.Errorf("%s closed %v after exp + grace, want within [0, 2s]", r.name, d.Round(time.Millisecond))
		} else {
			t.Logf("%s closed %v after exp + grace", r.name, d.Round(time.Millisecond))
		}
	}

	// Reconnect with the renewed cookie: welcome at once.
	again := p.cookieSock("/ws/chat/", cur)
	if w := again.next("welcome", 5*time.Second); w == nil || w["user"] != "alice" {
		t.Fatalf("reconnect with the renewed cookie: welcome = %v, want alice", w)
	}
	// Log out everywhere through the cookie: the socket closes 4004 within 1 s.
	if r := p.cookieRequest(http.MethodPost, "/api/users/me/logout-all", cur); r.Status != 204 {
		t.Fatalf("POST /api/users/me/logout-all with the cookie = %d %s, want 204", r.Status, r.Body)
	}
	start := time.Now()
	if ce, ok := again.waitClose(time.Second + 500*time.Millisecond); !ok || ce == nil || ce.Code != 4004 {
		t.Errorf("cookie socket after logout-all: close = %v (closed %v), want 4004", ce, ok)
	} else {
		t.Logf("closed 4004 %v after logout-all", time.Since(start).Round(time.Millisecond))
	}
	if r := p.cookieRequest(http.MethodGet, "/api/users/me", cur); r.Status != 401 || !strings.Contains(string(r.Body), "token revoked") {
		t.Errorf("GET /api/users/me with the revoked cookie = %d %s, want 401 token revoked", r.Status, r.Body)
	}
	revoked := p.cookieSock("/ws/chat/", cur)
	if ce, ok := revoked.waitClose(5 * time.Second); !ok || ce == nil || ce.Code != 4004 {
		t.Errorf("handshake with the revoked cookie: close = %v (closed %v), want 4004", ce, ok)
	}
	checkLogHasNoTokens(t, p, tokens)
}
