package main

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"switchboard/internal/testenv"
)

// TestClusterDeactivationReachesCachedHandshakes: socket handshakes reuse
// a user lookup of the last second (models.UserStore.GetRecent). Two
// processes on one Redis: carol's socket on B has just loaded her there
// when staff deactivate her through A; once B has closed that socket
// (4003, within 1 s) a new handshake on B is refused 4003 at once, though
// B's lookup of her is younger than a second: the notice that closed the
// socket dropped it first.
func TestClusterDeactivationReachesCachedHandshakes(t *testing.T) {
	c := newCluster(t, testenv.RedisURL(t))
	a, b := c.start("A"), c.start("B")
	staff, _ := a.register("boss", true)
	tok, id := a.register("carol", false)

	s := b.chat(tok) // B looks carol up now
	start := time.Now()
	if status, body := a.call("PATCH", fmt.Sprintf("/api/users/%d", id), "JWT "+staff, map[string]any{"is_active": false}); status != 200 {
		t.Fatalf("PATCH is_active=false on A = %d %s", status, body)
	}
	ce, ok := s.waitClose(time.Second - time.Since(start))
	if !ok || ce == nil || ce.Code != 4003 {
		t.Fatalf("carol's socket on B: close %v (in time %v) within 1 s, want 4003", ce, ok)
	}
	again := dialSock(t, b.wsURL("/ws/chat/?token="+url.QueryEscape(tok)))
	if ce, ok := again.waitClose(5 * time.Second); !ok || ce == nil || ce.Code != 4003 || ce.Text != "user inactive" {
		t.Fatalf("handshake on B right after (%v after the PATCH): close %v, want 4003 user inactive", time.Since(start).Round(time.Millisecond), ce)
	}
	// The same on A, the process that made the change.
	if ce, ok := dialSock(t, a.wsURL("/ws/chat/?token="+url.QueryEscape(tok))).waitClose(5 * time.Second); !ok || ce == nil || ce.Code != 4003 {
		t.Fatalf("handshake on A: close %v, want 4003", ce)
	}
}
