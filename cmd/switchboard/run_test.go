package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"switchboard/internal/testenv"
	"switchboard/models"
)

// These tests call run in-process with a fake getenv, as main does with
// the real one.

// runDB is one database the run tests use: its DATABASE_URL and the extra
// environment it needs.
type runDB struct {
	name string
	url  string
	env  map[string]string
}

// runDatabases returns a fresh database of each dialect (testenv.Dialects);
// PostgreSQL's comes with the JWT_SECRET it needs.
func runDatabases(t testing.TB) []runDB {
	t.Helper()
	var dbs []runDB
	for _, dialect := range testenv.Dialects(t) {
		db := runDB{name: string(dialect), url: testenv.DatabaseURL(t, dialect)}
		if dialect == models.Postgres {
			db.env = map[string]string{"JWT_SECRET": strings.Repeat("p", 40)}
		}
		dbs = append(dbs, db)
	}
	return dbs
}

// getenv is the environment for db plus extra, with a cheap bcrypt cost,
// no login rate limit and a port chosen by the kernel.
func (db runDB) getenv(extra map[string]string) func(string) string {
	m := map[string]string{"DATABASE_URL": db.url, "BCRYPT_COST": "4", "LOGIN_RATE_LIMIT": "0", "ADDR": "127.0.0.1:0", "SHUTDOWN_TIMEOUT": "3s"}
	for k, v := range db.env {
		m[k] = v
	}
	for k, v := range extra {
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

// runCmd runs one CLI command to completion and returns its stdout.
func runCmd(t testing.TB, getenv func(string) string, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err := run(ctx, args, getenv, strings.NewReader(stdin), &out, &errOut)
	if err != nil {
		t.Logf("run %v: %v\nstderr: %s", args, err, errOut.String())
	}
	return out.String(), err
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(http://\S+)`)

// server is `switchboard serve` running in-process.
type server struct {
	base   string
	stop   func() error
	stderr *testenv.Buffer
}

// startServe runs `serve` until stop (or the test's end), waiting for the
// listening line and a 200 from /healthz.
func startServe(t testing.TB, getenv func(string) string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &testenv.Buffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, getenv, strings.NewReader(""), io.Discard, stderr) }()
	var once sync.Once
	var stopErr error
	s := &server{stderr: stderr}
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(15 * time.Second):
				stopErr = fmt.Errorf("serve did not return within 15s of cancel")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { s.stop() })
	deadline := time.Now().Add(20 * time.Second)
	for s.base == "" {
		if m := listeningRE.FindStringSubmatch(stderr.String()); m != nil {
			s.base = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited before listening: %v\nstderr: %s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not log its address within 20s\nstderr: %s", stderr.String())
		}
	}
	if err := testenv.WaitHealthy(s.base+"/healthz", time.Until(deadline), nil); err != nil {
		t.Fatalf("%v\nstderr: %s", err, stderr.String())
	}
	return s
}

// call sends a JSON request and returns the status and decoded object.
// A request that gets no answer is status 0.
func (s *server) call(t testing.TB, method, path, auth string, body any) (int, map[string]any) {
	t.Helper()
	r, err := testenv.Send(method, s.base+path, testenv.Headers("Authorization", auth), body)
	if err != nil {
		return 0, nil
	}
	var out map[string]any
	json.Unmarshal(r.Body, &out)
	return r.Status, out
}

func (s *server) login(t testing.TB, user, pass string) (int, string) {
	t.Helper()
	status, body := s.call(t, "POST", "/api-token-auth/", "", map[string]string{"username": user, "password": pass})
	tok, _ := body["token"].(string)
	return status, tok
}

func TestRunHelpAndUnknownCommand(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"help", "-h", "--help"} {
		out, err := runCmd(t, envOf(nil), "", arg)
		if err != nil || !strings.Contains(out, "usage: switchboard") {
			t.Errorf("run %s = %v with output %q, want usage", arg, err, out)
		}
	}
	if _, err := runCmd(t, envOf(nil), "", "frobnicate"); err == nil || !strings.Contains(err.Error(), "frobnicate") {
		t.Errorf("run frobnicate = %v, want an unknown command error", err)
	}
	if _, err := runCmd(t, envOf(map[string]string{"JWT_EXPIRATION": "soon"}), "", "migrate"); err == nil {
		t.Error("run migrate with JWT_EXPIRATION=soon = nil, want a config error")
	}
}

// TestRunCLI drives migrate, createuser and setactive against a running
// server on each database: a deactivated user can no longer log in and
// their token stops working at once.
func TestRunCLI(t *testing.T) {
	for _, db := range runDatabases(t) {
		t.Run(db.name, func(t *testing.T) {
			getenv := db.getenv(nil)
			if _, err := runCmd(t, getenv, "", "migrate"); err != nil {
				t.Fatalf("run migrate = %v", err)
			}
			if _, err := runCmd(t, getenv, "", "migrate"); err != nil {
				t.Fatalf("run migrate again = %v, want a no-op", err)
			}

			createTests := []struct {
				name    string
				args    []string
				stdin   string
				wantErr bool
				wantOut string
			}{
				{"staff", []string{"--username", "ops", "--email", "ops@example.com", "--staff"}, "correct-horse\n", false, `created user "ops"`},
				{"plain, no newline", []string{"--username", "éva"}, "password123", false, `created user "éva"`},
				{"CRLF line", []string{"--username", "win"}, "password123\r\n", false, `created user "win"`},
				{"duplicate", []string{"--username", "ops"}, "correct-horse\n", true, ""},
				{"no username", []string{"--email", "x@example.com"}, "correct-horse\n", true, ""},
				{"bad username", []string{"--username", "a b"}, "correct-horse\n", true, ""},
				{"short password", []string{"--username", "shorty"}, "short\n", true, ""},
				{"no password", []string{"--username", "nopw"}, "", true, ""},
				{"bad email", []string{"--username", "mailer", "--email", "nope"}, "correct-horse\n", true, ""},
				{"unknown flag", []string{"--username", "flag", "--admin"}, "correct-horse\n", true, ""},
			}
			for _, tt := range createTests {
				out, err := runCmd(t, getenv, tt.stdin, append([]string{"createuser"}, tt.args...)...)
				if (err != nil) != tt.wantErr {
					t.Errorf("run createuser %v (%s) = %v, want error %v", tt.args, tt.name, err, tt.wantErr)
				}
				if !strings.Contains(out, tt.wantOut) {
					t.Errorf("run createuser %v (%s) printed %q, want %q", tt.args, tt.name, out, tt.wantOut)
				}
			}

			srv := startServe(t, getenv)
			status, tok := srv.login(t, "ops", "correct-horse")
			if status != 200 {
				t.Fatalf("POST /api-token-auth/ as ops = %d, want 200", status)
			}
			status, body := srv.call(t, "GET", "/api/users/", "JWT "+tok, nil)
			if status != 200 {
				t.Errorf("GET /api/users/ as staff ops = %d %v, want 200 (--staff)", status, body)
			}
			if results, _ := body["results"].([]any); len(results) != 3 {
				t.Errorf("GET /api/users/ = %d users, want 3 (ops, éva, win)", len(results))
			}
			if status, _ := srv.login(t, "éva", "password123"); status != 200 {
				t.Errorf("POST /api-token-auth/ as éva = %d, want 200", status)
			}
			if status, _ := srv.login(t, "win", "password123"); status != 200 {
				t.Errorf("POST /api-token-auth/ as win (password given with CRLF) = %d, want 200", status)
			}
			_, evaTok := srv.login(t, "éva", "password123")
			if status, _ := srv.call(t, "GET", "/api/users/", "JWT "+evaTok, nil); status != 403 {
				t.Errorf("GET /api/users/ as non-staff éva = %d, want 403", status)
			}

			// Deactivate through the CLI while the server runs.
			out, err := runCmd(t, getenv, "", "setactive", "ops", "false")
			if err != nil || !strings.Contains(out, "inactive") {
				t.Fatalf("run setactive ops false = %v, %q", err, out)
			}
			if status, _ := srv.login(t, "ops", "correct-horse"); status != 400 {
				t.Errorf("POST /api-token-auth/ as deactivated ops = %d, want 400", status)
			}
			if status, _ := srv.call(t, "GET", "/api/users/me", "JWT "+tok, nil); status != 401 {
				t.Errorf("GET /api/users/me with deactivated ops's token = %d, want 401", status)
			}
			if _, err := runCmd(t, getenv, "", "setactive", "ops", "true"); err != nil {
				t.Fatalf("run setactive ops true = %v", err)
			}
			if status, _ := srv.login(t, "ops", "correct-horse"); status != 200 {
				t.Errorf("POST /api-token-auth/ as reactivated ops = %d, want 200", status)
			}

			setTests := [][]string{{"nobody", "false"}, {"ops", "maybe"}, {"ops"}, {}}
			for _, args := range setTests {
				if _, err := runCmd(t, getenv, "", append([]string{"setactive"}, args...)...); err == nil {
					t.Errorf("run setactive %v = nil, want an error", args)
				}
			}
			if err := srv.stop(); err != nil {
				t.Errorf("serve after cancel = %v, want nil", err)
			}
		})
	}
}

// TestRunStoresGeneratedSecretBesideSQLite: with no JWT_SECRET in embedded
// mode, migrate or serve writes a 0600 secret beside the SQLite file, reuses it on the
// next start (tokens survive a restart) and refuses to start on a bad one.
func TestRunStoresGeneratedSecretBesideSQLite(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "x.db")
	secretPath := dbPath + ".jwt-secret"
	getenv := runDB{url: "sqlite:" + dbPath}.getenv(nil)

	if _, err := runCmd(t, getenv, "", "migrate"); err != nil {
		t.Fatal(err)
	}
	// migrate settles the secret too, so processes started after it (the
	// compose replicas) all find one.
	if _, err := os.Stat(secretPath); err != nil {
		t.Errorf("after migrate: stat %s = %v, want the generated secret", secretPath, err)
	}
	if _, err := runCmd(t, getenv, "password123\n", "createuser", "--username", "keeper"); err != nil {
		t.Fatal(err)
	}

	srv := startServe(t, getenv)
	info, err := os.Stat(secretPath)
	if err != nil {
		t.Fatalf("after first start: %v, want %s", err, secretPath)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("%s mode = %v, want 0600", secretPath, info.Mode().Perm())
	}
	first, _ := os.ReadFile(secretPath)
	if s := strings.TrimSpace(string(first)); len(s) < 32 {
		t.Errorf("generated secret is %d characters, want ≥ 32", len(s))
	}
	status, tok := srv.login(t, "keeper", "password123")
	if status != 200 {
		t.Fatalf("POST /api-token-auth/ = %d, want 200", status)
	}
	if err := srv.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	srv = startServe(t, getenv)
	if again, _ := os.ReadFile(secretPath); !bytes.Equal(again, first) {
		t.Errorf("secret file changed across restarts: %q then %q", first, again)
	}
	if status, body := srv.call(t, "GET", "/api/users/me", "JWT "+tok, nil); status != 200 {
		t.Errorf("GET /api/users/me with a token from before the restart = %d %v, want 200", status, body)
	}
	if err := srv.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	// An explicit JWT_SECRET wins: the old token is refused, the file stays.
	srv = startServe(t, runDB{url: "sqlite:" + dbPath}.getenv(map[string]string{"JWT_SECRET": strings.Repeat("e", 32)}))
	if status, _ := srv.call(t, "GET", "/api/users/me", "JWT "+tok, nil); status != 401 {
		t.Errorf("GET /api/users/me with a token under another JWT_SECRET = %d, want 401", status)
	}
	srv.stop()

	// A truncated secret file is an error, not a weak key.
	if err := os.WriteFile(secretPath, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stderr testenv.Buffer
	if err := run(ctx, []string{"serve"}, getenv, strings.NewReader(""), io.Discard, &stderr); err == nil || !strings.Contains(err.Error(), "secret") {
		t.Errorf("serve with a 5-character secret file = %v, want an error about the secret", err)
	}
}
