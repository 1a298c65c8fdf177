package migrations_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"switchboard/internal/testenv"
	"switchboard/migrations"
	"switchboard/models"
)

// TestSQLiteHistoryWithoutRowIDKeepsMessages: migration 6 (SQLite only)
// rebuilds history_messages as a WITHOUT ROWID table; the messages stored
// at version 5 are all there after, in order, with their created_at, new
// ones continue their offsets (through 7's triggers), and the table is
// WITHOUT ROWID. Down and Up again keep them too.
func TestSQLiteHistoryWithoutRowIDKeepsMessages(t *testing.T) {
	ctx := context.Background()
	db := testenv.Open(t, models.Target{Dialect: models.SQLite, DSN: filepath.Join(t.TempDir(), "m.db")})
	p, err := migrations.Provider(db.SQL, models.SQLite)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	h := models.NewHistoryStore(db.Gorm)
	appendN := func(n int) {
		t.Helper()
		batch := make([]models.HistoryAppend, n)
		for i := range batch {
			batch[i] = models.HistoryAppend{Group: "chat-m", Encode: func(off uint64) []byte { return []byte{byte('a' + off%26)} }}
		}
		if _, _, err := h.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	// Messages stored at version 5, as that schema's writer stored them.
	if _, err := db.SQL.Exec(`INSERT INTO history_groups (name, epoch, last_offset) VALUES ('chat-m', 'e5', 70)`); err != nil {
		t.Fatal(err)
	}
	for off := 1; off <= 70; off++ {
		if _, err := db.SQL.Exec(`INSERT INTO history_messages (group_name, "offset", payload, created_at) VALUES ('chat-m', ?, ?, ?)`,
			off, string(rune('a'+off%26)), time.Date(2026, 11, 30, 12, 0, off, 0, time.UTC)); err != nil {
			t.Fatal(err)
		}
	}
	check := func(stage string, want int) {
		t.Helper()
		got, err := h.Range(ctx, "chat-m", 0, 1<<40, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != want {
			t.Fatalf("%s: %d messages, want %d", stage, len(got), want)
		}
		for i, e := range got {
			if e.Offset != uint64(i+1) || string(e.Payload) != string(rune('a'+(i+1)%26)) {
				t.Fatalf("%s: message %d = offset %d %q", stage, i, e.Offset, e.Payload)
			}
		}
	}
	createdAt := func() []string {
		t.Helper()
		rows, err := db.SQL.Query(`SELECT created_at FROM history_messages ORDER BY "offset"`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	index := func(stage string) {
		t.Helper()
		var n int
		if err := db.SQL.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'history_messages_created_at' AND tbl_name = 'history_messages'`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("%s: history_messages_created_at indexes %d (%v), want 1", stage, n, err)
		}
	}
	withoutRowID := func() bool {
		var sql string
		if err := db.SQL.QueryRow(`SELECT sql FROM sqlite_master WHERE name = 'history_messages'`).Scan(&sql); err != nil {
			t.Fatal(err)
		}
		return strings.Contains(sql, "WITHOUT ROWID")
	}
	if withoutRowID() {
		t.Fatal("history_messages is WITHOUT ROWID before migration 6")
	}
	before := createdAt()
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if got := createdAt(); !slices.Equal(got, before) {
		t.Fatalf("created_at changed by the migration: %v, want %v", got, before)
	}
	index("after up")
	if !withoutRowID() {
		t.Fatal("history_messages is not WITHOUT ROWID after migration 6")
	}
	check("after up", 70)
	appendN(5)
	check("after up and 5 more", 75)
	// Down past 7's triggers and 6.
	if _, err := p.DownTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if withoutRowID() {
		t.Fatal("history_messages is still WITHOUT ROWID after down")
	}
	check("after down", 75)
	index("after down")
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	check("after up again", 75)
}
