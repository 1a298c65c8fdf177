package ws

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/migrations"
	"switchboard/models"
)

// historyHub is a hub with history on a fresh SQLite file of the test's.
func historyHub(t *testing.T) (*Hub, *models.HistoryStore) {
	t.Helper()
	db, err := models.Open(models.Target{Dialect: models.SQLite, DSN: filepath.Join(t.TempDir(), "h.db")})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.Up(context.Background(), sqlDB, models.SQLite); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqlDB.Close() }) // after the hubs' shutdowns
	store := models.NewHistoryStore(db)
	return newHistoryHub(t, NewMemoryBroker(), store), store
}

// newHistoryHub is a hub on broker b with history in store, shut down
// when the test ends.
func newHistoryHub(t *testing.T, b Broker, store HistoryStore) *Hub {
	t.Helper()
	h := NewHub(b, WithHistory(store, HistoryConfig{Size: 100, RecoveryMax: 100}, nil))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Shutdown(ctx)
	})
	return h
}

// queueClient is a member with no writer: the test reads its queue.
func queueClient(t *testing.T) *Client {
	cfg := DefaultClientConfig()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return &Client{cfg: &cfg, raw: a, writing: true}
}

// closeCode is the close code c was closed with (0: not closed).
func closeCode(c *Client) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closing || len(c.queue) == 0 {
		return 0
	}
	f := c.queue[len(c.queue)-1]
	if len(f) < 4 || f[0] != finBit|opClose {
		return -1
	}
	return int(f[2])<<8 | int(f[3])
}

// TestGapNotInHistoryClosesMembers: a message that arrives ahead of
// offsets history does not hold (trimmed, or lost with the database)
// closes the group's members here with 4005 "insufficient state", so each
// reconnects with since and recovers or hears recovered:false; before,
// the hub skipped the gap and delivered the later message as if nothing
// were missing. A member joining afterwards starts after the gap.
func TestGapNotInHistoryClosesMembers(t *testing.T) {
	h, _ := historyHub(t)
	ctx := context.Background()
	c := queueClient(t)
	pos, err := h.JoinGroup(ctx, "chat-g", c)
	if err != nil || pos.Offset != 0 {
		t.Fatalf("JoinGroup = %+v, %v; want offset 0", pos, err)
	}
	// Offset 3 from "another process"; 1 and 2 are in no history.
	h.deliver(GroupChannel("chat-g"), Message{Payload: []byte(`{"type":"message","offset":3}`), Seq: 3})
	deadline := time.Now().Add(5 * time.Second)
	for closeCode(c) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := closeCode(c); got != CodeInsufficientState {
		t.Fatalf("member's close code = %d, want %d (told, not skipped past offsets 1..2)", got, CodeInsufficientState)
	}
	c2 := queueClient(t)
	if pos, err := h.JoinGroup(ctx, "chat-g", c2); err != nil || pos.Offset != 3 {
		t.Fatalf("a later join = %+v, %v; want offset 3 (after the gap and the held message)", pos, err)
	}
}

// TestCatchUpDeliversWhatAnotherProcessStored: when this process has
// delivered less of a group than a reconnecting member has seen (since),
// CatchUp gives the local members, at once, what history holds beyond
// this process's offset: a message another process stored but whose
// publish never came here. Then a join starts after it.
func TestCatchUpDeliversWhatAnotherProcessStored(t *testing.T) {
	h, store := historyHub(t)
	ctx := context.Background()
	c := queueClient(t)
	if _, err := h.JoinGroup(ctx, "chat-k", c); err != nil {
		t.Fatal(err)
	}
	// Stored by another process whose publish never reached this one.
	if _, _, err := store.Append(ctx, []models.HistoryAppend{{Group: "chat-k", Encode: func(off uint64) []byte {
		return []byte(`{"type":"message"}`)
	}}}); err != nil {
		t.Fatal(err)
	}
	if err := h.CatchUp(ctx, "chat-k", 1); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	n := len(c.queue)
	c.mu.Unlock()
	if n != 1 {
		t.Fatalf("member has %d frames queued after CatchUp(since 1), want the 1 stored elsewhere", n)
	}
	c2 := queueClient(t)
	if pos, err := h.JoinGroup(ctx, "chat-k", c2); err != nil || pos.Offset != 1 {
		t.Fatalf("JoinGroup after the catch-up = %+v, %v; want offset 1", pos, err)
	}
}

// failingPositions is the real store, with Position failing while fail
// is set (a database that is briefly unreachable).
type failingPositions struct {
	HistoryStore
	fail atomic.Bool
}

func (f *failingPositions) Position(ctx context.Context, group string) (string, uint64, error) {
	if f.fail.Load() {
		return "", 0, errors.New("database unreachable")
	}
	return f.HistoryStore.Position(ctx, group)
}

// TestResyncThatCannotReadClosesAndMarksStale: a resync (after Redis
// came back) that cannot read a group's history, after its retries,
// closes the group's members here with 4005 (they may have missed
// messages) and marks the group stale, so the next join reads history
// first and starts after what this process missed. Before, the resync
// skipped the group: its members were told nothing and a later join got
// the stale offset.
func TestResyncThatCannotReadClosesAndMarksStale(t *testing.T) {
	_, store := historyHub(t)
	fs := &failingPositions{HistoryStore: store}
	h := newHistoryHub(t, NewMemoryBroker(), fs)
	ctx := context.Background()
	c := queueClient(t)
	if _, err := h.JoinGroup(ctx, "chat-r", c); err != nil {
		t.Fatal(err)
	}
	// Two messages another process stored while Redis was away.
	for range 2 {
		if _, _, err := store.Append(ctx, []models.HistoryAppend{{Group: "chat-r", Encode: func(uint64) []byte { return []byte(`{}`) }}}); err != nil {
			t.Fatal(err)
		}
	}
	fs.fail.Store(true)
	h.Resync() // three tries, 1 s and 2 s apart
	if got := closeCode(c); got != CodeInsufficientState {
		t.Fatalf("member's close code after a failed resync = %d, want %d", got, CodeInsufficientState)
	}
	fs.fail.Store(false)
	c2 := queueClient(t)
	if pos, err := h.JoinGroup(ctx, "chat-r", c2); err != nil || pos.Offset != 2 {
		t.Fatalf("join after the failed resync = %+v, %v; want offset 2 (history read first)", pos, err)
	}
}

// slowBroker is the in-process broker with group publishes held until
// release is closed: a Redis PUBLISH that is slow to return (the writer
// publishes a batch one message after another).
type slowBroker struct {
	MemoryBroker
	release chan struct{}
}

func (b *slowBroker) Publish(ctx context.Context, channel string, msg Message) error {
	if msg.Seq != 0 {
		<-b.release
	}
	return b.MemoryBroker.Publish(ctx, channel, msg)
}

// TestGapFillWaitsForTheWritersOwnCopy: a message from another process
// that arrives while this process's writer is still publishing a lower
// offset it stored does not make the hub read that offset from history:
// the sender gets its own copy, with the id it chose, not a bare one
// from history followed by its own copy dropped as a repeat.
func TestGapFillWaitsForTheWritersOwnCopy(t *testing.T) {
	_, store := historyHub(t)
	b := &slowBroker{release: make(chan struct{})}
	h := newHistoryHub(t, b, store)
	ctx := context.Background()
	sender := queueClient(t)
	if _, err := h.JoinGroup(ctx, "chat-w", sender); err != nil {
		t.Fatal(err)
	}
	err := h.PublishGroup(ctx, GroupMessage{Group: "chat-w", Origin: sender,
		Encode:       func(off uint64) []byte { return []byte(`{"type":"message"}`) },
		EncodeOrigin: func(off uint64) []byte { return []byte(`{"type":"message","id":"c-1"}`) },
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	// Offset 1 is stored once Position says so; its publish is held.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, last, err := store.Position(ctx, "chat-w"); err == nil && last == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("offset 1 not stored within 5s")
		}
	}
	h.deliver(GroupChannel("chat-w"), Message{Payload: []byte(`{"type":"message","offset":2}`), Seq: 2})
	time.Sleep(4 * gapWait) // the gap fill has had its turn
	close(b.release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		sender.mu.Lock()
		q := append([][]byte(nil), sender.queue...)
		sender.mu.Unlock()
		if len(q) == 2 {
			if !strings.Contains(string(q[0]), `"id":"c-1"`) {
				t.Fatalf("sender's first frame = %q, want its own copy with its id", q[0])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sender has %d frames, want 2 (its own message, then offset 2)", len(q))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
