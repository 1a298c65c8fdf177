package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v4"
	"github.com/gorilla/websocket"

	"switchboard/internal/testenv"
	"switchboard/middleware"
	"switchboard/ws"
)

func TestEchoReturnsTextAndBinary(t *testing.T) {
	e := newEnv(t, "sqlite")
	conn := e.dial(t, "/ws/echo/")
	for _, m := range []struct {
		typ  int
		data string
	}{{websocket.TextMessage, "hello"}, {websocket.BinaryMessage, "\x00\xff\x10"}, {websocket.TextMessage, strings.Repeat("é", 5000)}} {
		if err := conn.WriteMessage(m.typ, []byte(m.data)); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		typ, got, err := conn.ReadMessage()
		if err != nil || typ != m.typ || string(got) != m.data {
			t.Fatalf("echo of %d %q = %d %q, %v", m.typ, m.data[:min(len(m.data), 20)], typ, got[:min(len(got), 20)], err)
		}
	}
}

func TestChatAuthFailuresCloseWithReason(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			alice := e.createUser(t, "alice", false)
			gone := e.createUser(t, "gone", false)
			goneTok := e.token(t, gone)
			if err := e.users.Delete(context.Background(), gone.ID); err != nil {
				t.Fatal(err)
			}
			off := e.createUser(t, "off", false)
			offTok := e.token(t, off)
			if _, err := e.users.Update(context.Background(), off.ID, updActive(false)); err != nil {
				t.Fatal(err)
			}
			claims := func(exp time.Duration) gojwt.MapClaims {
				now := time.Now()
				return gojwt.MapClaims{"user_id": alice.ID, "username": "alice", "email": "", "exp": now.Add(exp).Unix(), "orig_iat": now.Unix()}
			}
			sign := func(m gojwt.SigningMethod, key any, c gojwt.MapClaims) string {
				s, err := gojwt.NewWithClaims(m, c).SignedString(key)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			none := sign(gojwt.SigningMethodNone, gojwt.UnsafeAllowNoneSignatureType, claims(time.Minute))
			tests := []struct {
				name   string
				query  string
				code   int
				reason string
			}{
				{"missing", "", 4001, "token missing"},
				{"empty", "?token=", 4001, "token missing"},
				{"garbage", "?token=abc.def.ghi", 4001, "token invalid"},
				{"expired", "?token=" + sign(gojwt.SigningMethodHS256, e.secret, claims(-time.Minute)), 4001, "token expired"},
				{"other secret", "?token=" + sign(gojwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), claims(time.Minute)), 4001, "token invalid"},
				{"alg none", "?token=" + none, 4001, "token invalid"},
				{"HS512", "?token=" + sign(gojwt.SigningMethodHS512, e.secret, claims(time.Minute)), 4001, "token invalid"},
				{"deleted user", "?token=" + goneTok, 4003, "user not found"},
				{"inactive user", "?token=" + offTok, 4003, "user inactive"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					conn := e.dial(t, "/ws/chat/"+tt.query)
					expectClose(t, conn, tt.code, tt.reason)
				})
			}
		})
	}
}

func TestChatBroadcastsToGroupOnly(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			alice, anna, bob := e.createUser(t, "alice", false), e.createUser(t, "anna", false), e.createUser(t, "bob", false)
			ca := e.dial(t, "/ws/chat/?token="+e.token(t, alice))
			w := readFrame(t, ca)
			if w["type"] != "welcome" || w["user"] != "alice" || w["group"] != "chat-a" {
				t.Fatalf("welcome = %v, want alice in chat-a", w)
			}
			cn := e.chat(t, anna)
			cb := e.chat(t, bob)

			text := `héllo <b>"world"</b> \n 😀`
			if err := ca.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
				t.Fatal(err)
			}
			for _, c := range []*websocket.Conn{ca, cn} {
				m := readUntil(t, c, "message")
				if m["text"] != text || m["user"] != "alice" || m["group"] != "chat-a" {
					t.Fatalf("message = %v, want alice's %q in chat-a", m, text)
				}
				if _, err := time.Parse(time.RFC3339, m["ts"].(string)); err != nil {
					t.Fatalf("ts %v is not RFC 3339: %v", m["ts"], err)
				}
			}
			// bob (chat-b) must see nothing of chat-a: send a marker in
			// chat-b and check it is the next message bob gets.
			if err := cb.WriteMessage(websocket.TextMessage, []byte("marker")); err != nil {
				t.Fatal(err)
			}
			if m := readUntil(t, cb, "message"); m["text"] != "marker" {
				t.Fatalf("bob got %v before his own marker", m)
			}
		})
	}
}

func TestChatGroupIsFirstCharacterNotByte(t *testing.T) {
	e := newEnv(t, "sqlite")
	for name, want := range map[string]string{"éva": "chat-é", "Émile": "chat-É", "日本": "chat-日", "7up": "chat-7", "@home": "chat-@"} {
		u := e.createUser(t, name, false)
		conn := e.dial(t, "/ws/chat/?token="+e.token(t, u))
		if w := readFrame(t, conn); w["group"] != want {
			t.Errorf("group of %q = %v, want %q", name, w["group"], want)
		}
	}
}

func TestChatDeliversEveryFrameInOrder(t *testing.T) {
	e := newEnv(t, "sqlite", withClient(func(c *ws.ClientConfig) { c.RateLimit = 0 }))
	a, b := e.createUser(t, "carl", false), e.createUser(t, "cora", false)
	ca, cb := e.chat(t, a), e.chat(t, b)
	const n = 500
	go func() {
		for i := 0; i < n; i++ {
			ca.WriteMessage(websocket.TextMessage, []byte(fmt.Sprint(i)))
		}
	}()
	for _, c := range []*websocket.Conn{ca, cb} {
		for i := 0; i < n; i++ {
			if m := readUntil(t, c, "message"); m["text"] != fmt.Sprint(i) {
				t.Fatalf("message %d = %v, want %d", i, m["text"], i)
			}
		}
	}
}

func TestChatLimitsCloseOnlyTheOffender(t *testing.T) {
	e := newEnv(t, "sqlite")
	tests := []struct {
		name   string
		send   func(*websocket.Conn)
		code   int
		reason string
	}{
		{"too big", func(c *websocket.Conn) {
			c.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", 64<<10+1)))
		}, 1009, "message too big"},
		{"invalid utf-8", func(c *websocket.Conn) {
			c.WriteMessage(websocket.TextMessage, []byte("ok \xff\xfe"))
		}, 1007, ""},
		{"flooding", func(c *websocket.Conn) {
			for i := 0; i < 200; i++ {
				if c.WriteMessage(websocket.TextMessage, []byte("spam")) != nil {
					return
				}
			}
		}, 1008, ""},
		{"binary on chat", func(c *websocket.Conn) {
			c.WriteMessage(websocket.BinaryMessage, []byte{1, 2})
		}, 1003, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := e.createUser(t, fmt.Sprintf("m%dbad", i), false)
			good := e.createUser(t, fmt.Sprintf("m%dgood", i), false)
			cb, cg := e.chat(t, bad), e.chat(t, good)
			readUntil(t, cg, "join") // the offender's own join already came; good's join
			tt.send(cb)
			expectClose(t, cb, tt.code, tt.reason)
			// The other member is unaffected and sees the offender leave.
			if err := cg.WriteMessage(websocket.TextMessage, []byte("still here")); err != nil {
				t.Fatal(err)
			}
			for {
				f := readFrame(t, cg)
				if f["type"] == "message" && f["text"] == "still here" {
					break
				}
				if f["type"] == "message" && f["user"] == bad.Username && tt.code != 1008 {
					t.Fatalf("offending frame was broadcast: %v", f)
				}
			}
		})
	}
}

func TestMaxMessageExactlyAtLimitIsDelivered(t *testing.T) {
	e := newEnv(t, "sqlite")
	u := e.createUser(t, "max", false)
	c := e.chat(t, u)
	text := strings.Repeat("y", 64<<10)
	if err := c.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
		t.Fatal(err)
	}
	if m := readUntil(t, c, "message"); m["text"] != text {
		t.Fatalf("64 KiB message not delivered intact (len %d)", len(m["text"].(string)))
	}
}

func TestOriginCheck(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		origin  string
		want    int
	}{
		{"same host default", nil, "SAME", http.StatusSwitchingProtocols},
		{"other host default", nil, "http://evil.example", http.StatusForbidden},
		{"no origin (non-browser)", nil, "", http.StatusSwitchingProtocols},
		{"listed", []string{"http://app.example"}, "http://app.example", http.StatusSwitchingProtocols},
		{"not listed", []string{"http://app.example"}, "http://evil.example", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "sqlite", withOrigins(tt.allowed...))
			h := http.Header{}
			switch tt.origin {
			case "SAME":
				h.Set("Origin", e.srv.URL)
			case "":
			default:
				h.Set("Origin", tt.origin)
			}
			conn, resp, err := websocket.DefaultDialer.Dial(e.wsURL("/ws/echo/"), h)
			if conn != nil {
				conn.Close()
			}
			if resp == nil {
				t.Fatalf("dial: %v", err)
			}
			if resp.StatusCode != tt.want {
				t.Fatalf("upgrade with Origin %q = %d, want %d", tt.origin, resp.StatusCode, tt.want)
			}
		})
	}
}

func TestSlowConsumerIsClosedAloneWith1013(t *testing.T) {
	e := newEnv(t, "sqlite", withClient(func(c *ws.ClientConfig) {
		c.RateLimit = 0
		c.SendQueue = 64
		// The slow member reads only at the end, which under -race can be
		// more than the default 10 s after its writer blocked: a write
		// deadline that fires first drops it without its close frame.
		c.WriteTimeout = time.Minute
	}))
	sender, slow, fast := e.createUser(t, "sam", false), e.createUser(t, "sid", false), e.createUser(t, "sue", false)
	cs := e.chat(t, sender)
	ff := e.chat(t, fast)
	// slow connects and stops reading. 2000 × 8 KB is more than the
	// kernel's socket buffers on both sides can absorb.
	cl, _, err := websocket.DefaultDialer.Dial(e.wsURL("/ws/chat/?token="+e.token(t, slow)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	// The sender is a member too: keep its socket drained. chat() left a
	// read deadline on it; without clearing it the drain stops after a few
	// seconds under -race, the sender becomes the slow consumer and the
	// test fails for the wrong member.
	cs.SetReadDeadline(time.Time{})
	go func() {
		for {
			if _, _, err := cs.ReadMessage(); err != nil {
				return
			}
		}
	}()
	big := strings.Repeat("z", 8000)
	const n = 2000
	// In lockstep with the fast member, so only the slow one falls behind.
	for i := 0; i < n; i++ {
		if err := cs.WriteMessage(websocket.TextMessage, []byte(fmt.Sprint(i, big))); err != nil {
			t.Fatal(err)
		}
		ff.SetReadDeadline(time.Now().Add(5 * time.Second))
		var m map[string]any
		for m == nil || m["type"] != "message" {
			_, b, err := ff.ReadMessage()
			if err != nil {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Fatalf("fast member, message %d: %v\n%s", i, err, buf[:n])
			}
			json.Unmarshal(b, &m)
		}
		if !strings.HasPrefix(m["text"].(string), fmt.Sprint(i)) {
			t.Fatalf("fast member message %d = %.10q", i, m["text"])
		}
	}
	// Now read slow's socket: after whatever was in flight it gets 1013.
	expectCloseWithin(t, cl, 1013, "slow consumer", 15*time.Second)
}

func TestClosingSocketLeavesGroupAtOnce(t *testing.T) {
	e := newEnv(t, "sqlite")
	a, b := e.createUser(t, "dora", false), e.createUser(t, "dan", false)
	ca := e.chat(t, a)
	cb := e.chat(t, b)
	if n, _ := e.hub.Counts(); n != 2 {
		t.Fatalf("clients = %d, want 2", n)
	}
	cb.UnderlyingConn().Close() // a dropped TCP connection, no close frame
	if f := readUntil(t, ca, "leave"); f["user"] != "dan" {
		t.Fatalf("leave = %v, want dan", f)
	}
	waitFor(t, 2*time.Second, func() bool { n, _ := e.hub.Counts(); return n == 1 })
}

func TestDeadPeerIsDroppedAfterPongTimeout(t *testing.T) {
	e := newEnv(t, "sqlite", withClient(func(c *ws.ClientConfig) {
		c.PingInterval = 50 * time.Millisecond
		c.PongTimeout = 300 * time.Millisecond
	}))
	u := e.createUser(t, "pat", false)
	conn := e.chat(t, u)
	pings := make(chan struct{}, 10)
	conn.SetPingHandler(func(string) error { pings <- struct{}{}; return nil }) // no pong
	go func() {
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	select {
	case <-pings:
	case <-time.After(2 * time.Second):
		t.Fatal("no ping within 2s")
	}
	waitFor(t, 3*time.Second, func() bool { n, _ := e.hub.Counts(); return n == 0 })
}

func TestLiveClientAnsweringPingsStays(t *testing.T) {
	e := newEnv(t, "sqlite", withClient(func(c *ws.ClientConfig) {
		c.PingInterval = 50 * time.Millisecond
		c.PongTimeout = 200 * time.Millisecond
	}))
	u := e.createUser(t, "liv", false)
	conn := e.chat(t, u)
	go func() {
		for {
			if _, _, err := conn.ReadMessage(); err != nil { // default handler pongs
				return
			}
		}
	}()
	time.Sleep(600 * time.Millisecond)
	if n, _ := e.hub.Counts(); n != 1 {
		t.Fatalf("members after 3 pong timeouts = %d, want 1 (pongs must keep it)", n)
	}
}

func TestShutdownClosesSocketsWith1001(t *testing.T) {
	e := newEnv(t, "sqlite")
	u := e.createUser(t, "sh", false)
	c1 := e.chat(t, u)
	c2 := e.dial(t, "/ws/echo/")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- e.hub.Shutdown(ctx) }()
	expectClose(t, c1, 1001, "server shutting down")
	expectClose(t, c2, 1001, "server shutting down")
	if err := <-errc; err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	// New sockets are refused once shutdown began.
	c3 := e.dial(t, "/ws/echo/")
	expectClose(t, c3, 1001, "server shutting down")
}

func TestRevokeClosesLiveSockets(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			admin, victim := e.createUser(t, "root", true), e.createUser(t, "vic", false)
			c1, c2 := e.chat(t, victim), e.chat(t, victim)
			status, _ := e.do(t, "PATCH", fmt.Sprintf("/api/users/%d", victim.ID), "JWT "+e.token(t, admin), map[string]any{"is_active": false})
			if status != 200 {
				t.Fatalf("PATCH = %d, want 200", status)
			}
			expectClose(t, c1, 4003, middleware.ReasonUserInactive)
			expectClose(t, c2, 4003, middleware.ReasonUserInactive)
		})
	}
}

// Many members sending their whole burst allowance at once: every member
// gets every message, each sender's in order (the writer hand-off between
// goroutines under load), and nobody is mistaken for a slow consumer.
func TestChatConcurrentSendersAllDelivered(t *testing.T) {
	e := newEnv(t, "sqlite")
	const members, msgs = 20, 40 // 40: the default WS_RATE_BURST
	conns := make([]*websocket.Conn, members)
	for i := range conns {
		conns[i] = e.chat(t, e.createUser(t, fmt.Sprintf("k%02d", i), false))
	}
	waitFor(t, 5*time.Second, func() bool { n, _ := e.hub.Counts(); return n == members })
	for i, c := range conns {
		go func(i int, c *websocket.Conn) {
			for j := 0; j < msgs; j++ {
				c.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf("%d:%d", i, j)))
			}
		}(i, c)
	}
	errc := make(chan error, members)
	for _, c := range conns {
		go func(c *websocket.Conn) {
			next := make([]int, members)
			for got := 0; got < members*msgs; {
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, b, err := c.ReadMessage()
				if err != nil {
					errc <- fmt.Errorf("after %d messages: %v", got, err)
					return
				}
				var m struct{ Type, Text string }
				json.Unmarshal(b, &m)
				if m.Type != "message" {
					continue
				}
				var from, n int
				fmt.Sscanf(m.Text, "%d:%d", &from, &n)
				if n != next[from] {
					errc <- fmt.Errorf("from %d got %d, want %d", from, n, next[from])
					return
				}
				next[from]++
				got++
			}
			errc <- nil
		}(c)
	}
	for range conns {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}
