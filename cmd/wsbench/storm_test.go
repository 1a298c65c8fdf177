package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPageBackoff pins pageBackoff to web/switchboard.js's backoff(tries):
// 1 s doubling to 30 s, ±20% jitter, never under 1 s.
func TestPageBackoff(t *testing.T) {
	tests := []struct {
		tries int
		rnd   float64
		want  time.Duration
	}{
		{0, 0.5, 1000 * time.Millisecond}, // tries below 1 count as 1
		{1, 0, 1000 * time.Millisecond},   // 800 ms, raised to the 1 s floor
		{1, 0.5, 1000 * time.Millisecond},
		{1, 0.999, 1200 * time.Millisecond},
		{2, 0, 1600 * time.Millisecond},
		{2, 0.5, 2000 * time.Millisecond},
		{3, 0.25, 3600 * time.Millisecond},
		{5, 0.999, 19194 * time.Millisecond},
		{6, 0, 24000 * time.Millisecond}, // 32 s capped to 30 s, then jittered
		{6, 0.999, 30000 * time.Millisecond},
		{40, 0.5, 30000 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := pageBackoff(tt.tries, tt.rnd); got != tt.want {
			t.Errorf("pageBackoff(%d, %g) = %s; want %s", tt.tries, tt.rnd, got, tt.want)
		}
	}
}

// TestStormMemberTracking checks the page-position bookkeeping a member
// does after the cut: every offset once, in order, with the data
// published at it; a skipped offset is lost, a repeated one a duplicate.
func TestStormMemberTracking(t *testing.T) {
	w := &stormWorker{allDone: make(chan struct{})}
	w.end.Store(110)
	w.pending.Store(1)
	m := &stormMember{w: w, base: 100, last: 103, cut: true, welcomed: 1}
	for _, off := range []uint64{104, 105, 105, 107, 108} {
		m.track(off, []byte("storm|"+strconv.FormatUint(off-100, 10)))
	}
	m.track(109, []byte("storm|1"))
	if m.delivered != 5 || m.dups != 1 || m.lost != 1 || m.mismatched != 1 || m.complete != 0 {
		t.Fatalf("after 104 105 105 107 108 109(wrong): delivered %d dups %d lost %d mismatched %d complete %d; want 5 1 1 1 0",
			m.delivered, m.dups, m.lost, m.mismatched, m.complete)
	}
	m.track(110, []byte("storm|10"))
	select {
	case <-w.allDone:
	default:
		t.Fatal("the member read up to the end but is not complete")
	}
	if m.complete == 0 || m.last != 110 {
		t.Errorf("complete %d, last %d; want set, 110", m.complete, m.last)
	}
	if off, ok := uintField([]byte(`{"type":"publish","group":"chat-s","data":"storm|3","ts":"x","offset":123}`), keyOffset); !ok || off != 123 {
		t.Errorf("uintField = %d, %v; want 123, true", off, ok)
	}
}

// TestStormKillRestart runs `wsbench storm` for real: a built switchboard,
// 40 members from two worker processes over two source addresses, 30
// messages published, the server killed with SIGKILL and started again on
// the same address by -restart-cmd. Every member must be welcomed again
// with recovered: true and get exactly what it had not read.
func TestStormKillRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts servers")
	}
	bin := buildSwitchboard(t)
	const key = "storm-test-api-key-0123456789"
	s := startBenchServer(t, bin, "PUBLISH_API_KEY="+key)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "restarted.pid")
	t.Cleanup(func() {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			syscall.Kill(pid, syscall.SIGTERM)
			for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
				time.Sleep(50 * time.Millisecond)
			}
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "restarted.log")); err == nil {
				t.Logf("restarted server log:\n%s", truncate(string(b), 4000))
			}
		}
	})
	// The same server again: same binary, address, database and settings.
	// The secrets travel in the environment the command inherits.
	t.Setenv("STORM_TEST_JWT_SECRET", s.secret)
	t.Setenv("STORM_TEST_API_KEY", key)
	restart := fmt.Sprintf(`ADDR=%s DATABASE_URL=%s JWT_SECRET="$STORM_TEST_JWT_SECRET" PUBLISH_API_KEY="$STORM_TEST_API_KEY" `+
		`WS_RATE_LIMIT=0 LOG_LEVEL=warn %s </dev/null >>%s 2>&1 & echo $! >%s; echo $!`,
		strings.TrimPrefix(s.url, "http://"), s.db, bin, filepath.Join(dir, "restarted.log"), pidFile)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := []string{"storm", "-url", s.url, "-db", s.db, "-jwt-secret", s.secret, "-api-key", key,
		"-server-pid", strconv.Itoa(s.pid), "-restart-cmd", restart,
		"-n", "40", "-procs", "2", "-sources", "2", "-missed", "30", "-ref-rate", "10", "-timeout", "90s", "-q"}
	err := run(ctx, args, func(string) string { return "" }, &stdout, &stderr)
	if err != nil && !errors.Is(err, errNotOK) {
		t.Fatalf("wsbench storm: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), stdout.String())
	}
	r := parseStorm(t, stdout.String())
	t.Logf("wsbench storm:\n%s", stdout.String())
	if !r.OK || r.Connected != 40 || r.Welcomed != 40 || r.Recovered != 40 || r.NotRecovered != 0 {
		t.Errorf("storm: ok %v, connected %d, welcomed %d, recovered %d, not %d; want true, 40, 40, 40, 0\n%s",
			r.OK, r.Connected, r.Welcomed, r.Recovered, r.NotRecovered, stdout.String())
	}
	if r.Lost != 0 || r.Duplicates != 0 || r.Mismatched != 0 || r.Invalid != 0 || r.Delivered != r.Expected || r.Expected != r.UnreadMessages {
		t.Errorf("storm: lost %d dup %d wrong %d invalid %d, delivered %d of %d (unread at the cut %d); want nothing lost, all delivered\n%s",
			r.Lost, r.Duplicates, r.Mismatched, r.Invalid, r.Delivered, r.Expected, r.UnreadMessages, stdout.String())
	}
	if r.End != r.Base+30 || r.Epoch == "" {
		t.Errorf("storm: offsets %d..%d epoch %q; want 30 offsets and an epoch", r.Base, r.End, r.Epoch)
	}
	cut := 0
	for _, n := range r.CutCloses {
		cut += n
	}
	if cut != 40 || len(r.Unexpected) != 0 || len(r.Failures) != 0 {
		t.Errorf("storm: %d closes at the cut (%v), unexpected %v, failures beyond the cut %v; want 40 and none",
			cut, r.CutCloses, r.Unexpected, r.Failures)
	}
	if r.ServerPID <= 0 || r.ServerPID == s.pid || r.ServerPeakRSSKiB <= 0 || r.ServerCPUMs <= 0 || r.DownMs <= 0 {
		t.Errorf("storm: restarted pid %d (old %d), peak RSS %d KiB, CPU %d ms, down %.1f ms; want a new server's figures",
			r.ServerPID, s.pid, r.ServerPeakRSSKiB, r.ServerCPUMs, r.DownMs)
	}
	// The page waits at least 1 s before its first retry.
	if r.WelcomeMs.P50 < 1000 || r.BackSeconds < 1 || r.BackSeconds > 60 {
		t.Errorf("storm: welcome p50 %.0f ms, all back after %.3f s; want at least the 1 s backoff", r.WelcomeMs.P50, r.BackSeconds)
	}
	if r.TargetMet == nil || r.TargetSeconds != 6 {
		t.Errorf("storm: target %.3f s, met %v; want 40 / 10 × 1.5 = 6 s and a verdict", r.TargetSeconds, r.TargetMet)
	}
	if pid, err := os.ReadFile(pidFile); err != nil || strings.TrimSpace(string(pid)) != strconv.Itoa(r.ServerPID) {
		t.Errorf("restart-cmd wrote pid %q (%v); the result says %d", pid, err, r.ServerPID)
	}

	// A restart that does not come up ends the run at once with an error
	// (not -timeout later): here the "server" is a process that exits.
	s2 := startBenchServer(t, bin, "PUBLISH_API_KEY="+key)
	stdout.Reset()
	stderr.Reset()
	args = []string{"storm", "-url", s2.url, "-db", s2.db, "-jwt-secret", s2.secret, "-api-key", key,
		"-server-pid", strconv.Itoa(s2.pid), "-restart-cmd", "sleep 0.3 </dev/null >/dev/null 2>&1 & echo $!",
		"-n", "10", "-procs", "1", "-missed", "3", "-timeout", "60s", "-q"}
	start := time.Now()
	err = run(ctx, args, func(string) string { return "" }, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("storm with a restart that exits: err %v; want one saying the server exited\n%s", err, stdout.String())
	}
	if d := time.Since(start); d > 50*time.Second {
		t.Errorf("storm with a restart that exits took %s: it waited for -timeout", d)
	}
}

func parseStorm(t *testing.T, out string) stormResult {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "RESULT "); ok {
			var r stormResult
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				t.Fatalf("decode RESULT: %v", err)
			}
			return r
		}
	}
	t.Fatalf("no RESULT line in:\n%s", out)
	return stormResult{}
}

// TestStormMarkdown renders a saved storm output and a skipped one.
func TestStormMarkdown(t *testing.T) {
	dir := t.TempDir()
	met := true
	b, _ := json.Marshal(stormResult{Scenario: "storm", Members: 15000, RefRate: 2500, TargetSeconds: 9, BackSeconds: 4.5, Recovered: 15000,
		UnreadMembers: 9000, UnreadMessages: 300000, Delivered: 300000, Expected: 300000, CutFailures: map[string]int{"connection refused": 12},
		ServerPeakRSSKiB: 204800, TargetMet: &met, OK: true})
	ok := filepath.Join(dir, "s1.txt")
	os.WriteFile(ok, append([]byte("table\nRESULT "), append(b, '\n')...), 0o644)
	skipped := filepath.Join(dir, "s2.txt")
	os.WriteFile(skipped, []byte("SKIPPED: wsbench exited with 1: boom\n"), 0o644)
	var out bytes.Buffer
	if err := stormMarkdown([]string{"S1=" + ok, "S1-2=" + skipped}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| S1 | 15000 | 2500 | 9.00 | 4.500 |", "| 15000 / 15000 | 9000 / 300000 | 300000 / 300000 |", "| connection refused: 12 | none |", "| 200.0 |", "| **yes** | true |", "| S1-2 | skipped: wsbench exited with 1: boom |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("storm markdown lacks %q:\n%s", want, out.String())
		}
	}
}
