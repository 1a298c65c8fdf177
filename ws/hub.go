package ws

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Hub tracks which clients are members of which channels in this process
// and fans messages out to them.
//
// Unlike gorilla's chat example, the hub has no goroutine of its own:
// membership sits behind a mutex and deliver runs in the goroutine the
// broker calls it from, so there is no single goroutine for every message
// to queue behind and no channel send that can hang at shutdown.
type Hub struct {
	broker Broker

	mu       sync.RWMutex
	channels map[string]*channel
	clients  map[*Client]struct{}
	closed   bool

	wg sync.WaitGroup // one per client between Add and its Serve's end

	// Stats are running totals for metrics.
	Stats Stats
}

type channel struct {
	mu      sync.RWMutex
	members []*Client
	index   map[*Client]int
}

// ErrHubClosed is returned by Join once shutdown has begun.
var ErrHubClosed = errors.New("hub closed")

// NewHub returns an empty hub on the channel layer b: it starts b with the
// hub's deliver and subscribes to ControlChannel, so the hub is ready to
// use (as centrifuge's node registers itself with its broker once).
func NewHub(b Broker) *Hub {
	h := &Hub{broker: b, channels: map[string]*channel{}, clients: map[*Client]struct{}{}}
	b.Start(h.deliver)
	b.Subscribe(ControlChannel)
	return h
}

// Add registers c with the hub (for shutdown and revocation) and removes it
// from every channel when its read loop ends. Call it before c.Serve.
func (h *Hub) Add(c *Client) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrHubClosed
	}
	// Bound before c is visible in h.clients: Shutdown may Close it at once.
	c.bind(&h.Stats, func() {
		h.remove(c)
		h.wg.Done()
	})
	h.clients[c] = struct{}{}
	h.wg.Add(1)
	h.mu.Unlock()
	return nil
}

// Join makes c a member of channel, subscribing this process to it when c
// is its first local member.
func (h *Hub) Join(name string, c *Client) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrHubClosed
	}
	ch := h.channels[name]
	first := ch == nil
	if first {
		ch = &channel{index: map[*Client]int{}}
		h.channels[name] = ch
		// Subscribe under h.mu so a racing last-Leave's Unsubscribe of the
		// same channel cannot be applied after it; it never blocks.
		h.broker.Subscribe(name)
	}
	ch.mu.Lock()
	if _, ok := ch.index[c]; !ok {
		ch.index[c] = len(ch.members)
		ch.members = append(ch.members, c)
	}
	ch.mu.Unlock()
	h.mu.Unlock()

	c.mu.Lock()
	c.channels = append(c.channels, name)
	c.mu.Unlock()
	return nil
}

// Leave removes c from channel, unsubscribing when it was the last member.
func (h *Hub) Leave(name string, c *Client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := h.channels[name]
	if ch == nil {
		return
	}
	ch.mu.Lock()
	if i, ok := ch.index[c]; ok {
		last := len(ch.members) - 1
		ch.members[i] = ch.members[last]
		ch.index[ch.members[i]] = i
		ch.members[last] = nil
		ch.members = ch.members[:last]
		delete(ch.index, c)
	}
	empty := len(ch.members) == 0
	ch.mu.Unlock()
	if empty {
		delete(h.channels, name)
		h.broker.Unsubscribe(name)
	}
}

func (h *Hub) remove(c *Client) {
	c.mu.Lock()
	names := c.channels
	c.channels = nil
	c.mu.Unlock()
	for _, name := range names {
		h.Leave(name, c)
	}
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
}

// deliver fans msg out to this process's members of channel: the frame is
// built once and shared. It is the Deliver the hub starts its broker with.
func (h *Hub) deliver(name string, msg Message) {
	if name == ControlChannel {
		h.handleControl(msg)
		return
	}
	h.mu.RLock()
	ch := h.channels[name]
	h.mu.RUnlock()
	if ch == nil {
		return
	}
	f := TextFrame(msg.Payload)
	ch.mu.RLock()
	n := 0
	for _, c := range ch.members {
		cf := f
		if c == msg.Origin && msg.OriginPayload != nil {
			cf = TextFrame(msg.OriginPayload)
		}
		if c.enqueue(cf, msg.Seq) {
			n++
		}
	}
	ch.mu.RUnlock()
	h.Stats.MessagesOut.Add(int64(n))
}

// Publish sends msg to channel's members in every process.
func (h *Hub) Publish(ctx context.Context, name string, msg Message) error {
	return h.broker.Publish(ctx, name, msg)
}

// CloseUser closes every local socket of userID with r and reports how
// many there were.
func (h *Hub) CloseUser(userID int64, r CloseReason) int {
	h.mu.RLock()
	var victims []*Client
	for c := range h.clients {
		if c.UserID == userID {
			victims = append(victims, c)
		}
	}
	h.mu.RUnlock()
	for _, c := range victims {
		c.Close(r)
	}
	return len(victims)
}

// RunPinger pings every client every interval until ctx is done, so dead
// peers are found by their pong deadline (ClientConfig.PongTimeout).
func (h *Hub) RunPinger(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var all []*Client
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.mu.RLock()
		all = all[:0]
		for c := range h.clients {
			all = append(all, c)
		}
		h.mu.RUnlock()
		for _, c := range all {
			c.Ping()
		}
		clear(all)
	}
}

// RunExpiry closes, once a second until ctx is done, every client whose
// token expired more than its TokenGrace ago (4001 "token expired"): one
// process-wide sweep instead of a timer per socket.
func (h *Hub) RunExpiry(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var expired []*Client
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.mu.RLock()
			for c := range h.clients {
				if c.expiredAt(now) {
					expired = append(expired, c)
				}
			}
			h.mu.RUnlock()
			for _, c := range expired {
				c.Close(CloseTokenExpired)
			}
			clear(expired)
			expired = expired[:0]
		}
	}
}

// CloseRevoked closes, with 4004 "token revoked", every local socket of
// userID whose token version is below version.
func (h *Hub) CloseRevoked(userID, version int64) int {
	h.mu.RLock()
	var victims []*Client
	for c := range h.clients {
		if c.UserID == userID && c.tokenVersion() < version {
			victims = append(victims, c)
		}
	}
	h.mu.RUnlock()
	for _, c := range victims {
		c.Close(CloseTokenRevoked)
	}
	return len(victims)
}

// Counts returns the number of local clients and channels (for metrics).
func (h *Hub) Counts() (clients, channels int) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.clients), len(h.channels)
}

// Shutdown refuses new clients, closes every client with 1001 and waits
// until their read loops have ended or ctx is done.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	all := make([]*Client, 0, len(h.clients))
	for c := range h.clients {
		all = append(all, c)
	}
	h.mu.Unlock()
	for _, c := range all {
		c.Close(CloseShutdown)
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range all {
			c.kill()
		}
		return ctx.Err()
	}
}
