package models

import (
	"fmt"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names a supported database.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Target says which database to open: a PostgreSQL URL, or a SQLite file.
type Target struct {
	Dialect Dialect
	DSN     string // postgres URL or SQLite file path
}

// SecretFile is where the embedded mode keeps a generated JWT secret:
// beside the SQLite file (JWT_SECRET_FILE's default). It is empty for
// PostgreSQL, where every process must be given the same secret.
func (t Target) SecretFile() string {
	if t.Dialect != SQLite {
		return ""
	}
	return t.DSN + ".jwt-secret"
}

// ParseDatabaseURL turns DATABASE_URL into a Target. Empty means the
// embedded SQLite file defaultPath; "sqlite:PATH" or "sqlite://PATH" names
// another SQLite file.
func ParseDatabaseURL(raw, defaultPath string) (Target, error) {
	switch {
	case raw == "":
		return Target{Dialect: SQLite, DSN: defaultPath}, nil
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		return Target{Dialect: Postgres, DSN: raw}, nil
	case strings.HasPrefix(raw, "sqlite://"):
		return Target{Dialect: SQLite, DSN: strings.TrimPrefix(raw, "sqlite://")}, nil
	case strings.HasPrefix(raw, "sqlite:"):
		return Target{Dialect: SQLite, DSN: strings.TrimPrefix(raw, "sqlite:")}, nil
	}
	return Target{}, fmt.Errorf("DATABASE_URL: unsupported scheme (want postgres:// or sqlite:)")
}

// OpenOption changes how Open connects.
type OpenOption func(*openOptions)

type openOptions struct{ manualCheckpoint bool }

// ManualCheckpoint turns SQLite's WAL auto-checkpoint off on every
// connection (wal_autocheckpoint=0): otherwise the commit that crosses
// 1,000 WAL pages copies them into the database file and fsyncs it before
// it returns, and whatever waits for that commit (a group's messages)
// waits for the disk too. Whoever opens with it runs a Checkpointer, or
// the WAL grows until the last connection closes. No effect on PostgreSQL.
func ManualCheckpoint() OpenOption { return func(o *openOptions) { o.manualCheckpoint = true } }

// Open connects to the target. TranslateError lets models map duplicate keys
// to ECONFLICT on both dialects.
func Open(t Target, opts ...OpenOption) (*gorm.DB, error) {
	var o openOptions
	for _, opt := range opts {
		opt(&o)
	}
	cfg := &gorm.Config{
		TranslateError:         true,
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		PrepareStmt:            true,
	}
	var (
		db  *gorm.DB
		err error
	)
	switch t.Dialect {
	case Postgres:
		db, err = gorm.Open(postgres.Open(t.DSN), cfg)
	case SQLite:
		// WAL lets readers run while one writer writes; busy_timeout makes
		// concurrent writers wait instead of failing with SQLITE_BUSY.
		dsn := "file:" + t.DSN + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
		if o.manualCheckpoint {
			dsn += "&_pragma=wal_autocheckpoint(0)"
		}
		db, err = gorm.Open(sqlite.Open(dsn), cfg)
	default:
		return nil, fmt.Errorf("open database: unknown dialect %q", t.Dialect)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", t.Dialect, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", t.Dialect, err)
	}
	if t.Dialect == SQLite {
		sqlDB.SetMaxOpenConns(8)
	} else {
		sqlDB.SetMaxOpenConns(32)
		sqlDB.SetMaxIdleConns(32)
	}
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}
