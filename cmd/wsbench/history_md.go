package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// historyMarkdown is `wsbench history W=ON_FILE,OFF_FILE… [R=FILE…]`: for
// each workload run with history on (the default) and off
// (HISTORY_SIZE=0) in the same bench run, a table of both with on as a
// share of off; and for each recovery storm (a single file: a `wsbench
// recover` output), its table. It prints markdown for BENCHMARKS.md.
func historyMarkdown(args []string, stdout io.Writer) error {
	p := func(format string, args ...any) { fmt.Fprintf(stdout, format, args...) }
	type pair struct {
		label   string
		on, off savedRun
	}
	var pairs []pair
	var storms []struct {
		label, file string
		r           *recoverResult
		why         string
	}
	for _, a := range args {
		label, files, ok := strings.Cut(a, "=")
		if !ok || files == "" {
			return fmt.Errorf("history: want W=ON_FILE,OFF_FILE or R=FILE, got %q", a)
		}
		if on, off, two := strings.Cut(files, ","); two {
			pairs = append(pairs, pair{label, readRun(label, on), readRun(label+" off", off)})
			continue
		}
		r, why := readRecover(files)
		storms = append(storms, struct {
			label, file string
			r           *recoverResult
			why         string
		}{label, files, r, why})
	}
	if len(pairs) > 0 {
		p("| workload | history | deliveries/s | on ÷ off | latency p50 / p90 / p99 / p99.9 ms | p99 on − off | server CPU ms / 1k deliveries | server CPU %% | lost / dup / out of order | load | ok |\n")
		p("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
		for _, pr := range pairs {
			for i, rn := range []savedRun{pr.on, pr.off} {
				mode := []string{"on", "off"}[i]
				if rn.r == nil {
					p("| %s | %s | %s | | | | | | | | |\n", pr.label, mode, rn.skipped)
					continue
				}
				r := rn.r
				ratio, dp99 := "", ""
				if i == 0 && pr.off.r != nil && pr.off.r.DeliveriesPerSec > 0 {
					ratio = fmt.Sprintf("%.0f%%", 100*r.DeliveriesPerSec/pr.off.r.DeliveriesPerSec)
					dp99 = fmt.Sprintf("%+.3f ms", r.LatencyMs.P99-pr.off.r.LatencyMs.P99)
				}
				l := r.LatencyMs
				p("| %s | %s | %.0f | %s | %.3f / %.3f / %.3f / %.3f | %s | %.3f | %.0f | %d / %d / %d | %.1f | %v |\n",
					pr.label, mode, r.DeliveriesPerSec, ratio, l.P50, l.P90, l.P99, l.P999, dp99,
					r.ServerCPUMsPer1kDeliv, r.ServerCPUSendPct, r.Lost, r.Duplicates, r.OutOfOrder, r.LoadStart, r.OK)
			}
		}
		p("\n")
	}
	if len(storms) > 0 {
		p("| storm | members | missed each | reconnects in flight | recovered | delivered | lost / dup / out of order / wrong text | duration s | welcome p50 / p99 ms | all recovered p50 / p99 / max ms | server CPU ms | server CPU %% | load | ok |\n")
		p("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
		for _, s := range storms {
			if s.r == nil {
				p("| %s | %s | | | | | | | | | | | | |\n", s.label, s.why)
				continue
			}
			r := s.r
			conc := fmt.Sprint(r.Conc)
			if r.Conc == 0 {
				conc = "all"
			}
			p("| %s | %d | %d | %s | %d / %d | %d / %d | %d / %d / %d / %d | %.2f | %.1f / %.1f | %.1f / %.1f / %.1f | %d | %.0f | %.1f | %v |\n",
				s.label, r.Members, r.Missed, conc, r.Recovered, r.Members, r.Delivered, r.Expected,
				r.Lost, r.Duplicates, r.OutOfOrder, r.Mismatched, r.StormSeconds,
				r.WelcomeMs.P50, r.WelcomeMs.P99, r.CompleteMs.P50, r.CompleteMs.P99, r.CompleteMs.Max,
				r.ServerCPUMs, r.ServerCPUPct, r.LoadStart, r.OK)
		}
		p("\n")
	}
	return nil
}

// readRecover reads a `wsbench recover` output's RESULT line.
func readRecover(file string) (*recoverResult, string) {
	f, err := os.Open(file)
	if err != nil {
		return nil, "no output (" + err.Error() + ")"
	}
	defer f.Close()
	var r *recoverResult
	why := "no RESULT line; see " + file
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "RESULT "); ok {
			var x recoverResult
			if err := json.Unmarshal([]byte(rest), &x); err == nil && x.Scenario == "recover" {
				r = &x
			}
		} else if rest, ok := strings.CutPrefix(sc.Text(), "SKIPPED: "); ok {
			why = rest
		}
	}
	return r, why
}
