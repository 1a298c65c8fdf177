package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMetricsExposeSocketsMessagesAndFailures(t *testing.T) {
	c := newCluster(t, "")
	c.extra = []string{"WS_SEND_QUEUE=4", "WS_RATE_LIMIT=0"}
	a := c.start("A")
	tok, _ := a.register("mo", false)
	s1 := a.chat(tok)
	a.chat(tok)
	s1.send("one")
	s1.next("message", 5*time.Second)
	bad := dialSock(t, a.wsURL("/ws/chat/?token=nope"))
	bad.waitClose(5 * time.Second)
	a.call("POST", "/api/groups/chat-m/messages", "Api-Key "+c.apiKey, map[string]any{"data": 1})
	a.call("PUT", "/api/status/k", "Api-Key "+c.apiKey, map[string]any{"value": 1})

	status, body := a.call("GET", "/metrics", "", nil)
	if status != 200 {
		t.Fatalf("GET /metrics = %d", status)
	}
	text := string(body)
	for _, tt := range []struct {
		metric string
		min    float64
	}{
		{`switchboard_sockets_open`, 2},
		{`switchboard_groups`, 1},
		{`switchboard_messages_in_total`, 1},
		{`switchboard_messages_out_total`, 4}, // "one" and the publish, to 2 members
		{`switchboard_auth_failures_total{reason="token invalid"}`, 1},
		{`switchboard_publish_calls_total{kind="group"}`, 1},
		{`switchboard_publish_calls_total{kind="status"}`, 1},
		{`switchboard_socket_closes_total{code="4001"}`, 1},
		{`switchboard_frames_dropped_total`, 0},
		{`switchboard_slow_consumers_total`, 0},
		// History is on by default: "one" and the publish were stored.
		{`switchboard_history_commit_seconds_count`, 1},
		{`switchboard_history_wait_seconds_count`, 2},
		{`switchboard_history_batch_messages_sum`, 2},
	} {
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(tt.metric) + ` (\S+)$`)
		m := re.FindStringSubmatch(text)
		if m == nil {
			t.Errorf("metric %s missing", tt.metric)
			continue
		}
		if v, _ := strconv.ParseFloat(m[1], 64); v < tt.min {
			t.Errorf("%s = %v, want ≥ %v", tt.metric, v, tt.min)
		}
	}
	// The checkpointer runs on the embedded SQLite database only.
	sqlite := !strings.HasPrefix(c.database, "postgres")
	if got := regexp.MustCompile(`(?m)^switchboard_sqlite_checkpoint_seconds_count `).MatchString(text); got != sqlite {
		t.Errorf("switchboard_sqlite_checkpoint_seconds exported = %v, want %v (database %s)", got, sqlite, strings.SplitN(c.database, ":", 2)[0])
	}
	if regexp.MustCompile(`switchboard_redis_up`).MatchString(text) {
		t.Errorf("switchboard_redis_up exported without Redis")
	}
}
