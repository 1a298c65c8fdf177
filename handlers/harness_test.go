package handlers_test

// The one harness of the handler tests: newEnv starts the whole HTTP
// surface on a real 127.0.0.1 listener over a fresh database
// (internal/testenv), and every request a test sends goes through
// env.send. The env keeps no testing.TB: each method takes the (sub)test
// it may fail, so a subtest's failure is its own.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v4"
	"github.com/gorilla/websocket"

	"switchboard/handlers"
	"switchboard/internal/testenv"
	"switchboard/middleware"
	"switchboard/models"
	"switchboard/ws"
)

// env is one running server on a fresh database, for one test.
type env struct {
	dialect models.Dialect
	srv     *httptest.Server
	db      *testenv.DB
	users   *models.UserStore
	auth    *middleware.Auth
	hub     *ws.Hub
	secret  []byte
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

// withLogger makes l the server's logger (the access log included).
func withLogger(l *slog.Logger) envOption {
	return func(d *handlers.Deps, _ *middleware.AuthConfig) { d.Logger = l }
}

// withClock makes c the auth clock of the env.
func withClock(c *authClock) envOption {
	return withAuth(func(a *middleware.AuthConfig) { a.Now = c.Now })
}

// newEnv starts a full server (real HTTP listener on 127.0.0.1) on a fresh
// migrated database of dialect, with a status store, an in-process broker
// and presence, and no login rate limit to speak of. It is torn down when
// tb ends.
func newEnv(tb testing.TB, dialect models.Dialect, opts ...envOption) *env {
	tb.Helper()
	e := &env{dialect: dialect, db: testenv.Database(tb, dialect), secret: []byte(rand.Text() + rand.Text())}
	e.users = models.NewUserStore(e.db.Gorm, models.PasswordHasher{Cost: 4})
	ac := middleware.AuthConfig{Secret: e.secret, Expiration: 5 * time.Minute, MaxRefresh: 168 * time.Hour}
	d := handlers.Deps{
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		Users:          e.users,
		Status:         models.NewStatusStore(e.db.Gorm),
		ClientConfig:   ws.DefaultClientConfig(),
		PresenceEvents: true,
		LoginRate:      1e9,
		LoginBurst:     1 << 30,
	}
	for _, o := range opts {
		o(&d, &ac)
	}
	var err error
	e.auth, err = middleware.NewAuth(ac, e.users)
	if err != nil {
		tb.Fatal(err)
	}
	e.hub = ws.NewHub(ws.NewMemoryBroker())
	pingCtx, stopPinger := context.WithCancel(context.Background())
	go e.hub.RunPinger(pingCtx, d.ClientConfig.PingInterval)
	tb.Cleanup(stopPinger)
	d.Auth, d.Hub, d.Presence = e.auth, e.hub, ws.NewMemoryPresence()
	e.srv = httptest.NewServer(handlers.NewServer(d))
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.hub.Shutdown(ctx)
		e.srv.Close()
	})
	return e
}

// createUser makes an active user directly in the store.
func (e *env) createUser(tb testing.TB, name string, staff bool) *models.User {
	tb.Helper()
	u, err := e.users.Create(context.Background(), models.NewUser{Username: name, Password: "password123", Email: "", IsStaff: staff})
	if err != nil {
		tb.Fatalf("create user %q: %v", name, err)
	}
	return u
}

// token mints a token for u with the server's own code.
func (e *env) token(tb testing.TB, u *models.User) string {
	tb.Helper()
	tok, err := e.auth.Mint(u)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// restResponse is one raw HTTP answer.
type restResponse struct {
	status int
	header http.Header
	body   []byte
}

// send is the one function that sends a request to the test server: rest,
// do and login call it, and so does every test that needs a header or a
// body of its own. body is as testenv.Send takes it. The error is the
// client's (the request could not be sent, or no answer came).
func (e *env) send(tb testing.TB, method, path string, header http.Header, body any) (restResponse, error) {
	tb.Helper()
	r, err := testenv.Send(method, e.srv.URL+path, header, body)
	if err != nil {
		return restResponse{}, err
	}
	checkOpenAPI(tb, r.Request, r.Status, r.Header, r.Body) // openapi_test.go
	return restResponse{status: r.Status, header: r.Header, body: r.Body}, nil
}

// rest sends a request with a raw body (nil: none) and, when non-empty, the
// given Content-Type and Authorization, and returns the raw answer.
func (e *env) rest(tb testing.TB, method, path, contentType, auth string, body []byte) restResponse {
	tb.Helper()
	r, err := e.send(tb, method, path, testenv.Headers("Content-Type", contentType, "Authorization", auth), body)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// do sends a request with an optional JSON body (a string is sent as is)
// and Authorization header and returns the status and decoded JSON body.
func (e *env) do(tb testing.TB, method, path, auth string, body any) (int, map[string]any) {
	tb.Helper()
	ct := ""
	if body != nil {
		ct = "application/json"
	}
	r, err := e.send(tb, method, path, testenv.Headers("Content-Type", ct, "Authorization", auth), body)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	var out map[string]any
	if len(r.body) > 0 {
		if err := json.Unmarshal(r.body, &out); err != nil {
			tb.Fatalf("%s %s = %d with non-JSON body %q", method, path, r.status, r.body)
		}
	}
	return r.status, out
}

// login posts username and password to /api-token-auth/ and returns the
// token, failing the test unless the answer is 200.
func (e *env) login(tb testing.TB, username, password string) string {
	tb.Helper()
	const req = "POST /api-token-auth/"
	r := e.rest(tb, http.MethodPost, "/api-token-auth/", "application/json", "",
		jsonBody(tb, map[string]string{"username": username, "password": password}))
	if r.status != http.StatusOK {
		tb.Fatalf("%s as %q = %d, want 200 (body %s)", req, username, r.status, r.body)
	}
	tok, _ := r.object(tb, req)["token"].(string)
	if tok == "" {
		tb.Fatalf("%s as %q: no token in %s", req, username, r.body)
	}
	return tok
}

// object decodes the body as a JSON object, failing the test (naming the
// request) when it is not one or is not served as application/json.
func (r restResponse) object(tb testing.TB, req string) map[string]any {
	tb.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Fatalf("%s = %d with Content-Type %q, want application/json (body %q)", req, r.status, ct, r.body)
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil || m == nil {
		tb.Fatalf("%s = %d with body %q, want a JSON object", req, r.status, r.body)
	}
	return m
}

// errorCode checks that body has the standard error shape
// {"error":{"code":..., "message":...}} and returns the code.
func errorCode(tb testing.TB, req string, body map[string]any) string {
	tb.Helper()
	e, ok := body["error"].(map[string]any)
	if !ok {
		tb.Fatalf("%s body = %v, want {\"error\":{...}}", req, body)
	}
	code, _ := e["code"].(string)
	msg, _ := e["message"].(string)
	if code == "" || msg == "" {
		tb.Fatalf("%s error = %v, want non-empty code and message", req, e)
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
func jsonBody(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func updActive(active bool) models.UserPatch { return models.UserPatch{IsActive: &active} }

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

// jwtSegment decodes segment i (0 header, 1 payload) of a JWT without
// verifying it.
func jwtSegment(tb testing.TB, tok string, i int) map[string]any {
	tb.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		tb.Fatalf("token %q has %d parts, want 3", tok, len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		tb.Fatalf("token segment %d %q: %v", i, parts[i], err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		tb.Fatalf("token segment %d %s: %v", i, raw, err)
	}
	return m
}

// claimInt returns an integer claim of a payload decoded by jwtSegment.
func claimInt(tb testing.TB, claims map[string]any, key string) int64 {
	tb.Helper()
	n, ok := claims[key].(json.Number)
	if !ok {
		tb.Fatalf("claim %q = %#v, want an integer", key, claims[key])
	}
	v, err := n.Int64()
	if err != nil {
		tb.Fatalf("claim %q = %s, want an integer", key, n)
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
func signClaims(tb testing.TB, method gojwt.SigningMethod, key any, claims map[string]any) string {
	tb.Helper()
	tok, err := gojwt.NewWithClaims(method, gojwt.MapClaims(claims)).SignedString(key)
	if err != nil {
		tb.Fatalf("sign %s token: %v", method.Alg(), err)
	}
	return tok
}

// unsignedToken builds header.payload. with an empty signature: the
// alg "none" attack.
func unsignedToken(tb testing.TB, header, claims map[string]any) string {
	tb.Helper()
	enc := func(v any) string { return base64.RawURLEncoding.EncodeToString(jsonBody(tb, v)) }
	return enc(header) + "." + enc(claims) + "."
}

// wsURL is the ws:// URL of path on the test server.
func (e *env) wsURL(path string) string {
	return "ws" + strings.TrimPrefix(e.srv.URL, "http") + path
}

// dial opens a WebSocket to path; it fails the test if the upgrade fails.
func (e *env) dial(tb testing.TB, path string) *websocket.Conn {
	tb.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(e.wsURL(path), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		tb.Fatalf("dial %s: %v (status %d)", path, err, status)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// chat dials /ws/chat/ as u and consumes the welcome frame.
func (e *env) chat(tb testing.TB, u *models.User) *websocket.Conn {
	tb.Helper()
	conn := e.dial(tb, "/ws/chat/?token="+url.QueryEscape(e.token(tb, u)))
	f := readFrame(tb, conn)
	if f["type"] != "welcome" {
		tb.Fatalf("first frame = %v, want welcome", f)
	}
	return conn
}

// readFrame reads one JSON text frame within 5 s.
func readFrame(tb testing.TB, conn *websocket.Conn) map[string]any {
	tb.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, b, err := conn.ReadMessage()
	if err != nil {
		tb.Fatalf("read frame: %v", err)
	}
	if typ != websocket.TextMessage {
		tb.Fatalf("frame type %d, want text", typ)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatalf("frame %q is not JSON: %v", b, err)
	}
	return m
}

// readUntil reads frames until one has the wanted type, returning it.
func readUntil(tb testing.TB, conn *websocket.Conn, typ string) map[string]any {
	tb.Helper()
	for i := 0; i < 100; i++ {
		if f := readFrame(tb, conn); f["type"] == typ {
			return f
		}
	}
	tb.Fatalf("no %q frame in 100 frames", typ)
	return nil
}

// expectClose reads until the connection closes, within 5 s, and checks
// code and reason (reason "" matches any).
func expectClose(tb testing.TB, conn *websocket.Conn, code int, reason string) {
	tb.Helper()
	expectCloseWithin(tb, conn, code, reason, 5*time.Second)
}

// expectCloseWithin is expectClose with a deadline of d.
func expectCloseWithin(tb testing.TB, conn *websocket.Conn, code int, reason string, d time.Duration) {
	tb.Helper()
	conn.SetReadDeadline(time.Now().Add(d))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		ce, ok := err.(*websocket.CloseError)
		if !ok {
			tb.Fatalf("connection ended with %v, want close %d %q", err, code, reason)
		}
		if ce.Code != code || (reason != "" && ce.Text != reason) {
			tb.Fatalf("close = %d %q, want %d %q", ce.Code, ce.Text, code, reason)
		}
		return
	}
}

// waitFor polls cond every 10 ms until it holds, failing after d.
func waitFor(tb testing.TB, d time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("condition not met within %s", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
