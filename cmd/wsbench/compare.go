package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// compare is `wsbench compare ROW=FILE,FILE,… …`: for repeated idle runs
// of several servers (the rows), a table of each row's median connects/s
// and server KiB per socket over its runs, every run's figures beside it,
// and the median connect rate as a share of the first row's. A run without
// a RESULT, or one that was not ok, is shown and left out of the medians.
func compare(args []string, stdout io.Writer) error {
	type row struct {
		label string
		runs  []savedRun
	}
	var rows []row
	for _, a := range args {
		label, files, ok := strings.Cut(a, "=")
		if !ok || files == "" {
			return fmt.Errorf("compare: want ROW=FILE[,FILE…], got %q", a)
		}
		r := row{label: label}
		for _, f := range strings.Split(files, ",") {
			r.runs = append(r.runs, readRun(label, f))
		}
		rows = append(rows, r)
	}
	p := func(format string, args ...any) { fmt.Fprintf(stdout, format, args...) }
	p("| server | sockets / users | runs ok | connects/s (median) | each run | × %s | KiB / socket (median) | each run | server CPU ms / 1k connects (median) | presence frames (median) | load at start |\n", firstLabel(args))
	p("|---|--:|--:|--:|---|--:|--:|---|--:|--:|---|\n")
	var base float64
	for i, r := range rows {
		var rate, kib, cpu, pres, load []float64
		var rates, kibs, loads []string
		sockets, users := 0, 0
		for _, rn := range r.runs {
			if rn.r == nil {
				rates, kibs = append(rates, "–"), append(kibs, "–")
				continue
			}
			x := rn.r
			sockets, users = x.Sockets, x.Users
			mark := ""
			if !x.OK {
				mark = " (not ok)"
			}
			rates = append(rates, fmt.Sprintf("%.0f%s", x.ConnectsPerSec, mark))
			kibs = append(kibs, fmt.Sprintf("%.1f", x.ServerKiBPerSocket))
			loads = append(loads, fmt.Sprintf("%.1f", x.LoadStart))
			if !x.OK {
				continue
			}
			rate = append(rate, x.ConnectsPerSec)
			kib = append(kib, x.ServerKiBPerSocket)
			cpu = append(cpu, x.ServerCPUMsPer1kConnects)
			pres = append(pres, float64(x.PresenceFrames))
			load = append(load, x.LoadStart)
		}
		if users == 0 {
			users = sockets
		}
		mr := median(rate)
		if i == 0 {
			base = mr
		}
		ratio := "–"
		if base > 0 && len(rate) > 0 {
			ratio = fmt.Sprintf("%.2f", mr/base)
		}
		p("| %s | %d / %d | %d of %d | %.0f | %s | %s | %.1f | %s | %.0f | %.0f | %s |\n", r.label, sockets, users,
			len(rate), len(r.runs), mr, strings.Join(rates, ", "), ratio, median(kib), strings.Join(kibs, ", "),
			median(cpu), median(pres), strings.Join(loads, ", "))
	}
	return nil
}

func firstLabel(args []string) string {
	if len(args) == 0 {
		return "first"
	}
	l, _, _ := strings.Cut(args[0], "=")
	return l
}

// median of xs (0 for none); the mean of the middle two for an even count.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
