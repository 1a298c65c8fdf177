// Package testenv is switchboard's test support: a fresh database per test
// on each dialect, Redis and a key prefix per test, a redis-server of a
// test's own, a log buffer, free ports and HTTP requests to a running
// server. Only tests import it.
//
// Every helper takes the testing.TB of the test it serves, calls
// tb.Helper(), and registers its teardown with tb.Cleanup, so it belongs to
// exactly that test. A subtest passes its own t.
//
// It is the one place that reads the variables scripts/test.sh exports:
// TEST_DATABASE_URL, TEST_REDIS_URL and TEST_REDIS_SERVER. Unset (a plain
// `go test` on a laptop), the PostgreSQL and Redis cases skip and name the
// variable that turns them on.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for schemas
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"switchboard/migrations"
	"switchboard/models"
)

// The variables scripts/test.sh sets.
const (
	envDatabase    = "TEST_DATABASE_URL" // postgres://… of a server where tests may create schemas
	envRedis       = "TEST_REDIS_URL"    // redis://… shared by the Redis tests
	envRedisServer = "TEST_REDIS_SERVER" // path of redis-server, for tests that run their own
)

// Dialects returns the databases a DB-backed test runs on: SQLite always,
// PostgreSQL when TEST_DATABASE_URL is set. Otherwise it logs that the
// PostgreSQL cases are skipped and which variable turns them on.
func Dialects(tb testing.TB) []models.Dialect {
	tb.Helper()
	if os.Getenv(envDatabase) == "" {
		tb.Log(envDatabase + " not set: PostgreSQL cases skipped (scripts/test.sh sets it)")
		return []models.Dialect{models.SQLite}
	}
	return []models.Dialect{models.SQLite, models.Postgres}
}

// EmptyTarget returns an empty database of dialect for this test alone: a
// SQLite file in tb.TempDir(), or a fresh schema on the TEST_DATABASE_URL
// server (see PostgresURL), dropped at cleanup.
func EmptyTarget(tb testing.TB, dialect models.Dialect) models.Target {
	tb.Helper()
	switch dialect {
	case models.SQLite:
		return models.Target{Dialect: models.SQLite, DSN: filepath.Join(tb.TempDir(), "test.db")}
	case models.Postgres:
		return models.Target{Dialect: models.Postgres, DSN: PostgresURL(tb)}
	}
	tb.Fatalf("testenv: unknown dialect %q", dialect)
	return models.Target{}
}

// DB is an open test database.
type DB struct {
	Target models.Target
	Gorm   *gorm.DB
	SQL    *sql.DB // Gorm's pool; closing it makes every query fail
}

// Open opens target with the server's own models.Open; the pool is closed
// at cleanup.
func Open(tb testing.TB, target models.Target) *DB {
	tb.Helper()
	gdb, err := models.Open(target)
	if err != nil {
		tb.Fatal(err)
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sqlDB.Close() })
	return &DB{Target: target, Gorm: gdb, SQL: sqlDB}
}

// Database returns a fresh database of dialect with every migration
// applied (EmptyTarget, Open, migrations.Up).
func Database(tb testing.TB, dialect models.Dialect) *DB {
	tb.Helper()
	db := Open(tb, EmptyTarget(tb, dialect))
	if _, err := migrations.Up(context.Background(), db.SQL, dialect); err != nil {
		tb.Fatal(err)
	}
	return db
}

// PostgresURL creates a schema of this test's own on the TEST_DATABASE_URL
// server (see SchemaURL) and returns its URL. Without TEST_DATABASE_URL the
// test skips, naming it.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(envDatabase)
	if base == "" {
		tb.Skip(envDatabase + " not set: PostgreSQL test skipped (scripts/test.sh sets it)")
	}
	return SchemaURL(tb, base)
}

// SchemaURL creates a fresh schema on the PostgreSQL server at base and
// returns base with search_path set to it, so everything that connects
// with the URL (this process or a switchboard process) works in the
// schema. The schema is dropped at cleanup.
func SchemaURL(tb testing.TB, base string) string {
	tb.Helper()
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("parse PostgreSQL URL: %v", err)
	}
	schema := "test_" + RandomHex(tb, 8)
	PostgresExec(tb, base, "CREATE SCHEMA "+schema)
	tb.Cleanup(func() { PostgresExec(tb, base, "DROP SCHEMA "+schema+" CASCADE") })
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// PostgresExec runs one statement on a connection of its own to the
// PostgreSQL server at dsn, within 30 s, failing the test on an error.
func PostgresExec(tb testing.TB, dsn, stmt string) {
	tb.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		tb.Fatalf("%s: %v", stmt, err)
	}
}

// DatabaseURL returns DATABASE_URL, as the switchboard command reads it,
// of a fresh database of dialect: "sqlite:" and a file in tb.TempDir(), or
// PostgresURL.
func DatabaseURL(tb testing.TB, dialect models.Dialect) string {
	tb.Helper()
	t := EmptyTarget(tb, dialect)
	if t.Dialect == models.SQLite {
		return "sqlite:" + t.DSN
	}
	return t.DSN
}

// RedisURL returns TEST_REDIS_URL, or skips the test naming it. Tests that
// share the server keep apart with KeyPrefix.
func RedisURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv(envRedis)
	if u == "" {
		tb.Skip(envRedis + " not set: Redis test skipped (scripts/test.sh sets it)")
	}
	return u
}

var notKeyChar = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// KeyPrefix returns a Redis key and channel prefix of this test's own (for
// REDIS_PREFIX), made of the test's name and a random part. When
// TEST_REDIS_URL is set, the keys left under it there are deleted at
// cleanup. It does not need Redis: a test without it may still pass the
// prefix on.
func KeyPrefix(tb testing.TB) string {
	tb.Helper()
	name := notKeyChar.ReplaceAllString(tb.Name(), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	prefix := "test:" + name + ":" + RandomHex(tb, 4) + ":"
	if u := os.Getenv(envRedis); u != "" {
		tb.Cleanup(func() { deleteKeys(tb, u, prefix) })
	}
	return prefix
}

// deleteKeys removes every key under prefix (which has no glob characters).
func deleteKeys(tb testing.TB, redisURL, prefix string) {
	tb.Helper()
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		tb.Errorf("%s: %v", envRedis, err)
		return
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 100).Iterator()
	for iter.Next(ctx) {
		c.Del(ctx, iter.Val())
	}
	if err := iter.Err(); err != nil {
		tb.Errorf("delete Redis keys %s*: %v", prefix, err)
	}
}

// Buffer is an io.Writer safe for concurrent use (a server's log written
// by its goroutines, a process's output), read with String.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// FreeAddr returns "127.0.0.1:PORT" for a TCP port that was free when it
// was asked for, for a server that must be told its address up front.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// FreePort is the port of FreeAddr.
func FreePort(tb testing.TB) int {
	tb.Helper()
	addr, err := net.ResolveTCPAddr("tcp", FreeAddr(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return addr.Port
}

// RandomHex returns n random bytes in hex: unique names, keys, schemas.
func RandomHex(tb testing.TB, n int) string {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}
