package models

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
)

// Checkpointer copies SQLite's write-ahead log back into the database file
// from its own goroutine, for a database opened with ManualCheckpoint: the
// copy and its fsync stay off the commits that deliver messages. Its
// checkpoints are PASSIVE (they wait for no reader or writer; a writer
// appends to the WAL while one runs), and the first commit after one that
// copied every frame starts the WAL over from its beginning, so the file
// holds about what was written in one interval.
type Checkpointer struct {
	db       *sql.DB
	interval time.Duration
	logger   *slog.Logger
	runs     atomic.Uint64
	stop     chan struct{}
	done     sync.WaitGroup
	once     sync.Once
}

// StartCheckpointer checkpoints db every interval until Stop.
func StartCheckpointer(db *gorm.DB, interval time.Duration, logger *slog.Logger) (*Checkpointer, error) {
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("start checkpointer: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Checkpointer{db: sqlDB, interval: interval, logger: logger, stop: make(chan struct{})}
	c.done.Add(1)
	go c.run()
	return c, nil
}

func (c *Checkpointer) run() {
	defer c.done.Done()
	t := time.NewTicker(c.interval)
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
	}
}

// Checkpoint runs one PASSIVE checkpoint now and returns the WAL's frames
// and how many of them are now in the database file.
func (c *Checkpointer) Checkpoint(ctx context.Context) (frames, copied int, err error) {
	var busy int
	err = c.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
	if err != nil {
		return 0, 0, fmt.Errorf("wal checkpoint: %w", err)
	}
	c.runs.Add(1)
	return frames, copied, nil
}

// Runs is how many checkpoints have completed.
func (c *Checkpointer) Runs() uint64 { return c.runs.Load() }

// Stop ends the checkpoints and waits for one in progress.
func (c *Checkpointer) Stop() {
	c.once.Do(func() { close(c.stop) })
	c.done.Wait()
}
