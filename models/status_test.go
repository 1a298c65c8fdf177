package models_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/internal/testenv"
	"switchboard/models"
)

// TestStatusConcurrentPuts: many writers on three keys at once (so that
// batches hold several Puts of a key and several keys) get, per key, the
// versions 1..N each exactly once, each writer's own versions grow, the
// then callbacks see every key's versions in order with no gap (what the
// handler publishes to subscribers), and Get ends at version N with the
// value of the Put that got N, on every dialect.
func TestStatusConcurrentPuts(t *testing.T) {
	const writers, puts = 16, 40
	keys := []string{"k0", "k1", "k2"}
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			store := models.NewStatusStore(testenv.Database(t, dialect).Gorm)
			var mu sync.Mutex
			seen := map[string]map[uint64]string{} // key → version → value
			for _, k := range keys {
				seen[k] = map[uint64]string{}
			}
			var thenMu sync.Mutex
			published := map[string]uint64{}
			var thenErr error
			then := func(s models.Status) {
				thenMu.Lock()
				defer thenMu.Unlock()
				if s.Version != published[s.Key]+1 && thenErr == nil {
					thenErr = fmt.Errorf("then(%s) got version %d after %d", s.Key, s.Version, published[s.Key])
				}
				published[s.Key] = s.Version
			}
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					last := map[string]uint64{}
					for i := range puts {
						key := keys[(w+i)%len(keys)]
						value := fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)
						s, err := store.Put(ctx, key, json.RawMessage(value), then)
						if err != nil {
							errs <- fmt.Errorf("Put(%s, %s): %w", key, value, err)
							return
						}
						if s.Key != key || string(s.Value) != value || s.Version <= last[key] || s.UpdatedAt.IsZero() {
							errs <- fmt.Errorf("Put(%s, %s) = %+v; want its key and value, a version above %d, a time", key, value, s, last[key])
							return
						}
						last[key] = s.Version
						mu.Lock()
						if prev, dup := seen[key][s.Version]; dup {
							mu.Unlock()
							errs <- fmt.Errorf("version %d of %s given twice (%s and %s)", s.Version, key, prev, value)
							return
						}
						seen[key][s.Version] = value
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if thenErr != nil {
				t.Fatal(thenErr)
			}
			for _, key := range keys {
				n := uint64(len(seen[key]))
				if published[key] != n {
					t.Errorf("then(%s) ended at version %d, want %d", key, published[key], n)
				}
				for v := uint64(1); v <= n; v++ {
					if _, ok := seen[key][v]; !ok {
						t.Fatalf("%s: versions given %d, but not %d: want 1..%d", key, n, v, n)
					}
				}
				got, err := store.Get(ctx, key)
				if err != nil || got.Version != n || string(got.Value) != seen[key][n] {
					t.Errorf("Get(%s) = %d %s, %v; want version %d with %s", key, got.Version, got.Value, err, n, seen[key][n])
				}
			}
		})
	}
}

// statusChildEnv makes the test binary a status writer for
// TestStatusSurvivesKill: it Puts from several goroutines and prints each
// acknowledged version.
const statusChildEnv = "SWITCHBOARD_STATUS_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(statusChildEnv); spec != "" {
		statusChild(spec)
		return
	}
	os.Exit(m.Run())
}

// statusChild runs until killed: "dialect|dsn" names the database.
func statusChild(spec string) {
	dialect, dsn, _ := strings.Cut(spec, "|")
	db, err := models.Open(models.Target{Dialect: models.Dialect(dialect), DSN: dsn})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	store := models.NewStatusStore(db)
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	for w := range 8 {
		go func() {
			for i := 0; ; i++ {
				value := fmt.Sprintf(`"w%d-%d"`, w, i)
				s, err := store.Put(context.Background(), "crash", json.RawMessage(value), nil)
				mu.Lock()
				if err != nil {
					fmt.Fprintln(out, "error", err)
				} else {
					fmt.Fprintln(out, "ok", s.Version, value)
				}
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	select {}
}

// TestStatusSurvivesKill: a process that Puts from 8 goroutines is
// killed (SIGKILL, no shutdown) while it writes; every version it had
// acknowledged is in the database afterwards: the stored version is at
// least the highest acknowledged one, and if equal it holds that Put's
// value. That is what a 200 from PUT /api/status/{key} promises, on every
// dialect (SQLite with the server's WAL and synchronous=NORMAL: a process
// crash, not a power loss).
func TestStatusSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			db := testenv.Database(t, dialect)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			child := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
			child.Env = append(os.Environ(), statusChildEnv+"="+string(dialect)+"|"+db.Target.DSN)
			stdout, err := child.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := child.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(stdout)
			var acked uint64
			values := map[uint64]string{}
			for n := 0; n < 300 && sc.Scan(); n++ {
				f := strings.Fields(sc.Text())
				if len(f) != 3 || f[0] != "ok" {
					child.Process.Kill()
					child.Wait()
					t.Fatalf("child: %s", sc.Text())
				}
				v, _ := strconv.ParseUint(f[1], 10, 64)
				values[v] = f[2]
				acked = max(acked, v)
			}
			child.Process.Kill() // mid-write: other Puts are in flight
			child.Wait()
			if acked == 0 {
				t.Fatal("the child acknowledged no Put")
			}
			got, err := models.NewStatusStore(testenv.Open(t, db.Target).Gorm).Get(context.Background(), "crash")
			if err != nil {
				t.Fatal(err)
			}
			if got.Version < acked || got.Version == acked && string(got.Value) != values[acked] {
				t.Errorf("after the kill: version %d %s; want at least the acknowledged %d (%s)", got.Version, got.Value, acked, values[acked])
			}
		})
	}
}
