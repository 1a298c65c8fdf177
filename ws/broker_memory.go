package ws

import "context"

// MemoryBroker is the in-process channel layer: Publish delivers at once,
// in the caller's goroutine, so one sender's messages keep their order.
type MemoryBroker struct {
	deliver Deliver
}

var _ Broker = (*MemoryBroker)(nil)

// NewMemoryBroker returns an in-process broker; NewHub starts it.
func NewMemoryBroker() *MemoryBroker { return &MemoryBroker{} }

// Start keeps deliver; one process misses nothing, so resync is unused.
func (b *MemoryBroker) Start(deliver Deliver, _ func()) { b.deliver = deliver }

func (b *MemoryBroker) Publish(_ context.Context, channel string, msg Message) error {
	b.deliver(channel, msg)
	return nil
}

func (b *MemoryBroker) Subscribe(string)   {}
func (b *MemoryBroker) Unsubscribe(string) {}
func (b *MemoryBroker) Close() error       { return nil }
