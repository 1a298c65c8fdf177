package models_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"switchboard/migrations"
	"switchboard/models"
)

const (
	ckptRounds   = 48 // of ckptPerRound messages of about 2 KB: 6 MB in all
	ckptPerRound = 64
)

func ckptPayload(off uint64) []byte {
	return []byte(fmt.Sprintf(`{"o":%d,"pad":%q}`, off, strings.Repeat("x", 2000)))
}

// openManual opens (and migrates) the SQLite file path with ManualCheckpoint.
func openManual(t testing.TB, path string, opts ...models.OpenOption) *gorm.DB {
	t.Helper()
	db, err := models.Open(models.Target{Dialect: models.SQLite, DSN: path}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqlDB.Close() })
	if _, err := migrations.Up(context.Background(), sqlDB, models.SQLite); err != nil {
		t.Fatal(err)
	}
	return db
}

// appendRound stores one round of messages in group g.
func appendRound(t *testing.T, h *models.HistoryStore, g string) {
	t.Helper()
	batch := make([]models.HistoryAppend, ckptPerRound)
	for i := range batch {
		batch[i] = models.HistoryAppend{Group: g, Encode: ckptPayload}
	}
	if _, _, err := h.Append(context.Background(), batch); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

func walSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// reopenAndCheck closes db, opens path again and checks that every message
// written is there, in order, with its payload.
func reopenAndCheck(t *testing.T, db *gorm.DB, path, g string, n uint64) {
	t.Helper()
	sqlDB, _ := db.DB()
	if err := sqlDB.Close(); err != nil {
		t.Fatal(err)
	}
	h := models.NewHistoryStore(openManual(t, path))
	_, last, err := h.Position(context.Background(), g)
	if err != nil || last != n {
		t.Fatalf("after restart: Position(%s) = %d, %v; want %d", g, last, err, n)
	}
	all, err := h.Range(context.Background(), g, 0, n, int(n))
	if err != nil || uint64(len(all)) != n {
		t.Fatalf("after restart: Range(%s) = %d entries, %v; want %d", g, len(all), err, n)
	}
	for i, e := range all {
		if e.Offset != uint64(i+1) || string(e.Payload) != string(ckptPayload(e.Offset)) {
			t.Fatalf("after restart: entry %d = offset %d, %d bytes; want offset %d", i, e.Offset, len(e.Payload), i+1)
		}
	}
}

// TestCheckpointerBoundsWAL: with ManualCheckpoint no commit copies the
// WAL back (it grows past SQLite's 1,000-page auto-checkpoint, about 4 MB);
// with a Checkpointer running, the WAL stays near what one round writes
// while 6 MB go through it; and in both cases everything written is there
// after a restart.
func TestCheckpointerBoundsWAL(t *testing.T) {
	const g = "chat-a"
	total := uint64(ckptRounds * ckptPerRound)

	t.Run("no checkpointer", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "h.db")
		db := openManual(t, path, models.ManualCheckpoint())
		h := models.NewHistoryStore(db)
		for range ckptRounds {
			appendRound(t, h, g)
		}
		if size := walSize(t, path); size < 5<<20 {
			t.Fatalf("WAL after 6 MB of commits = %d bytes; want more than 5 MB (no checkpoint in a commit)", size)
		}
		reopenAndCheck(t, db, path, g, total)
	})

	t.Run("checkpointer", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "h.db")
		db := openManual(t, path, models.ManualCheckpoint())
		h := models.NewHistoryStore(db)
		c, err := models.StartCheckpointer(db, 5*time.Millisecond, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Stop()
		for range ckptRounds {
			appendRound(t, h, g)
			// Two more completed runs: one started after this round's commit.
			want := c.Runs() + 2
			deadline := time.Now().Add(30 * time.Second)
			for c.Runs() < want {
				if time.Now().After(deadline) {
					t.Fatalf("checkpointer ran %d times in 30 s; want %d", c.Runs(), want)
				}
				time.Sleep(time.Millisecond)
			}
		}
		if size := walSize(t, path); size > 1<<20 {
			t.Fatalf("WAL after 6 MB of commits, checkpointed between rounds = %d bytes; want at most 1 MB", size)
		}
		frames, copied, err := c.Checkpoint(context.Background())
		if err != nil || copied != frames {
			t.Fatalf("Checkpoint() = %d frames, %d copied, %v; want all copied", frames, copied, err)
		}
		c.Stop()
		reopenAndCheck(t, db, path, g, total)
	})
}

// walSalt returns the salts in the WAL file's header: SQLite draws new
// ones each time it starts the WAL over.
func walSalt(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path + "-wal")
	if err != nil || len(b) < 32 {
		t.Fatalf("read WAL header: %d bytes, %v", len(b), err)
	}
	return fmt.Sprintf("%x", b[16:24])
}

// TestCheckpointerRestartsWAL: a checkpoint that copied the whole WAL also
// starts it over, so the next commit appends to it instead of restarting
// it (and fsyncing its header) before its messages go out; an idle
// database is then left alone.
func TestCheckpointerRestartsWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "restart.db")
	db := openManual(t, path, models.ManualCheckpoint())
	h := models.NewHistoryStore(db)
	c, err := models.StartCheckpointer(db, time.Hour, nil) // checkpoints only when called
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	ctx := context.Background()
	appendRound(t, h, "g")
	before := walSalt(t, path)
	frames, copied, err := c.Checkpoint(ctx)
	if err != nil || frames == 0 || copied != frames {
		t.Fatalf("Checkpoint = %d, %d, %v; want every frame copied", frames, copied, err)
	}
	restarted := walSalt(t, path)
	if restarted == before {
		t.Fatalf("WAL salts %s unchanged by a checkpoint that copied all %d frames, want it started over", before, frames)
	}
	appendRound(t, h, "g")
	if got := walSalt(t, path); got != restarted {
		t.Errorf("the commit after the checkpoint restarted the WAL (salts %s → %s), want it to append", restarted, got)
	}
	// Copy that round and the restart's page; then nothing is left to do.
	for i := range 3 {
		if _, _, err := c.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			restarted = walSalt(t, path)
		}
	}
	frames, copied, err = c.Checkpoint(ctx)
	if err != nil || frames != 1 || copied != 1 {
		t.Errorf("idle Checkpoint = %d frames, %d copied, %v; want only the restart's page (1, 1)", frames, copied, err)
	}
	if got := walSalt(t, path); got != restarted {
		t.Errorf("idle checkpoints restarted the WAL again (salts %s → %s)", restarted, got)
	}
	reopenAndCheck(t, db, path, "g", 2*ckptPerRound)
}
