package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/internal/testenv"
)

func TestClusterDeliversAcrossProcessesExactlyOnceInOrder(t *testing.T) {
	c := newCluster(t, testenv.RedisURL(t))
	c.extra = []string{"WS_RATE_LIMIT=0"} // the senders go as fast as they can
	a, b, cc := c.start("A"), c.start("B"), c.start("C")
	ta, _ := a.register("alice", false)
	tn, _ := b.register("anna", false)
	tm, _ := cc.register("amy", false)
	tb, _ := a.register("bob", false)
	sa, sn, sm, sb := a.chat(ta), b.chat(tn), cc.chat(tm), a.chat(tb)

	// Joins propagate (amy joined last; alice on A hears it from C).
	waitPresence(t, a, ta, "chat-a", []string{"alice", "amy", "anna"})

	const n = 100
	var wg sync.WaitGroup
	for _, s := range []*sock{sa, sn} {
		wg.Add(1)
		go func(s *sock, who string) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				s.conn.WriteMessage(1, []byte(fmt.Sprintf("%s-%03d", who, i)))
			}
		}(s, map[*sock]string{sa: "alice", sn: "anna"}[s])
		time.Sleep(0)
	}
	wg.Wait()
	for name, s := range map[string]*sock{"alice": sa, "anna": sn, "amy": sm} {
		next := map[string]int{}
		for got := 0; got < 2*n; got++ {
			f := s.next("message", 10*time.Second)
			if f == nil {
				t.Fatalf("%s got %d of %d messages", name, got, 2*n)
			}
			text := f["text"].(string)
			sender, num, _ := strings.Cut(text, "-")
			if f["user"] != sender || num != fmt.Sprintf("%03d", next[sender]) {
				t.Fatalf("%s: message %q from %v, want %s-%03d", name, text, f["user"], sender, next[sender])
			}
			next[sender]++
		}
		if extra := s.next("message", 300*time.Millisecond); extra != nil {
			t.Fatalf("%s got an extra message %v (duplicate?)", name, extra)
		}
	}
	// bob (chat-b, on A with alice) got none of it.
	if f := sb.next("message", 200*time.Millisecond); f != nil {
		t.Fatalf("bob in chat-b got %v", f)
	}
}

func TestClusterPresenceJoinLeaveAcrossProcesses(t *testing.T) {
	c := newCluster(t, testenv.RedisURL(t))
	a, b := c.start("A"), c.start("B")
	ta, _ := a.register("pia", false)
	tp, _ := b.register("pete", false)
	tz, _ := a.register("zed", false)
	sa := a.chat(ta)
	if f := sa.next("join", 5*time.Second); f == nil || f["user"] != "pia" {
		t.Fatalf("own join = %v, want pia", f)
	}

	// pete opens two tabs, one per process: one join only.
	p1 := b.chat(tp)
	if f := sa.next("join", 5*time.Second); f == nil || f["user"] != "pete" {
		t.Fatalf("join = %v, want pete", f)
	}
	p2 := a.chat(tp)
	waitPresence(t, b, tp, "chat-p", []string{"pete", "pia"})
	if f := sa.next("join", 500*time.Millisecond); f != nil {
		t.Fatalf("second tab announced again: %v", f)
	}
	// Closing one tab is not a leave; closing the last is.
	p1.conn.Close()
	if f := sa.next("leave", 500*time.Millisecond); f != nil {
		t.Fatalf("leave while another tab is open: %v", f)
	}
	p2.conn.Close()
	if f := sa.next("leave", 5*time.Second); f == nil || f["user"] != "pete" {
		t.Fatalf("leave = %v, want pete", f)
	}
	waitPresence(t, a, ta, "chat-p", []string{"pia"})

	// Presence is for the group's members and staff only.
	if status, _ := a.call("GET", "/api/groups/chat-p/presence", "JWT "+tz, nil); status != 403 {
		t.Fatalf("presence for non-member = %d, want 403", status)
	}
	if status, _ := a.call("GET", "/api/groups/chat-p/presence", "Api-Key "+c.apiKey, nil); status != 200 {
		t.Fatalf("presence with api key = %d, want 200", status)
	}
	if status, _ := a.call("GET", "/api/groups/bad%20group/presence", "Api-Key "+c.apiKey, nil); status != 400 {
		t.Fatalf("presence of bad group = %d, want 400", status)
	}
}

func TestClusterPresenceOfCrashedProcessExpires(t *testing.T) {
	c := newCluster(t, testenv.RedisURL(t))
	c.extra = []string{"PRESENCE_TTL=3s"}
	a, b := c.start("A"), c.start("B")
	ta, _ := a.register("quin", false)
	tq, _ := b.register("quentin", false)
	a.chat(ta)
	b.chat(tq)
	waitPresence(t, a, ta, "chat-q", []string{"quentin", "quin"})
	b.kill() // no cleanup
	start := time.Now()
	waitPresence(t, a, ta, "chat-q", []string{"quin"})
	t.Logf("crashed process's member gone from presence after %s (TTL 3s)", time.Since(start).Round(100*time.Millisecond))
}

func TestClusterRevocationWithinOneSecond(t *testing.T) {
	c := newCluster(t, testenv.RedisURL(t))
	a, b, cc := c.start("A"), c.start("B"), c.start("C")
	admin, _ := a.register("root", true)
	tv, vid := b.register("vic", false)
	tw, _ := cc.register("walt", false)
	v1, v2 := b.chat(tv), cc.chat(tv)
	w1 := cc.chat(tw)

	// PATCH on A closes vic's sockets on B and C.
	start := time.Now()
	if status, body := a.call("PATCH", fmt.Sprintf("/api/users/%d", vid), "JWT "+admin, map[string]any{"is_active": false}); status != 200 {
		t.Fatalf("PATCH = %d %s", status, body)
	}
	for _, s := range []*sock{v1, v2} {
		ce, ok := s.waitClose(time.Second - time.Since(start))
		if !ok || ce == nil || ce.Code != 4003 || ce.Text != "user inactive" {
			t.Fatalf("vic's socket: close %v (in time: %v), want 4003 \"user inactive\" within 1s", ce, ok)
		}
	}
	t.Logf("revoked on 2 other processes in %s", time.Since(start).Round(time.Millisecond))
	// The still-valid token is refused at once, REST and WebSocket.
	if status, _ := b.call("GET", "/api/users/me", "JWT "+tv, nil); status != 401 {
		t.Fatalf("deactivated user's token on REST = %d, want 401", status)
	}
	s := dialSock(t, cc.wsURL("/ws/chat/?token="+tv))
	if ce, _ := s.waitClose(5 * time.Second); ce == nil || ce.Code != 4003 {
		t.Fatalf("deactivated user's token on WS: %v, want 4003", ce)
	}

	// The CLI on its own (no server) closes walt's socket on C.
	var out bytes.Buffer
	start = time.Now()
	if err := runCLI(a, nil, &out, "setactive", "walt", "false"); err != nil {
		t.Fatalf("setactive: %v\n%s", err, out.String())
	}
	if ce, ok := w1.waitClose(time.Second); !ok || ce == nil || ce.Code != 4003 {
		t.Fatalf("walt's socket after setactive: %v (in time %v)", ce, ok)
	}
	t.Logf("CLI revocation closed the socket %s after the command returned", time.Since(start).Round(time.Millisecond))

	// DELETE closes too.
	tx, xid := a.register("xena", false)
	sx := b.chat(tx)
	if status, _ := a.call("DELETE", fmt.Sprintf("/api/users/%d", xid), "JWT "+admin, nil); status != 204 {
		t.Fatalf("DELETE = %d", status)
	}
	if ce, ok := sx.waitClose(time.Second); !ok || ce == nil || ce.Code != 4003 {
		t.Fatalf("deleted user's socket: %v", ce)
	}
}

func TestClusterPublishAndStatusAcrossProcessesAndRestart(t *testing.T) {
	c := newCluster(t, testenv.RedisURL(t))
	a, b := c.start("A"), c.start("B")
	admin, _ := a.register("root", true)
	tu, _ := b.register("uma", false)
	su := b.chat(tu)

	// Publish API: staff JWT and service key → 202 on B's member.
	for _, auth := range []string{"JWT " + admin, "Api-Key " + c.apiKey} {
		status, body := a.call("POST", "/api/groups/chat-u/messages", auth, map[string]any{"data": map[string]any{"n": 1, "auth": auth[:3]}})
		if status != 202 {
			t.Fatalf("publish with %.7s = %d %s", auth, status, body)
		}
		f := su.next("publish", 5*time.Second)
		if f == nil || f["group"] != "chat-u" || f["data"].(map[string]any)["auth"] != auth[:3] {
			t.Fatalf("publish frame = %v", f)
		}
	}
	for _, tt := range []struct {
		auth string
		want int
	}{{"", 401}, {"JWT " + tu, 403}, {"Api-Key wrong", 401}} {
		if status, _ := a.call("POST", "/api/groups/chat-u/messages", tt.auth, map[string]any{"data": 1}); status != tt.want {
			t.Fatalf("publish with %q = %d, want %d", tt.auth, status, tt.want)
		}
	}

	// Live status: subscriber on B sees the current value at once, then
	// every change, versions only going up.
	st := dialSock(t, b.wsURL("/ws/status/system/?token="+tu))
	if f := st.next("status", 5*time.Second); f == nil || f["version"].(float64) != 0 || f["value"] != nil {
		t.Fatalf("initial status = %v, want version 0, null", f)
	}
	for i := 1; i <= 3; i++ {
		if status, body := a.call("PUT", "/api/status/system", "Api-Key "+c.apiKey, map[string]any{"value": map[string]int{"load": i}}); status != 200 {
			t.Fatalf("PUT status = %d %s", status, body)
		}
		f := st.next("status", 5*time.Second)
		if f == nil || f["version"].(float64) != float64(i) {
			t.Fatalf("status push %d = %v", i, f)
		}
	}
	// Restart A: versions continue from the database.
	a.stop()
	a.run()
	status, body := a.call("PUT", "/api/status/system", "Api-Key "+c.apiKey, map[string]any{"value": "after restart"})
	var got struct{ Version int }
	json.Unmarshal(body, &got)
	if status != 200 || got.Version != 4 {
		t.Fatalf("PUT after restart = %d %s, want version 4", status, body)
	}
	if f := st.next("status", 5*time.Second); f == nil || f["version"].(float64) != 4 || f["value"] != "after restart" {
		t.Fatalf("push after restart = %v", f)
	}
	// A new subscriber on the restarted process starts at version 4.
	st2 := dialSock(t, a.wsURL("/ws/status/system/?token="+tu))
	if f := st2.next("status", 5*time.Second); f == nil || f["version"].(float64) != 4 {
		t.Fatalf("initial status after restart = %v", f)
	}
	// Concurrent writers on both processes: every subscriber sees strictly
	// increasing versions.
	var wg sync.WaitGroup
	for _, p := range []*proc{a, b} {
		wg.Add(1)
		go func(p *proc) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				p.call("PUT", "/api/status/system", "Api-Key "+c.apiKey, map[string]any{"value": i})
			}
		}(p)
	}
	wg.Wait()
	for _, s := range []*sock{st, st2} {
		last := 4.0
		for {
			f := s.next("status", 500*time.Millisecond)
			if f == nil {
				break
			}
			if v := f["version"].(float64); v <= last {
				t.Fatalf("version %v after %v", v, last)
			} else {
				last = v
			}
		}
		if last != 44 {
			t.Fatalf("last version seen = %v, want 44", last)
		}
	}
	// Bad keys.
	if status, _ := a.call("PUT", "/api/status/bad%20key", "Api-Key "+c.apiKey, map[string]any{"value": 1}); status != 400 {
		t.Fatalf("PUT bad key = %d, want 400", status)
	}
	bad := dialSock(t, a.wsURL("/ws/status/"+strings.Repeat("k", 101)+"/?token="+tu))
	if ce, _ := bad.waitClose(5 * time.Second); ce == nil || ce.Code != 4000 || ce.Text != "bad group" {
		t.Fatalf("bad key socket close = %v, want 4000 bad group", ce)
	}
}

// TestClusterSurvivesRedisOutage stops redis-server mid-test: chat within a
// process goes on, /readyz says degraded, and when Redis is back
// cross-process delivery resumes without restarting switchboard.
func TestClusterSurvivesRedisOutage(t *testing.T) {
	testenv.RedisURL(t) // skip unless the Redis tests are on
	redis := testenv.StartRedisServer(t)

	c := newCluster(t, redis.URL)
	a, b := c.start("A"), c.start("B")
	t1, _ := a.register("fay", false)
	t2, _ := a.register("finn", false)
	t3, _ := b.register("flo", false)
	s1, s2, s3 := a.chat(t1), a.chat(t2), b.chat(t3)
	s1.send("before")
	for _, s := range []*sock{s1, s2, s3} {
		if f := s.next("message", 5*time.Second); f == nil || f["text"] != "before" {
			t.Fatalf("before outage: %v", f)
		}
	}

	redis.Stop()
	// Local chat continues on A.
	s1.send("during")
	for _, s := range []*sock{s1, s2} {
		if f := s.next("message", 5*time.Second); f == nil || f["text"] != "during" {
			t.Fatalf("local chat during outage: %v", f)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body := a.call("GET", "/readyz", "", nil)
		if status == 503 && strings.Contains(string(body), `"redis":"down"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz during outage = %d %s, want 503 naming redis", status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, m := a.call("GET", "/metrics", "", nil); !strings.Contains(string(m), "\nswitchboard_redis_up 0\n") {
		t.Fatalf("metrics during outage lack switchboard_redis_up 0")
	}

	redis.Start(t)
	// Cross-process delivery resumes by itself.
	deadline = time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		text := fmt.Sprint("after-", i)
		s1.send(text)
		if f := s3.next("message", 500*time.Millisecond); f != nil && strings.HasPrefix(f["text"].(string), "after-") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cross-process delivery did not resume within 20s\nA: %s\nB: %s", a.log, b.log)
		}
	}
	if status, body := a.call("GET", "/readyz", "", nil); status != 200 {
		t.Fatalf("/readyz after recovery = %d %s", status, body)
	}
	if _, m := a.call("GET", "/metrics", "", nil); !strings.Contains(string(m), "\nswitchboard_redis_up 1\n") {
		t.Fatalf("metrics after recovery lack switchboard_redis_up 1")
	}
	// Still exactly once: a fresh message arrives once on each member.
	s2.send("final")
	for _, s := range []*sock{s1, s2, s3} {
		for {
			f := s.next("message", 5*time.Second)
			if f == nil {
				t.Fatal("final message not delivered")
			}
			if f["text"] == "final" {
				break
			}
		}
		if f := s.next("message", 300*time.Millisecond); f != nil && f["text"] == "final" {
			t.Fatal("final delivered twice")
		}
	}
}

func TestSIGTERMClosesSocketsWith1001(t *testing.T) {
	c := newCluster(t, "")
	a := c.start("A")
	tok, _ := a.register("sig", false)
	s := a.chat(tok)
	e := dialSock(t, a.wsURL("/ws/echo/"))
	start := time.Now()
	a.stop() // SIGTERM; fails the test unless exit within 10 s, status 0
	for _, sk := range []*sock{s, e} {
		ce, ok := sk.waitClose(time.Second)
		if !ok || ce == nil || ce.Code != 1001 || ce.Text != "server shutting down" {
			t.Fatalf("close on SIGTERM = %v, want 1001 server shutting down", ce)
		}
	}
	t.Logf("exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
}

func TestEmbeddedSecretIsGeneratedOnceAndReused(t *testing.T) {
	c := newCluster(t, "")
	db := filepath.Join(t.TempDir(), "e.db")
	c.database = "sqlite:" + db
	c.secret = ""
	a := c.start("A")
	tok, _ := a.register("sec", false)
	info, err := os.Stat(db + ".jwt-secret")
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, mode %v; want 0600", err, info)
	}
	a.stop()
	a.run()
	if status, _ := a.call("GET", "/api/users/me", "JWT "+tok, nil); status != 200 {
		t.Fatalf("token after restart = %d, want 200 (secret reused)", status)
	}
}

// waitPresence polls the presence endpoint until it lists exactly want.
func waitPresence(t testing.TB, p *proc, tok, group string, want []string) {
	t.Helper()
	deadline := time.Now().Add(70 * time.Second)
	for {
		status, body := p.call("GET", "/api/groups/"+group+"/presence", "JWT "+tok, nil)
		var got struct{ Users []string }
		json.Unmarshal(body, &got)
		if status == 200 && strings.Join(got.Users, ",") == strings.Join(want, ",") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("presence of %s = %d %s, want %v", group, status, body, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
