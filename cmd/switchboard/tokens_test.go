package main

// Issue 11 with real processes: a short token (JWT_EXPIRATION=3s,
// WS_TOKEN_GRACE=1s) closes open sockets 4001 "token expired" near
// exp + grace unless they refresh in-band; WS_TOKEN_EXPIRY=ignore keeps
// them; logout-all on one process closes the user's sockets on another
// (Redis) with 4004 within 1 s; and no token ever reaches the access log.

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"switchboard/internal/testenv"
)

const v1 = "switchboard.v1"

// dialV1 opens a switchboard.v1 socket to url (the server must echo the
// subprotocol) and collects its frames like dialSock.
func dialV1(t testing.TB, url string) *sock {
	t.Helper()
	d := *websocket.DefaultDialer
	d.Subprotocols = []string{v1}
	conn, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", redactURL(url), err)
	}
	if conn.Subprotocol() != v1 {
		conn.Close()
		t.Fatalf("dial %s: subprotocol %q, want %q", redactURL(url), conn.Subprotocol(), v1)
	}
	return newSock(t, conn)
}

func redactURL(u string) string {
	if i := strings.Index(u, "token="); i >= 0 {
		return u[:i] + "token=<t>"
	}
	return u
}

// sendJSON sends v as one text frame.
func (s *sock) sendJSON(v any) {
	s.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		s.t.Fatal(err)
	}
	s.send(string(b))
}

// chatV1 opens a v1 chat socket on p authenticated by its first frame (no
// token in the URL) and waits for the welcome.
func (p *proc) chatV1(tok string) *sock {
	p.t.Helper()
	s := dialV1(p.t, p.wsURL("/ws/chat/"))
	s.sendJSON(map[string]string{"type": "auth", "token": tok})
	if f := s.next("welcome", 5*time.Second); f == nil {
		p.t.Fatal("no welcome after the auth frame")
	}
	return s
}

// statusV1 opens a v1 status socket for key on p (auth frame) and waits
// for the current value.
func (p *proc) statusV1(key, tok string) *sock {
	p.t.Helper()
	s := dialV1(p.t, p.wsURL("/ws/status/"+key+"/"))
	s.sendJSON(map[string]string{"type": "auth", "token": tok})
	if f := s.next("status", 5*time.Second); f == nil {
		p.t.Fatal("no status after the auth frame")
	}
	return s
}

// refreshToken exchanges tok for a fresh one with POST /api-token-refresh/.
func (p *proc) refreshToken(tok string) string {
	p.t.Helper()
	status, body := p.call("POST", "/api-token-refresh/", "", map[string]string{"token": tok})
	var out struct{ Token string }
	if status != 200 || json.Unmarshal(body, &out) != nil || out.Token == "" {
		p.t.Fatalf("POST /api-token-refresh/ = %d %s, want 200 {token}", status, body)
	}
	return out.Token
}

// tokenExp reads the exp claim of a JWT (unverified).
func tokenExp(t testing.TB, tok string) time.Time {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct{ Exp float64 }
	if err != nil || json.Unmarshal(raw, &c) != nil || c.Exp == 0 {
		t.Fatalf("token payload %q has no exp (%v)", raw, err)
	}
	return time.Unix(int64(c.Exp), 0)
}

// roundTrip checks s is open and in its group: a message sent on it comes
// back within 5 s.
func (s *sock) roundTrip(v1 bool, text string) {
	s.t.Helper()
	if v1 {
		s.sendJSON(map[string]string{"type": "message", "text": text})
	} else {
		s.send(text)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		f := s.next("message", time.Until(deadline))
		if f == nil {
			s.t.Fatalf("%q did not come back (socket closed or silent)", text)
		}
		if f["text"] == text {
			return
		}
	}
}

// checkLogHasNoTokens fails if any part of a token but its common header
// appears in p's log (the access log is on stderr), and checks the log
// does have the socket requests, so it was on.
// (?token= values show as token=REDACTED.)
func checkLogHasNoTokens(t *testing.T, p *proc, tokens []string) {
	t.Helper()
	log := p.log.String()
	if !strings.Contains(log, "path=/ws/chat/") {
		t.Errorf("%s: the access log lacks the socket requests (LOG_LEVEL=info?):\n%s", p.name, log)
	}
	for i, tok := range tokens {
		if tok == "" {
			continue
		}
		if strings.Contains(log, tok) {
			t.Errorf("%s: the log contains token %d:\n%s", p.name, i, log)
			continue
		}
		for _, part := range strings.Split(tok, ".")[1:] {
			if strings.Contains(log, part) {
				t.Errorf("%s: the log contains part of token %d (%.12s…):\n%s", p.name, i, part, log)
			}
		}
	}
}

// TestTokenExpiryOnOpenSockets: with JWT_EXPIRATION=3s and
// WS_TOKEN_GRACE=1s, sockets that never refresh (legacy chat with
// ?token=, v1 chat and status with an auth frame) close 4001 "token
// expired" between exp + grace and one sweep later; a v1 socket that
// refreshes in-band stays open past it, and a fresh token is welcome at
// once. With WS_TOKEN_EXPIRY=ignore nothing closes. The access log holds
// none of the tokens.
func TestTokenExpiryOnOpenSockets(t *testing.T) {
	const grace = time.Second
	for _, mode := range []string{"enforce", "ignore"} {
		t.Run(mode, func(t *testing.T) {
			c := newCluster(t, "")
			c.extra = []string{"JWT_EXPIRATION=3s", "WS_TOKEN_GRACE=1s", "WS_TOKEN_EXPIRY=" + mode, "LOG_LEVEL=info"}
			p := c.start("A")
			tok, _ := p.register("alice", false)
			tokens := []string{tok}
			exp := tokenExp(t, tok)

			legacy := p.chat(tok)
			chat := p.chatV1(tok)
			status := p.statusV1("system", tok)
			keeper := p.chatV1(tok)

			// Watch the others close while the keeper refreshes in-band
			// once a second (the page does it at 80% of the lifetime), so
			// it outlives the first token.
			others := map[string]*sock{"legacy chat": legacy, "v1 chat": chat, "v1 status": status}
			until := exp.Add(grace + 2500*time.Millisecond)
			results := watchCloses(others, until)
			cur := tok
			for time.Now().Before(until) {
				next := time.Now().Add(time.Second)
				fresh := p.refreshToken(cur)
				tokens = append(tokens, fresh)
				keeper.sendJSON(map[string]string{"type": "refresh", "token": fresh})
				f := keeper.next("refreshed", 5*time.Second)
				if f == nil {
					t.Fatal("keeper: no refreshed frame (closed?)")
				}
				if got, want := int64(f["exp"].(float64)), tokenExp(t, fresh).Unix(); got != want {
					t.Fatalf("refreshed exp = %d, want the new token's %d", got, want)
				}
				cur = fresh
				time.Sleep(time.Until(next))
			}
			for range others {
				r := <-results
				if mode == "ignore" {
					if r.ok {
						t.Errorf("%s closed with %v under WS_TOKEN_EXPIRY=ignore", r.name, r.ce)
					}
					continue
				}
				if !r.ok || r.ce == nil || r.ce.Code != 4001 || r.ce.Text != "token expired" {
					t.Errorf("%s: close = %v (closed %v), want 4001 token expired", r.name, r.ce, r.ok)
					continue
				}
				// One sweep a second: after exp + grace, and within a
				// sweep (plus scheduling) of it.
				if d := r.at.Sub(exp.Add(grace)); d < 0 || d > 2*time.Second {
					t.Errorf("%s closed %v after exp + grace, want within [0, 2s]", r.name, d.Round(time.Millisecond))
				} else {
					t.Logf("%s closed %v after exp + grace", r.name, d.Round(time.Millisecond))
				}
			}
			keeper.roundTrip(true, "the refreshed socket stays")
			if mode == "ignore" {
				legacy.roundTrip(false, "legacy stays")
				chat.roundTrip(true, "v1 stays")
				status.sendJSON(map[string]string{"type": "refresh", "token": cur})
				if status.next("refreshed", 5*time.Second) == nil {
					t.Fatal("the status socket did not answer a refresh past exp + grace")
				}
			} else {
				// A client that reconnects with a fresh token is welcome at once.
				p.chatV1(cur).roundTrip(true, "welcome back")
				p.chat(cur)
			}
			checkLogHasNoTokens(t, p, tokens)
			if !strings.Contains(p.log.String(), "token=REDACTED") {
				t.Errorf("the access log lacks the redacted ?token= of the legacy socket:\n%s", p.log)
			}
		})
	}
}

// TestClusterLogoutAllClosesSocketsOnOtherProcesses: two processes on one
// Redis; alice logs out everywhere through process A, and every socket she
// has on B (legacy and v1, chat and status) closes 4004 "token revoked"
// within 1 s, while bob's stays. Her old token is refused on B at once
// (REST 401, handshake 4004), and a token from a login right after works
// on B at once. No token reaches either access log.
func TestClusterLogoutAllClosesSocketsOnOtherProcesses(t *testing.T) {
	c := newCluster(t, testenv.RedisURL(t))
	c.extra = []string{"LOG_LEVEL=info"}
	a, b := c.start("A"), c.start("B")
	tok, _ := a.register("alice", false)
	other := b.login("alice") // a second device
	bobTok, _ := b.register("bob", false)
	tokens := []string{tok, other, bobTok}

	sockets := map[string]*sock{
		"legacy chat on B": b.chat(tok),
		"v1 chat on B":     b.chatV1(other),
		"v1 status on B":   b.statusV1("system", tok),
		"v1 chat on A":     a.chatV1(tok),
	}
	bob := b.chat(bobTok)
	waitPresence(t, a, tok, "chat-a", []string{"alice"})

	start := time.Now()
	if status, body := a.call("POST", "/api/users/me/logout-all", "JWT "+tok, nil); status != 204 {
		t.Fatalf("POST /api/users/me/logout-all on A = %d %s, want 204", status, body)
	}
	for name, s := range sockets {
		ce, ok := s.waitClose(time.Second - time.Since(start))
		if !ok || ce == nil || ce.Code != 4004 || ce.Text != "token revoked" {
			t.Errorf("%s: close = %v (closed %v) within 1 s of logout-all, want 4004 token revoked", name, ce, ok)
		}
	}
	t.Logf("alice's %d sockets closed %v after logout-all", len(sockets), time.Since(start).Round(time.Millisecond))
	bob.roundTrip(false, "bob stays")

	for _, old := range []string{tok, other} {
		status, body := b.call("GET", "/api/users/me", "JWT "+old, nil)
		if status != 401 || !strings.Contains(string(body), "token revoked") {
			t.Errorf("GET /api/users/me on B with a revoked token = %d %s, want 401 token revoked", status, body)
		}
		s := dialSock(t, b.wsURL("/ws/chat/?token="+url.QueryEscape(old)))
		if ce, ok := s.waitClose(5 * time.Second); !ok || ce == nil || ce.Code != 4004 {
			t.Errorf("legacy socket on B with a revoked token: close %v, want 4004", ce)
		}
		if status, _ := b.call("POST", "/api-token-refresh/", "", map[string]string{"token": old}); status != 400 {
			t.Errorf("POST /api-token-refresh/ on B with a revoked token = %d, want 400", status)
		}
	}

	fresh := a.login("alice")
	tokens = append(tokens, fresh)
	if status, body := b.call("GET", "/api/users/me", "JWT "+fresh, nil); status != 200 {
		t.Errorf("GET /api/users/me on B with a token from right after = %d %s, want 200", status, body)
	}
	b.chatV1(fresh).roundTrip(true, "back on B")
	for _, p := range []*proc{a, b} {
		checkLogHasNoTokens(t, p, tokens)
	}
}
