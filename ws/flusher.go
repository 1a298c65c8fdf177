package ws

import (
	"runtime"
	"sync"
)

// flusher writes the queued frames of every client whose peer keeps up,
// on a few long-lived goroutines (one per CPU the process may use),
// instead of a goroutine started and ended for every burst of every
// socket: a paced fan-out (one message to 1,000 members every 5 ms) hands
// 1,000 sockets to it and it writes them one after the other, each
// without blocking (Client.flushOnce). A client is in line at most once:
// it joins when its queue gets a frame and it has no writer, and it is
// taken out by one flusher goroutine at a time. A socket whose buffer is
// full leaves the flusher for a writeLoop goroutine of its own.
type flusher struct {
	mu    sync.Mutex
	ready []*Client // the line: ready[head:], first come first served
	head  int
	wake  *sync.Cond
	once  sync.Once
}

// flush is the process's flusher, shared by every hub: it holds no state
// but the line of clients waiting for it.
var flush = &flusher{}

// flushChunk is how many clients a flusher goroutine takes at once: large
// enough to take the lock seldom, small enough that the other goroutines
// get a share of a large fan-out.
const flushChunk = 128

// push puts c in line (c.mu held, c.writing just set).
func (f *flusher) push(c *Client) {
	f.once.Do(f.start)
	f.mu.Lock()
	f.ready = append(f.ready, c)
	f.mu.Unlock()
	f.wake.Signal()
}

func (f *flusher) start() {
	f.wake = sync.NewCond(&f.mu)
	for range runtime.GOMAXPROCS(0) {
		go f.run()
	}
}

// run is one flusher goroutine: it takes clients from the line and gives
// each one turn, putting back those with more to write.
func (f *flusher) run() {
	var mine, again []*Client
	for {
		f.mu.Lock()
		for f.head == len(f.ready) {
			f.wake.Wait()
		}
		f.mu.Unlock()
		// Let every goroutine that is ready to run (senders' read loops,
		// the fan-out) go first: what they queue meanwhile joins the same
		// writes. When the process is idle, Gosched returns at once.
		runtime.Gosched()
		f.mu.Lock()
		mine = f.take(mine[:0])
		f.mu.Unlock()
		again = again[:0]
		for _, c := range mine {
			if c.flushOnce() {
				again = append(again, c)
			}
		}
		clear(mine)
		if len(again) > 0 {
			f.mu.Lock()
			f.ready = append(f.ready, again...)
			f.mu.Unlock()
			clear(again)
		}
	}
}

// take appends up to flushChunk clients from the head of the line to
// mine (f.mu held).
func (f *flusher) take(mine []*Client) []*Client {
	end := min(f.head+flushChunk, len(f.ready))
	mine = append(mine, f.ready[f.head:end]...)
	clear(f.ready[f.head:end])
	f.head = end
	switch {
	case f.head == len(f.ready):
		f.ready, f.head = f.ready[:0], 0
	case f.head > len(f.ready)/2: // never drained: move the line down
		n := copy(f.ready, f.ready[f.head:])
		clear(f.ready[n:])
		f.ready, f.head = f.ready[:n], 0
	}
	return mine
}
