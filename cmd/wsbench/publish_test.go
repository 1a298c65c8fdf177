package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPublishRun runs `wsbench publish` against a real server, both
// kinds: every request answered, every subscriber got every publish in
// order (group) or ended at the last version (status).
func TestPublishRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts a server")
	}
	bin := buildSwitchboard(t)
	const key = "wsbench-test-key-0123456789"
	s := startBenchServer(t, bin, "PUBLISH_API_KEY="+key)
	for _, kind := range []string{"group", "status"} {
		t.Run(kind, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			args := []string{"publish", "-url", s.url, "-db", s.db, "-jwt-secret", s.secret, "-server-pid", strconv.Itoa(s.pid),
				"-kind", kind, "-clients", "3", "-subscribers", "4", "-duration", "1s", "-api-key", key, "-timeout", "40s", "-q"}
			if err := run(ctx, args, func(string) string { return "" }, &stdout, &stderr); err != nil {
				t.Fatalf("wsbench %s: %v\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
			}
			r := parsePublish(t, stdout.String())
			if !r.OK || r.Requests == 0 || r.Errors != 0 || r.Subscribed != 4 || r.Lost != 0 || r.RequestMs.N != uint64(r.Requests) {
				t.Fatalf("publish %s: %+v; want ok, requests, no errors, 4 subscribers, nothing lost\n%s", kind, r, stdout.String())
			}
			if kind == "group" && r.Delivered != 4*r.Requests {
				t.Errorf("group: delivered %d; want 4 × %d", r.Delivered, r.Requests)
			}
			if kind == "status" && r.LastVer != uint64(r.Requests) {
				t.Errorf("status: last version %d after %d PUTs on a fresh key", r.LastVer, r.Requests)
			}
		})
	}
	t.Run("wrong key", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		args := []string{"publish", "-url", s.url, "-db", s.db, "-jwt-secret", s.secret, "-subscribers", "0",
			"-clients", "1", "-duration", "200ms", "-api-key", "wrong", "-timeout", "20s", "-q"}
		err := run(context.Background(), args, func(string) string { return "" }, &stdout, &stderr)
		r := parsePublish(t, stdout.String())
		if !errors.Is(err, errNotOK) || r.OK || r.Errors == 0 || r.RequestFailures["HTTP 401"] == 0 {
			t.Errorf("wrong key: %v, %+v; want not ok with HTTP 401 failures", err, r)
		}
	})
}

// TestPublishCount: what a subscriber makes of the frames it gets.
func TestPublishCount(t *testing.T) {
	group := func(seqs ...int) *pubSub {
		s := &pubSub{next: []int{1}}
		for _, q := range seqs {
			s.count("group", nil, nil, 0, q)
		}
		return s
	}
	tests := []struct {
		name               string
		s                  *pubSub
		got, dup, ooo, los int64
		complete           bool
	}{
		{"in order", group(1, 2, 3), 3, 0, 0, 0, true},
		{"duplicate", group(1, 2, 2, 3), 4, 1, 0, 0, true},
		{"gap", group(1, 3), 2, 0, 1, 1, true},
		{"short", group(1, 2), 2, 0, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.s.got != tt.got || tt.s.dups != tt.dup || tt.s.ooo != tt.ooo || tt.s.lost != tt.los {
				t.Errorf("got/dup/ooo/lost = %d/%d/%d/%d; want %d/%d/%d/%d", tt.s.got, tt.s.dups, tt.s.ooo, tt.s.lost, tt.got, tt.dup, tt.ooo, tt.los)
			}
			if c := tt.s.complete("group", []int{3}, 0); c != tt.complete {
				t.Errorf("complete after 3 sent = %v; want %v", c, tt.complete)
			}
		})
	}
	st := &pubSub{first: 4, version: 4}
	for _, v := range []string{"6", "5", "9"} {
		st.count("status", []byte(`{"type":"status","key":"k","value":"x","version":`+v+`,"ts":"t"}`), []byte("pub0|1|"+v), 0, 1)
	}
	if st.version != 9 || st.back != 1 || st.got != 3 || string(st.value) != "pub0|1|9" || !st.complete("status", nil, 9) || st.complete("status", nil, 10) {
		t.Errorf("status 6, 5, 9 from 4: version %d back %d got %d value %q; want 9, 1 backwards, 3, the value of 9", st.version, st.back, st.got, st.value)
	}
}

func TestNumberField(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{`{"key":"k","value":1,"version":42,"ts":"x"}`, 42, true},
		{`{"version":0}`, 0, true},
		{`{"version":"3"}`, 0, false},
		{`{"value":7}`, 0, false},
	}
	for _, tt := range tests {
		if got, ok := numberField([]byte(tt.in), keyVersion); got != tt.want || ok != tt.ok {
			t.Errorf("numberField(%s) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// TestPublishMarkdown renders saved runs: one row each, then the medians
// of old and new per workload and their ratio.
func TestPublishMarkdown(t *testing.T) {
	dir := t.TempDir()
	write := func(label string, r publishResult, commit string) string {
		r.Scenario, r.OK = "publish", true
		b, _ := json.Marshal(r)
		p := filepath.Join(dir, label+".txt")
		os.WriteFile(p, append([]byte("table…\nRESULT "), append(b, '\n')...), 0o644)
		os.WriteFile(filepath.Join(dir, label+".commit"), []byte(commit+"\n"), 0o644)
		return label + "=" + p
	}
	args := []string{
		write("P2-old-1", publishResult{RequestsPS: 3000, RequestMs: quantiles{P99: 6}, ServerCPUUsPerRq: 300}, "old 312c245"),
		write("P2-new-1", publishResult{RequestsPS: 6000, RequestMs: quantiles{P99: 3}, ServerCPUUsPerRq: 150}, "new abc"),
		write("P2-new-2", publishResult{RequestsPS: 7000, RequestMs: quantiles{P99: 5}, ServerCPUUsPerRq: 130}, "new abc"),
		write("P2-old-2", publishResult{RequestsPS: 3400, RequestMs: quantiles{P99: 4}, ServerCPUUsPerRq: 280}, "old 312c245"),
	}
	var out bytes.Buffer
	if err := publishMarkdown(args, &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"| P2-old-1 | old 312c245 | 3000 |", "| P2-new-2 | new abc | 7000 |", "| P2 | 3200 | 6500 | 2.03× | 5.000 | 4.000 | 290.0 | 140.0 |"} {
		if !strings.Contains(got, want) {
			t.Errorf("markdown lacks %q:\n%s", want, got)
		}
	}
}

func parsePublish(t *testing.T, out string) publishResult {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "RESULT "); ok {
			var r publishResult
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				t.Fatalf("decode RESULT: %v", err)
			}
			return r
		}
	}
	t.Fatalf("no RESULT line in:\n%s", out)
	return publishResult{}
}
