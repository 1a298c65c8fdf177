package ws

import (
	"sync"
	"sync/atomic"
)

// Stats are the hub's running totals, read by the metrics endpoint. They
// are plain atomics so the fan-out pays one add per broadcast, not a
// metrics library call per member.
type Stats struct {
	MessagesIn    atomic.Int64 // frames received from clients
	MessagesOut   atomic.Int64 // frames queued to members
	FramesDropped atomic.Int64 // frames a member could not be given (queue full or closing)
	SlowConsumers atomic.Int64 // members closed with 1013
	// ProtocolErrors counts switchboard.v1 frames answered with an error
	// frame (malformed JSON, unknown type).
	ProtocolErrors atomic.Int64

	mu     sync.Mutex
	closes map[int]int64 // close codes sent or received, by code
}

func (s *Stats) closed(code int) {
	s.mu.Lock()
	if s.closes == nil {
		s.closes = map[int]int64{}
	}
	s.closes[code]++
	s.mu.Unlock()
}

// Closes returns a copy of the close counts by code.
func (s *Stats) Closes() map[int]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]int64, len(s.closes))
	for k, v := range s.closes {
		out[k] = v
	}
	return out
}
