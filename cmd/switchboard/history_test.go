package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"switchboard/internal/testenv"
	"switchboard/models"
)

// member is one chat socket that records every message frame by offset.
type member struct {
	t       testing.TB
	conn    *websocket.Conn
	welcome map[string]any
	frames  chan map[string]any
	readErr error // why the reads ended; set before frames is closed
}

// joinChat dials base's /ws/chat/ as tok, with recovery parameters when
// since is not empty, and reads the welcome.
func joinChat(t testing.TB, wsBase, tok, since, epoch string) *member {
	t.Helper()
	u := wsBase + "/ws/chat/?token=" + url.QueryEscape(tok)
	if since != "" {
		u += "&since=" + since + "&epoch=" + url.QueryEscape(epoch)
	}
	conn, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial chat: %v", err)
	}
	m := &member{t: t, conn: conn, frames: make(chan map[string]any, 100000)}
	t.Cleanup(func() { conn.Close() })
	go func() {
		defer close(m.frames)
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				m.readErr = err
				return
			}
			var f map[string]any
			json.Unmarshal(b, &f)
			m.frames <- f
		}
	}()
	select {
	case f := <-m.frames:
		if f["type"] != "welcome" {
			t.Fatalf("first frame = %v, want welcome", f)
		}
		m.welcome = f
	case <-time.After(10 * time.Second):
		t.Fatal("no welcome within 10s")
	}
	return m
}

func (m *member) offset() uint64 { return uint64(m.welcome["offset"].(float64)) }
func (m *member) epoch() string  { return m.welcome["epoch"].(string) }

// messages reads message frames until one has offset upto (or d passes)
// and returns them all, in arrival order.
func (m *member) messages(upto uint64, d time.Duration) []map[string]any {
	m.t.Helper()
	var out []map[string]any
	timeout := time.After(d)
	for {
		select {
		case f, ok := <-m.frames:
			if !ok {
				m.t.Fatalf("socket closed after %d messages, waiting for offset %d", len(out), upto)
			}
			if f["type"] != "message" && f["type"] != "publish" {
				continue
			}
			out = append(out, f)
			if uint64(f["offset"].(float64)) >= upto {
				return out
			}
		case <-timeout:
			m.t.Fatalf("got %d messages within %s, none with offset %d (last %v)", len(out), d, upto, last(out))
		}
	}
}

func last(fs []map[string]any) map[string]any {
	if len(fs) == 0 {
		return nil
	}
	return fs[len(fs)-1]
}

// checkContiguous fails unless fs are exactly offsets from..to, in order.
func checkContiguous(t testing.TB, fs []map[string]any, from, to uint64) {
	t.Helper()
	if uint64(len(fs)) != to-from+1 {
		t.Fatalf("got %d messages, want offsets %d..%d (%d)", len(fs), from, to, to-from+1)
	}
	for i, f := range fs {
		if got := uint64(f["offset"].(float64)); got != from+uint64(i) {
			t.Fatalf("message %d has offset %d, want %d (no gap, no repeat, in order)", i, got, from+uint64(i))
		}
	}
}

func (m *member) send(texts ...string) {
	m.t.Helper()
	for _, s := range texts {
		if err := m.conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
			m.t.Fatalf("send: %v", err)
		}
	}
}

// registerAll registers users (password "password123") and returns a
// token for each.
func (s *server) registerAll(t testing.TB, users ...string) map[string]string {
	t.Helper()
	toks := map[string]string{}
	for _, u := range users {
		if status, body := s.call(t, "POST", "/api/users/", "", map[string]string{"username": u, "password": "password123"}); status != 201 {
			t.Fatalf("register %s = %d %v", u, status, body)
		}
		_, toks[u] = s.login(t, u, "password123")
	}
	return toks
}

// TestHistoryRecovery: on a real server (each dialect), a member that was
// away gets exactly the messages it missed, in order, before live ones;
// with messages still being sent during the reconnect there is no gap or
// repeat at the seam; another epoch, too many missed or a future offset
// give recovered:false and no replay.
func TestHistoryRecovery(t *testing.T) {
	for _, db := range runDatabases(t) {
		t.Run(db.name, func(t *testing.T) {
			srv := startServe(t, db.getenv(map[string]string{"WS_RATE_LIMIT": "0", "HISTORY_RECOVERY_MAX": "500"}))
			wsBase := "ws" + strings.TrimPrefix(srv.base, "http")
			toks := srv.registerAll(t, "hana", "hugo")
			hana := joinChat(t, wsBase, toks["hana"], "", "")
			hugo := joinChat(t, wsBase, toks["hugo"], "", "")
			epoch, seen := hugo.epoch(), hugo.offset()
			hugo.conn.Close()

			// 200 while away, then recovery.
			for i := range 200 {
				hana.send(fmt.Sprintf("away %d", i))
			}
			hana.messages(seen+200, 20*time.Second)
			back := joinChat(t, wsBase, toks["hugo"], fmt.Sprint(seen), epoch)
			if back.welcome["recovered"] != true || back.offset() != seen+200 || back.epoch() != epoch {
				t.Fatalf("welcome = %v, want recovered true at offset %d, epoch %s", back.welcome, seen+200, epoch)
			}
			got := back.messages(seen+200, 10*time.Second)
			checkContiguous(t, got, seen+1, seen+200)
			for i, f := range got {
				if f["text"] != fmt.Sprintf("away %d", i) {
					t.Fatalf("replayed message %d = %v, want text %q", i, f, fmt.Sprintf("away %d", i))
				}
			}
			hana.send("live")
			if f := back.messages(seen+201, 10*time.Second); len(f) != 1 || f[0]["text"] != "live" {
				t.Fatalf("after the replay got %v, want exactly the live message", f)
			}
			seen += 201
			back.conn.Close()

			// The seam: hana keeps sending while hugo reconnects.
			for i := range 100 {
				hana.send(fmt.Sprintf("before %d", i))
			}
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 300 {
					hana.conn.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf("during %d", i)))
				}
			}()
			back = joinChat(t, wsBase, toks["hugo"], fmt.Sprint(seen), epoch)
			wg.Wait()
			if back.welcome["recovered"] != true {
				t.Fatalf("welcome during sending = %v, want recovered true", back.welcome)
			}
			checkContiguous(t, back.messages(seen+400, 20*time.Second), seen+1, seen+400)
			seen += 400

			// Not recoverable: nothing replayed, and the next frame is live.
			for _, tc := range []struct{ name, since, epoch string }{
				{"wrong epoch", fmt.Sprint(seen - 5), "not-" + epoch},
				{"too many missed", "1", epoch},
				{"future offset", fmt.Sprint(seen + 10), epoch},
				{"malformed since", "x", epoch},
			} {
				m := joinChat(t, wsBase, toks["hugo"], tc.since, tc.epoch)
				if m.welcome["recovered"] != false || m.offset() != seen {
					t.Errorf("%s: welcome = %v, want recovered false at offset %d", tc.name, m.welcome, seen)
				}
				hana.send("after " + tc.name)
				seen++
				if f := m.messages(seen, 10*time.Second); len(f) != 1 || f[0]["text"] != "after "+tc.name {
					t.Errorf("%s: got %v, want only the live message (no partial replay)", tc.name, f)
				}
				m.conn.Close()
			}
		})
	}
}

// TestHistoryEndpointAndRestart: GET /api/groups/{g}/history serves the
// frames members received; after a restart of the embedded default the
// history and offsets continue (no offset reused), and a trimmed history
// makes recovery say recovered:false.
func TestHistoryEndpointAndRestart(t *testing.T) {
	db := runDatabases(t)[0] // the embedded SQLite file
	env := db.getenv(map[string]string{"WS_RATE_LIMIT": "0", "HISTORY_SIZE": "20"})
	srv := startServe(t, env)
	wsBase := "ws" + strings.TrimPrefix(srv.base, "http")
	toks := srv.registerAll(t, "rita", "bob")
	rita, bob := toks["rita"], toks["bob"]
	m := joinChat(t, wsBase, rita, "", "")
	epoch := m.epoch()
	for i := range 30 {
		m.send(fmt.Sprintf("m%d", i))
	}
	m.messages(30, 10*time.Second)

	status, body := srv.call(t, "GET", "/api/groups/chat-r/history?limit=5", "JWT "+rita, nil)
	msgs, _ := body["messages"].([]any)
	if status != 200 || body["epoch"] != epoch || body["offset"] != float64(30) || len(msgs) != 5 {
		t.Fatalf("GET history?limit=5 = %d %v, want the newest 5 of 30", status, body)
	}
	if f := msgs[4].(map[string]any); f["text"] != "m29" || f["offset"] != float64(30) || f["type"] != "message" {
		t.Errorf("newest history entry = %v, want the frame members got for m29", f)
	}
	status, body = srv.call(t, "GET", "/api/groups/chat-r/history?since=27", "JWT "+rita, nil)
	if msgs, _ := body["messages"].([]any); status != 200 || len(msgs) != 3 {
		t.Errorf("GET history?since=27 = %d %v, want offsets 28..30", status, body)
	}
	for _, bad := range []string{"?limit=0", "?limit=1001", "?since=-1", "?since=x"} {
		if status, _ := srv.call(t, "GET", "/api/groups/chat-r/history"+bad, "JWT "+rita, nil); status != 400 {
			t.Errorf("GET history%s = %d, want 400", bad, status)
		}
	}
	if status, _ := srv.call(t, "GET", "/api/groups/chat-r/history", "JWT "+bob, nil); status != 403 {
		t.Errorf("GET chat-r history as bob = %d, want 403", status)
	}
	m.conn.Close()
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}

	// Restart on the same file: trimming to 20 runs at start.
	srv = startServe(t, env)
	wsBase = "ws" + strings.TrimPrefix(srv.base, "http")
	_, rita = srv.login(t, "rita", "password123")
	m = joinChat(t, wsBase, rita, "", "")
	if m.epoch() != epoch || m.offset() != 30 {
		t.Fatalf("welcome after restart = %v, want epoch %s offset 30", m.welcome, epoch)
	}
	m.send("after restart")
	if f := m.messages(31, 10*time.Second); f[0]["offset"] != float64(31) {
		t.Fatalf("first message after restart = %v, want offset 31", f[0])
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body = srv.call(t, "GET", "/api/groups/chat-r/history?limit=1000", "JWT "+rita, nil)
		if msgs, _ := body["messages"].([]any); len(msgs) <= 21 || time.Now().After(deadline) {
			if len(msgs) > 21 {
				t.Fatalf("history after restart holds %d messages, want at most HISTORY_SIZE=20 (+1 since)", len(msgs))
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	old := joinChat(t, wsBase, rita, "2", epoch)
	if old.welcome["recovered"] != false {
		t.Errorf("recovering from a trimmed offset: welcome = %v, want recovered false", old.welcome)
	}
	ok := joinChat(t, wsBase, rita, "25", epoch)
	if ok.welcome["recovered"] != true {
		t.Errorf("recovering from a kept offset: welcome = %v, want recovered true", ok.welcome)
	}
	checkContiguous(t, ok.messages(31, 10*time.Second), 26, 31)
}

// TestClusterHistorySurvivesCrashAndRedisLoss: two processes on one
// database and one redis-server of the test's own; members on both send;
// process 1 is SIGKILLed and its members recover everything on process 2,
// none twice; then redis-server is restarted empty and recovery still
// works, from the database.
func TestClusterHistorySurvivesCrashAndRedisLoss(t *testing.T) {
	rs := testenv.StartRedisServer(t)
	c := newCluster(t, rs.URL)
	c.extra = append(c.extra, "WS_RATE_LIMIT=0")
	p1, p2 := c.start("p1"), c.start("p2")
	_, _ = p1.register("kim", false)
	_, _ = p1.register("kai", false)
	kim, kai := p1.login("kim"), p2.login("kai")
	a := joinChat(t, "ws://"+p1.addr, kim, "", "")
	b := joinChat(t, "ws://"+p2.addr, kai, "", "")
	epoch, start := a.epoch(), a.offset()
	for i := range 50 {
		a.send(fmt.Sprintf("a%d", i))
		b.send(fmt.Sprintf("b%d", i))
	}
	checkContiguous(t, a.messages(start+100, 20*time.Second), start+1, start+100)
	checkContiguous(t, b.messages(start+100, 20*time.Second), start+1, start+100)

	p1.kill()
	for i := range 30 {
		b.send(fmt.Sprintf("while p1 is gone %d", i))
	}
	a2 := joinChat(t, "ws://"+p2.addr, kim, fmt.Sprint(start+100), epoch)
	if a2.welcome["recovered"] != true {
		t.Fatalf("recovery on p2 after p1's crash: welcome = %v", a2.welcome)
	}
	checkContiguous(t, a2.messages(start+130, 20*time.Second), start+101, start+130)

	// Redis restarted with nothing in it: history is in the database.
	rs.Stop()
	rdb := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(strings.TrimSuffix(rs.URL, "/0"), "redis://")})
	defer rdb.Close()
	rs.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rdb.FlushAll(ctx)
	b.send("after redis loss")
	a2.conn.Close()
	a3 := joinChat(t, "ws://"+p2.addr, kim, fmt.Sprint(start+100), epoch)
	if a3.welcome["recovered"] != true {
		t.Fatalf("recovery after a Redis flush: welcome = %v", a3.welcome)
	}
	checkContiguous(t, a3.messages(start+131, 20*time.Second), start+101, start+131)
}

// openAsAnotherProcess opens db's database apart from the server under
// test, as another switchboard process (or an operator) would.
func openAsAnotherProcess(t *testing.T, db runDB) *gorm.DB {
	t.Helper()
	target, err := models.ParseDatabaseURL(db.url, "")
	if err != nil {
		t.Fatal(err)
	}
	other, err := models.Open(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeDB(other) })
	return other
}

// TestHistoryMemberFromAProcessAhead: a member that saw offsets this
// process has not delivered yet (another process stored them, and its
// Redis publish is late or never came because it died) reconnects here
// with since: the group is brought up to date from history first, so the
// welcome says recovered:true, the local members get the messages they
// were missing, and nobody gets one twice. Before CatchUp the welcome
// said recovered:false ("future since"). The other process is a second
// HistoryStore on the same database, appending directly.
func TestHistoryMemberFromAProcessAhead(t *testing.T) {
	for _, db := range runDatabases(t) {
		t.Run(db.name, func(t *testing.T) {
			srv := startServe(t, db.getenv(map[string]string{"WS_RATE_LIMIT": "0"}))
			wsBase := "ws" + strings.TrimPrefix(srv.base, "http")
			toks := srv.registerAll(t, "ada", "abe")
			ada, abe := toks["ada"], toks["abe"]
			here := joinChat(t, wsBase, ada, "", "")
			here.send("one")
			here.messages(here.offset()+1, 10*time.Second)
			seen := here.offset() + 1

			other := openAsAnotherProcess(t, db)
			store := models.NewHistoryStore(other)
			batch := make([]models.HistoryAppend, 3)
			for i := range batch {
				text := fmt.Sprintf("elsewhere %d", i)
				batch[i] = models.HistoryAppend{Group: "chat-a", Encode: func(off uint64) []byte {
					return []byte(fmt.Sprintf(`{"type":"message","group":"chat-a","user":"abe","text":%q,"offset":%d}`, text, off))
				}}
			}
			if _, _, err := store.Append(context.Background(), batch); err != nil {
				t.Fatal(err)
			}

			// abe saw all three on the other process, which then died.
			back := joinChat(t, wsBase, abe, fmt.Sprint(seen+3), here.epoch())
			if back.welcome["recovered"] != true || back.offset() != seen+3 {
				t.Fatalf("welcome = %v, want recovered true at offset %d", back.welcome, seen+3)
			}
			got := here.messages(seen+3, 10*time.Second)
			checkContiguous(t, got, seen+1, seen+3)
			if got[0]["text"] != "elsewhere 0" {
				t.Errorf("first caught-up message = %v, want the other process's first", got[0])
			}
			here.send("live")
			if f := back.messages(seen+4, 10*time.Second); len(f) != 1 || f[0]["text"] != "live" {
				t.Errorf("abe got %v, want only the live message (nothing it had seen, nothing twice)", f)
			}
			if f := here.messages(seen+4, 10*time.Second); len(f) != 1 {
				t.Errorf("ada got %v after the catch-up, want only the live message", f)
			}
			status, _ := srv.call(t, "GET", "/api/groups/chat-a/history?since=9223372036854775808", "JWT "+ada, nil)
			if status != 400 {
				t.Errorf("GET history?since=2^63 = %d, want 400 (no offset is that big)", status)
			}
		})
	}
}

// TestHistoryStoreFailureTellsTheSender: a chat message that cannot be
// stored is not delivered, and its sender is closed with 1011, also when
// it sent plain text with no id (a Django-era client, or the page):
// before, such a message was dropped and nobody was told. The database
// is broken from outside, as a failing disk or a dropped table would.
func TestHistoryStoreFailureTellsTheSender(t *testing.T) {
	for _, db := range runDatabases(t) {
		t.Run(db.name, func(t *testing.T) {
			srv := startServe(t, db.getenv(map[string]string{"WS_RATE_LIMIT": "0"}))
			wsBase := "ws" + strings.TrimPrefix(srv.base, "http")
			fay := srv.registerAll(t, "fay")["fay"]
			m := joinChat(t, wsBase, fay, "", "")
			m.send("stored")
			m.messages(m.offset()+1, 10*time.Second)

			other := openAsAnotherProcess(t, db)
			if err := other.Exec(`DROP TABLE history_messages`).Error; err != nil {
				t.Fatal(err)
			}
			m.send("lost unless the sender is told")
			deadline := time.After(10 * time.Second)
			for {
				select {
				case f, ok := <-m.frames:
					if !ok {
						var ce *websocket.CloseError
						if !errors.As(m.readErr, &ce) || ce.Code != 1011 {
							t.Fatalf("socket ended with %v, want close 1011", m.readErr)
						}
						return
					}
					if f["type"] == "message" {
						t.Fatalf("got %v, want no delivery of a message that was not stored", f)
					}
					continue
				case <-deadline:
					t.Fatal("sender not closed within 10s after its message could not be stored")
				}
			}
		})
	}
}
