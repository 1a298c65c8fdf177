package handlers_test

import (
	"fmt"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"switchboard/handlers"
	"switchboard/middleware"
	"switchboard/models"
)

// withPresence sets PRESENCE_EVENTS_MAX and PRESENCE_COUNT_INTERVAL.
func withPresence(max int, interval time.Duration) envOption {
	return func(d *handlers.Deps, _ *middleware.AuthConfig) {
		d.PresenceEventsMax, d.PresenceCountInterval = max, interval
	}
}

// chatWelcome dials /ws/chat/ as u and returns the socket and its welcome.
func (e *env) chatWelcome(tb testing.TB, u *models.User) (*websocket.Conn, map[string]any) {
	tb.Helper()
	conn := e.dial(tb, "/ws/chat/?token="+url.QueryEscape(e.token(tb, u)))
	f := readFrame(tb, conn)
	if f["type"] != "welcome" {
		tb.Fatalf("first frame = %v, want welcome", f)
	}
	return conn, f
}

// frames reads conn in the background (a read that times out breaks a
// gorilla conn for good, so waiting for "no frame" needs a reader).
type frames chan map[string]any

func readFrames(conn *websocket.Conn) frames {
	ch := make(frames, 1000)
	go func() {
		defer close(ch)
		for {
			var m map[string]any
			if err := conn.ReadJSON(&m); err != nil {
				return
			}
			ch <- m
		}
	}()
	return ch
}

// presenceFrame returns the next frame within d; nil when none came.
func presenceFrame(tb testing.TB, ch frames, d time.Duration) map[string]any {
	tb.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			tb.Fatal("socket closed")
		}
		return m
	case <-time.After(d):
		return nil
	}
}

// TestPresenceSwitchesToCountAndBack: with PRESENCE_EVENTS_MAX=5 a group
// gets join frames up to 5 users, a count frame past 5 (then at most one
// per interval while it changes, never a join or leave), keeps counting
// while the count hovers at the threshold, and at 4 (90%) gets the list
// and join/leave frames again.
func TestPresenceSwitchesToCountAndBack(t *testing.T) {
	const interval = 400 * time.Millisecond
	e := newEnv(t, models.SQLite, withPresence(5, interval))
	users := make([]*models.User, 14)
	for i := range users {
		users[i] = e.createUser(t, fmt.Sprintf("a%02d", i), false)
	}
	wc, welcome := e.chatWelcome(t, users[0])
	if welcome["presence"] != "events" || welcome["count"] != nil {
		t.Fatalf("welcome = %v, want presence events and no count", welcome)
	}
	w := readFrames(wc)
	if f := presenceFrame(t, w, 5*time.Second); f["type"] != "join" || f["user"] != "a00" {
		t.Fatalf("frame after the welcome = %v, want its own join", f)
	}
	conns := map[int]*websocket.Conn{}
	for i := 1; i <= 4; i++ { // 5 users online: still events
		conns[i] = e.chat(t, users[i])
		if f := presenceFrame(t, w, 5*time.Second); f == nil || f["type"] != "join" || f["user"] != users[i].Username {
			t.Fatalf("join %d: frame %v, want join of %s", i, f, users[i].Username)
		}
	}
	conns[5] = e.chat(t, users[5]) // the 6th user: count mode
	f := presenceFrame(t, w, 5*time.Second)
	if f == nil || f["type"] != "presence" || f["mode"] != "count" || f["count"] != 6.0 {
		t.Fatalf("frame after the 6th join = %v, want presence count 6", f)
	}
	switched := time.Now()

	// A newcomer is told the mode and the count the others were sent.
	c6, welcome := e.chatWelcome(t, users[6])
	conns[6] = c6
	if welcome["presence"] != "count" || welcome["count"] != 6.0 {
		t.Fatalf("welcome in count mode = %v, want presence count, count 6", welcome)
	}
	// Seven more join at once: one count frame per interval, no joins.
	for i := 7; i <= 13; i++ {
		conns[i] = e.chat(t, users[i])
	}
	last, got := switched, 0.0
	for got != 14 {
		f := presenceFrame(t, w, 3*interval)
		if f == nil {
			t.Fatalf("count stuck at %v, want 14", got)
		}
		if f["type"] != "presence" || f["mode"] != "count" {
			t.Fatalf("frame in count mode = %v, want only count frames", f)
		}
		if gap := time.Since(last); gap < interval*8/10 {
			t.Fatalf("count frames %s apart, want at least %s", gap, interval)
		}
		last, got = time.Now(), f["count"].(float64)
	}
	if f := presenceFrame(t, w, 2*interval); f != nil {
		t.Fatalf("frame with the count unchanged: %v", f)
	}

	// Down to 5 (the threshold) and hovering 5↔6: still counts only.
	for i := 13; i >= 6; i-- { // 14 → 6 online
		conns[i].Close()
		delete(conns, i)
	}
	waitCount(t, w, 6, 4*interval)
	for round := 0; round < 3; round++ {
		conns[5].Close()
		waitCount(t, w, 5, 4*interval)
		conns[5] = e.chat(t, users[5])
		waitCount(t, w, 6, 4*interval)
	}

	// To 4 (90% of 5): the list, then join/leave frames again.
	conns[5].Close()
	delete(conns, 5)
	conns[4].Close()
	delete(conns, 4)
	var list map[string]any
	for list == nil {
		f := presenceFrame(t, w, 4*interval)
		switch {
		case f == nil:
			t.Fatal("no events frame after the count fell to 4")
		case f["mode"] == "events":
			list = f
		case f["mode"] != "count":
			t.Fatalf("frame before the switch back = %v", f)
		}
	}
	var names []string
	for _, u := range list["users"].([]any) {
		names = append(names, u.(string))
	}
	if want := []string{"a00", "a01", "a02", "a03"}; !slices.Equal(names, want) {
		t.Fatalf("events frame users = %v, want %v", names, want)
	}
	_, welcome = e.chatWelcome(t, users[10])
	if welcome["presence"] != "events" {
		t.Fatalf("welcome after the switch back = %v, want presence events", welcome)
	}
	if f := presenceFrame(t, w, 5*time.Second); f == nil || f["type"] != "join" || f["user"] != "a10" {
		t.Fatalf("after the switch back: frame %v, want join of a10", f)
	}
}

// waitCount reads count frames until one says want.
func waitCount(tb testing.TB, w frames, want float64, d time.Duration) {
	tb.Helper()
	for {
		f := presenceFrame(tb, w, d)
		if f == nil {
			tb.Fatalf("no count frame saying %v within %s", want, d)
		}
		if f["type"] != "presence" || f["mode"] != "count" {
			tb.Fatalf("frame = %v, want only count frames (no flapping)", f)
		}
		if f["count"] == want {
			return
		}
	}
}

// TestPresenceFillingAGroupCostsLinearFrames fills one group with N
// distinct users at PRESENCE_EVENTS_MAX=20 and counts every presence frame
// every member got: O(N) (under 10·N), where join frames alone cost
// N²/2 (20,000 for 200).
func TestPresenceFillingAGroupCostsLinearFrames(t *testing.T) {
	const n = 200
	e := newEnv(t, models.SQLite, withPresence(20, time.Second))
	var frames atomic.Int64
	var wg sync.WaitGroup
	conns := make([]*websocket.Conn, n)
	for i := range n {
		conns[i] = e.chat(t, e.createUser(t, fmt.Sprintf("b%03d", i), false))
		wg.Add(1)
		go func(c *websocket.Conn) {
			defer wg.Done()
			for {
				var m map[string]any
				if err := c.ReadJSON(&m); err != nil {
					return
				}
				if m["type"] == "join" || m["type"] == "leave" || m["type"] == "presence" {
					frames.Add(1)
				}
			}
		}(conns[i])
	}
	time.Sleep(2500 * time.Millisecond) // the last count tick
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	got := frames.Load()
	t.Logf("filling a group of %d: %d presence frames (join frames alone: %d)", n, got, n*(n-1)/2)
	if got >= 10*n {
		t.Fatalf("presence frames = %d, want < %d (O(n))", got, 10*n)
	}
}

// TestPresenceEndpointPages: ?limit=&offset= page the sorted list; count is
// every user online.
func TestPresenceEndpointPages(t *testing.T) {
	e := newEnv(t, models.SQLite)
	var first *models.User
	for i := range 7 {
		u := e.createUser(t, fmt.Sprintf("c%d", i), false)
		if first == nil {
			first = u
		}
		e.chat(t, u)
	}
	tok := "JWT " + e.token(t, first)
	waitFor(t, 5*time.Second, func() bool {
		_, body := e.do(t, "GET", "/api/groups/chat-c/presence", tok, nil)
		return body["count"] == 7.0
	})
	tests := []struct {
		query  string
		status int
		users  []string
	}{
		{"", 200, []string{"c0", "c1", "c2", "c3", "c4", "c5", "c6"}},
		{"?limit=3", 200, []string{"c0", "c1", "c2"}},
		{"?limit=3&offset=3", 200, []string{"c3", "c4", "c5"}},
		{"?limit=3&offset=6", 200, []string{"c6"}},
		{"?offset=9", 200, []string{}},
		{"?limit=0", 400, nil},
		{"?limit=1001", 400, nil},
		{"?offset=-1", 400, nil},
	}
	for _, tt := range tests {
		status, body := e.do(t, "GET", "/api/groups/chat-c/presence"+tt.query, tok, nil)
		if status != tt.status {
			t.Errorf("GET presence%s = %d, want %d", tt.query, status, tt.status)
			continue
		}
		if status != 200 {
			continue
		}
		got := []string{}
		for _, u := range body["users"].([]any) {
			got = append(got, u.(string))
		}
		if !slices.Equal(got, tt.users) || body["count"] != 7.0 || body["group"] != "chat-c" {
			t.Errorf("GET presence%s = %v, want users %v, count 7", tt.query, body, tt.users)
		}
	}
}

// TestPresenceOffSendsNoPresenceFrames: PRESENCE_EVENTS=off sends neither
// join/leave nor counts, however big the group, and the welcome names no
// mode.
func TestPresenceOffSendsNoPresenceFrames(t *testing.T) {
	e := newEnv(t, models.SQLite, withPresence(2, 100*time.Millisecond), func(d *handlers.Deps, _ *middleware.AuthConfig) {
		d.PresenceEvents = false
	})
	wc, welcome := e.chatWelcome(t, e.createUser(t, "d0", false))
	if _, ok := welcome["presence"]; ok {
		t.Fatalf("welcome with presence off = %v, want no presence field", welcome)
	}
	w := readFrames(wc)
	for i := 1; i <= 5; i++ {
		e.chat(t, e.createUser(t, fmt.Sprintf("d%d", i), false))
	}
	if f := presenceFrame(t, w, 500*time.Millisecond); f != nil {
		t.Fatalf("frame with presence off: %v", f)
	}
}
