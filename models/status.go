package models

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"time"

	"gorm.io/gorm"
)

// Status is a live status value. Version starts at 1 and only grows, in
// the database, so it survives restarts and orders writes from any process.
type Status struct {
	Key       string
	Value     json.RawMessage
	Version   uint64
	UpdatedAt time.Time
}

type statusRow struct {
	Key       string `gorm:"primaryKey"`
	Value     string
	Version   uint64
	UpdatedAt time.Time
}

func (statusRow) TableName() string { return "status" }

// StatusStore reads and writes status values. Concurrent Puts share
// their writes (group commit): while one batch is being written, the Puts
// that arrive queue up, and the next batch writes them all with one
// statement per key, in one transaction. Each Put returns only after the
// transaction that holds it has committed.
type StatusStore struct {
	db *gorm.DB

	mu      sync.Mutex
	pending []*statusPut
	running bool // a committer goroutine is draining pending
}

// statusPut is one Put waiting for its batch.
type statusPut struct {
	key   string
	value json.RawMessage
	then  func(Status)
	out   Status
	err   error
	done  chan struct{}
}

// maxStatusBatch bounds the Puts one transaction writes.
const maxStatusBatch = 256

// statusCommitTimeout bounds one batch's transaction: the batch is
// shared, so no single request's context may cancel it.
const statusCommitTimeout = 30 * time.Second

// NewStatusStore returns a store over db.
func NewStatusStore(db *gorm.DB) *StatusStore { return &StatusStore{db: db} }

// Put stores value under key and returns it with its new version, once
// it is committed. Versions come from the database: one upsert per key
// and batch adds the batch's number of Puts to the stored version, so
// concurrent writers (on any process) get distinct, increasing versions,
// in the order their Puts arrived here. The row keeps the batch's last
// value: the earlier ones are superseded in the same commit, exactly as
// if they had been written one by one. then, if not nil, is called with
// the stored value after the commit and before Put returns, on the
// committing goroutine, in version order across every Put of this store:
// what it publishes goes out in order, so subscribers (which drop a
// version they have passed) skip none of this process's versions. If ctx ends first, Put returns its
// error and the value may still be stored (and then still called).
func (s *StatusStore) Put(ctx context.Context, key string, value json.RawMessage, then func(Status)) (Status, error) {
	p := &statusPut{key: key, value: value, then: then, done: make(chan struct{})}
	s.mu.Lock()
	s.pending = append(s.pending, p)
	if !s.running {
		s.running = true
		go s.commitLoop()
	}
	s.mu.Unlock()
	select {
	case <-p.done:
		return p.out, p.err
	case <-ctx.Done():
		return Status{}, ctx.Err()
	}
}

// commitLoop writes batches until nothing is pending, then ends; the next
// Put starts another.
func (s *StatusStore) commitLoop() {
	for {
		s.gather()
		s.mu.Lock()
		n := min(len(s.pending), maxStatusBatch)
		if n == 0 {
			s.running = false
			s.pending = nil
			s.mu.Unlock()
			return
		}
		batch := s.pending[:n:n]
		s.pending = s.pending[n:]
		s.mu.Unlock()
		s.commit(batch)
		for _, p := range batch {
			if p.err == nil && p.then != nil {
				p.then(p.out) // arrival order: each key's versions ascending
			}
			close(p.done)
		}
	}
}

// gather yields the processor while Puts keep arriving (at most
// gatherRounds times), so that request goroutines that are ready to run
// can join the batch: with one processor the statement runs without
// blocking, and nothing else would be queued during it.
func (s *StatusStore) gather() {
	n := -1
	for range gatherRounds {
		s.mu.Lock()
		m := len(s.pending)
		s.mu.Unlock()
		if m == n || m >= maxStatusBatch {
			return
		}
		n = m
		runtime.Gosched()
	}
}

// gatherRounds bounds how often gather yields for one batch.
const gatherRounds = 8

// statusUpsert adds n (the batch's Puts of one key) to the key's version
// and keeps the last value.
const statusUpsert = `
	INSERT INTO status (key, value, version, updated_at) VALUES (?, ?, ?, ?)
	ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = status.version + ?, updated_at = excluded.updated_at
	RETURNING version, updated_at`

// commit writes batch (one transaction when it holds several keys) and
// sets every Put's result.
func (s *StatusStore) commit(batch []*statusPut) {
	ctx, cancel := context.WithTimeout(context.Background(), statusCommitTimeout)
	defer cancel()
	var keys []string
	byKey := make(map[string][]*statusPut, 1)
	for _, p := range batch {
		if _, ok := byKey[p.key]; !ok {
			keys = append(keys, p.key)
		}
		byKey[p.key] = append(byKey[p.key], p)
	}
	now := time.Now().UTC()
	write := func(db *gorm.DB) error {
		for _, key := range keys {
			puts := byKey[key]
			n := len(puts)
			var row struct {
				Version   uint64
				UpdatedAt time.Time
			}
			err := db.Raw(statusUpsert, key, string(puts[n-1].value), n, now, n).Scan(&row).Error
			if err != nil {
				return fmt.Errorf("put status %q: %w", key, err)
			}
			for i, p := range puts {
				p.out = Status{Key: key, Value: p.value, Version: row.Version - uint64(n-1-i), UpdatedAt: row.UpdatedAt}
			}
		}
		return nil
	}
	db := s.db.WithContext(ctx)
	var err error
	if len(keys) == 1 {
		err = write(db) // one statement commits by itself
	} else {
		err = db.Transaction(write)
	}
	if err != nil {
		for _, p := range batch {
			p.out, p.err = Status{}, err
		}
	}
}

// Get returns the value of key; a key never set is version 0, value null.
func (s *StatusStore) Get(ctx context.Context, key string) (Status, error) {
	var rows []statusRow
	err := s.db.WithContext(ctx).Where("key = ?", key).Limit(1).Find(&rows).Error
	if err != nil {
		return Status{}, fmt.Errorf("get status %q: %w", key, err)
	}
	if len(rows) == 0 {
		return Status{Key: key, Value: json.RawMessage("null")}, nil
	}
	return rows[0].status(), nil
}

func (r statusRow) status() Status {
	return Status{Key: r.Key, Value: json.RawMessage(r.Value), Version: r.Version, UpdatedAt: r.UpdatedAt}
}
