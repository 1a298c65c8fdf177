package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// publishMarkdown is `wsbench publish markdown LABEL=FILE…`: one table row
// per saved publish run (its commit read from FILE with .commit for .txt),
// then per workload the medians of old and new and their ratio. Labels
// are <workload>-<old|new>-<rep> (P1-old-1, P2-pg-new-2).
func publishMarkdown(args []string, w io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: wsbench publish markdown LABEL=FILE…")
	}
	type run struct {
		label, commit string
		r             *publishResult
	}
	var runs []run
	for _, a := range args {
		label, file, ok := strings.Cut(a, "=")
		if !ok {
			return fmt.Errorf("%q: want LABEL=FILE", a)
		}
		r, err := readPublishResult(file)
		if err != nil {
			fmt.Fprintf(w, "| %s | no output: %v |\n", label, err)
			continue
		}
		c, _ := os.ReadFile(strings.TrimSuffix(file, ".txt") + ".commit")
		runs = append(runs, run{label, strings.TrimSpace(string(c)), r})
	}
	fmt.Fprintln(w, "| run | server | requests/s | p50 ms | p99 ms | µs CPU/req | server CPU | tool CPU | lost / dup / out of order | coalesced | load | ok |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, x := range runs {
		r := x.r
		fmt.Fprintf(w, "| %s | %s | %.0f | %.3f | %.3f | %.1f | %.0f%% | %.0f%% | %d / %d / %d | %d | %.2f | %v |\n",
			x.label, x.commit, r.RequestsPS, r.RequestMs.P50, r.RequestMs.P99, r.ServerCPUUsPerRq, r.ServerCPUPct, r.ToolCPUPct,
			r.Lost, r.Duplicates, r.OutOfOrder, r.Coalesced, r.LoadStart, r.OK)
	}
	// Medians per workload and side.
	type side struct{ rate, p99, cpu []float64 }
	groups := map[string]map[string]*side{}
	var order []string
	for _, x := range runs {
		wl, which, ok := splitPublishLabel(x.label)
		if !ok {
			continue
		}
		if groups[wl] == nil {
			groups[wl] = map[string]*side{"old": {}, "new": {}}
			order = append(order, wl)
		}
		s := groups[wl][which]
		s.rate, s.p99, s.cpu = append(s.rate, x.r.RequestsPS), append(s.p99, x.r.RequestMs.P99), append(s.cpu, x.r.ServerCPUUsPerRq)
	}
	if len(order) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| workload | old requests/s | new requests/s | new / old | old p99 ms | new p99 ms | old µs CPU/req | new µs CPU/req |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, wl := range order {
		o, n := groups[wl]["old"], groups[wl]["new"]
		if len(o.rate) == 0 || len(n.rate) == 0 {
			continue
		}
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %.2f× | %.3f | %.3f | %.1f | %.1f |\n", wl, median(o.rate), median(n.rate),
			median(n.rate)/median(o.rate), median(o.p99), median(n.p99), median(o.cpu), median(n.cpu))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "(medians over the runs above)")
	return nil
}

// splitPublishLabel splits "P2-pg-new-1" into "P2-pg" and "new".
func splitPublishLabel(label string) (workload, which string, ok bool) {
	i := strings.LastIndex(label, "-")
	if i < 0 {
		return "", "", false
	}
	rest := label[:i]
	j := strings.LastIndex(rest, "-")
	if j < 0 {
		return "", "", false
	}
	which = rest[j+1:]
	return rest[:j], which, which == "old" || which == "new"
}

// readPublishResult reads the RESULT line of a saved publish run.
func readPublishResult(file string) (*publishResult, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "RESULT "); ok {
			var r publishResult
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				return nil, err
			}
			if r.Scenario != "publish" {
				return nil, fmt.Errorf("%s: a %s run", file, r.Scenario)
			}
			return &r, nil
		}
	}
	return nil, errors.New("no RESULT line")
}
