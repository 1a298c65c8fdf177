package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// stormMarkdown is `wsbench storm markdown LABEL=FILE…`: one table row per
// saved `wsbench storm` output, for BENCHMARKS.md.
func stormMarkdown(args []string, stdout io.Writer) error {
	p := func(format string, a ...any) { fmt.Fprintf(stdout, format, a...) }
	p("| run | members | W1 ref connects/s | target s | all welcomed s (from the cut) | after listening s | all caught up s | welcome p50 / p99 / max ms | recovered | unread at the cut (members / messages) | delivered / expected | lost / dup / wrong | failures while down | failures beyond the cut | unexpected closes | restarted server CPU ms | peak RSS MiB | load | target met | ok |\n")
	p("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|---|--:|--:|--:|---|---|\n")
	for _, a := range args {
		label, file, ok := strings.Cut(a, "=")
		if !ok || file == "" {
			return fmt.Errorf("storm markdown: want LABEL=FILE, got %q", a)
		}
		r, why := readStorm(file)
		if r == nil {
			p("| %s | %s |||||||||||||||||||\n", label, why)
			continue
		}
		met := "no reference"
		if r.TargetMet != nil {
			met = map[bool]string{true: "**yes**", false: "no"}[*r.TargetMet]
		}
		p("| %s | %d | %.0f | %.2f | %.3f | %.3f | %.3f | %.0f / %.0f / %.0f | %d / %d | %d / %d | %d / %d | %d / %d / %d | %s | %s | %s | %d | %.1f | %.2f → %.2f | %s | %v |\n",
			label, r.Members, r.RefRate, r.TargetSeconds, r.BackSeconds, r.BackAfterUpS, r.CompleteSeconds,
			r.WelcomeMs.P50, r.WelcomeMs.P99, r.WelcomeMs.Max, r.Recovered, r.Members, r.UnreadMembers, r.UnreadMessages,
			r.Delivered, r.Expected, r.Lost, r.Duplicates, r.Mismatched, mdCounts(r.CutFailures), mdCounts(r.Failures), mdCounts(r.Unexpected),
			r.ServerCPUMs, float64(r.ServerPeakRSSKiB)/1024, r.LoadStart, r.LoadEnd, met, r.OK)
	}
	return nil
}

// mdCounts is counts for a table cell: "none", or "key: n; …" sorted.
func mdCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = fmt.Sprintf("%s: %d", strings.ReplaceAll(k, "|", "/"), m[k])
	}
	return strings.Join(keys, "; ")
}

// readStorm reads a `wsbench storm` output's RESULT line.
func readStorm(file string) (*stormResult, string) {
	f, err := os.Open(file)
	if err != nil {
		return nil, "no output"
	}
	defer f.Close()
	why := "no RESULT line; see " + file
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "RESULT "); ok {
			var r stormResult
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				return nil, "bad RESULT line: " + err.Error()
			}
			return &r, ""
		}
		if rest, ok := strings.CutPrefix(sc.Text(), "SKIPPED: "); ok {
			why = "skipped: " + rest
		}
	}
	return nil, why
}
