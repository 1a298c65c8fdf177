package ws

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"switchboard/models"
)

// HistoryStore is what the hub needs of durable group history;
// *models.HistoryStore implements it on SQLite and PostgreSQL.
type HistoryStore interface {
	// Append stores a batch in one transaction and returns each entry's
	// offset and payload, in order, and each group's epoch.
	Append(ctx context.Context, batch []models.HistoryAppend) ([]models.HistoryEntry, map[string]string, error)
	// Position returns a group's epoch and last offset.
	Position(ctx context.Context, group string) (epoch string, offset uint64, err error)
	// Range returns the stored messages after < offset <= upto, oldest first.
	Range(ctx context.Context, group string, after, upto uint64, limit int) ([]models.HistoryEntry, error)
	// Trim deletes all but the newest keep messages of every group, and
	// those older than maxAge.
	Trim(ctx context.Context, keep int, maxAge time.Duration) error
}

var _ HistoryStore = (*models.HistoryStore)(nil)

// HistoryConfig configures group history (HISTORY_* settings).
type HistoryConfig struct {
	Size        int           // messages kept per group
	TTL         time.Duration // and for at most this long (0: no limit)
	RecoveryMax int           // most messages a reconnect may replay
}

// Position is where a group's stream stands: its epoch and an offset.
type Position struct {
	Epoch  string
	Offset uint64
}

// GroupMessage is one message for a group: stored in its history (when
// history is on) and delivered to every member. Encode builds the frame
// from the offset the database assigned (0 with history off); the sender
// (Origin), when set, gets EncodeOrigin's frame instead.
type GroupMessage struct {
	Group        string
	Encode       func(offset uint64) []byte
	Origin       *Client
	EncodeOrigin func(offset uint64) []byte
}

// ErrHistoryStopped is returned by PublishGroup after shutdown.
var ErrHistoryStopped = errors.New("history writer stopped")

// historyWriter assigns offsets and stores group messages, committing
// whatever queued while the previous commit ran in one transaction (group
// commit), and only then publishes them, in offset order. One goroutine
// per process, so one sender's messages keep their order.
type historyWriter struct {
	store   HistoryStore
	cfg     HistoryConfig
	logger  *slog.Logger
	publish func(ctx context.Context, channel string, msg Message) error
	metrics *HistoryMetrics

	in     chan pendingAppend
	stop   chan struct{}
	done   sync.WaitGroup
	closed sync.Once

	// publishing holds, per group, the first offset of a committed batch
	// this writer is still publishing: the hub's gap fill waits for those
	// rather than read them from history, so the sender's own copy (with
	// its id) is the one delivered. Each publish may wait on Redis, so a
	// large batch can take longer than gapWait to go out.
	pubMu      sync.Mutex
	publishing map[string]uint64
}

type pendingAppend struct {
	m      GroupMessage
	done   chan error // nil: nobody waits (chat); the origin is closed on failure
	queued time.Time  // for HistoryMetrics.Wait
}

// maxBatch bounds one group commit.
const maxBatch = 512

func newHistoryWriter(store HistoryStore, cfg HistoryConfig, logger *slog.Logger, publish func(context.Context, string, Message) error) *historyWriter {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	w := &historyWriter{store: store, cfg: cfg, logger: logger, publish: publish,
		metrics: newHistoryMetrics(), publishing: map[string]uint64{},
		in: make(chan pendingAppend, 4096), stop: make(chan struct{})}
	w.done.Add(2)
	go w.run()
	go w.trimLoop()
	return w
}

// append queues m; with wait it returns once m is stored and published.
// A full queue blocks the caller: backpressure on the senders.
func (w *historyWriter) append(ctx context.Context, m GroupMessage, wait bool) error {
	p := pendingAppend{m: m, queued: time.Now()}
	if wait {
		p.done = make(chan error, 1)
	}
	select {
	case w.in <- p:
	case <-w.stop:
		return ErrHistoryStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	if !wait {
		return nil
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err() // it will still be stored and delivered
	}
}

func (w *historyWriter) run() {
	defer w.done.Done()
	batch := make([]pendingAppend, 0, maxBatch)
	for {
		select {
		case p := <-w.in:
			batch = append(batch[:0], p)
		case <-w.stop:
			// Drain what was queued before the stop.
			for {
				select {
				case p := <-w.in:
					w.commit([]pendingAppend{p})
				default:
					return
				}
			}
		}
		batch = w.gather(batch)
		w.commit(batch)
		clear(batch)
	}
}

// gatherRounds bounds how often gather yields for one batch.
const gatherRounds = 8

// gather adds to batch what is queued, yielding the processor after each
// round while the last one found more (once at least). A commit's cost is mostly per
// batch, not per message: without the yield, on one core (GOMAXPROCS 1)
// the writer ran as soon as the first message was queued, before the
// readers holding the next ones, and committed them one or two at a time.
// When nothing else is runnable Gosched returns at once, so a lone
// message waits for no one.
func (w *historyWriter) gather(batch []pendingAppend) []pendingAppend {
	for round := 0; ; round++ {
		n := len(batch)
	drain:
		for len(batch) < maxBatch {
			select {
			case p := <-w.in:
				batch = append(batch, p)
			default:
				break drain
			}
		}
		if len(batch) == maxBatch || round == gatherRounds || (round > 0 && len(batch) == n) {
			break
		}
		runtime.Gosched()
	}
	return batch
}

func (w *historyWriter) commit(batch []pendingAppend) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	appends := make([]models.HistoryAppend, len(batch))
	for i, p := range batch {
		appends[i] = models.HistoryAppend{Group: p.m.Group, Encode: p.m.Encode}
	}
	start := time.Now()
	entries, _, err := w.store.Append(ctx, appends)
	end := time.Now()
	w.metrics.observeCommit(end.Sub(start), len(batch))
	for _, p := range batch {
		w.metrics.Wait.Observe(end.Sub(p.queued).Seconds())
	}
	if err != nil {
		w.logger.Error("store group messages", "messages", len(batch), "err", err)
		for _, p := range batch {
			if p.done != nil {
				p.done <- err
			} else if p.m.Origin != nil {
				// Not stored, so not sent: the sender is told.
				p.m.Origin.Close(CloseInternal)
			}
		}
		return
	}
	w.pubMu.Lock()
	for i, p := range batch {
		if _, ok := w.publishing[p.m.Group]; !ok {
			w.publishing[p.m.Group] = entries[i].Offset // batch order: the group's first
		}
	}
	w.pubMu.Unlock()
	defer func() {
		w.pubMu.Lock()
		for _, p := range batch {
			delete(w.publishing, p.m.Group)
		}
		w.pubMu.Unlock()
	}()
	for i, p := range batch {
		msg := Message{Payload: entries[i].Payload, Seq: entries[i].Offset, Origin: p.m.Origin}
		if p.m.Origin != nil && p.m.EncodeOrigin != nil {
			msg.OriginPayload = p.m.EncodeOrigin(entries[i].Offset)
		}
		// A failed publish (Redis down) still delivered locally and is
		// stored: other processes backfill from history when Redis is back.
		if err := w.publish(ctx, GroupChannel(p.m.Group), msg); err != nil {
			w.logger.Warn("publish group message", "group", p.m.Group, "err", err)
		}
		if p.done != nil {
			p.done <- nil
		}
	}
}

// publishingUpTo reports whether this writer is still publishing a
// committed batch of group that holds offsets at or below upto.
func (w *historyWriter) publishingUpTo(group string, upto uint64) bool {
	w.pubMu.Lock()
	defer w.pubMu.Unlock()
	first, ok := w.publishing[group]
	return ok && first <= upto
}

// trimLoop applies HISTORY_SIZE and HISTORY_TTL once a minute, apart from
// the commit path so trimming never delays delivery.
func (w *historyWriter) trimLoop() {
	defer w.done.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := w.store.Trim(ctx, w.cfg.Size, w.cfg.TTL); err != nil {
			w.logger.Warn("trim history", "err", err)
		}
		cancel()
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
	}
}

// close stops accepting messages, stores and publishes what was queued,
// and waits for both goroutines.
func (w *historyWriter) close() {
	w.closed.Do(func() { close(w.stop) })
	w.done.Wait()
}
