package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// historyMarkdown is `wsbench history W=ON,OFF… [R=FILE…]`: for each
// workload run with history on (the default) and off (HISTORY_SIZE=0) in
// the same bench run, a table of both with on as a share of off; and for
// each recovery storm (a single file: a `wsbench recover` output), its
// table. It prints markdown for BENCHMARKS.md. ON and OFF are each one
// output file or several joined by "+" (repeated runs, interleaved with
// the other side's): their deliveries are pooled (poolRuns), and a line
// under the table gives each run's p99.
func historyMarkdown(args []string, stdout io.Writer) error {
	p := func(format string, args ...any) { fmt.Fprintf(stdout, format, args...) }
	type pair struct {
		label          string
		on, off        savedRun
		onRuns, offRun []savedRun
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
			pr := pair{label: label}
			for _, f := range strings.Split(on, "+") {
				pr.onRuns = append(pr.onRuns, readRun(label, f))
			}
			for _, f := range strings.Split(off, "+") {
				pr.offRun = append(pr.offRun, readRun(label+" off", f))
			}
			pr.on, pr.off = poolRuns(label, pr.onRuns), poolRuns(label+" off", pr.offRun)
			pairs = append(pairs, pr)
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
		for _, pr := range pairs {
			if len(pr.onRuns) > 1 || len(pr.offRun) > 1 {
				p("%s: %d runs with history on and %d off; each row above pools every delivery of its runs (deliveries/s and CPU over their summed send time). p99 of each run in order, on: %s; off: %s%s.\n\n",
					pr.label, len(pr.onRuns), len(pr.offRun), runP99s(pr.onRuns), runP99s(pr.offRun), pairDiffs(pr.onRuns, pr.offRun))
			}
		}
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

// poolRuns is one result for repeated runs of one workload: their
// latency histograms merged (a percentile over every delivery of every
// run, so each run counts by its deliveries and a run hit by the machine's
// noise moves the pool only by its share), deliveries, send time and
// lost/dup/out-of-order summed, CPU per delivery and CPU share weighted by
// deliveries and send time, load the mean at the runs' starts, ok only if
// every run was. One run is returned as it is; a run without a RESULT or
// without a latency histogram (an older wsbench) makes the pool skipped.
func poolRuns(label string, runs []savedRun) savedRun {
	if len(runs) == 1 {
		return runs[0]
	}
	out := savedRun{label: label}
	var h histogram
	pool := result{OK: true}
	var cpu, pct, load float64
	for _, rn := range runs {
		switch {
		case rn.r == nil:
			out.skipped = fmt.Sprintf("run %s: %s", rn.file, rn.skipped)
			return out
		case rn.r.LatencyHist == nil:
			out.skipped = fmt.Sprintf("run %s has no latency histogram to pool", rn.file)
			return out
		}
		r := rn.r
		h.merge(*r.LatencyHist)
		pool.Deliveries += r.Deliveries
		pool.SendSeconds += r.SendSeconds
		pool.Lost += r.Lost
		pool.Duplicates += r.Duplicates
		pool.OutOfOrder += r.OutOfOrder
		pool.OK = pool.OK && r.OK
		cpu += r.ServerCPUMsPer1kDeliv * float64(r.Deliveries)
		pct += r.ServerCPUSendPct * r.SendSeconds
		load += r.LoadStart
	}
	pool.LatencyMs = quantilesOf(&h)
	if pool.SendSeconds > 0 {
		pool.DeliveriesPerSec = round1(float64(pool.Deliveries) / pool.SendSeconds)
		pool.ServerCPUSendPct = round1(pct / pool.SendSeconds)
	}
	if pool.Deliveries > 0 {
		pool.ServerCPUMsPer1kDeliv = round3(cpu / float64(pool.Deliveries))
	}
	pool.LoadStart = round1(load / float64(len(runs)))
	out.r = &pool
	return out
}

// runP99s lists each run's p99 latency ("–" for a run without a result).
func runP99s(runs []savedRun) string {
	var s []string
	for _, rn := range runs {
		if rn.r == nil {
			s = append(s, "–")
			continue
		}
		s = append(s, fmt.Sprintf("%.3f", rn.r.LatencyMs.P99))
	}
	return strings.Join(s, ", ") + " ms"
}

// pairDiffs is "; on − off by pair: …, median …" for as many on runs as
// off runs (the i-th of each side run next to or with each other), or ""
// when the sides differ in count or a run has no result. The median of the
// pairs is the figure a single slow spell moves least: the pool's p99 is
// set by its slowest runs.
func pairDiffs(on, off []savedRun) string {
	if len(on) != len(off) || len(on) < 2 {
		return ""
	}
	d := make([]float64, len(on))
	var s []string
	for i := range on {
		if on[i].r == nil || off[i].r == nil {
			return ""
		}
		d[i] = on[i].r.LatencyMs.P99 - off[i].r.LatencyMs.P99
		s = append(s, fmt.Sprintf("%+.3f", d[i]))
	}
	slices.Sort(d)
	med := d[len(d)/2]
	if len(d)%2 == 0 {
		med = (d[len(d)/2-1] + d[len(d)/2]) / 2
	}
	return fmt.Sprintf("; on − off by pair: %s ms (median %+.3f ms)", strings.Join(s, ", "), med)
}
