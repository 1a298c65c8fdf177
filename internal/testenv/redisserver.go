package testenv

import (
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// RedisServer is a redis-server of one test's own on a free 127.0.0.1 port,
// without persistence, for tests that stop and restart Redis. It belongs
// to the test that started it.
type RedisServer struct {
	URL  string // redis://127.0.0.1:PORT/0
	addr string
	bin  string
	dir  string
	cmd  *exec.Cmd
}

// StartRedisServer starts a redis-server (TEST_REDIS_SERVER, else the one on
// PATH; the test skips without one, naming the variable) and kills it at
// cleanup.
func StartRedisServer(tb testing.TB) *RedisServer {
	tb.Helper()
	bin := os.Getenv(envRedisServer)
	if bin == "" {
		bin, _ = exec.LookPath("redis-server")
	}
	if bin == "" {
		tb.Skip("redis-server not found: test skipped (set " + envRedisServer + "; scripts/test.sh does)")
	}
	addr := FreeAddr(tb)
	r := &RedisServer{URL: "redis://" + addr + "/0", addr: addr, bin: bin, dir: tb.TempDir()}
	r.Start(tb)
	tb.Cleanup(r.Stop)
	return r
}

// Start starts the server again after Stop, on the same port, and waits
// until it accepts connections.
func (r *RedisServer) Start(tb testing.TB) {
	tb.Helper()
	_, port, _ := net.SplitHostPort(r.addr)
	cmd := exec.Command(r.bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", r.dir)
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	r.cmd = cmd
	for range 100 {
		if conn, err := net.Dial("tcp", r.addr); err == nil {
			conn.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("redis-server on %s did not start within 5s", r.addr)
}

// Stop kills the server (no shutdown: an outage) and waits for it to exit.
func (r *RedisServer) Stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}
