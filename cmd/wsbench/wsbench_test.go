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
	"unicode/utf8"

	"switchboard/internal/testenv"
)

// TestMain lets the test binary serve as a -procs worker, as wsbench does.
func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		if err := workerMain(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestHistogramQuantile(t *testing.T) {
	h := &histogram{}
	for i := 1; i <= 100_000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 50 * time.Millisecond},
		{0.9, 90 * time.Millisecond},
		{0.99, 99 * time.Millisecond},
		{0.999, 99900 * time.Microsecond},
		{1, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		got := h.Quantile(tt.q)
		if diff := float64(got-tt.want) / float64(tt.want); diff > 0.016 || diff < -0.016 {
			t.Errorf("Quantile(%g) = %s; want %s ±1.6%%", tt.q, got, tt.want)
		}
	}
	m := &histogram{}
	m.merge(h.export())
	if m.Count() != 100_000 || m.Quantile(0.5) != h.Quantile(0.5) {
		t.Errorf("merged histogram: count %d p50 %s; want 100000, %s", m.Count(), m.Quantile(0.5), h.Quantile(0.5))
	}
	for _, v := range []int64{0, 1, 127, 128, 129, 1 << 20, 1<<40 + 12345, 1 << 50} {
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d; out of range", v, i)
		}
		if v < 1<<histMaxLen {
			if got := histValue(i); float64(got-v) > 0.016*float64(v)+1 || float64(v-got) > 0.016*float64(v)+1 {
				t.Errorf("histValue(histIndex(%d)) = %d; want within 1.6%%", v, got)
			}
		}
	}
}

func TestStringField(t *testing.T) {
	tests := []struct {
		name, frame string
		key         []byte
		want        string
		ok          bool
	}{
		{"text", `{"type":"message","group":"chat-b","user":"b000001","text":"b000001|3|1732612345123456789","ts":"x"}`, keyText, "b000001|3|1732612345123456789", true},
		{"cjk", `{"type":"message","group":"chat-一","user":"一000001","text":"一000001|1|5","ts":"x"}`, keyText, "一000001|1|5", true},
		{"escaped", `{"type":"message","text":"a\"b\\c","ts":"x"}`, keyText, `a"b\c`, true},
		{"data", `{"type":"publish","group":"chat-b","data":"pub0.1|7|9","ts":"x"}`, keyData, "pub0.1|7|9", true},
		{"data not a string", `{"type":"publish","group":"chat-b","data":{"x":1},"ts":"x"}`, keyData, "", false},
		{"missing", `{"type":"join","user":"b"}`, keyText, "", false},
		{"unterminated", `{"type":"message","text":"abc`, keyText, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := stringField([]byte(tt.frame), tt.key)
			if string(got) != tt.want || ok != tt.ok {
				t.Errorf("stringField(%s, %s) = %q, %v; want %q, %v", tt.frame, tt.key, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestParseText(t *testing.T) {
	tests := []struct {
		in     string
		sender string
		seq    int
		ts     int64
		ok     bool
	}{
		{"b000012|37|1732612345123456789", "b000012", 37, 1732612345123456789, true},
		{"一000001|1|0", "一000001", 1, 0, true},
		{"pub3.0|2|5", "pub3.0", 2, 5, true},
		{"b|x|5", "", 0, 0, false},
		{"b|1|", "", 0, 0, false},
		{"|1|2", "", 0, 0, false},
		{"hello", "", 0, 0, false},
		{"b|1|99999999999999999999", "", 0, 0, false},
	}
	for _, tt := range tests {
		sender, seq, ts, ok := parseText([]byte(tt.in))
		if string(sender) != tt.sender || seq != tt.seq || ts != tt.ts || ok != tt.ok {
			t.Errorf("parseText(%q) = %q, %d, %d, %v; want %q, %d, %d, %v", tt.in, sender, seq, ts, ok, tt.sender, tt.seq, tt.ts, tt.ok)
		}
	}
	b := appendText(nil, "b000001", 42, 1732612345123456789)
	if sender, seq, ts, ok := parseText(b); string(sender) != "b000001" || seq != 42 || ts != 1732612345123456789 || !ok {
		t.Errorf("parseText(appendText(...)) = %q, %d, %d, %v", sender, seq, ts, ok)
	}
}

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		in       string
		wantHTTP string
		wantWS   string
		ok       bool
	}{
		{"http://127.0.0.1:8000", "http://127.0.0.1:8000", "ws://127.0.0.1:8000", true},
		{"ws://127.0.0.5:81/", "http://127.0.0.5:81", "ws://127.0.0.5:81", true},
		{"http://[::1]:8000", "http://[::1]:8000", "ws://[::1]:8000", true},
		{"http://10.1.2.3:8000", "", "", false},
		{"http://8.8.8.8", "", "", false},
		{"ftp://127.0.0.1", "", "", false},
		{"127.0.0.1:8000", "", "", false},
	}
	for _, tt := range tests {
		h, w, _, err := checkLoopback(context.Background(), tt.in)
		if (err == nil) != tt.ok || h != tt.wantHTTP || w != tt.wantWS {
			t.Errorf("checkLoopback(%q) = %q, %q, %v; want %q, %q, ok %v", tt.in, h, w, err, tt.wantHTTP, tt.wantWS, tt.ok)
		}
	}
}

func TestBuildLayout(t *testing.T) {
	tests := []struct {
		name    string
		cfg     config
		groups  int
		senders int
		msgs    int
	}{
		{"one group", config{Scenario: "fanout", N: 10, Groups: 1, Msgs: 3, Prefix: "b", Via: "socket", URLs: []string{"a"}, Sources: 1}, 1, 10, 3},
		{"many groups", config{Scenario: "groups", N: 10000, Groups: 1000, Msgs: 2, RuneBase: 0x4E00, Via: "socket", URLs: []string{"a", "b"}, Sources: 1}, 1000, 10000, 2},
		{"publish", config{Scenario: "fanout", N: 5, Groups: 1, Msgs: 4, Prefix: "b", Via: "publish", URLs: []string{"a"}, Sources: 1}, 1, 4, 4},
		{"paced", config{Scenario: "fanout", N: 4, Groups: 1, Rate: 10, Duration: 1500 * time.Millisecond, Prefix: "b", Via: "socket", URLs: []string{"a"}, Sources: 1}, 1, 4, 0},
		{"idle", config{Scenario: "idle", N: 7, Groups: 1, Prefix: "b", Via: "socket", URLs: []string{"a"}, Sources: 2}, 1, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := buildLayout(tt.cfg)
			if err != nil {
				t.Fatalf("buildLayout: %v", err)
			}
			if len(l.groups) != tt.groups || len(l.members) != tt.cfg.N {
				t.Fatalf("buildLayout: %d groups, %d members; want %d, %d", len(l.groups), len(l.members), tt.groups, tt.cfg.N)
			}
			senders, total, names := 0, 0, map[string]bool{}
			for _, m := range l.members {
				r, _ := utf8.DecodeRuneInString(m.Name)
				if want := l.groups[m.Group].Name; "chat-"+string(r) != want {
					t.Errorf("member %q is in %q; want chat-%c", m.Name, want, r)
				}
				if names[m.Name] {
					t.Errorf("duplicate username %q", m.Name)
				}
				names[m.Name] = true
			}
			orders := map[int]bool{}
			for _, g := range l.groups {
				senders += len(g.Senders)
				for _, s := range g.Senders {
					total += s.Msgs
					orders[s.Order] = true
				}
			}
			if senders != tt.senders || len(orders) != senders {
				t.Errorf("%d senders, %d distinct orders; want %d", senders, len(orders), tt.senders)
			}
			want := tt.senders * tt.msgs
			if tt.cfg.Rate > 0 {
				want = 15
			}
			if total != want {
				t.Errorf("%d messages in all; want %d", total, want)
			}
		})
	}
}

// TestSmoke runs the fanout and idle scenarios against a real switchboard.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts a server")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "switchboard")
	bctx, bcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer bcancel()
	build := exec.CommandContext(bctx, goBin, "build", "-o", bin, "switchboard/cmd/switchboard")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/switchboard: %v\n%s", err, out)
	}
	// Each run stops by itself after -timeout; this bounds the rest.
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Second)
	defer cancel()

	port := testenv.FreePort(t)
	const secret = "wsbench-smoke-test-secret-0123456789abcdef"
	db := "sqlite:" + filepath.Join(dir, "b.db")
	var logs bytes.Buffer
	srv := exec.Command(bin)
	srv.Env = append(os.Environ(), "ADDR=127.0.0.1:"+strconv.Itoa(port), "DATABASE_URL="+db,
		"JWT_SECRET="+secret, "WS_RATE_LIMIT=0", "WS_SEND_QUEUE=8192", "LOG_LEVEL=warn")
	srv.Stdout, srv.Stderr = &logs, &logs
	if err := srv.Start(); err != nil {
		t.Fatalf("start switchboard: %v", err)
	}
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
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("switchboard did not listen on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}

	common := []string{"-url", "http://" + addr, "-db", db, "-jwt-secret", secret,
		"-server-pid", strconv.Itoa(srv.Process.Pid), "-timeout", "25s", "-settle", "300ms", "-q"}
	tests := []struct {
		name string
		args []string
	}{
		{"fanout", []string{"fanout", "-n", "200", "-msgs", "3"}},
		{"idle", []string{"idle", "-n", "300", "-hold", "500ms", "-procs", "2", "-sources", "2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append(tt.args, common...)
			err := run(ctx, args, func(string) string { return "" }, &stdout, &stderr)
			if err != nil && !errors.Is(err, errNotOK) {
				t.Fatalf("wsbench %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
			}
			r := parseResult(t, stdout.String())
			n, _ := strconv.Atoi(tt.args[2])
			if r.Connected != n || r.Lost != 0 || len(r.UnexpectedCloses) != 0 || len(r.ConnectFailures) != 0 || !r.OK {
				t.Errorf("wsbench %s: connected %d (want %d), lost %d, unexpected closes %v, failures %v, ok %v; want all connected, 0 lost, no closes\n%s",
					tt.name, r.Connected, n, r.Lost, r.UnexpectedCloses, r.ConnectFailures, r.OK, stdout.String())
			}
			if tt.name == "fanout" {
				if want := int64(200 * 200 * 3); r.Deliveries != want {
					t.Errorf("fanout deliveries = %d; want %d", r.Deliveries, want)
				}
				if r.LatencyMs.N == 0 || r.LatencyMs.P50 <= 0 {
					t.Errorf("fanout latency = %+v; want samples", r.LatencyMs)
				}
			}
			if len(r.Servers) != 1 || r.Servers[0].RSSSettledKiB == 0 {
				t.Errorf("server stats = %+v; want one server with RSS", r.Servers)
			}
		})
	}
}

func parseResult(t *testing.T, out string) result {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "RESULT "); ok {
			var r result
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				t.Fatalf("decode RESULT: %v", err)
			}
			return r
		}
	}
	t.Fatalf("no RESULT line in:\n%s", out)
	return result{}
}

// TestSendStart: -start-unix-ms sets the start unless it has passed by
// the time the run is ready, when the run starts at once and says so.
func TestSendStart(t *testing.T) {
	base := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		earliest, at, want time.Duration // from base; at -1: not given
		late               bool
	}{
		{350 * time.Millisecond, -1, 350 * time.Millisecond, false},
		{350 * time.Millisecond, 5 * time.Second, 5 * time.Second, false},
		{350 * time.Millisecond, 350 * time.Millisecond, 350 * time.Millisecond, false},
		{350 * time.Millisecond, 25 * time.Millisecond, 350 * time.Millisecond, true},
	} {
		var at time.Time
		if tt.at >= 0 {
			at = base.Add(tt.at)
		}
		got, late := sendStart(base.Add(tt.earliest), at)
		if want := base.Add(tt.want); !got.Equal(want) || late != tt.late {
			t.Errorf("sendStart(+%v, at %v) = +%v, late %v; want +%v, late %v", tt.earliest, tt.at, got.Sub(base), late, tt.want, tt.late)
		}
	}
}
