package ws

import (
	"context"
	"sync"
	"testing"
)

// recordingBroker records Subscribe/Unsubscribe calls in order.
type recordingBroker struct {
	MemoryBroker
	mu  sync.Mutex
	ops []string
}

func (b *recordingBroker) Subscribe(ch string) {
	b.mu.Lock()
	b.ops = append(b.ops, "+"+ch)
	b.mu.Unlock()
}

func (b *recordingBroker) Unsubscribe(ch string) {
	b.mu.Lock()
	b.ops = append(b.ops, "-"+ch)
	b.mu.Unlock()
}

func TestHubSubscribesOnFirstMemberAndUnsubscribesOnLast(t *testing.T) {
	b := &recordingBroker{}
	h := NewHub(b)
	cfg := DefaultClientConfig()
	c1, c2 := &Client{cfg: &cfg}, &Client{cfg: &cfg}
	h.Join("g", c1)
	h.Join("g", c2)
	h.Leave("g", c1)
	h.Leave("g", c2)
	h.Join("g", c1)
	want := []string{"+" + ControlChannel, "+g", "-g", "+g"}
	if len(b.ops) != len(want) {
		t.Fatalf("ops = %v, want %v", b.ops, want)
	}
	for i := range want {
		if b.ops[i] != want[i] {
			t.Fatalf("ops = %v, want %v", b.ops, want)
		}
	}
}

func TestDeliverDropsStaleSeq(t *testing.T) {
	h := NewHub(NewMemoryBroker())
	cfg := DefaultClientConfig()
	c := &Client{cfg: &cfg, writing: true} // no writer goroutine: inspect the queue
	h.Join("s", c)
	for _, seq := range []uint64{1, 3, 2, 3, 4} {
		h.Publish(context.Background(), "s", Message{Payload: []byte("x"), Seq: seq})
	}
	if len(c.queue) != 3 || c.lastSeq != 4 {
		t.Fatalf("queued %d frames, last seq %d; want 3 (seq 1, 3, 4), 4", len(c.queue), c.lastSeq)
	}
	if got := h.Stats.MessagesOut.Load(); got != 3 {
		t.Fatalf("MessagesOut = %d, want 3", got)
	}
}

func TestValidNameAndChatGroup(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"chat-a", true}, {"chat-é", true}, {"a.b:c_d-1", true}, {"日本", true},
		{"", false}, {"has space", false}, {"slash/no", false}, {"percent%", false},
		{string(make([]byte, 101)), false},
	}
	for _, tt := range tests {
		if got := ValidName(tt.in); got != tt.want {
			t.Errorf("ValidName(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	for in, want := range map[string]string{"alice": "chat-a", "éva": "chat-é", "Zoë": "chat-Z", "😀x": "chat-😀"} {
		if got := ChatGroup(in); got != want {
			t.Errorf("ChatGroup(%q) = %q, want %q", in, got, want)
		}
	}
}
