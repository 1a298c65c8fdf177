package handlers_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	_ "github.com/jackc/pgx/v5/stdlib"

	"switchboard/handlers"
	"switchboard/middleware"
	"switchboard/migrations"
	"switchboard/models"
	"switchboard/ws"
)

// dialects returns the databases every DB-backed test runs on: SQLite
// always, PostgreSQL when TEST_DATABASE_URL is set (the test script sets it).
func dialects(t *testing.T) []string {
	t.Helper()
	if os.Getenv("TEST_DATABASE_URL") == "" {
		t.Log("TEST_DATABASE_URL not set: PostgreSQL cases skipped (scripts/test.sh sets it)")
		return []string{"sqlite"}
	}
	return []string{"sqlite", "postgres"}
}

// testTarget returns an empty, migrated database of dialect: a SQLite file
// in t.TempDir, or a fresh schema on the test PostgreSQL server.
func testTarget(t *testing.T, dialect string) models.Target {
	t.Helper()
	if dialect == "sqlite" {
		return models.Target{Dialect: models.SQLite, DSN: filepath.Join(t.TempDir(), "test.db")}
	}
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		t.Skip("TEST_DATABASE_URL not set")
	}
	schema := "t_" + randHex(t, 6)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", base)
		if err == nil {
			admin.Exec("DROP SCHEMA " + schema + " CASCADE")
			admin.Close()
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return models.Target{Dialect: models.Postgres, DSN: u.String()}
}

func randHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// env is one running server for a test.
type env struct {
	t      *testing.T
	srv    *httptest.Server
	users  *models.UserStore
	auth   *middleware.Auth
	hub    *ws.Hub
	secret []byte
	now    *time.Time // when non-nil, the auth clock
}

type envOption func(*handlers.Deps, *middleware.AuthConfig)

func withClient(f func(*ws.ClientConfig)) envOption {
	return func(d *handlers.Deps, _ *middleware.AuthConfig) { f(&d.ClientConfig) }
}

func withOrigins(o ...string) envOption {
	return func(d *handlers.Deps, _ *middleware.AuthConfig) { d.AllowedOrigins = o }
}

func withAuth(f func(*middleware.AuthConfig)) envOption {
	return func(_ *handlers.Deps, a *middleware.AuthConfig) { f(a) }
}

// newEnv starts a full server (real HTTP listener on 127.0.0.1) on a fresh
// database of dialect.
func newEnv(t *testing.T, dialect string, opts ...envOption) *env {
	t.Helper()
	target := testTarget(t, dialect)
	db, err := models.Open(target)
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	t.Cleanup(func() { sqlDB.Close() })
	if _, err := migrations.Up(context.Background(), sqlDB, target.Dialect); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, secret: []byte(randHex(t, 32))}
	e.users = models.NewUserStore(db, models.PasswordHasher{Cost: 4})
	ac := middleware.AuthConfig{Secret: e.secret, Expiration: 5 * time.Minute, MaxRefresh: 168 * time.Hour}
	d := handlers.Deps{
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		Users:          e.users,
		ClientConfig:   ws.DefaultClientConfig(),
		PresenceEvents: true,
		LoginRate:      1000,
		LoginBurst:     1000,
	}
	for _, o := range opts {
		o(&d, &ac)
	}
	e.auth, err = middleware.NewAuth(ac, e.users)
	if err != nil {
		t.Fatal(err)
	}
	e.hub = ws.NewHub(ws.NewMemoryBroker())
	pingCtx, stopPinger := context.WithCancel(context.Background())
	go e.hub.RunPinger(pingCtx, d.ClientConfig.PingInterval)
	t.Cleanup(stopPinger)
	d.Auth, d.Hub, d.Presence = e.auth, e.hub, ws.NewMemoryPresence()
	e.srv = httptest.NewServer(handlers.NewServer(d))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.hub.Shutdown(ctx)
		e.srv.Close()
	})
	return e
}

// createUser makes an active user directly in the store.
func (e *env) createUser(name string, staff bool) *models.User {
	e.t.Helper()
	u, err := e.users.Create(context.Background(), models.NewUser{Username: name, Password: "password123", Email: "", IsStaff: staff})
	if err != nil {
		e.t.Fatalf("create user %q: %v", name, err)
	}
	return u
}

// token mints a token for u with the server's own code.
func (e *env) token(u *models.User) string {
	e.t.Helper()
	tok, err := e.auth.Mint(u)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// do sends a request with an optional JSON body and Authorization header
// and returns the status and decoded JSON body.
func (e *env) do(method, path, auth string, body any) (int, map[string]any) {
	e.t.Helper()
	var r io.Reader
	if s, ok := body.(string); ok {
		r = strings.NewReader(s)
	} else if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.srv.URL+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			e.t.Fatalf("%s %s = %d with non-JSON body %q", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, out
}

// wsURL is the ws:// URL of path on the test server.
func (e *env) wsURL(path string) string {
	return "ws" + strings.TrimPrefix(e.srv.URL, "http") + path
}

// dial opens a WebSocket to path; it fails the test if the upgrade fails.
func (e *env) dial(path string) *websocket.Conn {
	e.t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(e.wsURL(path), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		e.t.Fatalf("dial %s: %v (status %d)", path, err, status)
	}
	e.t.Cleanup(func() { conn.Close() })
	return conn
}

// chat dials /ws/chat/ as u and consumes the welcome frame.
func (e *env) chat(u *models.User) *websocket.Conn {
	e.t.Helper()
	conn := e.dial("/ws/chat/?token=" + url.QueryEscape(e.token(u)))
	f := readFrame(e.t, conn)
	if f["type"] != "welcome" {
		e.t.Fatalf("first frame = %v, want welcome", f)
	}
	return conn
}

// readFrame reads one JSON text frame within 5 s.
func readFrame(t *testing.T, conn *websocket.Conn) map[string]any {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, b, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if typ != websocket.TextMessage {
		t.Fatalf("frame type %d, want text", typ)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("frame %q is not JSON: %v", b, err)
	}
	return m
}

// readUntil reads frames until one has the wanted type, returning it.
func readUntil(t *testing.T, conn *websocket.Conn, typ string) map[string]any {
	t.Helper()
	for i := 0; i < 100; i++ {
		if f := readFrame(t, conn); f["type"] == typ {
			return f
		}
	}
	t.Fatalf("no %q frame in 100 frames", typ)
	return nil
}

// expectClose reads until the connection closes and checks code and reason
// (reason "" matches any).
func expectClose(t *testing.T, conn *websocket.Conn, code int, reason string) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		ce, ok := err.(*websocket.CloseError)
		if !ok {
			t.Fatalf("connection ended with %v, want close %d %q", err, code, reason)
		}
		if ce.Code != code || (reason != "" && ce.Text != reason) {
			t.Fatalf("close = %d %q, want %d %q", ce.Code, ce.Text, code, reason)
		}
		return
	}
}

var _ = fmt.Sprintf

func updActive(active bool) models.UserPatch { return models.UserPatch{IsActive: &active} }
