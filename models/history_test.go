package models_test

import (
	"context"
	"fmt"
	"testing"

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
				latest, err := h.Latest(ctx, g, 5)
				if err != nil || len(latest) != 5 || latest[4].Offset != last {
					t.Errorf("Latest(%s, 5) = %v, %v; want the newest 5 ending at %d", g, latest, err, last)
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
