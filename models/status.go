package models

import (
	"context"
	"encoding/json"
	"fmt"
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

// StatusStore reads and writes status values.
type StatusStore struct{ db *gorm.DB }

// NewStatusStore returns a store over db.
func NewStatusStore(db *gorm.DB) *StatusStore { return &StatusStore{db: db} }

// Put stores value under key and returns it with its new version. The
// upsert increments the version in one statement, so concurrent writers
// (on any process) get distinct, increasing versions.
func (s *StatusStore) Put(ctx context.Context, key string, value json.RawMessage) (Status, error) {
	now := time.Now().UTC()
	var row statusRow
	err := s.db.WithContext(ctx).Raw(`
		INSERT INTO status (key, value, version, updated_at) VALUES (?, ?, 1, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = status.version + 1, updated_at = excluded.updated_at
		RETURNING key, value, version, updated_at`, key, string(value), now).Scan(&row).Error
	if err != nil {
		return Status{}, fmt.Errorf("put status %q: %w", key, err)
	}
	return row.status(), nil
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
