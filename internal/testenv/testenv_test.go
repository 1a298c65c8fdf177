package testenv_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"switchboard/internal/testenv"
	"switchboard/models"
)

func TestDialects(t *testing.T) {
	got := testenv.Dialects(t)
	want := []models.Dialect{models.SQLite}
	if os.Getenv("TEST_DATABASE_URL") != "" {
		want = append(want, models.Postgres)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Dialects = %v, want %v", got, want)
	}
}

// TestDatabase: each call is a migrated database of its own.
func TestDatabase(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			a, b := testenv.Database(t, dialect), testenv.Database(t, dialect)
			if a.Target.Dialect != dialect {
				t.Errorf("Target.Dialect = %q, want %q", a.Target.Dialect, dialect)
			}
			users := models.NewUserStore(a.Gorm, models.PasswordHasher{Cost: 4})
			if _, err := users.Create(t.Context(), models.NewUser{Username: "ann", Password: "password123"}); err != nil {
				t.Fatalf("Create on a fresh database: %v", err)
			}
			var n int
			if err := b.SQL.QueryRow("SELECT count(*) FROM users").Scan(&n); err != nil || n != 0 {
				t.Errorf("users in the second database = %d, %v; want 0, nil", n, err)
			}
		})
	}
}

// TestPostgresSchemaDroppedAtCleanup: the schema exists during the test
// and is gone after it.
func TestPostgresSchemaDroppedAtCleanup(t *testing.T) {
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		t.Skip("TEST_DATABASE_URL not set: PostgreSQL test skipped (scripts/test.sh sets it)")
	}
	var schema string
	t.Run("inner", func(t *testing.T) {
		u, err := url.Parse(testenv.PostgresURL(t))
		if err != nil {
			t.Fatal(err)
		}
		schema = u.Query().Get("search_path")
		if !schemaExists(t, base, schema) {
			t.Fatalf("schema %s does not exist during the test", schema)
		}
	})
	if schemaExists(t, base, schema) {
		t.Errorf("schema %s still exists after its test", schema)
	}
}

func schemaExists(t *testing.T, dsn, schema string) bool {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1`, schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func TestDatabaseURL(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		u := testenv.DatabaseURL(t, dialect)
		target, err := models.ParseDatabaseURL(u, "")
		if err != nil || target.Dialect != dialect {
			t.Errorf("DatabaseURL(%s) = %q, which parses as %v, %v", dialect, u, target, err)
		}
	}
}

// TestKeyPrefix: prefixes differ, and keys left under one are deleted
// when its test ends.
func TestKeyPrefix(t *testing.T) {
	a, b := testenv.KeyPrefix(t), testenv.KeyPrefix(t)
	if a == b || strings.ContainsAny(a, "*?[]\\ ") || !strings.HasSuffix(a, ":") {
		t.Errorf("KeyPrefix = %q then %q, want two different prefixes ending in : without glob characters", a, b)
	}
	var key string
	t.Run("inner", func(t *testing.T) {
		c := redisClient(t, testenv.RedisURL(t))
		key = testenv.KeyPrefix(t) + "presence"
		if err := c.Set(t.Context(), key, "x", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
	})
	if key == "" {
		return // skipped without Redis
	}
	c := redisClient(t, testenv.RedisURL(t))
	if n, err := c.Exists(t.Context(), key).Result(); err != nil || n != 0 {
		t.Errorf("EXISTS %s after its test = %d, %v; want 0", key, n, err)
	}
}

func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRedisServer: a server of the test's own stops (connections fail)
// and starts again on the same address.
func TestRedisServer(t *testing.T) {
	r := testenv.StartRedisServer(t)
	c := redisClient(t, r.URL)
	ping := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return c.Ping(ctx).Err()
	}
	if err := ping(); err != nil {
		t.Fatalf("PING after start: %v", err)
	}
	r.Stop()
	u, err := url.Parse(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	if conn, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
		conn.Close()
		t.Fatalf("%s accepts connections after Stop", u.Host)
	}
	r.Start(t)
	if err := ping(); err != nil {
		t.Fatalf("PING after Start again: %v", err)
	}
}

func TestBufferConcurrentWrites(t *testing.T) {
	var b testenv.Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				fmt.Fprint(&b, "x")
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if n := len(b.String()); n != 800 {
		t.Errorf("len after 800 concurrent writes = %d, want 800", n)
	}
}

func TestFreeAddrAndPort(t *testing.T) {
	addr := testenv.FreeAddr(t)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("FreeAddr = %q, want 127.0.0.1:PORT", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on FreeAddr %s: %v", addr, err)
	}
	ln.Close()
	if p := testenv.FreePort(t); p <= 0 || p > 65535 {
		t.Errorf("FreePort = %d", p)
	}
}

// TestSend: each kind of body is sent as documented, and the answer is
// read whole.
func TestSend(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen", fmt.Sprintf("%s|%s|%d|%v", r.Header.Get("Content-Type"), r.Header.Get("Authorization"), r.ContentLength, r.TransferEncoding))
		w.WriteHeader(http.StatusTeapot)
		w.Write(b)
	}))
	defer srv.Close()
	tests := []struct {
		name     string
		header   http.Header
		body     any
		wantSeen string
		wantBody string
	}{
		{"none", nil, nil, "||0|[]", ""},
		{"nil bytes", testenv.Headers("Authorization", "JWT x"), []byte(nil), "|JWT x|0|[]", ""},
		{"bytes", testenv.Headers("Content-Type", "text/plain", "Authorization", ""), []byte("hi"), "text/plain||2|[]", "hi"},
		{"string", nil, `{"a":1}`, "||7|[]", `{"a":1}`},
		{"JSON", nil, map[string]int{"a": 1}, "application/json||7|[]", `{"a":1}`},
		{"JSON with its own type", testenv.Headers("Content-Type", "application/vnd+json"), []int{1}, "application/vnd+json||3|[]", "[1]"},
		{"reader", nil, io.MultiReader(strings.NewReader("ab"), strings.NewReader("c")), "||-1|[chunked]", "abc"},
	}
	for _, tt := range tests {
		r, err := testenv.Send(http.MethodPost, srv.URL+"/x", tt.header, tt.body)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if r.Status != http.StatusTeapot || r.Header.Get("X-Seen") != tt.wantSeen || string(r.Body) != tt.wantBody || r.Request.URL.Path != "/x" {
			t.Errorf("%s: Send = %d, seen %q, body %q; want 418, %q, %q", tt.name, r.Status, r.Header.Get("X-Seen"), r.Body, tt.wantSeen, tt.wantBody)
		}
	}
	if _, err := testenv.Send(http.MethodGet, "http://"+testenv.FreeAddr(t)+"/", nil, nil); err == nil {
		t.Error("Send to a closed port: no error")
	}
}

func TestWaitHealthy(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	if err := testenv.WaitHealthy(srv.URL, 5*time.Second, nil); err != nil || calls.Load() != 3 {
		t.Errorf("WaitHealthy = %v after %d calls, want nil after 3", err, calls.Load())
	}
	down := "http://" + testenv.FreeAddr(t) + "/healthz"
	exited := make(chan error, 1)
	exited <- errors.New("exit status 1")
	if err := testenv.WaitHealthy(down, 5*time.Second, exited); !errors.Is(err, testenv.ErrExited) || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("WaitHealthy with an exited server = %v, want ErrExited naming the exit", err)
	}
	start := time.Now()
	if err := testenv.WaitHealthy(down, 200*time.Millisecond, nil); err == nil || time.Since(start) > 3*time.Second {
		t.Errorf("WaitHealthy on a closed port = %v after %s, want a timeout error after 200ms", err, time.Since(start))
	}
}
