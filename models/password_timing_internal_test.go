package models

import (
	"testing"
	"time"
)

// TestPasswordFailureTimingWindows: the floor is the slowest check of the
// current or previous window, capped, and forgotten after two windows.
func TestPasswordFailureTimingWindows(t *testing.T) {
	var f failureTiming
	t0 := time.Unix(1_000_000, 0)
	steps := []struct {
		at   time.Duration
		d    time.Duration
		want time.Duration
	}{
		{0, 10 * time.Millisecond, 10 * time.Millisecond},
		{time.Second, 300 * time.Millisecond, 300 * time.Millisecond},
		{2 * time.Second, 5 * time.Millisecond, 300 * time.Millisecond},
		{failureTimingWindow + time.Second, 5 * time.Millisecond, 300 * time.Millisecond}, // previous window still counts
		{2*failureTimingWindow + 2*time.Second, 5 * time.Millisecond, 5 * time.Millisecond},
		{2*failureTimingWindow + 3*time.Second, time.Hour, failureTimingCap},
		{5 * failureTimingWindow, 7 * time.Millisecond, 7 * time.Millisecond},
	}
	for _, s := range steps {
		if got := f.observe(t0.Add(s.at), s.d); got != s.want {
			t.Errorf("observe(+%v, %v) = %v, want %v", s.at, s.d, got, s.want)
		}
	}
}

// TestPasswordFailureTakesAsLongAsSlowestCheck: after a slow Django hash
// fails, a login for a missing user and a wrong password for a switchboard
// user take as long, so failure times tell nothing about the account.
func TestPasswordFailureTakesAsLongAsSlowestCheck(t *testing.T) {
	h := PasswordHasher{Cost: 4, timing: new(failureTiming)} // as NewUserStore makes it
	// pbkdf2_sha256 at 20,000 iterations: tens of
	// milliseconds, far above bcrypt at cost 4.
	const slow = "pbkdf2_sha256$20000$salt$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	start := time.Now()
	if ok, _ := h.Verify(slow, "wrong"); ok {
		t.Fatal("Verify(slow pbkdf2, wrong) = true")
	}
	slowTook := time.Since(start)
	own, _ := h.Hash("right password")
	cases := []struct {
		name string
		fail func()
	}{
		{"missing user", func() { h.VerifyMissing("wrong") }},
		{"switchboard hash", func() { h.Verify(own, "wrong") }},
		{"unusable Django password", func() { h.Verify("!unusable", "wrong") }},
		{"salted md5", func() { h.Verify("md5$s4lt$645a37b388eb6af6b1480fb845682fd4", "wrong") }},
	}
	for _, c := range cases {
		start := time.Now()
		c.fail()
		if took := time.Since(start); took < slowTook*9/10 {
			t.Errorf("%s failed in %v, want at least the slow check's %v", c.name, took, slowTook)
		}
	}
	start = time.Now()
	if ok, _ := h.Verify(own, "right password"); !ok {
		t.Fatal("Verify(own, right) = false")
	}
	if took := time.Since(start); took >= slowTook {
		t.Logf("a success took %v (not delayed: bcrypt at cost 4 only); slow failure %v", took, slowTook)
	}
}
