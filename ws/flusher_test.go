package ws

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestFlusherHandsFullSocketToItsOwnWriter sends to a peer that reads
// nothing until far more than a socket buffer is queued, so the flusher's
// non-blocking writes meet a full buffer and the rest goes to a blocking
// writer; then the peer reads, and every frame must arrive once, in order.
func TestFlusherHandsFullSocketToItsOwnWriter(t *testing.T) {
	cfg := DefaultClientConfig()
	cfg.SendQueue = 1 << 20 // this test is about order, not the 1013 rule
	const frames = 20000
	payload := strings.Repeat("x", 1000) // 20 MB in all: more than loopback buffers hold
	queued := make(chan *Client, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := NewClient(conn, &cfg)
		for i := range frames {
			c.Send(fmt.Appendf(nil, "%d|%s", i, payload))
			if i%50 == 49 {
				// Batches under 64 KiB, each written by the flusher
				// until the socket buffer is full.
				time.Sleep(time.Millisecond)
			}
		}
		queued <- c
		c.Serve(func([]byte) {}, nil)
	}))
	defer srv.Close()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var c *Client
	select {
	case c = <-queued:
	case <-time.After(10 * time.Second):
		t.Fatal("server did not queue its frames")
	}
	// The writer must be blocked on the full socket by now: only a
	// flusher write that met a full buffer hands a batch under 64 KiB to
	// a blocking writer.
	stuck := false
	for i := 0; i < 500 && !stuck; i++ {
		c.mu.Lock()
		stuck = c.inWrite
		c.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	if !stuck {
		t.Fatal("no write blocked on the full socket")
	}
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for i := range frames {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		want := fmt.Sprintf("%d|%s", i, payload)
		if string(msg) != want {
			t.Fatalf("frame %d = %.20q…, want %.20q…", i, msg, want)
		}
	}
}
