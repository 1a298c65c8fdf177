// Package recent is a small cache of values computed in the last moment
// (a user lookup, a parsed token), for connect storms where many sockets
// ask for the same thing within a second. Entries are trusted for a fixed
// time from when their computation began and can be forgotten at once;
// two generations swapped every ttl drop expired entries without a scan,
// and a timer keeps swapping while any remain, so an idle process holds
// none.
package recent

import (
	"sync"
	"time"
)

// Cache maps K to V for ttl. The zero value is not usable; see New.
type Cache[K comparable, V any] struct {
	ttl time.Duration
	max int // entries per generation

	mu sync.Mutex
	// gen counts Forget calls: a value computed from state read before
	// one may be stale, so Put drops it (see Put).
	gen       uint64
	cur, prev map[K]entry[V]
	rotated   time.Time
	sweeping  bool // a timer will rotate again
}

type entry[V any] struct {
	v  V
	at time.Time // when the computation of v began
}

// New returns an empty cache whose entries are trusted for ttl. It holds
// at most 2·max entries: Put skips new keys while the current generation
// has max (a storm of distinct keys gains nothing from a cache, and must
// not pay for one in memory).
func New[K comparable, V any](ttl time.Duration, max int) *Cache[K, V] {
	return &Cache[K, V]{ttl: ttl, max: max, cur: map[K]entry[V]{}, prev: map[K]entry[V]{}}
}

// Get returns k's value if its computation began less than ttl before
// now. gen is to be passed to Put with a value computed after this call.
func (c *Cache[K, V]) Get(k K, now time.Time) (v V, gen uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.cur[k]
	if !ok {
		e, ok = c.prev[k]
	}
	if ok && now.Sub(e.at) < c.ttl {
		return e.v, c.gen, true
	}
	return v, c.gen, false
}

// Put stores v for k, computed from a start at began, unless a Forget
// (of any key) came since the Get that returned gen: v may then have been
// read before what Forget announced was changed.
func (c *Cache[K, V]) Put(k K, v V, began time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	c.rotate(time.Now())
	if _, ok := c.cur[k]; !ok && len(c.cur) >= c.max {
		return
	}
	c.cur[k] = entry[V]{v: v, at: began}
	if !c.sweeping {
		c.sweeping = true
		time.AfterFunc(c.ttl, c.sweep)
	}
}

// Forget drops k at once and keeps out values being computed meanwhile.
func (c *Cache[K, V]) Forget(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.cur, k)
	delete(c.prev, k)
}

// Len returns the number of entries held, expired or not.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.prev)
}

// rotate swaps the generations once the current one is ttl old (c.mu
// held): what was in prev is then older than ttl and dropped.
func (c *Cache[K, V]) rotate(now time.Time) {
	if now.Sub(c.rotated) < c.ttl {
		return
	}
	c.prev, c.cur = c.cur, c.prev
	clear(c.cur)
	c.rotated = now
}

// sweep rotates while entries remain, then lets the maps go (a cleared
// map keeps its buckets).
func (c *Cache[K, V]) sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rotate(time.Now())
	if len(c.cur) == 0 && len(c.prev) == 0 {
		c.sweeping = false
		c.cur, c.prev = map[K]entry[V]{}, map[K]entry[V]{}
		return
	}
	time.AfterFunc(c.ttl, c.sweep)
}
