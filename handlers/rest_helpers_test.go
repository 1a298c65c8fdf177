package handlers_test

// Helpers for the REST and JWT tests (users_test.go, auth_test.go,
// errors_test.go, fuzz_test.go). They extend harness_test.go without
// changing it.

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v4"

	"switchboard/handlers"
	"switchboard/middleware"
	"switchboard/migrations"
	"switchboard/models"
	"switchboard/ws"
)

// restClient bounds every request the REST tests send.
var restClient = &http.Client{Timeout: 10 * time.Second}

// authClock is a settable clock for the auth middleware, so expiry and the
// refresh window can be tested without sleeping. It only moves forward from
// the real time, because golang-jwt also checks exp against time.Now.
type authClock struct {
	mu  sync.Mutex
	now time.Time
}

func newAuthClock() *authClock { return &authClock{now: time.Now()} }

func (c *authClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *authClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// withClock makes c the auth clock of the env.
func withClock(c *authClock) envOption {
	return withAuth(func(a *middleware.AuthConfig) { a.Now = c.Now })
}

// withLogger makes l the server's logger (the access log included).
func withLogger(l *slog.Logger) envOption {
	return func(d *handlers.Deps, _ *middleware.AuthConfig) { d.Logger = l }
}

// restResponse is one raw HTTP answer.
type restResponse struct {
	status int
	header http.Header
	body   []byte
}

// rest sends a request with a raw body (nil: none) and, when non-empty, the
// given Content-Type and Authorization, and returns the raw answer.
// t is the calling (sub)test: failures must not go to e.t from a subtest.
func (e *env) rest(t testing.TB, method, path, contentType, auth string, body []byte) restResponse {
	t.Helper()
	return sendRaw(t, e.srv.URL, method, path, contentType, auth, body)
}

func sendRaw(t testing.TB, base, method, path, contentType, auth string, body []byte) restResponse {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, r)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := restClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return restResponse{status: resp.StatusCode, header: resp.Header, body: raw}
}

// object decodes the body as a JSON object, failing the test (naming the
// request) when it is not one or is not served as application/json.
func (r restResponse) object(t testing.TB, req string) map[string]any {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s = %d with Content-Type %q, want application/json (body %q)", req, r.status, ct, r.body)
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil || m == nil {
		t.Fatalf("%s = %d with body %q, want a JSON object", req, r.status, r.body)
	}
	return m
}

// errorCode checks that body has the standard error shape
// {"error":{"code":..., "message":...}} and returns the code.
func errorCode(t testing.TB, req string, body map[string]any) string {
	t.Helper()
	e, ok := body["error"].(map[string]any)
	if !ok {
		t.Fatalf("%s body = %v, want {\"error\":{...}}", req, body)
	}
	code, _ := e["code"].(string)
	msg, _ := e["message"].(string)
	if code == "" || msg == "" {
		t.Fatalf("%s error = %v, want non-empty code and message", req, e)
	}
	return code
}

// errorFields returns error.fields of a standard error body (nil if none).
func errorFields(body map[string]any) map[string]any {
	e, _ := body["error"].(map[string]any)
	f, _ := e["fields"].(map[string]any)
	return f
}

// jsonBody marshals v for a request body.
func jsonBody(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// login posts username and password to /api-token-auth/ and returns the
// token, failing the test unless the answer is 200.
func (e *env) login(t testing.TB, username, password string) string {
	t.Helper()
	const req = "POST /api-token-auth/"
	r := e.rest(t, http.MethodPost, "/api-token-auth/", "application/json", "",
		jsonBody(t, map[string]string{"username": username, "password": password}))
	if r.status != http.StatusOK {
		t.Fatalf("%s as %q = %d, want 200 (body %s)", req, username, r.status, r.body)
	}
	tok, _ := r.object(t, req)["token"].(string)
	if tok == "" {
		t.Fatalf("%s as %q: no token in %s", req, username, r.body)
	}
	return tok
}

// jwtSegment decodes segment i (0 header, 1 payload) of a JWT without
// verifying it.
func jwtSegment(t testing.TB, tok string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d parts, want 3", tok, len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatalf("token segment %d %q: %v", i, parts[i], err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("token segment %d %s: %v", i, raw, err)
	}
	return m
}

// claimInt returns an integer claim of a payload decoded by jwtSegment.
func claimInt(t testing.TB, claims map[string]any, key string) int64 {
	t.Helper()
	n, ok := claims[key].(json.Number)
	if !ok {
		t.Fatalf("claim %q = %#v, want an integer", key, claims[key])
	}
	v, err := n.Int64()
	if err != nil {
		t.Fatalf("claim %q = %s, want an integer", key, n)
	}
	return v
}

// userClaims are the rest_framework_jwt claims for u, expiring d from now.
func userClaims(u *models.User, now time.Time, d time.Duration) map[string]any {
	return map[string]any{
		"user_id":  u.ID,
		"username": u.Username,
		"email":    u.Email,
		"exp":      now.Add(d).Unix(),
		"orig_iat": now.Unix(),
	}
}

// signClaims signs claims with method and key using golang-jwt directly,
// bypassing the server's own minting.
func signClaims(t testing.TB, method gojwt.SigningMethod, key any, claims map[string]any) string {
	t.Helper()
	tok, err := gojwt.NewWithClaims(method, gojwt.MapClaims(claims)).SignedString(key)
	if err != nil {
		t.Fatalf("sign %s token: %v", method.Alg(), err)
	}
	return tok
}

// unsignedToken builds header.payload. with an empty signature: the
// alg "none" attack.
func unsignedToken(t testing.TB, header, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string { return base64.RawURLEncoding.EncodeToString(jsonBody(t, v)) }
	return enc(header) + "." + enc(claims) + "."
}

// testServer is a server like newEnv's, built from a testing.TB (fuzz
// targets have a *testing.F).
type testServer struct {
	dialect string
	url     string
	users   *models.UserStore
	auth    *middleware.Auth
	db      *sql.DB
}

// newTestServers starts one testServer per dialect (see dialects) whose
// logger writes to logs.
func newTestServers(tb testing.TB, logs io.Writer) []*testServer {
	tb.Helper()
	names := []string{"sqlite"}
	if os.Getenv("TEST_DATABASE_URL") != "" {
		names = append(names, "postgres")
	}
	var out []*testServer
	for _, dialect := range names {
		out = append(out, newTestServer(tb, dialect, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelError}))))
	}
	return out
}

func newTestServer(tb testing.TB, dialect string, logger *slog.Logger) *testServer {
	tb.Helper()
	target := models.Target{Dialect: models.SQLite, DSN: filepath.Join(tb.TempDir(), "test.db")}
	if dialect == "postgres" {
		base := os.Getenv("TEST_DATABASE_URL")
		b := make([]byte, 6)
		rand.Read(b)
		schema := "f_" + hex.EncodeToString(b)
		admin, err := sql.Open("pgx", base)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			admin.Exec("DROP SCHEMA " + schema + " CASCADE")
			admin.Close()
		})
		if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
			tb.Fatalf("create schema: %v", err)
		}
		u, _ := url.Parse(base)
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		target = models.Target{Dialect: models.Postgres, DSN: u.String()}
	}
	db, err := models.Open(target)
	if err != nil {
		tb.Fatal(err)
	}
	sqlDB, _ := db.DB()
	tb.Cleanup(func() { sqlDB.Close() })
	if _, err := migrations.Up(context.Background(), sqlDB, target.Dialect); err != nil {
		tb.Fatal(err)
	}
	s := &testServer{dialect: dialect, db: sqlDB}
	s.users = models.NewUserStore(db, models.PasswordHasher{Cost: 4})
	secret := []byte(strings.Repeat("k", 16) + "0123456789abcdef0123456789abcdef")
	auth, err := middleware.NewAuth(middleware.AuthConfig{Secret: secret, Expiration: 5 * time.Minute, MaxRefresh: time.Hour}, s.users)
	if err != nil {
		tb.Fatal(err)
	}
	hub := ws.NewHub(ws.NewMemoryBroker())
	srv := httptest.NewServer(handlers.NewServer(handlers.Deps{
		Logger:         logger,
		Users:          s.users,
		Status:         models.NewStatusStore(db),
		Auth:           auth,
		Hub:            hub,
		Presence:       ws.NewMemoryPresence(),
		ClientConfig:   ws.DefaultClientConfig(),
		PresenceEvents: true,
		LoginRate:      1e9,
		LoginBurst:     1 << 30,
	}))
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hub.Shutdown(ctx)
		srv.Close()
	})
	s.url, s.auth = srv.URL, auth
	return s
}
