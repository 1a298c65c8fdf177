// Package migrations holds switchboard's versioned SQL schema for each
// database, embedded in the binary and applied with goose.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"switchboard/models"
)

//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// Provider returns a goose provider for dialect ("postgres" or "sqlite").
func Provider(db *sql.DB, dialect models.Dialect) (*goose.Provider, error) {
	var (
		d    goose.Dialect
		opts []goose.ProviderOption
	)
	switch dialect {
	case models.Postgres:
		d = goose.DialectPostgres
		// Several replicas start (and migrate) at once: an advisory lock
		// makes them take turns.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	case models.SQLite:
		d = goose.DialectSQLite3
	default:
		return nil, fmt.Errorf("migrations: unknown dialect %q", dialect)
	}
	sub, err := fs.Sub(files, string(dialect))
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(d, db, sub, opts...)
}

// Up applies every pending migration and returns how many ran.
func Up(ctx context.Context, db *sql.DB, dialect models.Dialect) (int, error) {
	p, err := Provider(db, dialect)
	if err != nil {
		return 0, err
	}
	res, err := p.Up(ctx)
	if err != nil {
		return len(res), fmt.Errorf("migrate %s: %w", dialect, err)
	}
	return len(res), nil
}
