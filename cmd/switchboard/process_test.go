package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	_ "github.com/jackc/pgx/v5/stdlib"

	"switchboard/internal/testenv"
)

// These tests run switchboard as real processes (built once, with -race),
// several at a time, sharing one database and one real redis-server.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the switchboard command once per test run.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "switchboard-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "switchboard")
		cmd := exec.Command("go", "build", "-race", "-o", binPath, ".")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// Old names of testenv helpers, kept while compose_test.go and
// importusers_test.go (rewritten elsewhere) still use them; new code calls
// testenv.
var (
	freePort    = testenv.FreeAddr
	pgSchemaURL = testenv.SchemaURL
	psql        = testenv.PostgresExec
)

type syncBuffer = testenv.Buffer

// proc is one running switchboard process. It belongs to the test that
// started it (t), whose cleanup stops it; subtests do not use it.
type proc struct {
	t    testing.TB
	name string
	addr string
	env  []string
	cmd  *exec.Cmd
	log  *testenv.Buffer
	done chan error
}

// cluster is the shared configuration of processes in one test (t).
type cluster struct {
	t        testing.TB
	database string // DATABASE_URL
	redis    string // REDIS_URL ("" for none)
	prefix   string
	secret   string
	apiKey   string
	extra    []string
}

// newCluster configures the processes of test t: one fresh database shared
// by all (PostgreSQL when TEST_DATABASE_URL is set, else a SQLite file),
// redisURL ("" for none) with a key prefix of the test's own.
func newCluster(t testing.TB, redisURL string) *cluster {
	t.Helper()
	dialects := testenv.Dialects(t)
	c := &cluster{t: t, redis: redisURL, prefix: testenv.KeyPrefix(t),
		secret: strings.Repeat("s", 40) + testenv.RandomHex(t, 8), apiKey: "service-key-" + testenv.RandomHex(t, 8)}
	c.database = testenv.DatabaseURL(t, dialects[len(dialects)-1])
	return c
}

func (c *cluster) environ(addr string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"ADDR=" + addr,
		"DATABASE_URL=" + c.database,
		"JWT_SECRET=" + c.secret,
		"PUBLISH_API_KEY=" + c.apiKey,
		"REDIS_PREFIX=" + c.prefix,
		"BCRYPT_COST=4",
		"LOG_LEVEL=warn",
		"LOGIN_RATE_LIMIT=1000",
		"LOGIN_RATE_BURST=1000",
		"GORACE=halt_on_error=1",
	}
	if c.redis != "" {
		env = append(env, "REDIS_URL="+c.redis)
	}
	return append(env, c.extra...)
}

// start runs a switchboard process and waits for /healthz.
func (c *cluster) start(name string) *proc {
	c.t.Helper()
	p := &proc{t: c.t, name: name, addr: freePort(c.t)}
	p.env = c.environ(p.addr)
	p.run()
	c.t.Cleanup(p.stop)
	return p
}

func (p *proc) run() {
	p.t.Helper()
	p.log = &testenv.Buffer{}
	p.cmd = exec.Command(binary(p.t), "serve")
	p.cmd.Env = p.env
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.done = make(chan error, 1)
	go func() { p.done <- p.cmd.Wait() }()
	if err := testenv.WaitHealthy(p.url("/healthz"), 30*time.Second, p.done); err != nil {
		p.t.Fatalf("%s: %v\n%s", p.name, err, p.log)
	}
}

// stop sends SIGTERM and checks the process exits cleanly within 10 s
// and without a data race.
func (p *proc) stop() {
	if p.cmd.ProcessState != nil || p.done == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Errorf("%s exited with %v\n%s", p.name, err, p.log)
		}
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("%s did not exit within 10s of SIGTERM\n%s", p.name, p.log)
	}
	if strings.Contains(p.log.String(), "DATA RACE") {
		p.t.Errorf("%s: data race\n%s", p.name, p.log)
	}
	p.done = nil
}

// kill ends the process without any cleanup (a crash).
func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
	p.done = nil
}

func (p *proc) url(path string) string   { return "http://" + p.addr + path }
func (p *proc) wsURL(path string) string { return "ws://" + p.addr + path }

// call does a JSON request and returns status and raw body.
func (p *proc) call(method, path, auth string, body any) (int, []byte) {
	p.t.Helper()
	r, err := testenv.Send(method, p.url(path), testenv.Headers("Authorization", auth), body)
	if err != nil {
		p.t.Fatalf("%s %s on %s: %v", method, path, p.name, err)
	}
	return r.Status, r.Body
}

// register creates a user through the API and logs in; it returns the
// token and the user's id.
// Staff users are made with the CLI, as an operator would.
func (p *proc) register(name string, staff bool) (string, int64) {
	p.t.Helper()
	if staff {
		var out bytes.Buffer
		if err := runCLI(p, strings.NewReader("password123\n"), &out, "createuser", "--username", name, "--staff"); err != nil {
			p.t.Fatalf("createuser: %v\n%s", err, out.String())
		}
	} else {
		status, body := p.call("POST", "/api/users/", "", map[string]string{"username": name, "password": "password123"})
		if status != 201 {
			p.t.Fatalf("register %s = %d %s", name, status, body)
		}
	}
	tok := p.login(name)
	status, body := p.call("GET", "/api/users/me", "JWT "+tok, nil)
	var u struct{ ID int64 }
	if status != 200 || json.Unmarshal(body, &u) != nil {
		p.t.Fatalf("GET /api/users/me = %d %s", status, body)
	}
	return tok, u.ID
}

func (p *proc) login(name string) string {
	p.t.Helper()
	status, body := p.call("POST", "/api-token-auth/", "", map[string]string{"username": name, "password": "password123"})
	if status != 200 {
		p.t.Fatalf("login %s = %d %s", name, status, body)
	}
	var tok struct{ Token string }
	json.Unmarshal(body, &tok)
	return tok.Token
}

// runCLI runs a switchboard command with p's environment.
func runCLI(p *proc, stdin io.Reader, out io.Writer, args ...string) error {
	cmd := exec.Command(binary(p.t), args...)
	cmd.Env = p.env
	cmd.Stdin = stdin
	cmd.Stdout, cmd.Stderr = out, out
	return cmd.Run()
}

// sock is a test WebSocket client that collects frames in a goroutine.
type sock struct {
	t      testing.TB
	conn   *websocket.Conn
	frames chan map[string]any
	closed chan *websocket.CloseError
}

// dialSock opens a WebSocket to url, failing t if the upgrade fails.
func dialSock(t testing.TB, url string) *sock {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return newSock(t, conn)
}

// newSock collects the frames of an open conn (dialed any way) until it
// closes; conn is closed when t ends.
func newSock(t testing.TB, conn *websocket.Conn) *sock {
	s := &sock{t: t, conn: conn, frames: make(chan map[string]any, 10000), closed: make(chan *websocket.CloseError, 1)}
	go func() {
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				ce, _ := err.(*websocket.CloseError)
				s.closed <- ce
				close(s.frames)
				return
			}
			var m map[string]any
			json.Unmarshal(b, &m)
			s.frames <- m
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return s
}

func (p *proc) chat(tok string) *sock {
	p.t.Helper()
	s := dialSock(p.t, p.wsURL("/ws/chat/?token="+url.QueryEscape(tok)))
	if f := s.next("welcome", 5*time.Second); f == nil {
		p.t.Fatal("no welcome")
	}
	return s
}

// next returns the next frame of type typ within d (nil on timeout).
func (s *sock) next(typ string, d time.Duration) map[string]any {
	s.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case f, ok := <-s.frames:
			if !ok {
				return nil
			}
			if f["type"] == typ {
				return f
			}
		case <-timeout:
			return nil
		}
	}
}

func (s *sock) send(text string) {
	s.t.Helper()
	if err := s.conn.WriteMessage(websocket.TextMessage, []byte(text)); err != nil {
		s.t.Fatalf("send: %v", err)
	}
}

// waitClose waits up to d for a close frame and returns its code/reason.
func (s *sock) waitClose(d time.Duration) (*websocket.CloseError, bool) {
	timeout := time.After(d)
	for {
		select {
		case ce := <-s.closed:
			return ce, true
		case <-s.frames:
		case <-timeout:
			return nil, false
		}
	}
}

func openSQL(dsn string) (*sql.DB, error) { return sql.Open("pgx", dsn) }

// sockClose is how (and when) one of watchCloses' sockets ended.
type sockClose struct {
	name string
	ce   *websocket.CloseError
	ok   bool // a close frame arrived before until
	at   time.Time
}

// watchCloses waits, for each named socket, for its close until until and
// reports each on the returned channel (buffered, one per socket).
func watchCloses(socks map[string]*sock, until time.Time) <-chan sockClose {
	results := make(chan sockClose, len(socks))
	for name, s := range socks {
		go func() {
			ce, ok := s.waitClose(time.Until(until))
			results <- sockClose{name, ce, ok, time.Now()}
		}()
	}
	return results
}
