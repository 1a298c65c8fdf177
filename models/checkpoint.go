package models

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"
)

// Checkpointer copies SQLite's write-ahead log back into the database file
// from its own goroutine, for a database opened with ManualCheckpoint: the
// copy and its fsync stay off the commits that deliver messages. Its
// checkpoints are PASSIVE (they wait for no reader or writer; a writer
// appends to the WAL while one runs), and after one that copied every
// frame it starts the WAL over from its beginning itself (restartWAL), so
// the file holds about what was written in one interval and no commit
// pays for the restart.
type Checkpointer struct {
	db       *sql.DB
	interval time.Duration
	logger   *slog.Logger
	runs     atomic.Uint64
	took     prometheus.Histogram // wall time of each checkpoint
	stop     chan struct{}
	done     sync.WaitGroup
	once     sync.Once
}

// StartCheckpointer checkpoints db about every interval (a random 3/4 to
// 5/4 of it each time, see jitter) until Stop.
func StartCheckpointer(db *gorm.DB, interval time.Duration, logger *slog.Logger) (*Checkpointer, error) {
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("start checkpointer: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Checkpointer{db: sqlDB, interval: interval, logger: logger, stop: make(chan struct{}),
		took: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchboard_sqlite_checkpoint_seconds",
			Help:    "Wall time of each SQLite WAL checkpoint (embedded database only).",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16),
		})}
	c.done.Add(1)
	go c.run()
	return c, nil
}

func (c *Checkpointer) run() {
	defer c.done.Done()
	t := time.NewTimer(jitter(c.interval))
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if _, _, err := c.Checkpoint(ctx); err != nil {
			c.logger.Warn("wal checkpoint", "err", err)
		}
		cancel()
		t.Reset(jitter(c.interval))
	}
}

// jitter returns a random wait between 3/4 and 5/4 of interval, so
// checkpoints keep no fixed phase to traffic that is itself periodic
// (a client sending every 50 ms, a status pushed every second). With a
// fixed ticker a checkpoint that lands just before such a message lands
// there every time, and its WAL restart, which holds SQLite's write lock
// through an fsync, delays the same stream's commit every interval; with
// jitter that delay falls on a random message now and then, as it does
// for traffic with no period. The mean interval is unchanged.
func jitter(interval time.Duration) time.Duration {
	if interval < 4 {
		return interval
	}
	return interval*3/4 + rand.N(interval/2)
}

// Checkpoint runs one PASSIVE checkpoint now and returns the WAL's frames
// and how many of them are now in the database file.
func (c *Checkpointer) Checkpoint(ctx context.Context) (frames, copied int, err error) {
	var busy int
	start := time.Now()
	withSpareProc(func() {
		err = c.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
		if err == nil && copied == frames && frames > 1 {
			err = c.restartWAL(ctx)
		}
	})
	c.took.Observe(time.Since(start).Seconds())
	if err != nil {
		return 0, 0, fmt.Errorf("wal checkpoint: %w", err)
	}
	c.runs.Add(1)
	return frames, copied, nil
}

// restartWAL starts the WAL over after a checkpoint that copied all of
// it, by writing one page (user_version, set to what it is). SQLite
// restarts a fully copied WAL in the next transaction that writes to it
// and, with synchronous=NORMAL, fsyncs the new WAL header there: left to
// the next history commit, that fsync would delay the first message after
// every checkpoint. The one frame written here is copied by the next
// checkpoint, which then has nothing more to restart (frames == 1), so an
// idle database is not written every interval. The read and the write are
// two statements, not one transaction: that is safe because nothing else in
// switchboard reads or sets user_version (goose keeps the schema's version
// in its own table); anything that starts using it must change this.
func (c *Checkpointer) restartWAL(ctx context.Context) error {
	var v int64
	if err := c.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	_, err := c.db.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v))
	return err
}

// Collector returns the checkpoint-time histogram for a registry.
func (c *Checkpointer) Collector() prometheus.Collector { return c.took }

// Runs is how many checkpoints have completed.
func (c *Checkpointer) Runs() uint64 { return c.runs.Load() }

// Stop ends the checkpoints and waits for one in progress.
func (c *Checkpointer) Stop() {
	c.once.Do(func() { close(c.stop) })
	c.done.Wait()
}

// spareProc counts the checkpoints running inside withSpareProc.
var spareProc struct {
	sync.Mutex
	n      int
	raised bool // GOMAXPROCS was 1 and is 2 until n drops to 0
}

// withSpareProc runs f, a checkpoint, with at least two Ps. A checkpoint
// blocks in fsync(2) (the WAL, then the database file) for about 1 ms, and
// for tens of ms while other processes load the disk. A goroutine in a
// blocking system call keeps its P until the runtime's monitor takes it
// back, and the monitor of a mostly idle process wakes only every 10 ms:
// with GOMAXPROCS 1 (a server pinned to one core) nothing else runs
// meanwhile, and the messages arriving during a checkpoint are read,
// stored and fanned out only after its fsync. With a second P the rest of
// the server runs on another thread while the checkpoint's thread sleeps
// in the kernel. The P is added only for the checkpoint: an extra P all
// the time costs thread handoffs on one core.
func withSpareProc(f func()) {
	spareProc.Lock()
	if spareProc.n == 0 && runtime.GOMAXPROCS(0) == 1 {
		runtime.GOMAXPROCS(2)
		spareProc.raised = true
	}
	spareProc.n++
	spareProc.Unlock()
	defer func() {
		spareProc.Lock()
		defer spareProc.Unlock()
		if spareProc.n--; spareProc.n == 0 && spareProc.raised {
			spareProc.raised = false
			runtime.GOMAXPROCS(1)
		}
	}()
	f()
}
