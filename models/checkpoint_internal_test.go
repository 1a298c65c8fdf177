package models

import (
	"runtime"
	"testing"
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
