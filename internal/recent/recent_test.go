package recent

import (
	"testing"
	"time"
)

func TestCache(t *testing.T) {
	c := New[string, int](time.Minute, 2)
	now := time.Now()
	if _, _, ok := c.Get("a", now); ok {
		t.Fatal("empty cache answered")
	}
	_, gen, _ := c.Get("a", now)
	c.Put("a", 1, now, gen)
	if v, _, ok := c.Get("a", now.Add(time.Second)); !ok || v != 1 {
		t.Fatalf("Get = %d %v, want 1 true", v, ok)
	}
	if _, _, ok := c.Get("a", now.Add(time.Minute)); ok {
		t.Fatal("an entry a ttl old was trusted")
	}

	// A value computed across a Forget (of any key) is not kept.
	_, gen, _ = c.Get("b", now)
	c.Forget("x")
	c.Put("b", 2, now, gen)
	if _, _, ok := c.Get("b", now); ok {
		t.Fatal("a value computed before a Forget was kept")
	}
	c.Forget("a")
	if _, _, ok := c.Get("a", now); ok {
		t.Fatal("Forget left the entry")
	}

	// At most max new keys per generation.
	_, gen, _ = c.Get("", now)
	for _, k := range []string{"p", "q", "r"} {
		c.Put(k, 3, now, gen)
	}
	if n := c.Len(); n != 2 {
		t.Fatalf("Len = %d after 3 Puts with max 2, want 2", n)
	}
}

// An idle cache lets its entries go.
func TestCacheSweeps(t *testing.T) {
	c := New[int, int](10*time.Millisecond, 10)
	_, gen, _ := c.Get(1, time.Now())
	c.Put(1, 1, time.Now(), gen)
	deadline := time.Now().Add(10 * time.Second)
	for c.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("entries still held after 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
