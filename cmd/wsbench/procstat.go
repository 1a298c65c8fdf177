package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat; it
// is 100 on every Linux ABI Go supports.
const clockTick = 100

// procSample is what /proc says about a process at one instant.
type procSample struct {
	RSSKiB int64         // VmRSS
	CPU    time.Duration // utime + stime
}

// readProc samples process pid (0: this process).
func readProc(pid int) (procSample, error) {
	dir := "/proc/self"
	if pid > 0 {
		dir = "/proc/" + strconv.Itoa(pid)
	}
	var s procSample
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return s, fmt.Errorf("read server stats: %w", err)
	}
	for line := range bytes.Lines(status) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := bytes.Fields(rest)
			if len(f) > 0 {
				s.RSSKiB, _ = strconv.ParseInt(string(f[0]), 10, 64)
			}
		}
	}
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return s, fmt.Errorf("read server stats: %w", err)
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields we want are counted from the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("parse %s/stat: no ')'", dir)
	}
	f := bytes.Fields(stat[i+1:])
	if len(f) < 13 {
		return s, fmt.Errorf("parse %s/stat: %d fields", dir, len(f))
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("parse %s/stat: bad utime/stime", dir)
	}
	s.CPU = time.Duration(ut+st) * time.Second / clockTick
	return s, nil
}

// selfCPU is this process's user and system CPU time (every thread).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// selfRSS is this process's resident set in KiB (0 if unknown).
func selfRSS() int64 {
	s, _ := readProc(0)
	return s.RSSKiB
}

// loadAverage is /proc/loadavg's 1-minute figure: more than the cores the
// run uses means other work competed for them.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(string(f[0]), 64)
	return v
}
