package models

import (
	"runtime"
	"testing"
	"time"
)

// TestWithSpareProc: a checkpoint on a one-P process runs with a second P
// (so its fsync does not stop the rest of the server), and the process
// gets its one P back after; a process with more Ps is left alone.
func TestWithSpareProc(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, tt := range []struct{ procs, during int }{{1, 2}, {3, 3}} {
		runtime.GOMAXPROCS(tt.procs)
		var got int
		withSpareProc(func() { got = runtime.GOMAXPROCS(0) })
		if got != tt.during {
			t.Errorf("GOMAXPROCS %d: %d Ps during the checkpoint, want %d", tt.procs, got, tt.during)
		}
		if after := runtime.GOMAXPROCS(0); after != tt.procs {
			t.Errorf("GOMAXPROCS %d: %d Ps after the checkpoint, want %d back", tt.procs, after, tt.procs)
		}
	}
}

// TestJitter: checkpoint waits stay within 3/4 to 5/4 of the interval and
// spread over that range (a fixed wait would keep a phase to periodic
// traffic), averaging the interval.
func TestJitter(t *testing.T) {
	const interval = 500 * time.Millisecond
	lo, hi, sum := time.Duration(1<<62), time.Duration(0), time.Duration(0)
	const n = 2000
	for range n {
		d := jitter(interval)
		if d < interval*3/4 || d >= interval*5/4 {
			t.Fatalf("jitter(%v) = %v, want in [%v, %v)", interval, d, interval*3/4, interval*5/4)
		}
		lo, hi, sum = min(lo, d), max(hi, d), sum+d
	}
	if hi-lo < interval*2/5 {
		t.Errorf("waits spread over %v..%v, want most of %v..%v", lo, hi, interval*3/4, interval*5/4)
	}
	if mean := sum / n; mean < interval*19/20 || mean > interval*21/20 {
		t.Errorf("mean wait %v, want about %v", mean, interval)
	}
	if got := jitter(3); got != 3 {
		t.Errorf("jitter(3ns) = %v, want 3ns", got)
	}
}
