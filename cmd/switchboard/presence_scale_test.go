package main

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"switchboard/internal/testenv"
)

// TestClusterPresenceCountAcrossProcesses: with PRESENCE_EVENTS_MAX=3 on
// two processes sharing Redis, the count is the group's (users on both),
// the switch reaches members on the other process, a socket joining
// later is welcomed in count mode, and at 2 (90% of 3, rounded down) every
// member gets the list and join frames again.
func TestClusterPresenceCountAcrossProcesses(t *testing.T) {
	c := newCluster(t, testenv.RedisURL(t))
	c.extra = []string{"PRESENCE_EVENTS_MAX=3", "PRESENCE_COUNT_INTERVAL=300ms"}
	a, b := c.start("A"), c.start("B")
	toks := make([]string, 6)
	for i := range toks {
		toks[i], _ = a.register(fmt.Sprintf("p%d", i), false)
	}
	w := b.chat(toks[0]) // the watcher, on B
	if f := nextPresence(t, w); f["type"] != "join" || f["user"] != "p0" {
		t.Fatalf("watcher's first presence frame = %v, want its own join", f)
	}
	socks := map[int]*sock{}
	for i := 1; i <= 2; i++ { // 3 online: join frames, from A
		socks[i] = a.chat(toks[i])
		if f := nextPresence(t, w); f["type"] != "join" || f["user"] != fmt.Sprintf("p%d", i) {
			t.Fatalf("join of p%d on A: B's watcher got %v", i, f)
		}
	}
	socks[3] = a.chat(toks[3]) // 4 online: count mode everywhere
	if f := nextPresence(t, w); f["type"] != "presence" || f["mode"] != "count" || f["count"] != 4.0 {
		t.Fatalf("after the 4th user: B's watcher got %v, want count 4", f)
	}
	// A socket joining B later is told the mode.
	ws := dialSock(t, b.wsURL("/ws/chat/?token="+url.QueryEscape(toks[4])))
	welcome := ws.next("welcome", 5*time.Second)
	if welcome == nil || welcome["presence"] != "count" {
		t.Fatalf("welcome in count mode = %v, want presence count", welcome)
	}
	socks[4] = ws
	socks[5] = a.chat(toks[5])
	for {
		f := nextPresence(t, w)
		if f["type"] != "presence" || f["mode"] != "count" {
			t.Fatalf("in count mode B's watcher got %v, want only counts", f)
		}
		if f["count"] == 6.0 {
			break
		}
	}
	// Back to 2 online (p0 and p1): the list, then join frames.
	for _, i := range []int{5, 4, 3, 2} {
		socks[i].conn.Close()
	}
	for {
		f := nextPresence(t, w)
		if f["mode"] == "events" {
			users := f["users"].([]any)
			if len(users) != 2 || users[0] != "p0" || users[1] != "p1" {
				t.Fatalf("events frame = %v, want users [p0 p1]", f)
			}
			break
		}
		if f["mode"] != "count" {
			t.Fatalf("before the switch back B's watcher got %v", f)
		}
	}
	a.chat(toks[2])
	if f := nextPresence(t, w); f["type"] != "join" || f["user"] != "p2" {
		t.Fatalf("after the switch back: B's watcher got %v, want join of p2", f)
	}
}

// nextPresence returns s's next presence frame (join, leave, presence)
// within 5 s, failing t otherwise.
func nextPresence(t *testing.T, s *sock) map[string]any {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case f, ok := <-s.frames:
			if !ok {
				t.Fatal("socket closed")
			}
			if typ := f["type"]; typ == "join" || typ == "leave" || typ == "presence" {
				return f
			}
		case <-timeout:
			t.Fatal("no presence frame within 5s")
		}
	}
}
