package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"switchboard/internal/testenv"
)

// benchServer is a switchboard process started for a test.
type benchServer struct {
	url, db, secret string
	pid             int
}

// startBenchServer builds switchboard (once per test) and runs it on a
// free port with a SQLite file of its own and env added; it is stopped
// when t ends.
func startBenchServer(t *testing.T, bin string, env ...string) benchServer {
	t.Helper()
	if bin == "" {
		t.Fatal("no binary")
	}
	dir := t.TempDir()
	port := testenv.FreePort(t)
	s := benchServer{url: "http://127.0.0.1:" + strconv.Itoa(port), db: "sqlite:" + filepath.Join(dir, "b.db"),
		secret: "wsbench-recover-test-secret-0123456789abcdef"}
	var logs bytes.Buffer
	srv := exec.Command(bin)
	srv.Env = append(os.Environ(), "ADDR=127.0.0.1:"+strconv.Itoa(port), "DATABASE_URL="+s.db,
		"JWT_SECRET="+s.secret, "WS_RATE_LIMIT=0", "LOG_LEVEL=warn")
	srv.Env = append(srv.Env, env...)
	srv.Stdout, srv.Stderr = &logs, &logs
	if err := srv.Start(); err != nil {
		t.Fatalf("start switchboard: %v", err)
	}
	s.pid = srv.Process.Pid
	t.Cleanup(func() {
		srv.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			srv.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("server log:\n%s", truncate(logs.String(), 4000))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("switchboard did not listen on port %d\n%s", port, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func buildSwitchboard(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	bin := filepath.Join(t.TempDir(), "switchboard")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, goBin, "build", "-o", bin, "switchboard/cmd/switchboard").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/switchboard: %v\n%s", err, out)
	}
	return bin
}

// TestRecoverStorm runs `wsbench recover` against real servers: with
// history every member recovers every missed message once and in order;
// past HISTORY_RECOVERY_MAX none is recovered, and the run says so
// (ok false) rather than passing.
func TestRecoverStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts servers")
	}
	bin := buildSwitchboard(t)
	tests := []struct {
		name          string
		env           []string
		wantRecovered bool
	}{
		{"recovered", nil, true},
		{"too many missed", []string{"HISTORY_RECOVERY_MAX=5"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startBenchServer(t, bin, tt.env...)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			args := []string{"recover", "-url", s.url, "-db", s.db, "-jwt-secret", s.secret, "-server-pid", strconv.Itoa(s.pid),
				"-n", "150", "-missed", "20", "-timeout", "40s", "-q"}
			err := run(ctx, args, func(string) string { return "" }, &stdout, &stderr)
			if err != nil && !errors.Is(err, errNotOK) {
				t.Fatalf("wsbench %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
			}
			r := parseRecover(t, stdout.String())
			if tt.wantRecovered {
				if !r.OK || r.Recovered != 150 || r.Delivered != 150*20 || r.Lost != 0 || r.Duplicates != 0 || r.Mismatched != 0 || r.CompleteMs.N != 150 {
					t.Errorf("recover: %+v; want ok, 150 recovered, 3000 delivered, nothing lost, duplicated or wrong\n%s", r, stdout.String())
				}
				if r.ServerCPUMs < 0 || r.StormSeconds <= 0 {
					t.Errorf("recover: storm %.3f s, server CPU %d ms; want figures", r.StormSeconds, r.ServerCPUMs)
				}
			} else if r.OK || r.Recovered != 0 || r.NotRecovered != 150 || r.Lost != 150*20 {
				t.Errorf("recover past HISTORY_RECOVERY_MAX: ok %v, recovered %d, not %d, lost %d; want not ok, 0, 150, 3000",
					r.OK, r.Recovered, r.NotRecovered, r.Lost)
			}
		})
	}
}

func parseRecover(t *testing.T, out string) recoverResult {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "RESULT "); ok {
			var r recoverResult
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				t.Fatalf("decode RESULT: %v", err)
			}
			return r
		}
	}
	t.Fatalf("no RESULT line in:\n%s", out)
	return recoverResult{}
}

// TestHistoryMarkdown renders saved outputs: a pair of runs with on as a
// share of off and the p99 difference, and a storm.
func TestHistoryMarkdown(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, v any) string {
		b, _ := json.Marshal(v)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, append([]byte("table…\nRESULT "), append(b, '\n')...), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	on := write("on.txt", result{Scenario: "fanout", DeliveriesPerSec: 900, LatencyMs: quantiles{P99: 5.5}, OK: true})
	off := write("off.txt", result{Scenario: "fanout", DeliveriesPerSec: 1000, LatencyMs: quantiles{P99: 4}, OK: true})
	storm := write("r.txt", recoverResult{Scenario: "recover", Members: 5000, Missed: 100, Recovered: 5000, Delivered: 500000, Expected: 500000, StormSeconds: 2.5, ServerCPUMs: 1900, OK: true})
	var out bytes.Buffer
	if err := historyMarkdown([]string{"W4=" + on + "," + off, "R1=" + storm, "W9=" + filepath.Join(dir, "none") + "," + off}, &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"| W4 | on | 900 | 90% |", "| +1.500 ms |", "| W4 | off | 1000 |", "| R1 | 5000 | 100 | all | 5000 / 5000 | 500000 / 500000 | 0 / 0 / 0 / 0 | 2.50 |", "| 1900 |", "| W9 | on | no output"} {
		if !strings.Contains(got, want) {
			t.Errorf("history markdown lacks %q:\n%s", want, got)
		}
	}
}

// TestHistoryMarkdownPoolsRuns: with several runs per side ("+"), the row
// is every delivery of those runs pooled: the p99 of the merged latencies
// (not of any one run, nor a mean of p99s), deliveries/s over the summed
// send time; a line lists each run's p99; a run without a histogram makes
// the pool skipped.
func TestHistoryMarkdownPoolsRuns(t *testing.T) {
	dir := t.TempDir()
	run := func(name string, sendS float64, lat map[time.Duration]int) string {
		var h histogram
		n := 0
		for d, c := range lat {
			for range c {
				h.Record(d)
			}
			n += c
		}
		r := result{Scenario: "fanout", Deliveries: int64(n), SendSeconds: sendS, DeliveriesPerSec: float64(n) / sendS,
			LatencyMs: quantilesOf(&h), ServerCPUMsPer1kDeliv: 10, OK: true}
		x := h.export()
		r.LatencyHist = &x
		b, _ := json.Marshal(r)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, append([]byte("RESULT "), b...), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// One bad run of two: alone its p99 is 20 ms, pooled it is 2 ms.
	on1 := run("on1", 10, map[time.Duration]int{time.Millisecond: 985, 20 * time.Millisecond: 15})
	on2 := run("on2", 10, map[time.Duration]int{2 * time.Millisecond: 1000})
	off1 := run("off1", 10, map[time.Duration]int{time.Millisecond: 1000})
	off2 := run("off2", 10, map[time.Duration]int{time.Millisecond: 1000})
	var out bytes.Buffer
	if err := historyMarkdown([]string{"W4=" + on1 + "+" + on2 + "," + off1 + "+" + off2}, &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"| W4 | on | 100 | 100% | ", " / 2.0", "| W4 | off | 100 |", "p99 of each run in order, on: 20.", ", 2.0", "on − off by pair: +19.", "(median +"} {
		if !strings.Contains(got, want) {
			t.Errorf("pooled history markdown lacks %q:\n%s", want, got)
		}
	}
	var pooled result
	for _, l := range strings.Split(got, "\n") {
		if strings.HasPrefix(l, "| W4 | on |") {
			f := strings.Split(l, "|")
			q := strings.Split(strings.TrimSpace(f[5]), " / ")
			if len(q) != 4 {
				t.Fatalf("latency column %q", f[5])
			}
			fmt.Sscan(q[2], &pooled.LatencyMs.P99)
		}
	}
	if p99 := pooled.LatencyMs.P99; p99 < 1.9 || p99 > 2.1 {
		t.Errorf("pooled p99 = %v ms, want about 2 (the 99th percentile of both runs' deliveries)", p99)
	}

	// A run from an older wsbench (no histogram) cannot be pooled.
	old := filepath.Join(dir, "old")
	os.WriteFile(old, []byte(`RESULT {"scenario":"fanout","latency_ms":{"p99":3},"ok":true}`), 0o644)
	out.Reset()
	if err := historyMarkdown([]string{"W4=" + on1 + "+" + old + "," + off1}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "has no latency histogram to pool") {
		t.Errorf("pool with an old run:\n%s", out.String())
	}
}
