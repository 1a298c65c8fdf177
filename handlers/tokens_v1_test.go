package handlers_test

// Issue 11 on real sockets: the switchboard.v1 subprotocol (auth by first
// frame, message ids, in-band refresh, error frames), expiry on open
// sockets, and token revocation (logout-all, password change, staff
// revoke_tokens), on SQLite and PostgreSQL.

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v4"
	"github.com/gorilla/websocket"

	"switchboard/handlers"
	"switchboard/internal/testenv"
	"switchboard/middleware"
	"switchboard/models"
	"switchboard/ws"
)

// dialProto opens a WebSocket to path asking for protocols (none: a
// legacy socket) and checks which subprotocol the server chose (want).
func (e *env) dialProto(tb testing.TB, path, want string, protocols ...string) *websocket.Conn {
	tb.Helper()
	d := *websocket.DefaultDialer
	d.Subprotocols = protocols
	conn, resp, err := d.Dial(e.wsURL(path), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		tb.Fatalf("dial %s with subprotocols %q: %v (status %d)", redactTokenIn(path), protocols, err, status)
	}
	tb.Cleanup(func() { conn.Close() })
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != want || conn.Subprotocol() != want {
		tb.Fatalf("dial %s with subprotocols %q: Sec-WebSocket-Protocol %q (conn %q), want %q",
			redactTokenIn(path), protocols, got, conn.Subprotocol(), want)
	}
	return conn
}

// dialV1 opens a switchboard.v1 socket to path.
func (e *env) dialV1(tb testing.TB, path string) *websocket.Conn {
	tb.Helper()
	return e.dialProto(tb, path, ws.Subprotocol, ws.Subprotocol)
}

// chatV1 opens a switchboard.v1 chat socket for tok, authenticated by its
// first frame (no token in the URL), and returns it with its welcome.
func (e *env) chatV1(tb testing.TB, tok string) (*websocket.Conn, map[string]any) {
	tb.Helper()
	conn := e.dialV1(tb, "/ws/chat/")
	sendJSON(tb, conn, map[string]any{"type": "auth", "token": tok})
	w := readFrame(tb, conn)
	if w["type"] != "welcome" {
		tb.Fatalf("first frame after auth = %v, want welcome", w)
	}
	return conn, w
}

func redactTokenIn(path string) string {
	if i := strings.Index(path, "token="); i >= 0 {
		return path[:i] + "token=<t>"
	}
	return path
}

// sendJSON writes v as one text frame (a string is sent as it is).
func sendJSON(tb testing.TB, conn *websocket.Conn, v any) {
	tb.Helper()
	b, ok := v.(string)
	if !ok {
		b = string(jsonBody(tb, v))
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte(b)); err != nil {
		tb.Fatalf("send %s: %v", b, err)
	}
}

// expectChatWorks checks that conn is open and still a member of its
// group: it sends marker as chat text (a v1 message frame, or a legacy
// text frame) and waits for it to come back. (A read timeout would break
// gorilla's read state, so liveness is checked with a round trip.)
func expectChatWorks(tb testing.TB, conn *websocket.Conn, v1 bool, marker string) map[string]any {
	tb.Helper()
	if v1 {
		sendJSON(tb, conn, map[string]any{"type": "message", "text": marker})
	} else {
		sendJSON(tb, conn, marker)
	}
	for i := 0; i < 100; i++ {
		if f := readFrame(tb, conn); f["type"] == "message" && f["text"] == marker {
			return f
		}
	}
	tb.Fatalf("%q did not come back within 100 frames", marker)
	return nil
}

// readNext reads the next frame that is not a presence event (join or
// leave: their timing relative to other frames is not the point here).
func readNext(tb testing.TB, conn *websocket.Conn) map[string]any {
	tb.Helper()
	for {
		if f := readFrame(tb, conn); f["type"] != ws.PresenceJoin && f["type"] != ws.PresenceLeave {
			return f
		}
	}
}

// metricValue scrapes one unlabelled metric of the env's hub through the
// real Prometheus handler (newEnv serves no /metrics route).
func metricValue(tb testing.TB, e *env, name string) float64 {
	tb.Helper()
	rec := httptest.NewRecorder()
	handlers.NewMetrics(e.hub, nil).Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		tb.Fatalf("GET /metrics = %d, want 200", rec.Code)
	}
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatalf("metrics line %q: %v", line, err)
			}
			return f
		}
	}
	tb.Fatalf("GET /metrics has no %s:\n%s", name, rec.Body.String())
	return 0
}

// expClaim returns the exp claim of tok, unix seconds.
func expClaim(tb testing.TB, tok string) int64 {
	tb.Helper()
	return claimInt(tb, jwtSegment(tb, tok, 1), "exp")
}

// frameExp returns the integer "exp" of a frame.
func frameExp(tb testing.TB, f map[string]any) int64 {
	tb.Helper()
	v, ok := f["exp"].(float64)
	if !ok || v != float64(int64(v)) {
		tb.Fatalf("frame %v: exp = %#v, want unix seconds", f, f["exp"])
	}
	return int64(v)
}

// TestV1SubprotocolNegotiation: switchboard.v1 is echoed when asked for;
// without it (or with only other subprotocols) no subprotocol is chosen
// and the seed's protocol is unchanged: the README's browser snippet (a
// plain text frame is chat text) works, a JSON-looking text is chat text
// too, and the welcome carries exp in both protocols.
func TestV1SubprotocolNegotiation(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			alice := e.createUser(t, "alice", false)
			tok := e.token(t, alice)
			q := "?token=" + url.QueryEscape(tok)

			for _, tc := range []struct {
				name      string
				protocols []string
				want      string
			}{
				{"legacy", nil, ""},
				{"other subprotocol only", []string{"chat", "switchboard.v2"}, ""},
				{"v1", []string{ws.Subprotocol}, ws.Subprotocol},
				{"v1 among others", []string{"chat", ws.Subprotocol}, ws.Subprotocol},
			} {
				t.Run(tc.name, func(t *testing.T) {
					conn := e.dialProto(t, "/ws/chat/"+q, tc.want, tc.protocols...)
					w := readFrame(t, conn)
					if w["type"] != "welcome" || w["user"] != "alice" || w["group"] != "chat-a" {
						t.Fatalf("welcome = %v, want alice in chat-a", w)
					}
					if got, want := frameExp(t, w), expClaim(t, tok); got != want {
						t.Errorf("welcome exp = %d, want the token's exp %d", got, want)
					}
					if tc.want != "" {
						return
					}
					// The original snippet: ws.send("hello, group a").
					expectChatWorks(t, conn, false, "hello, group a")
					// In legacy, JSON is just text: no v1 frame handling.
					js := `{"type":"message","text":"x","id":"1"}`
					sendJSON(t, conn, js)
					m := readUntil(t, conn, "message")
					if m["text"] != js || m["id"] != nil {
						t.Errorf("legacy JSON text came back as %v, want text %q and no id", m, js)
					}
					for _, bad := range []string{`{"type":"refresh","token":"x"}`, `not json`} {
						sendJSON(t, conn, bad)
						if m := readNext(t, conn); m["type"] != "message" || m["text"] != bad {
							t.Errorf("legacy %q came back as %v, want it as chat text", bad, m)
						}
					}
				})
			}
		})
	}
}

// TestV1AuthByFirstFrame: a switchboard.v1 socket without ?token= is
// authenticated by its first frame (and joins its group), waits at most
// WS_AUTH_TIMEOUT for it, refuses bad tokens with their close, and answers
// other frames before auth with an error frame; ?token= still works for
// v1; a legacy socket without a token closes at once.
func TestV1AuthByFirstFrame(t *testing.T) {
	const authTimeout = 400 * time.Millisecond
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect, withClient(func(c *ws.ClientConfig) { c.AuthTimeout = authTimeout }))
			alice, anna := e.createUser(t, "alice", false), e.createUser(t, "anna", false)
			tok := e.token(t, alice)

			t.Run("auth frame", func(t *testing.T) {
				watcher := e.chat(t, anna)
				conn, w := e.chatV1(t, tok)
				if w["user"] != "alice" || w["group"] != "chat-a" || frameExp(t, w) != expClaim(t, tok) {
					t.Fatalf("welcome = %v, want alice in chat-a with exp %d", w, expClaim(t, tok))
				}
				for j := readUntil(t, watcher, "join"); j["user"] != "alice"; j = readUntil(t, watcher, "join") {
				}
				// Past the auth timeout, the authenticated socket stays.
				time.Sleep(authTimeout + 200*time.Millisecond)
				expectChatWorks(t, conn, true, "still here")
				if m := readUntil(t, watcher, "message"); m["text"] != "still here" || m["id"] != nil {
					t.Fatalf("anna got %v, want alice's message", m)
				}
			})

			t.Run("token in URL", func(t *testing.T) {
				conn := e.dialV1(t, "/ws/chat/?token="+url.QueryEscape(tok))
				if w := readFrame(t, conn); w["type"] != "welcome" || w["user"] != "alice" {
					t.Fatalf("first frame = %v, want alice's welcome without an auth frame", w)
				}
			})

			t.Run("timeout", func(t *testing.T) {
				for _, path := range []string{"/ws/chat/", "/ws/status/system/"} {
					start := time.Now()
					conn := e.dialV1(t, path)
					expectCloseWithin(t, conn, 4001, "token missing", authTimeout+2*time.Second)
					if el := time.Since(start); el < authTimeout-50*time.Millisecond {
						t.Errorf("%s: closed after %v, before the auth timeout %v", path, el, authTimeout)
					}
				}
			})

			t.Run("frames before auth", func(t *testing.T) {
				conn := e.dialV1(t, "/ws/chat/")
				sendJSON(t, conn, map[string]any{"type": "message", "text": "too early"})
				if f := readFrame(t, conn); f["type"] != "error" || f["reason"] == "" {
					t.Fatalf("message before auth answered %v, want an error frame", f)
				}
				sendJSON(t, conn, map[string]any{"type": "refresh", "token": tok})
				if f := readFrame(t, conn); f["type"] != "error" {
					t.Fatalf("refresh before auth answered %v, want an error frame", f)
				}
				sendJSON(t, conn, map[string]any{"type": "auth", "token": tok})
				if f := readFrame(t, conn); f["type"] != "welcome" {
					t.Fatalf("auth after errors answered %v, want welcome", f)
				}
			})

			t.Run("bad tokens", func(t *testing.T) {
				now := time.Now()
				expired := signClaims(t, gojwt.SigningMethodHS256, e.secret, userClaims(alice, now.Add(-time.Hour), time.Minute))
				gone := e.createUser(t, "gone", false)
				goneTok := e.token(t, gone)
				if err := e.users.Delete(context.Background(), gone.ID); err != nil {
					t.Fatal(err)
				}
				for _, tc := range []struct {
					name, token string
					code        int
					reason      string
				}{
					{"garbage", "abc.def.ghi", 4001, "token invalid"},
					{"empty", "", 4001, "token missing"},
					{"expired", expired, 4001, "token expired"},
					{"other secret", signClaims(t, gojwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), userClaims(alice, now, time.Minute)), 4001, "token invalid"},
					{"deleted user", goneTok, 4003, "user not found"},
				} {
					conn := e.dialV1(t, "/ws/chat/")
					sendJSON(t, conn, map[string]any{"type": "auth", "token": tc.token})
					t.Run(tc.name, func(t *testing.T) { expectClose(t, conn, tc.code, tc.reason) })
				}
			})

			t.Run("legacy without token", func(t *testing.T) {
				for _, path := range []string{"/ws/chat/", "/ws/status/system/"} {
					start := time.Now()
					conn := e.dialProto(t, path, "")
					expectCloseWithin(t, conn, 4001, "token missing", time.Second)
					if el := time.Since(start); el >= authTimeout {
						t.Errorf("legacy %s without a token closed after %v, want at once (before the v1 auth timeout %v)", path, el, authTimeout)
					}
				}
			})
		})
	}
}

// TestV1MessageIDOnlyInSendersCopy: a v1 message frame is broadcast as a
// legacy chat message; only the sender's own copy carries its id, and a
// message without id has none anywhere.
func TestV1MessageIDOnlyInSendersCopy(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			alice, anna, amy := e.createUser(t, "alice", false), e.createUser(t, "anna", false), e.createUser(t, "amy", false)
			sender, _ := e.chatV1(t, e.token(t, alice))
			legacy := e.chat(t, anna)
			other, _ := e.chatV1(t, e.token(t, amy))
			// A second socket of the sender (another tab) is not the sender.
			tab, _ := e.chatV1(t, e.token(t, alice))

			const id = "c-42 é"
			sendJSON(t, sender, map[string]any{"type": "message", "text": "hi <b>all</b>", "id": id})
			own := readUntil(t, sender, "message")
			if own["id"] != id || own["text"] != "hi <b>all</b>" || own["user"] != "alice" || own["group"] != "chat-a" {
				t.Errorf("sender's copy = %v, want alice's text with id %q", own, id)
			}
			for name, c := range map[string]*websocket.Conn{"anna (legacy)": legacy, "amy (v1)": other, "alice's other tab": tab} {
				m := readUntil(t, c, "message")
				if _, has := m["id"]; has || m["text"] != "hi <b>all</b>" || m["ts"] != own["ts"] {
					t.Errorf("%s got %v, want the message without id (ts %v)", name, m, own["ts"])
				}
			}
			sendJSON(t, sender, map[string]any{"type": "message", "text": "no id"})
			if m := readUntil(t, sender, "message"); m["text"] != "no id" {
				t.Fatalf("sender got %v", m)
			} else if _, has := m["id"]; has {
				t.Errorf("message without id came back with one: %v", m)
			}
			sendJSON(t, sender, map[string]any{"type": "message", "text": "empty id", "id": ""})
			if m := readUntil(t, sender, "message"); m["text"] != "empty id" {
				t.Fatalf("sender got %v", m)
			} else if _, has := m["id"]; has {
				t.Errorf("message with an empty id came back with one: %v", m)
			}
		})
	}
}

// TestV1Refresh: a refresh frame replaces the socket's token and is
// answered with the new exp, without reconnecting; a token of another
// user, or a bad one, closes the socket 4001 with its reason.
func TestV1Refresh(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			clock := newAuthClock()
			e := newEnv(t, dialect, withClock(clock))
			alice, bob := e.createUser(t, "alice", false), e.createUser(t, "bob", false)
			tok := e.token(t, alice)

			t.Run("same user", func(t *testing.T) {
				conn, w := e.chatV1(t, tok)
				clock.Advance(90 * time.Second) // the new token expires later
				fresh := e.token(t, alice)
				if expClaim(t, fresh) <= frameExp(t, w) {
					t.Fatalf("fresh token exp %d not after the welcome's %d", expClaim(t, fresh), frameExp(t, w))
				}
				sendJSON(t, conn, map[string]any{"type": "refresh", "token": fresh})
				r := readNext(t, conn)
				if r["type"] != "refreshed" || frameExp(t, r) != expClaim(t, fresh) {
					t.Fatalf("refresh answered %v, want refreshed with exp %d", r, expClaim(t, fresh))
				}
				// A second auth frame on an authenticated socket is a refresh too.
				sendJSON(t, conn, map[string]any{"type": "auth", "token": fresh})
				if r := readNext(t, conn); r["type"] != "refreshed" {
					t.Fatalf("auth on an authenticated socket answered %v, want refreshed", r)
				}
				expectChatWorks(t, conn, true, "after refresh")
				// A refresh token from /api-token-refresh/ works as well.
				_, body := e.do(t, http.MethodPost, "/api-token-refresh/", "", map[string]string{"token": fresh})
				viaREST, _ := body["token"].(string)
				sendJSON(t, conn, map[string]any{"type": "refresh", "token": viaREST})
				if r := readNext(t, conn); r["type"] != "refreshed" || frameExp(t, r) != expClaim(t, viaREST) {
					t.Fatalf("refresh with a REST-refreshed token answered %v", r)
				}
			})

			t.Run("status socket", func(t *testing.T) {
				conn := e.dialV1(t, "/ws/status/system/?token="+url.QueryEscape(tok))
				if f := readFrame(t, conn); f["type"] != "status" {
					t.Fatalf("first frame %v, want status", f)
				}
				fresh := e.token(t, alice)
				sendJSON(t, conn, map[string]any{"type": "refresh", "token": fresh})
				if r := readFrame(t, conn); r["type"] != "refreshed" || frameExp(t, r) != expClaim(t, fresh) {
					t.Fatalf("status refresh answered %v, want refreshed with exp %d", r, expClaim(t, fresh))
				}
			})

			expired := signClaims(t, gojwt.SigningMethodHS256, e.secret, userClaims(alice, time.Now().Add(-time.Hour), time.Minute))
			for _, tc := range []struct {
				name, token, reason string
			}{
				{"other user", e.token(t, bob), "token invalid"},
				{"garbage", "abc.def.ghi", "token invalid"},
				{"empty", "", "token missing"},
				{"expired", expired, "token expired"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					watcher := e.chat(t, e.createUser(t, "a-"+strings.ReplaceAll(tc.name, " ", "-"), false))
					conn, _ := e.chatV1(t, tok)
					sendJSON(t, conn, map[string]any{"type": "refresh", "token": tc.token})
					expectClose(t, conn, 4001, tc.reason)
					// The refused socket left its group; the group goes on.
					expectChatWorks(t, watcher, false, "group goes on")
				})
			}
		})
	}
}

// TestV1ProtocolErrors: malformed frames, unknown types and missing or
// mistyped fields are answered with an error frame (a reason fit for a
// close frame); the socket stays open and can still chat, and
// switchboard_protocol_errors_total counts every one.
func TestV1ProtocolErrors(t *testing.T) {
	bad := []string{
		`not json`,
		`{"type":"message","text":"unterminated`,
		`[]`,
		`null`,
		`"message"`,
		`42`,
		`{}`,
		`{"type":1}`,
		`{"type":null}`,
		`{"type":"bogus"}`,
		`{"type":"MESSAGE","text":"x"}`,
		`{"type":"` + strings.Repeat("\\u0001", 32) + `"}`,
		`{"type":"` + strings.Repeat("é", 200) + `"}`,
		`{"type":"message"}`,
		`{"type":"message","text":5}`,
		`{"type":"message","text":null}`,
		`{"type":"message","text":"x","id":7}`,
		`{"type":"message","text":"x","id":"` + strings.Repeat("i", ws.MaxClientIDLength+1) + `"}`,
		`{"type":"refresh"}`,
		`{"type":"refresh","token":["x"]}`,
		`{"type":"message","text":"x"} {"type":"message","text":"y"}`,
		`{"type":"message","text":"x"}]`,
		`{"type":"message","text":"x"}}`,
	}
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			alice := e.createUser(t, "alice", false)
			conn, _ := e.chatV1(t, e.token(t, alice))
			before := metricValue(t, e, "switchboard_protocol_errors_total")
			for i, frame := range bad {
				sendJSON(t, conn, frame)
				f := readNext(t, conn)
				reason, _ := f["reason"].(string)
				if f["type"] != "error" || reason == "" || len(reason) > 123 {
					t.Errorf("frame %q answered %v, want an error frame with a reason of 1–123 bytes (got %d)", frame, f, len(reason))
					if f["type"] == "message" {
						continue
					}
				}
				// Every few frames, check the socket still chats.
				if i%5 == 4 {
					expectChatWorks(t, conn, true, fmt.Sprintf("alive %d", i))
				}
			}
			expectChatWorks(t, conn, true, "still chatting")
			if got := metricValue(t, e, "switchboard_protocol_errors_total") - before; got != float64(len(bad)) {
				t.Errorf("switchboard_protocol_errors_total rose by %v after %d bad frames, want %d", got, len(bad), len(bad))
			}
			if got := e.hub.Stats.ProtocolErrors.Load(); got < int64(len(bad)) {
				t.Errorf("hub ProtocolErrors = %d, want at least %d", got, len(bad))
			}
		})
	}
}

// TestV1StatusSocket: a v1 status socket authenticates by its first frame
// and then gets the current value first; it takes refresh frames, and a
// message frame gets an error frame (the socket stays subscribed).
func TestV1StatusSocket(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			root, alice := e.createUser(t, "root", true), e.createUser(t, "alice", false)
			staff := "JWT " + e.token(t, root)
			if status, body := e.do(t, http.MethodPut, "/api/status/system", staff, map[string]any{"value": map[string]any{"load": 1}}); status != 200 {
				t.Fatalf("PUT /api/status/system = %d %v", status, body)
			}
			tok := e.token(t, alice)
			conn := e.dialV1(t, "/ws/status/system/")
			sendJSON(t, conn, map[string]any{"type": "auth", "token": tok})
			f := readFrame(t, conn)
			if f["type"] != "status" || f["key"] != "system" || f["version"] != float64(1) {
				t.Fatalf("first frame after auth = %v, want status system v1", f)
			}
			if v, _ := f["value"].(map[string]any); v["load"] != float64(1) {
				t.Fatalf("status value = %v, want {load: 1}", f["value"])
			}
			sendJSON(t, conn, map[string]any{"type": "message", "text": "hi"})
			if f := readFrame(t, conn); f["type"] != "error" || f["reason"] == "" {
				t.Fatalf("message frame on a status socket answered %v, want an error frame", f)
			}
			sendJSON(t, conn, map[string]any{"type": "refresh", "token": tok})
			if f := readFrame(t, conn); f["type"] != "refreshed" || frameExp(t, f) != expClaim(t, tok) {
				t.Fatalf("refresh answered %v, want refreshed with exp %d", f, expClaim(t, tok))
			}
			if status, body := e.do(t, http.MethodPut, "/api/status/system", staff, map[string]any{"value": "v2"}); status != 200 {
				t.Fatalf("PUT /api/status/system = %d %v", status, body)
			}
			if f := readFrame(t, conn); f["type"] != "status" || f["version"] != float64(2) || f["value"] != "v2" {
				t.Fatalf("after PUT got %v, want status v2", f)
			}
			// A refresh for another user closes the status socket too.
			sendJSON(t, conn, map[string]any{"type": "refresh", "token": e.token(t, root)})
			expectClose(t, conn, 4001, "token invalid")
		})
	}
}

// revocation is one way of ending a user's tokens: it runs as the user
// (tok) or as staff and returns the token the user holds afterwards ("" if
// none was given back).
type revocation struct {
	name   string
	revoke func(t *testing.T, e *env, u *models.User, tok, staff string) string
}

var revocations = []revocation{
	{"logout-all", func(t *testing.T, e *env, u *models.User, tok, _ string) string {
		r := e.rest(t, http.MethodPost, "/api/users/me/logout-all", "", "JWT "+tok, nil)
		if r.status != http.StatusNoContent || len(r.body) != 0 {
			t.Fatalf("POST /api/users/me/logout-all = %d %q, want 204 and no body", r.status, r.body)
		}
		return ""
	}},
	{"password change", func(t *testing.T, e *env, u *models.User, tok, _ string) string {
		status, body := e.do(t, http.MethodPost, "/api/users/me/password", "JWT "+tok,
			map[string]string{"old_password": "password123", "new_password": "new-password-456"})
		fresh, _ := body["token"].(string)
		if status != 200 || fresh == "" {
			t.Fatalf("POST /api/users/me/password = %d %v, want 200 {token}", status, body)
		}
		return fresh
	}},
	{"staff revoke_tokens", func(t *testing.T, e *env, u *models.User, _, staff string) string {
		status, body := e.do(t, http.MethodPatch, fmt.Sprintf("/api/users/%d", u.ID), "JWT "+staff, map[string]any{"revoke_tokens": true})
		if status != 200 || body["username"] != u.Username || body["is_active"] != true {
			t.Fatalf("PATCH /api/users/%d {revoke_tokens} = %d %v, want 200 with the (still active) user", u.ID, status, body)
		}
		if _, leaked := body["token_version"]; leaked {
			t.Errorf("PATCH answer shows token_version: %v", body)
		}
		return ""
	}},
}

// TestRevocationEndsTokens: logout-all, a password change and a staff
// revoke_tokens each end every token the user held: REST refuses them
// (401 "token revoked"), refresh and verify answer 400, every open socket
// of the user (chat and status, legacy and v1) closes 4004 within 1 s,
// a revoked token cannot open or refresh a socket (4004), and other users
// are untouched. A token minted after (login, within the same second) is
// accepted at once; a PyJWT token without token_version is refused.
func TestRevocationEndsTokens(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		for _, rv := range revocations {
			t.Run(string(dialect)+"/"+rv.name, func(t *testing.T) {
				e := newEnv(t, dialect)
				alice, anna := e.createUser(t, "alice", false), e.createUser(t, "anna", false)
				staff := e.token(t, e.createUser(t, "root", true))
				tok := e.login(t, "alice", "password123")
				other := e.login(t, "alice", "password123") // a second device
				annaTok := e.token(t, anna)

				sockets := map[string]*websocket.Conn{}
				sockets["chat legacy"] = e.chat(t, alice)
				sockets["chat v1 (auth frame)"], _ = e.chatV1(t, other)
				st := e.dialV1(t, "/ws/status/system/")
				sendJSON(t, st, map[string]any{"type": "auth", "token": tok})
				if f := readFrame(t, st); f["type"] != "status" {
					t.Fatalf("status v1 first frame %v", f)
				}
				sockets["status v1"] = st
				sl := e.dialProto(t, "/ws/status/system/?token="+url.QueryEscape(other), "")
				if f := readFrame(t, sl); f["type"] != "status" {
					t.Fatalf("status legacy first frame %v", f)
				}
				sockets["status legacy"] = sl
				annaConn := e.chat(t, anna)

				start := time.Now()
				fresh := rv.revoke(t, e, alice, tok, staff)
				for name, c := range sockets {
					t.Run(name, func(t *testing.T) {
						expectCloseWithin(t, c, 4004, "token revoked", time.Second-time.Since(start)+50*time.Millisecond)
					})
				}
				t.Logf("%d sockets closed 4004 %v after the request started", len(sockets), time.Since(start).Round(time.Millisecond))
				expectChatWorks(t, annaConn, false, "anna is unaffected")

				for _, old := range []string{tok, other} {
					status, body := e.do(t, http.MethodGet, "/api/users/me", "JWT "+old, nil)
					if status != 401 || errMessage(body) != "token revoked" {
						t.Errorf("GET /api/users/me with a revoked token = %d %v, want 401 token revoked", status, body)
					}
					for _, ep := range []string{"/api-token-refresh/", "/api-token-verify/"} {
						status, body := e.do(t, http.MethodPost, ep, "", map[string]string{"token": old})
						if status != 400 || nonFieldError(body) == "" {
							t.Errorf("POST %s with a revoked token = %d %v, want 400 non_field_errors", ep, status, body)
						}
					}
				}
				// A revoked token opens no socket, in either protocol.
				expectClose(t, e.dialProto(t, "/ws/chat/?token="+url.QueryEscape(tok), ""), 4004, "token revoked")
				c := e.dialV1(t, "/ws/chat/")
				sendJSON(t, c, map[string]any{"type": "auth", "token": tok})
				expectClose(t, c, 4004, "token revoked")
				if status, _ := e.do(t, http.MethodGet, "/api/users/me", "JWT "+annaTok, nil); status != 200 {
					t.Errorf("anna's token = %d after alice's revocation, want 200", status)
				}
				if status, _ := e.do(t, http.MethodGet, "/api/users/me", "JWT "+staff, nil); status != 200 {
					t.Errorf("the staff user's token = %d after alice's revocation, want 200", status)
				}

				// Tokens issued after are accepted at once, within the same
				// second as the revocation.
				password := "password123"
				if fresh != "" {
					password = "new-password-456"
				}
				newer := []string{e.login(t, "alice", password)}
				if fresh != "" {
					newer = append(newer, fresh)
				}
				for _, nt := range newer {
					if a, b := claimInt(t, jwtSegment(t, nt, 1), "orig_iat"), claimInt(t, jwtSegment(t, tok, 1), "orig_iat"); a < b {
						t.Fatalf("new token orig_iat %d before the old one's %d", a, b)
					}
					if status, body := e.do(t, http.MethodGet, "/api/users/me", "JWT "+nt, nil); status != 200 {
						t.Errorf("GET /api/users/me with a token issued after the revocation = %d %v, want 200", status, body)
					}
					conn, _ := e.chatV1(t, nt)
					expectChatWorks(t, conn, true, "back")
					// A refreshed copy of it is good too.
					_, body := e.do(t, http.MethodPost, "/api-token-refresh/", "", map[string]string{"token": nt})
					if r, _ := body["token"].(string); r == "" {
						t.Errorf("POST /api-token-refresh/ with a token issued after = %v", body)
					} else if status, _ := e.do(t, http.MethodGet, "/api/users/me", "JWT "+r, nil); status != 200 {
						t.Errorf("its refreshed token = %d, want 200", status)
					}
				}

				// A socket opened with a new token refuses a revoked one in-band.
				conn, _ := e.chatV1(t, newer[0])
				sendJSON(t, conn, map[string]any{"type": "refresh", "token": other})
				expectClose(t, conn, 4004, "token revoked")
			})
		}
	}
}

// TestRevocationRefusesPyJWTTokens: a token without token_version (as
// PyJWT and rest_framework_jwt mint them) counts as issued before any
// revocation: accepted while the user never revoked, refused after, even
// when minted after the revocation.
func TestRevocationRefusesPyJWTTokens(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			u := e.createUser(t, "pyuser", false)
			claims := fmt.Sprintf(`{"user_id": %d, "username": "pyuser", "email": "", "exp": "=int(now)+300", "orig_iat": "=int(now)"}`, u.ID)
			noOrigIat := fmt.Sprintf(`{"user_id": %d, "username": "pyuser", "email": "", "exp": "=now+300"}`, u.ID)
			before := pyjwt(t, pyMint, string(e.secret), claims)
			if status, body := e.do(t, http.MethodGet, "/api/users/me", "JWT "+before, nil); status != 200 {
				t.Fatalf("PyJWT token before any revocation = %d %v, want 200", status, body)
			}
			if _, has := jwtSegment(t, before, 1)["token_version"]; has {
				t.Fatal("the PyJWT token has token_version; the test needs one without")
			}
			conn := e.dialProto(t, "/ws/chat/?token="+url.QueryEscape(before), "")
			readUntil(t, conn, "welcome")

			tok := e.login(t, "pyuser", "password123")
			if r := e.rest(t, http.MethodPost, "/api/users/me/logout-all", "", "JWT "+tok, nil); r.status != 204 {
				t.Fatalf("logout-all = %d %s", r.status, r.body)
			}
			expectCloseWithin(t, conn, 4004, "token revoked", time.Second)
			after := pyjwt(t, pyMint, string(e.secret), claims)
			djangoShaped := pyjwt(t, pyMint, string(e.secret), noOrigIat)
			for name, pt := range map[string]string{"minted before": before, "minted after": after, "without orig_iat": djangoShaped} {
				status, body := e.do(t, http.MethodGet, "/api/users/me", "JWT "+pt, nil)
				if status != 401 || errMessage(body) != "token revoked" {
					t.Errorf("PyJWT token %s the revocation = %d %v, want 401 token revoked", name, status, body)
				}
				c := e.dialV1(t, "/ws/chat/")
				sendJSON(t, c, map[string]any{"type": "auth", "token": pt})
				expectClose(t, c, 4004, "token revoked")
			}
			if status, body := e.do(t, http.MethodPost, "/api-token-refresh/", "", map[string]string{"token": after}); status != 400 || nonFieldError(body) == "" {
				t.Errorf("POST /api-token-refresh/ with a revoked PyJWT token = %d %v, want 400", status, body)
			}
		})
	}
}

// TestChangePasswordValidation: the old password must match (400 with
// fields.old_password) and the new one must be valid (400 with
// fields.new_password); a refused change revokes nothing. Afterwards only
// the new password logs in.
func TestChangePasswordValidation(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			e.createUser(t, "alice", false)
			tok := e.login(t, "alice", "password123")
			conn, _ := e.chatV1(t, tok)
			for _, tc := range []struct {
				name  string
				body  any
				field string
			}{
				{"wrong old password", map[string]string{"old_password": "wrong-password", "new_password": "new-password-456"}, "old_password"},
				{"missing old password", map[string]string{"new_password": "new-password-456"}, "old_password"},
				{"too short new password", map[string]string{"old_password": "password123", "new_password": "short"}, "new_password"},
				{"empty new password", map[string]string{"old_password": "password123", "new_password": ""}, "new_password"},
			} {
				status, body := e.do(t, http.MethodPost, "/api/users/me/password", "JWT "+tok, tc.body)
				if status != 400 || errorCode(t, "POST /api/users/me/password", body) != "invalid" {
					t.Errorf("%s: POST /api/users/me/password = %d %v, want 400 invalid", tc.name, status, body)
					continue
				}
				if f := errorFields(body); f[tc.field] == nil || len(f) != 1 {
					t.Errorf("%s: fields = %v, want only %s", tc.name, f, tc.field)
				}
			}
			for _, tc := range []struct {
				name, contentType, body string
				status                  int
			}{
				{"malformed JSON", "application/json", `{"old_password":`, 400},
				{"not JSON", "text/plain", `old_password=x`, 415},
			} {
				if r := e.rest(t, http.MethodPost, "/api/users/me/password", tc.contentType, "JWT "+tok, []byte(tc.body)); r.status != tc.status {
					t.Errorf("%s: POST /api/users/me/password = %d %s, want %d", tc.name, r.status, r.body, tc.status)
				}
			}
			if status, _ := e.do(t, http.MethodPost, "/api/users/me/password", "", map[string]string{"old_password": "password123", "new_password": "new-password-456"}); status != 401 {
				t.Errorf("POST /api/users/me/password without a token = %d, want 401", status)
			}
			if status, _ := e.do(t, http.MethodPost, "/api/users/me/logout-all", "", nil); status != 401 {
				t.Errorf("POST /api/users/me/logout-all without a token = %d, want 401", status)
			}
			// Nothing was revoked by the refused changes.
			if status, _ := e.do(t, http.MethodGet, "/api/users/me", "JWT "+tok, nil); status != 200 {
				t.Fatalf("token after refused password changes = %d, want 200", status)
			}
			expectChatWorks(t, conn, true, "not revoked")

			status, body := e.do(t, http.MethodPost, "/api/users/me/password", "JWT "+tok,
				map[string]string{"old_password": "password123", "new_password": "new-password-456"})
			fresh, _ := body["token"].(string)
			if status != 200 || fresh == "" || len(body) != 1 {
				t.Fatalf("POST /api/users/me/password = %d %v, want 200 {token}", status, body)
			}
			expectCloseWithin(t, conn, 4004, "token revoked", time.Second)
			if status, body := e.do(t, http.MethodPost, "/api-token-auth/", "", map[string]string{"username": "alice", "password": "password123"}); status != 400 {
				t.Errorf("login with the old password = %d %v, want 400", status, body)
			}
			e.login(t, "alice", "new-password-456")
			if status, body := e.do(t, http.MethodGet, "/api/users/me", "JWT "+fresh, nil); status != 200 || body["username"] != "alice" {
				t.Errorf("GET /api/users/me with the returned token = %d %v, want 200 alice", status, body)
			}
		})
	}
}

// TestStaffRevokeTokensRules: only staff may revoke another user's tokens;
// revoke_tokens false (or absent) revokes nothing, and staff revoking its
// own tokens is refused on its next request.
func TestStaffRevokeTokensRules(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			root, alice, bob := e.createUser(t, "root", true), e.createUser(t, "alice", false), e.createUser(t, "bob", false)
			staff, tok := e.token(t, root), e.token(t, alice)
			conn := e.chat(t, alice)
			path := fmt.Sprintf("/api/users/%d", alice.ID)
			if status, body := e.do(t, http.MethodPatch, path, "JWT "+e.token(t, bob), map[string]any{"revoke_tokens": true}); status != 403 {
				t.Errorf("PATCH %s {revoke_tokens} as non-staff = %d %v, want 403", path, status, body)
			}
			if status, body := e.do(t, http.MethodPatch, path, "JWT "+staff, map[string]any{"revoke_tokens": false, "email": "a@example.com"}); status != 200 || body["email"] != "a@example.com" {
				t.Errorf("PATCH %s {revoke_tokens: false} = %d %v, want 200", path, status, body)
			}
			if status, body := e.do(t, http.MethodPatch, path, "JWT "+staff, map[string]any{"revoke_tokens": "yes"}); status != 400 {
				t.Errorf("PATCH %s {revoke_tokens: \"yes\"} = %d %v, want 400", path, status, body)
			}
			if status, _ := e.do(t, http.MethodGet, "/api/users/me", "JWT "+tok, nil); status != 200 {
				t.Fatalf("alice's token after no revocation = %d, want 200", status)
			}
			expectChatWorks(t, conn, false, "not revoked")
			rootPath := fmt.Sprintf("/api/users/%d", root.ID)
			if status, body := e.do(t, http.MethodPatch, rootPath, "JWT "+staff, map[string]any{"revoke_tokens": true}); status != 200 {
				t.Fatalf("PATCH %s (own) {revoke_tokens} = %d %v, want 200", rootPath, status, body)
			}
			if status, body := e.do(t, http.MethodGet, "/api/users/me", "JWT "+staff, nil); status != 401 || errMessage(body) != "token revoked" {
				t.Errorf("staff token after revoking its own = %d %v, want 401 token revoked", status, body)
			}
		})
	}
}

// TestExpiryOnOpenSockets: with the hub's expiry sweep running, a socket
// whose token passes exp + grace closes 4001 "token expired" (legacy and
// v1, chat and status); one that refreshed in-band stays, and so does
// every socket when expiry is not enforced (WS_TOKEN_EXPIRY=ignore).
func TestExpiryOnOpenSockets(t *testing.T) {
	const (
		lifetime = 2 * time.Second
		grace    = 500 * time.Millisecond
	)
	for _, enforce := range []bool{true, false} {
		t.Run(fmt.Sprintf("enforce=%v", enforce), func(t *testing.T) {
			e := newEnv(t, models.SQLite,
				withAuth(func(a *middleware.AuthConfig) { a.Expiration = lifetime }),
				withClient(func(c *ws.ClientConfig) { c.TokenGrace, c.EnforceExpiry = grace, enforce }))
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			go e.hub.RunExpiry(ctx)
			alice := e.createUser(t, "alice", false)
			tok := e.token(t, alice)
			exp := time.Unix(expClaim(t, tok), 0)

			legacy := e.chat(t, alice)
			v1, _ := e.chatV1(t, tok)
			status := e.dialV1(t, "/ws/status/system/?token="+url.QueryEscape(tok))
			readUntil(t, status, "status")
			refreshed, _ := e.chatV1(t, tok)

			// Refresh before exp with a token that outlives the test.
			time.Sleep(time.Until(exp.Add(-time.Second)))
			fresh := signClaims(t, gojwt.SigningMethodHS256, e.secret, map[string]any{
				"user_id": alice.ID, "username": "alice", "email": "", "exp": time.Now().Add(time.Minute).Unix(),
				"orig_iat": time.Now().Unix(), "token_version": 0})
			sendJSON(t, refreshed, map[string]any{"type": "refresh", "token": fresh})
			if r := readNext(t, refreshed); r["type"] != "refreshed" {
				t.Fatalf("refresh answered %v", r)
			}

			if enforce {
				for name, c := range map[string]*websocket.Conn{"legacy chat": legacy, "v1 chat": v1, "v1 status": status} {
					expectCloseWithin(t, c, 4001, "token expired", time.Until(exp.Add(grace+2*time.Second)))
					closedAt := time.Now()
					if closedAt.Before(exp.Add(grace)) {
						t.Errorf("%s closed at exp%+v, before exp + grace (%v)", name, closedAt.Sub(exp).Round(time.Millisecond), grace)
					}
				}
			} else {
				time.Sleep(time.Until(exp.Add(grace + 1500*time.Millisecond)))
				expectChatWorks(t, legacy, false, "legacy stays")
				expectChatWorks(t, v1, true, "v1 stays")
			}
			time.Sleep(time.Until(exp.Add(grace + 1500*time.Millisecond)))
			expectChatWorks(t, refreshed, true, "refreshed stays")
			// A fresh token is welcome at once.
			conn, _ := e.chatV1(t, fresh)
			expectChatWorks(t, conn, true, "reconnected")
		})
	}
}

// TestTokensNeverInAccessLog: neither a token in ?token=, nor one sent in
// a v1 auth or refresh frame, nor one posted to the revocation endpoints,
// reaches the access log.
func TestTokensNeverInAccessLog(t *testing.T) {
	var buf testenv.Buffer
	e := newEnv(t, models.SQLite, withLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	alice := e.createUser(t, "alice", false)
	tokens := []string{e.token(t, alice)}
	conn := e.dialV1(t, "/ws/chat/?token="+url.QueryEscape(tokens[0]))
	readUntil(t, conn, "welcome")
	tokens = append(tokens, e.login(t, "alice", "password123"))
	v1, _ := e.chatV1(t, tokens[1])
	tokens = append(tokens, e.login(t, "alice", "password123"))
	sendJSON(t, v1, map[string]any{"type": "refresh", "token": tokens[2]})
	readUntil(t, v1, "refreshed")
	status, body := e.do(t, http.MethodPost, "/api/users/me/password", "JWT "+tokens[2], map[string]string{"old_password": "password123", "new_password": "new-password-456"})
	if status != 200 {
		t.Fatalf("password change = %d %v", status, body)
	}
	fresh, _ := body["token"].(string)
	tokens = append(tokens, fresh)
	if r := e.rest(t, http.MethodPost, "/api/users/me/logout-all", "", "JWT "+fresh, nil); r.status != 204 {
		t.Fatalf("logout-all = %d", r.status)
	}
	expectClose(t, v1, 4004, "token revoked")
	log := buf.String()
	for _, want := range []string{"/ws/chat/", "/api/users/me/logout-all", "/api/users/me/password", "token=REDACTED"} {
		if !strings.Contains(log, want) {
			t.Errorf("access log lacks %q:\n%s", want, log)
		}
	}
	for i, tok := range tokens {
		for _, part := range strings.Split(tok, ".")[1:] {
			if strings.Contains(log, part) {
				t.Errorf("access log contains part of token %d:\n%s", i, log)
			}
		}
	}
}
