package models_test

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"switchboard/internal/testenv"
	"switchboard/models"
)

// TestHistoryAppendOffsets: batches of every size (split into the
// store's fixed INSERT sizes) and several groups get consecutive offsets
// per group from 1, with no gap or repeat, and Range/Latest/Position read
// back exactly what was stored, on every dialect.
func TestHistoryAppendOffsets(t *testing.T) {
	ctx := context.Background()
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			h := models.NewHistoryStore(testenv.Database(t, dialect).Gorm)
			want := map[string]uint64{}
			if entries, _, err := h.Append(ctx, nil); err != nil || len(entries) != 0 {
				t.Fatalf("Append(empty) = %v, %v; want nothing stored, no error", entries, err)
			}
			for _, size := range []int{1, 3, 85, 64, 17, 2} {
				batch := make([]models.HistoryAppend, size)
				for i := range batch {
					g := fmt.Sprintf("g%d", i%2)
					batch[i] = models.HistoryAppend{Group: g, Encode: func(off uint64) []byte { return []byte(fmt.Sprintf(`{"g":%q,"o":%d}`, g, off)) }}
				}
				entries, epochs, err := h.Append(ctx, batch)
				if err != nil {
					t.Fatalf("Append(%d): %v", size, err)
				}
				for i, e := range entries {
					g := batch[i].Group
					want[g]++
					if e.Offset != want[g] || string(e.Payload) != fmt.Sprintf(`{"g":%q,"o":%d}`, g, want[g]) {
						t.Fatalf("batch of %d, entry %d = %d %s; want offset %d in %s", size, i, e.Offset, e.Payload, want[g], g)
					}
					if epochs[g] == "" {
						t.Fatalf("no epoch for %s", g)
					}
				}
			}
			for g, last := range want {
				epoch, off, err := h.Position(ctx, g)
				if err != nil || off != last || epoch == "" {
					t.Errorf("Position(%s) = %q %d %v; want offset %d", g, epoch, off, err, last)
				}
				all, err := h.Range(ctx, g, 0, last, 10000)
				if err != nil || uint64(len(all)) != last {
					t.Fatalf("Range(%s) = %d entries, %v; want %d", g, len(all), err, last)
				}
				for i, e := range all {
					if e.Offset != uint64(i+1) {
						t.Fatalf("Range(%s)[%d].Offset = %d", g, i, e.Offset)
					}
				}
				latest, err := h.Latest(ctx, g, math.MaxInt64, 5)
				if err != nil || len(latest) != 5 || latest[4].Offset != last {
					t.Errorf("Latest(%s, 5) = %v, %v; want the newest 5 ending at %d", g, latest, err, last)
				}
				// Bounded by an offset read before: nothing newer than it.
				latest, err = h.Latest(ctx, g, last-3, 5)
				if err != nil || len(latest) != 5 || latest[4].Offset != last-3 {
					t.Errorf("Latest(%s, upto %d, 5) = %v, %v; want the 5 ending at %d", g, last-3, latest, err, last-3)
				}
			}
			if err := h.Trim(ctx, 10, 0); err != nil {
				t.Fatal(err)
			}
			if kept, _ := h.Range(ctx, "g0", 0, want["g0"], 10000); len(kept) != 10 || kept[0].Offset != want["g0"]-9 {
				t.Errorf("after Trim(10): %d kept, first %v; want the newest 10", len(kept), kept)
			}
		})
	}
}

// TestHistoryRangeShared: RangeShared gives exactly what Range reads for
// ranges inside, across, before and past what earlier calls kept (and
// after more messages arrive), on every dialect; once a range has been
// read it is served without the database (closed here), but only for the
// same epoch; after a Trim a trimmed range comes back short.
func TestHistoryRangeShared(t *testing.T) {
	ctx := context.Background()
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			db := testenv.Database(t, dialect)
			h := models.NewHistoryStore(db.Gorm)
			appendN := func(g string, n int) {
				t.Helper()
				batch := make([]models.HistoryAppend, n)
				for i := range batch {
					batch[i] = models.HistoryAppend{Group: g, Encode: func(off uint64) []byte { return []byte(fmt.Sprintf(`{"g":%q,"o":%d}`, g, off)) }}
				}
				if _, _, err := h.Append(ctx, batch); err != nil {
					t.Fatal(err)
				}
			}
			appendN("g", 300)
			epoch, _, err := h.Position(ctx, "g")
			if err != nil {
				t.Fatal(err)
			}
			check := func(after, upto uint64) {
				t.Helper()
				got, err := h.RangeShared(ctx, "g", epoch, after, upto)
				if err != nil {
					t.Fatalf("RangeShared(%d, %d): %v", after, upto, err)
				}
				if uint64(len(got)) != upto-after {
					t.Fatalf("RangeShared(%d, %d) = %d entries; want %d", after, upto, len(got), upto-after)
				}
				for i, e := range got {
					off := after + 1 + uint64(i)
					if e.Offset != off || string(e.Payload) != fmt.Sprintf(`{"g":"g","o":%d}`, off) {
						t.Fatalf("RangeShared(%d, %d)[%d] = %d %s; want offset %d", after, upto, i, e.Offset, e.Payload, off)
					}
				}
			}
			for _, r := range [][2]uint64{
				{200, 300}, {250, 300}, {200, 250}, {299, 300}, {300, 300}, // inside
				{100, 300}, {150, 200}, // before, reaching it
				{0, 50}, {10, 20}, // apart: replaces it
				{0, 300}, {40, 60},
			} {
				check(r[0], r[1])
			}
			appendN("g", 20)
			check(290, 320) // past what is kept: reads only the rest
			check(0, 320)
			appendN("other", 30)
			if err := h.Trim(ctx, 10, 0); err != nil {
				t.Fatal(err)
			}
			if got, err := h.RangeShared(ctx, "other", epoch, 0, 30); err != nil || len(got) != 10 || got[0].Offset != 21 {
				t.Errorf("RangeShared(other, 0, 30) after Trim(10) = %d entries, %v; want the newest 10", len(got), err)
			}
			// Trim dropped what was kept: the database's 10 are all there is.
			if got, err := h.RangeShared(ctx, "g", epoch, 100, 320); err != nil || len(got) != 10 || got[0].Offset != 311 {
				t.Errorf("RangeShared(g, 100, 320) after Trim(10) = %d entries, %v; want the newest 10", len(got), err)
			}

			check(310, 320)
			db.SQL.Close()
			if _, err := h.Range(ctx, "g", 310, 320, 10); err == nil {
				t.Fatal("Range after the pool closed: no error")
			}
			check(312, 320) // no database needed
			check(310, 320)
			if got, err := h.RangeShared(ctx, "g", "another-epoch", 310, 320); err == nil {
				t.Errorf("RangeShared with another epoch = %d entries from what was kept; want a database read (error)", len(got))
			}
		})
	}
}

// BenchmarkHistoryAppend is one chat message's group commit on the
// embedded database as the server runs it (a batch of one, W4's case):
// auto-checkpoints off, a Checkpointer every 500 ms, and the history
// writer's context with a deadline.
func BenchmarkHistoryAppend(b *testing.B) {
	db := openManual(b, filepath.Join(b.TempDir(), "bench.db"), models.ManualCheckpoint())
	cp, err := models.StartCheckpointer(db, 500*time.Millisecond, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer cp.Stop()
	h := models.NewHistoryStore(db)
	payload := []byte(`{"type":"message","group":"chat-b","user":"bench","message":"hello","offset":0}`)
	batch := []models.HistoryAppend{{Group: "chat-b", Encode: func(uint64) []byte { return payload }}}
	b.ReportAllocs()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, _, err := h.Append(ctx, batch); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
}

// TestHistoryAppendTwoStoresOneFile: two stores on one SQLite file (two
// processes) append to one group in turn, each in batches, so each one's
// knowledge of the group's last offset is stale at every commit after the
// other's. Every offset is used once, in order, with the payload its
// writer was told; and what each store returned is what was stored.
func TestHistoryAppendTwoStoresOneFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	stores := []*models.HistoryStore{models.NewHistoryStore(openManual(t, path)), models.NewHistoryStore(openManual(t, path))}
	got := map[uint64]string{}
	for round := range 30 {
		s := stores[round%2]
		n := 1 + round%4
		batch := make([]models.HistoryAppend, n)
		for i := range batch {
			batch[i] = models.HistoryAppend{Group: "chat-t", Encode: func(off uint64) []byte { return []byte(fmt.Sprintf("s%d-%d", round%2, off)) }}
		}
		entries, _, err := s.Append(ctx, batch)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for _, e := range entries {
			if _, dup := got[e.Offset]; dup {
				t.Fatalf("round %d: offset %d given twice", round, e.Offset)
			}
			got[e.Offset] = string(e.Payload)
		}
	}
	stored, err := stores[0].Range(ctx, "chat-t", 0, 1<<40, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != len(got) {
		t.Fatalf("%d stored, %d appended", len(stored), len(got))
	}
	for i, e := range stored {
		if e.Offset != uint64(i+1) || string(e.Payload) != got[e.Offset] {
			t.Fatalf("stored #%d: offset %d %q; want offset %d %q", i, e.Offset, e.Payload, i+1, got[uint64(i+1)])
		}
	}
	for i, s := range stores {
		_, last, err := s.Position(ctx, "chat-t")
		if err != nil || last != uint64(len(got)) {
			t.Fatalf("store %d: position %d (%v), want %d", i, last, err, len(got))
		}
	}
}

// TestHistoryTrimInChunks: Trim keeps the newest keep of every group and
// drops what is older than maxAge, without reusing an offset, and no
// statement of it deletes more than 1,000 rows: on SQLite each holds the
// one write lock the commits that deliver messages need. Before, one
// DELETE took a whole backlog.
func TestHistoryTrimInChunks(t *testing.T) {
	ctx := context.Background()
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			db := testenv.Database(t, dialect).Gorm
			h := models.NewHistoryStore(db)
			for g, n := range map[string]int{"a": 2600, "b": 30} {
				for done := 0; done < n; {
					batch := make([]models.HistoryAppend, min(500, n-done))
					for i := range batch {
						batch[i] = models.HistoryAppend{Group: g, Encode: func(off uint64) []byte { return []byte(fmt.Sprint(off)) }}
					}
					if _, _, err := h.Append(ctx, batch); err != nil {
						t.Fatal(err)
					}
					done += len(batch)
				}
			}
			var mu sync.Mutex
			most, deletes := int64(0), 0
			err := db.Callback().Raw().After("gorm:raw").Register("test:delete_rows", func(tx *gorm.DB) {
				if strings.HasPrefix(strings.TrimSpace(tx.Statement.SQL.String()), "DELETE") {
					mu.Lock()
					most, deletes = max(most, tx.RowsAffected), deletes+1
					mu.Unlock()
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := h.Trim(ctx, 1500, 0); err != nil {
				t.Fatal(err)
			}
			a, errA := h.Range(ctx, "a", 0, 2600, 10000)
			b, errB := h.Range(ctx, "b", 0, 30, 10000)
			if errA != nil || errB != nil {
				t.Fatal(errA, errB)
			}
			if len(a) != 1500 || a[0].Offset != 1101 || len(b) != 30 {
				t.Fatalf("after Trim(1500): a keeps %d (first %v), b %d; want a 1101..2600, all 30 of b", len(a), a[:min(1, len(a))], len(b))
			}
			time.Sleep(20 * time.Millisecond)
			if err := h.Trim(ctx, 1500, 10*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			a, errA = h.Range(ctx, "a", 0, 2600, 10000)
			b, errB = h.Range(ctx, "b", 0, 30, 10000)
			if errA != nil || errB != nil {
				t.Fatal(errA, errB)
			}
			if len(a)+len(b) != 0 {
				t.Fatalf("after the TTL trim %d + %d messages left, want none", len(a), len(b))
			}
			if most > 1000 || deletes < 4 {
				t.Errorf("trimming ran %d DELETEs, the largest of %d rows; want chunks of at most 1000", deletes, most)
			}
			if _, last, err := h.Position(ctx, "a"); err != nil || last != 2600 {
				t.Errorf("Position(a) after trimming = %d, %v; want 2600 (offsets are never reused)", last, err)
			}
		})
	}
}
