package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// savedRun is one run's saved output, as `wsbench markdown` reads it:
// its RESULT, or why there is none.
type savedRun struct {
	label, file, skipped string
	r                    *result
}

// markdown is `wsbench markdown LABEL=FILE…`: it reads the output files
// of runs (their RESULT lines; a line "SKIPPED: why" marks a run that did
// not happen) and prints tables for BENCHMARKS.md.
func markdown(args []string, stdout io.Writer) error {
	var runs []savedRun
	for _, a := range args {
		label, file, ok := strings.Cut(a, "=")
		if !ok {
			return fmt.Errorf("markdown: want LABEL=FILE, got %q", a)
		}
		runs = append(runs, readRun(label, file))
	}
	p := func(format string, args ...any) { fmt.Fprintf(stdout, format, args...) }
	idleTable(p, runs)
	messageTable(p, runs)
	notRun(p, runs)
	rawResults(p, runs)
	return nil
}

// readRun reads one output file: its last RESULT line, or its SKIPPED
// line, or why neither is there.
func readRun(label, file string) savedRun {
	rn := savedRun{label: label, file: file}
	f, err := os.Open(file)
	if err != nil {
		rn.skipped = "no output (" + err.Error() + ")"
		return rn
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "RESULT "); ok {
			var r result
			if err := json.Unmarshal([]byte(rest), &r); err == nil {
				rn.r = &r
			}
		} else if rest, ok := strings.CutPrefix(line, "SKIPPED: "); ok {
			rn.skipped = rest
		}
	}
	if rn.r == nil && rn.skipped == "" {
		rn.skipped = "no RESULT line; see " + file
	}
	return rn
}

// printFunc is how the markdown tables write.
type printFunc func(format string, args ...any)

// closesString is the unexpected closes of r, and its send failures if any.
func closesString(r *result) string {
	s := countsString(r.UnexpectedCloses)
	if len(r.SendFailures) > 0 {
		s += "; send: " + countsString(r.SendFailures)
	}
	return s
}

// idleTable is the table of the idle runs.
func idleTable(p printFunc, runs []savedRun) {
	p("### Connections held open (idle)\n\n")
	p("| workload | sockets | connected | connect s | connects/s | handshake p50 / p99 ms | welcome p50 / p99 ms | frames while connecting | server RSS before → held KiB | server KiB / socket | server CPU ms / 1k connects | tool RSS KiB | connect failures | unexpected closes | load | ok |\n")
	p("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|--:|---|\n")
	for _, rn := range runs {
		r := rn.r
		if r == nil || r.Scenario != "idle" {
			continue
		}
		var before, held int64
		for _, s := range r.Servers {
			before += s.RSSBeforeKiB
			held += max(s.RSSHoldKiB, s.RSSSettledKiB)
		}
		p("| %s | %d | %d | %.2f | %.0f | %.2f / %.2f | %.2f / %.2f | %d | %d → %d | %.1f | %.1f | %d | %s | %s | %.1f | %v |\n",
			rn.label, r.Sockets, r.Connected, r.ConnectSeconds, r.ConnectsPerSec, r.HandshakeMs.P50, r.HandshakeMs.P99,
			r.ReadyMs.P50, r.ReadyMs.P99, r.SettleFrames, before, held, r.ServerKiBPerSocket, r.ServerCPUMsPer1kConnects,
			r.ToolRSSKiB, countsString(r.ConnectFailures), closesString(r), r.LoadStart, r.OK)
	}
}

// messageTable is the table of the runs that sent messages.
func messageTable(p printFunc, runs []savedRun) {
	p("\n### Messages (fanout, groups, cross)\n\n")
	p("| workload | members | groups | servers | senders × msgs | sent via, pacing | deliveries | send s | deliveries/s | latency p50 / p90 / p99 / p99.9 / max ms | lost / dup / out of order | server CPU ms / 1k deliveries | server CPU %% | tool CPU %% | unexpected closes | load | ok |\n")
	p("|---|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|---|\n")
	for _, rn := range runs {
		r := rn.r
		if r == nil || r.Scenario == "idle" {
			continue
		}
		pace := "fast"
		if r.Rate > 0 {
			pace = fmt.Sprintf("%g msg/s", r.Rate)
		}
		perSender := int64(0)
		if r.Senders > 0 {
			perSender = r.Messages / int64(r.Senders)
		}
		tool := fmt.Sprintf("%.0f", r.ToolCPUSendPct)
		if r.ToolSaturated {
			tool += " (saturated)"
		}
		p("| %s | %d | %d | %d | %d × %d | %s, %s | %d / %d | %.2f | %.0f | %.3f / %.3f / %.3f / %.3f / %.3f | %d / %d / %d | %.3f | %.0f | %s | %s | %.1f | %v |\n",
			rn.label, r.Connected, r.Groups, len(r.URLs), r.Senders, perSender, r.Via, pace, r.Deliveries, r.Expected,
			r.SendSeconds, r.DeliveriesPerSec, r.LatencyMs.P50, r.LatencyMs.P90, r.LatencyMs.P99, r.LatencyMs.P999, r.LatencyMs.Max,
			r.Lost, r.Duplicates, r.OutOfOrder, r.ServerCPUMsPer1kDeliv, r.ServerCPUSendPct, tool, closesString(r), r.LoadStart, r.OK)
	}
}

// notRun lists the runs without a result, and why.
func notRun(p printFunc, runs []savedRun) {
	var skipped []savedRun
	for _, rn := range runs {
		if rn.r == nil {
			skipped = append(skipped, rn)
		}
	}
	if len(skipped) > 0 {
		p("\n### Not run\n\n")
		for _, rn := range skipped {
			p("- %s: %s\n", rn.label, rn.skipped)
		}
	}
}

// rawResults prints every run's RESULT as JSON in a folded section.
func rawResults(p printFunc, runs []savedRun) {
	p("\n### Raw results\n\nEvery figure of every run, as `wsbench` printed it (the `RESULT` line).\n\n")
	for _, rn := range runs {
		if rn.r == nil {
			continue
		}
		r := *rn.r
		r.LatencyHist = nil // hundreds of buckets; the quantiles are beside it
		b, _ := json.Marshal(r)
		p("<details><summary>%s</summary>\n\n```json\n%s\n```\n\n</details>\n\n", rn.label, b)
	}
}
