package models

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"
)

// HistoryStore keeps each group's messages with their offsets, durably.
// Offsets start at 1 and grow by exactly 1 per message within a group,
// across every process sharing the database.
type HistoryStore struct {
	db      *gorm.DB
	sql     *sql.DB // db's pool: Append, the hot path, runs without GORM
	sqlErr  error   // why db has no pool (Append fails with it)
	dialect Dialect
	q       historyQueries
	recent  recentWindows // what RangeShared read, for the next reader

	posMu sync.Mutex
	pos   map[string]groupPos // SQLite: each group's position after this store's last commit to it
}

// groupPos is a group's epoch and last offset as this store last stored
// or read them.
type groupPos struct {
	epoch string
	last  uint64
}

// maxKnownGroups bounds HistoryStore.pos: past it the map starts over (a
// forgotten group costs one read under the write lock on its next commit).
const maxKnownGroups = 10000

// historyQueries are Append's statements in the dialect's placeholders.
type historyQueries struct {
	bump     string // add $1 to group $2's last offset; returns epoch, last offset
	ensure   string // create group $1 with epoch $2 unless it exists
	position string // group $1's epoch and last offset
	insert   map[int]string
}

// NewHistoryStore returns a store over db.
func NewHistoryStore(db *gorm.DB) *HistoryStore {
	s := &HistoryStore{db: db, dialect: Dialect(db.Dialector.Name()),
		recent: recentWindows{groups: map[string]*recentWindow{}}, pos: map[string]groupPos{}}
	s.sql, s.sqlErr = db.DB()
	s.q = historyQueries{
		bump:     s.placeholders(`UPDATE history_groups SET last_offset = last_offset + ? WHERE name = ? RETURNING epoch, last_offset`),
		ensure:   s.placeholders(ensureGroupSQL),
		position: s.placeholders(`SELECT epoch, last_offset FROM history_groups WHERE name = ?`),
		insert:   map[int]string{},
	}
	for _, n := range insertChunks {
		s.q.insert[n] = s.placeholders(insertSQL(n))
	}
	return s
}

// placeholders numbers query's ? placeholders $1, $2, … for PostgreSQL
// (pgx takes no ?); SQLite takes ? as written. Every ? is taken for a
// placeholder: Append's statements hold none inside a literal.
func (s *HistoryStore) placeholders(query string) string {
	if s.dialect != Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// HistoryAppend is one message to append: Encode builds the stored frame
// (and what members receive) from the offset the database assigns.
type HistoryAppend struct {
	Group  string
	Encode func(offset uint64) []byte
}

// HistoryEntry is one stored message.
type HistoryEntry struct {
	Offset  uint64
	Payload []byte
}

type historyGroup struct {
	Name       string
	Epoch      string
	LastOffset uint64
}

func (historyGroup) TableName() string { return "history_groups" }

// Append stores batch in one transaction (the group commit) and returns,
// for each entry in order, its offset and payload, and each group's epoch.
// Entries of one group get consecutive offsets in batch order.
//
// It is every delivered group message's hot path, so it uses database/sql
// directly, and on SQLite does not pass the context on (a context already
// done still fails): given a cancellable one, the SQLite driver starts a
// goroutine per statement to interrupt it. That also drops the deadline
// from the wait for one of the pool's connections; the statements' own
// waits for SQLite's write lock stay bounded by busy_timeout (5 s). On
// SQLite a commit is usually one INSERT (appendSQLite); on PostgreSQL it
// is a transaction that bumps each group's row first (appendBump).
func (s *HistoryStore) Append(ctx context.Context, batch []HistoryAppend) ([]HistoryEntry, map[string]string, error) {
	if s.sql == nil {
		return nil, nil, fmt.Errorf("append history: %w", s.sqlErr)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("append history: %w", err)
	}
	if len(batch) == 0 {
		return nil, map[string]string{}, nil // nothing to store (an INSERT needs a row)
	}
	counts := map[string]uint64{}
	var order []string
	for _, a := range batch {
		if counts[a.Group] == 0 {
			order = append(order, a.Group)
		}
		counts[a.Group]++
	}
	var (
		out    []HistoryEntry
		epochs map[string]string
		err    error
	)
	if s.dialect == SQLite {
		out, epochs, err = s.appendSQLite(context.WithoutCancel(ctx), batch, order)
	} else {
		out, epochs, err = s.appendBump(ctx, batch, order, counts)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("append history: %w", err)
	}
	return out, epochs, nil
}

// appendBump stores batch in one transaction that first moves each group's
// last offset on by its count (UPDATE ... RETURNING, which row-locks the
// group until commit) and then inserts the messages.
func (s *HistoryStore) appendBump(ctx context.Context, batch []HistoryAppend, order []string, counts map[string]uint64) ([]HistoryEntry, map[string]string, error) {
	tx, err := s.sql.BeginTx(ctx, nil)
	if err != nil {
		return nil, nil, err
	}
	// Rolls back on an error or a panic (in an Encode); after Commit it
	// does nothing (sql.ErrTxDone).
	defer tx.Rollback()
	out, epochs, err := s.append(ctx, tx, batch, order, counts)
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return nil, nil, err
	}
	return out, epochs, nil
}

// appendSQLite stores batch on SQLite. When this store knows every
// group's position from its own last commit, the batch is one INSERT with
// the next offsets, committed on its own: migration 7's triggers move
// last_offset on with each row and refuse a row that is not its group's
// next (another process appended meanwhile, or the group's row is gone),
// which fails the whole statement. Otherwise, or after such a refusal, a
// transaction creates missing groups (its first write takes SQLite's write
// lock, so nobody appends in between), reads the positions and inserts.
// One statement instead of BEGIN, an UPDATE per group, the INSERT and
// COMMIT: a one-message commit went from about 205 to 160 µs on one core
// (BenchmarkHistoryAppend), and it runs once per delivered message.
func (s *HistoryStore) appendSQLite(ctx context.Context, batch []HistoryAppend, order []string) ([]HistoryEntry, map[string]string, error) {
	now := time.Now().UTC()
	if pos, ok := s.knownPositions(order); ok {
		out, epochs := assignOffsets(batch, pos)
		_, err := s.sql.ExecContext(ctx, insertSQL(len(batch)), insertArgs(batch, out, now)...)
		if err == nil {
			s.remember(batch, out, epochs)
			return out, epochs, nil
		}
		if !strings.Contains(err.Error(), "history offset out of turn") {
			return nil, nil, fmt.Errorf("store messages: %w", err)
		}
		s.forget(order)
	}
	tx, err := s.sql.BeginTx(ctx, nil)
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback() // as in appendBump
	pos := make(map[string]groupPos, len(order))
	for _, g := range order {
		var p groupPos
		if _, err := tx.ExecContext(ctx, s.q.ensure, g, newEpoch()); err != nil {
			return nil, nil, fmt.Errorf("offsets of %q: %w", g, err)
		}
		if err := tx.QueryRowContext(ctx, s.q.position, g).Scan(&p.epoch, &p.last); err != nil {
			return nil, nil, fmt.Errorf("offsets of %q: %w", g, err)
		}
		pos[g] = p
	}
	out, epochs := assignOffsets(batch, pos)
	if _, err := tx.ExecContext(ctx, insertSQL(len(batch)), insertArgs(batch, out, now)...); err != nil {
		return nil, nil, fmt.Errorf("store messages: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, err
	}
	s.remember(batch, out, epochs)
	return out, epochs, nil
}

// assignOffsets gives batch's entries their groups' next offsets after
// pos, in batch order, and encodes them.
func assignOffsets(batch []HistoryAppend, pos map[string]groupPos) ([]HistoryEntry, map[string]string) {
	next := make(map[string]uint64, len(pos))
	epochs := make(map[string]string, len(pos))
	for g, p := range pos {
		next[g], epochs[g] = p.last+1, p.epoch
	}
	out := make([]HistoryEntry, len(batch))
	for i, a := range batch {
		off := next[a.Group]
		next[a.Group]++
		out[i] = HistoryEntry{Offset: off, Payload: a.Encode(off)}
	}
	return out, epochs
}

// knownPositions returns the positions of groups if this store knows
// every one.
func (s *HistoryStore) knownPositions(groups []string) (map[string]groupPos, bool) {
	s.posMu.Lock()
	defer s.posMu.Unlock()
	pos := make(map[string]groupPos, len(groups))
	for _, g := range groups {
		p, ok := s.pos[g]
		if !ok {
			return nil, false
		}
		pos[g] = p
	}
	return pos, true
}

// remember records each group's position after a commit of entries.
func (s *HistoryStore) remember(batch []HistoryAppend, entries []HistoryEntry, epochs map[string]string) {
	s.posMu.Lock()
	defer s.posMu.Unlock()
	if len(s.pos)+len(epochs) > maxKnownGroups {
		clear(s.pos)
	}
	for i, a := range batch {
		s.pos[a.Group] = groupPos{epoch: epochs[a.Group], last: entries[i].Offset}
	}
}

// forget drops what this store knows of groups.
func (s *HistoryStore) forget(groups []string) {
	s.posMu.Lock()
	defer s.posMu.Unlock()
	for _, g := range groups {
		delete(s.pos, g)
	}
}

// append is Append's transaction: order lists batch's groups, counts their
// messages.
func (s *HistoryStore) append(ctx context.Context, tx *sql.Tx, batch []HistoryAppend, order []string, counts map[string]uint64) ([]HistoryEntry, map[string]string, error) {
	next := make(map[string]uint64, len(order))
	epochs := make(map[string]string, len(order))
	for _, g := range order {
		// The row lock taken here serializes appenders of one group on
		// every process until commit. The group's row is created only the
		// first time (no insert on the hot path).
		var epoch string
		var last uint64
		err := tx.QueryRowContext(ctx, s.q.bump, counts[g], g).Scan(&epoch, &last)
		if errors.Is(err, sql.ErrNoRows) {
			if _, err = tx.ExecContext(ctx, s.q.ensure, g, newEpoch()); err == nil {
				err = tx.QueryRowContext(ctx, s.q.bump, counts[g], g).Scan(&epoch, &last)
			}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("offsets of %q: %w", g, err)
		}
		next[g] = last - counts[g] + 1
		epochs[g] = epoch
	}
	out := make([]HistoryEntry, len(batch))
	for i, a := range batch {
		off := next[a.Group]
		next[a.Group]++
		out[i] = HistoryEntry{Offset: off, Payload: a.Encode(off)}
	}
	if err := s.insertMessages(ctx, tx, batch, out, time.Now().UTC()); err != nil {
		return nil, nil, err
	}
	return out, epochs, nil
}

// insertChunks are the row counts of the INSERT statements appendBump
// uses: a batch is split into these sizes, so a handful of statement texts
// serve every batch size and PostgreSQL's statement cache keeps them. On
// SQLite, whose driver parses every statement anyway, a batch is one
// INSERT (at most 4 × 512 parameters, far below SQLite's limit).
var insertChunks = []int{64, 16, 4, 1}

// insertMessages stores entries (batch's, in order) with multi-row INSERTs.
func (s *HistoryStore) insertMessages(ctx context.Context, tx *sql.Tx, batch []HistoryAppend, entries []HistoryEntry, now time.Time) error {
	for i := 0; i < len(batch); {
		n := 1
		for _, c := range insertChunks {
			if len(batch)-i >= c {
				n = c
				break
			}
		}
		if _, err := tx.ExecContext(ctx, s.q.insert[n], insertArgs(batch[i:i+n], entries[i:i+n], now)...); err != nil {
			return fmt.Errorf("store messages: %w", err)
		}
		i += n
	}
	return nil
}

// insertArgs are the arguments of insertSQL(len(batch)) for entries.
func insertArgs(batch []HistoryAppend, entries []HistoryEntry, now time.Time) []any {
	args := make([]any, 0, 4*len(batch))
	for i := range batch {
		args = append(args, batch[i].Group, entries[i].Offset, string(entries[i].Payload), now)
	}
	return args
}

// insertSQL is the INSERT of n rows.
func insertSQL(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO history_messages (group_name, "offset", payload, created_at) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?)")
	}
	return b.String()
}

// ensureGroupSQL creates group $1's row with epoch $2 unless it exists.
const ensureGroupSQL = `INSERT INTO history_groups (name, epoch, last_offset) VALUES (?, ?, 0) ON CONFLICT (name) DO NOTHING`

// ensureGroup creates group's row with a fresh random epoch if missing.
func ensureGroup(tx *gorm.DB, group string) error {
	return tx.Exec(ensureGroupSQL, group, newEpoch()).Error
}

func newEpoch() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Position returns group's epoch and last offset, creating the group (and
// its epoch) on first use, so the epoch a member is welcomed with is the
// one its later messages carry. Once the group exists it is a plain read:
// on SQLite it then takes no write lock, so joins, history reads and
// catch-ups do not queue behind (or hold up) commits.
func (s *HistoryStore) Position(ctx context.Context, group string) (epoch string, offset uint64, err error) {
	var row historyGroup
	err = s.db.WithContext(ctx).Where("name = ?", group).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			if err := ensureGroup(tx, group); err != nil {
				return err
			}
			return tx.Where("name = ?", group).Take(&row).Error
		})
	}
	if err != nil {
		return "", 0, fmt.Errorf("history position of %q: %w", group, err)
	}
	return row.Epoch, row.LastOffset, nil
}

// Range returns group's stored messages with after < offset <= upto, in
// offset order, at most limit of them (the oldest first).
func (s *HistoryStore) Range(ctx context.Context, group string, after, upto uint64, limit int) ([]HistoryEntry, error) {
	var rows []struct {
		Offset  uint64
		Payload string
	}
	err := s.db.WithContext(ctx).Table("history_messages").Select(`"offset", payload`).
		Where(`group_name = ? AND "offset" > ? AND "offset" <= ?`, group, after, upto).
		Order(`"offset"`).Limit(limit).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("read history of %q: %w", group, err)
	}
	out := make([]HistoryEntry, len(rows))
	for i, r := range rows {
		out[i] = HistoryEntry{Offset: r.Offset, Payload: []byte(r.Payload)}
	}
	return out, nil
}

// RangeShared is Range(group, after, upto, upto-after) for a reader that
// knows group's current epoch, typically a reconnecting member: the
// messages read are kept per group and epoch, so the members of a
// reconnect storm asking for the same missed messages share one read, and
// a later reader asking for newer ones reads only those. Stored messages
// do not change within an epoch, so what is kept stays exact. Trim drops
// what is kept; a message trimmed meanwhile by another process may still
// be given (never a different one).
func (s *HistoryStore) RangeShared(ctx context.Context, group, epoch string, after, upto uint64) ([]HistoryEntry, error) {
	if upto <= after {
		return nil, nil
	}
	got, from := s.recent.get(group, epoch, after, upto)
	if from == upto {
		return got, nil
	}
	more, err := s.Range(ctx, group, from, upto, int(upto-from))
	if err != nil {
		return nil, err
	}
	if uint64(len(more)) != upto-from {
		return append(got, more...), nil // some trimmed: the caller sees the gap
	}
	s.recent.put(group, epoch, from, more)
	return append(got, more...), nil
}

// Latest returns group's newest limit messages at or below offset upto,
// oldest first. Bounded by a position read just before, a page of history
// and the offset answered beside it agree: a reader that goes on with
// since=upto misses nothing and gets nothing twice.
func (s *HistoryStore) Latest(ctx context.Context, group string, upto uint64, limit int) ([]HistoryEntry, error) {
	var rows []struct {
		Offset  uint64
		Payload string
	}
	err := s.db.WithContext(ctx).Table("history_messages").Select(`"offset", payload`).
		Where(`group_name = ? AND "offset" <= ?`, group, upto).Order(`"offset" DESC`).Limit(limit).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("read history of %q: %w", group, err)
	}
	out := make([]HistoryEntry, len(rows))
	for i, r := range rows {
		out[len(rows)-1-i] = HistoryEntry{Offset: r.Offset, Payload: []byte(r.Payload)}
	}
	return out, nil
}

// Trim deletes, in every group, messages beyond the newest keep and those
// older than maxAge (0: no age limit). Offsets are never reused: the
// group's last_offset stays. It deletes at most trimChunk rows per
// statement, each statement its own transaction, so on SQLite (one
// writer at a time) the commits that deliver messages wait for one chunk
// at most, never for a whole backlog (HISTORY_SIZE lowered, a TTL
// expiring millions of rows).
func (s *HistoryStore) Trim(ctx context.Context, keep int, maxAge time.Duration) error {
	if err := s.trim(ctx, keep, maxAge); err != nil {
		return fmt.Errorf("trim history: %w", err)
	}
	return nil
}

// trimChunk bounds the rows one trimming statement deletes.
const trimChunk = 1000

func (s *HistoryStore) trim(ctx context.Context, keep int, maxAge time.Duration) error {
	const chunk = trimChunk
	defer func() {
		// What RangeShared kept may include messages just deleted.
		s.recent.mu.Lock()
		clear(s.recent.groups)
		s.recent.mu.Unlock()
	}()
	db := s.db.WithContext(ctx)
	// The groups holding more than keep. Each one's oldest offset is a
	// seek to the start of its run of the primary key (group_name,
	// offset), not a scan of its messages.
	var over []struct {
		Name        string
		LastOffset  uint64
		FirstOffset uint64
	}
	err := db.Raw(`SELECT name, last_offset, first_offset FROM (
		SELECT g.name, g.last_offset,
			(SELECT MIN(m."offset") FROM history_messages m WHERE m.group_name = g.name) AS first_offset
		FROM history_groups g WHERE g.last_offset > ?) t
		WHERE first_offset IS NOT NULL AND first_offset + ? <= last_offset`, keep, keep).Scan(&over).Error
	if err != nil {
		return err
	}
	for _, g := range over {
		bound := g.LastOffset - uint64(keep) // delete offsets <= bound
		for lo := g.FirstOffset; lo <= bound; lo += uint64(chunk) {
			hi := min(bound, lo+uint64(chunk)-1)
			if err := db.Exec(`DELETE FROM history_messages WHERE group_name = ? AND "offset" <= ?`, g.Name, hi).Error; err != nil {
				return err
			}
		}
	}
	if maxAge <= 0 {
		return nil
	}
	cutoff := time.Now().UTC().Add(-maxAge)
	for {
		res := db.Exec(`DELETE FROM history_messages WHERE (group_name, "offset") IN (
			SELECT group_name, "offset" FROM history_messages WHERE created_at < ? LIMIT ?)`, cutoff, chunk)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected < int64(chunk) {
			return nil
		}
	}
}

// recentWindows keeps, for up to recentGroups groups, the newest messages
// RangeShared read (at most recentKeep each).
type recentWindows struct {
	mu     sync.Mutex
	groups map[string]*recentWindow
}

// recentWindow is a run of one group's stored messages: entries[i] has
// offset first+i, all of one epoch.
type recentWindow struct {
	epoch   string
	first   uint64
	entries []HistoryEntry
	used    time.Time
}

const (
	recentGroups = 64
	recentKeep   = 1024
	recentIdle   = time.Minute // a window unused this long is dropped
)

// get returns the kept messages after < offset <= upto from the start of
// that range, and the offset up to which it returned them (after when it
// has none of them).
func (r *recentWindows) get(group, epoch string, after, upto uint64) ([]HistoryEntry, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.groups[group]
	if w == nil || w.epoch != epoch || after+1 < w.first || after >= w.first+uint64(len(w.entries)) {
		return nil, after
	}
	w.used = time.Now()
	last := min(upto, w.first+uint64(len(w.entries))-1)
	// A copy: callers append to it.
	return append([]HistoryEntry(nil), w.entries[after+1-w.first:last+1-w.first]...), last
}

// put records entries, the messages right after offset after (no gap).
func (r *recentWindows) put(group, epoch string, after uint64, entries []HistoryEntry) {
	if len(entries) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	w := r.groups[group]
	switch {
	case w != nil && w.epoch == epoch && after+1 >= w.first && after < w.first+uint64(len(w.entries))+1:
		// Overlaps or continues the window: keep what it has, add the rest.
		end := w.first + uint64(len(w.entries)) // offset after the last kept
		for _, e := range entries {
			if e.Offset == end {
				w.entries = append(w.entries, e)
				end++
			}
		}
	case w != nil && w.epoch == epoch && after+1 < w.first && after+uint64(len(entries))+1 >= w.first:
		// Starts before the window and reaches it: the window's newer
		// messages follow these.
		skip := after + uint64(len(entries)) + 1 - w.first
		w.entries = append(append([]HistoryEntry(nil), entries...), w.entries[min(skip, uint64(len(w.entries))):]...)
		w.first = after + 1
	default:
		if w == nil {
			r.evict(now)
		}
		w = &recentWindow{epoch: epoch, first: after + 1, entries: append([]HistoryEntry(nil), entries...)}
		r.groups[group] = w
	}
	if drop := len(w.entries) - recentKeep; drop > 0 {
		w.entries = append([]HistoryEntry(nil), w.entries[drop:]...)
		w.first += uint64(drop)
	}
	w.used = now
}

// evict makes room for one more group (r.mu held): windows idle for
// recentIdle go, and at most recentGroups-1 stay (the least recently used
// go first).
func (r *recentWindows) evict(now time.Time) {
	for g, w := range r.groups {
		if now.Sub(w.used) > recentIdle {
			delete(r.groups, g)
		}
	}
	for len(r.groups) >= recentGroups {
		var oldest string
		for g, w := range r.groups {
			if oldest == "" || w.used.Before(r.groups[oldest].used) {
				oldest = g
			}
		}
		delete(r.groups, oldest)
	}
}
