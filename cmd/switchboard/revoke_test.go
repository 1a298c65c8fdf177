package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// Without Redis, `setactive U false` reaches the running server with a
// service token and closes the user's sockets at once.
func TestSetActiveWithoutRedisClosesSocketsOnTheServer(t *testing.T) {
	c := newCluster(t, "")
	a := c.start("A")
	tok, _ := a.register("nora", false)
	s := a.chat(tok)
	var out bytes.Buffer
	start := time.Now()
	if err := runCLI(a, nil, &out, "setactive", "nora", "false"); err != nil {
		t.Fatalf("setactive: %v\n%s", err, out.String())
	}
	ce, ok := s.waitClose(time.Second)
	if !ok || ce == nil || ce.Code != 4003 || ce.Text != "user inactive" {
		t.Fatalf("socket after setactive: %v (in time %v), want 4003 user inactive\n%s", ce, ok, out.String())
	}
	t.Logf("closed %s after the command started", time.Since(start).Round(time.Millisecond))

	// A user's own token is no service token, and garbage is refused.
	other, _ := a.register("nick", true)
	for _, auth := range []string{"", "JWT " + other, "JWT garbage", "Api-Key " + c.apiKey} {
		if status, _ := a.call("POST", "/api/internal/revoke", auth, nil); status != 401 {
			t.Fatalf("POST /api/internal/revoke with %.10q = %d, want 401", auth, status)
		}
	}

	// With no server running the command says so and succeeds.
	a.stop()
	out.Reset()
	if err := runCLI(a, nil, &out, "setactive", "nick", "false"); err != nil || !strings.Contains(out.String(), "no server is running") {
		t.Fatalf("setactive with no server: %v, %q", err, out.String())
	}
}
