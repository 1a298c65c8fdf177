package ws

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// echoServer serves Accept'ed clients that echo every text frame; a frame
// "deep:<n>" first runs n KiB deep in nested calls, so the read loop's
// stack grows and it moves to a fresh goroutine (reader.run). finished
// counts read loops that have ended.
func echoServer(t *testing.T, cfg *ClientConfig, finished *atomic.Int64) *httptest.Server {
	t.Helper()
	u := &websocket.Upgrader{WriteBufferPool: &sync.Pool{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(u, w, r, cfg)
		if err != nil {
			return
		}
		if c.br == nil {
			t.Error("Accept: gorilla does not read through the client's reader")
		}
		c.OnFinish = func() { finished.Add(1) }
		go c.Serve(func(b []byte) {
			var kib int
			if _, err := fmt.Sscanf(string(b), "deep:%d", &kib); err == nil {
				deep(kib)
			}
			c.Send(b)
		}, nil)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// deep uses about kib KiB of stack.
//
//go:noinline
func deep(kib int) byte {
	var b [1000]byte
	if kib > 0 {
		b[kib%len(b)] = deep(kib - 1)
	}
	return b[0]
}

// clientFrame is a masked client frame (RFC 6455 §5.3; the key is zero,
// so the payload is sent as is).
func clientFrame(fin bool, op byte, payload string) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n < 1<<16:
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	f = append(f, 0, 0, 0, 0)
	return append(f, payload...)
}

func dialEcho(t *testing.T, srv *httptest.Server) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	return conn
}

// TestReaderHandsEveryMessageOnInOrder writes frames in the shapes that
// matter to a read loop that waits in its buffered reader between
// messages: several messages in one write (the later ones already in the
// buffer when the first is handled), a ping in the same write as a
// message, a message longer than the buffer, a fragmented message split
// across writes, and messages after ones that moved the loop to a fresh
// goroutine. Every message must come back once, in order, the ping be
// answered, and the loop end once when the peer closes.
func TestReaderHandsEveryMessageOnInOrder(t *testing.T) {
	cfg := DefaultClientConfig()
	cfg.RateLimit = 0
	var finished atomic.Int64
	srv := echoServer(t, &cfg, &finished)
	conn := dialEcho(t, srv)
	pongs := make(chan string, 4)
	conn.SetPongHandler(func(s string) error { pongs <- s; return nil })
	raw := conn.UnderlyingConn()

	long := strings.Repeat("l", 5*ReadBufferSize)
	writes := [][]byte{
		bytes.Join([][]byte{clientFrame(true, 1, "a1"), clientFrame(true, 1, "a2"), clientFrame(true, 1, "a3")}, nil),
		append(clientFrame(true, 9, "p1"), clientFrame(true, 1, "b1")...),
		clientFrame(true, 1, long),
		append(clientFrame(true, 1, "deep:64"), clientFrame(true, 1, "c1")...),
		clientFrame(false, 1, "frag-"),
		clientFrame(true, 0, "ment"),
		clientFrame(true, 1, "deep:16"),
		clientFrame(true, 1, "d1"),
	}
	want := []string{"a1", "a2", "a3", "b1", long, "deep:64", "c1", "frag-ment", "deep:16", "d1"}
	for i := range 50 {
		writes = append(writes, clientFrame(true, 1, fmt.Sprintf("e%d", i)))
		want = append(want, fmt.Sprintf("e%d", i))
	}
	for i, w := range writes {
		if _, err := raw.Write(w); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	for i, w := range want {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("message %d (%.10q): %v", i, w, err)
		}
		if string(msg) != w {
			t.Fatalf("message %d = %.20q, want %.20q", i, msg, w)
		}
	}
	select {
	case p := <-pongs:
		if p != "p1" {
			t.Errorf("pong %q, want p1", p)
		}
	default:
		t.Error("the ping written with b1 was not answered before b1's echo")
	}
	if err := conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := conn.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Fatalf("after close: %v, want the 1000 echo", err)
	}
	for i := 0; i < 500 && finished.Load() == 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := finished.Load(); n != 1 {
		t.Fatalf("read loop ended %d times, want 1", n)
	}
}

// TestIdleReaderStacksStaySmall holds idle sockets whose read loops have
// each handled a message that needed 32 KiB of stack, and checks that the
// stack memory they keep is under 3.5 KiB a socket: each waits on a fresh
// goroutine's 2 KiB stack, where a loop parked in gorilla's NextReader
// kept 4 KiB or more.
func TestIdleReaderStacksStaySmall(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes frames larger; stack sizes are only meaningful without it")
	}
	const sockets = 500
	cfg := DefaultClientConfig()
	var finished atomic.Int64
	srv := echoServer(t, &cfg, &finished)
	before := stackInUse()
	for i := range sockets {
		conn := dialEcho(t, srv)
		if err := conn.WriteMessage(websocket.TextMessage, []byte("deep:32")); err != nil {
			t.Fatalf("socket %d: %v", i, err)
		}
		if _, msg, err := conn.ReadMessage(); err != nil || string(msg) != "deep:32" {
			t.Fatalf("socket %d: echo %q, %v", i, msg, err)
		}
	}
	// The echo is sent from inside the handler: wait (bounded) until every
	// loop has moved to its fresh goroutine and parked.
	checkIdleStacks(t, before, sockets, "")
}

// idleStackLimit is what an idle read loop may keep in stack: a fresh
// goroutine's 2 KiB plus what the runtime keeps aside (stack caches),
// never the 4 KiB a goroutine grows to.
const idleStackLimit = 3584

// stackInUse is the stack memory of the goroutines alive now.
func stackInUse() uint64 {
	runtime.GC() // frees the stacks of goroutines that have ended
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.StackInuse
}

// checkIdleStacks waits (bounded) until the stack memory grown since
// before, spread over sockets, is under idleStackLimit, and fails the test
// if it never is; after says what the sockets did, for the message.
func checkIdleStacks(t *testing.T, before uint64, sockets int, after string) {
	t.Helper()
	var per float64
	for i := 0; i < 100; i++ {
		per = float64(int64(stackInUse())-int64(before)) / float64(sockets)
		if per < idleStackLimit {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if per >= idleStackLimit {
		t.Fatalf("idle sockets keep %.0f bytes of stack each%s, want under %d", per, after, idleStackLimit)
	}
	t.Logf("%.0f bytes of stack per idle socket", per)
}

// TestIdleReaderStaysSmallAfterControlFrames: a client answers the
// server's pings (every PingInterval) with pongs, and may ping itself. A
// read loop that handed those frames to gorilla's NextReader was left
// waiting for the next data frame inside gorilla, on a 4 KiB stack, so
// every idle socket lost its 2 KiB again within one PingInterval. Here
// each socket, after a message, sends a pong and then a ping split across
// two writes (its masked payload must come back unmasked in the pong),
// and the loops must still keep under 3.5 KiB of stack each.
func TestIdleReaderStaysSmallAfterControlFrames(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes frames larger; stack sizes are only meaningful without it")
	}
	const sockets = 500
	cfg := DefaultClientConfig()
	var finished atomic.Int64
	srv := echoServer(t, &cfg, &finished)
	masked := func(op byte, payload string, key [4]byte) []byte {
		f := []byte{0x80 | op, 0x80 | byte(len(payload))}
		f = append(f, key[:]...)
		for i := range len(payload) {
			f = append(f, payload[i]^key[i%4])
		}
		return f
	}
	before := stackInUse()
	for i := range sockets {
		conn := dialEcho(t, srv)
		if err := conn.WriteMessage(websocket.TextMessage, []byte("x")); err != nil {
			t.Fatalf("socket %d: %v", i, err)
		}
		if _, msg, err := conn.ReadMessage(); err != nil || string(msg) != "x" {
			t.Fatalf("socket %d: echo %q, %v", i, msg, err)
		}
		raw := conn.UnderlyingConn()
		payload := fmt.Sprintf("ping-%d", i)
		ping := masked(opPing, payload, [4]byte{1, 2, 3, byte(i)})
		for j, w := range [][]byte{masked(opPong, "", [4]byte{9, 9, 9, 9}), ping[:3], ping[3:]} {
			if _, err := raw.Write(w); err != nil {
				t.Fatalf("socket %d, write %d: %v", i, j, err)
			}
			if j == 1 {
				time.Sleep(time.Millisecond) // let the server see the part alone
			}
		}
		want := append([]byte{0x80 | opPong, byte(len(payload))}, payload...)
		got := make([]byte, len(want))
		if _, err := io.ReadFull(raw, got); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("socket %d: answer to the ping %q, %v; want %q", i, got, err, want)
		}
	}
	checkIdleStacks(t, before, sockets, " after a pong and a ping")
	if n := finished.Load(); n != 0 {
		t.Errorf("%d read loops ended, want none", n)
	}
}

// TestControlHandlersBeforeFirstMessage: the read loop gives gorilla its
// ping, pong and close handlers only before its first NextReader (an idle
// socket keeps none of them), so the first frames gorilla ever reads must
// already meet them. A close frame with no status as the very first frame
// is answered with 1000 (gorilla's own handler would echo an empty close
// frame), and a ping between the fragments of the first message is
// answered with a pong before the message is echoed.
func TestControlHandlersBeforeFirstMessage(t *testing.T) {
	cfg := DefaultClientConfig()
	var finished atomic.Int64
	srv := echoServer(t, &cfg, &finished)

	raw := dialEcho(t, srv).UnderlyingConn()
	if _, err := raw.Write(clientFrame(true, opClose, "")); err != nil {
		t.Fatal(err)
	}
	want := []byte{0x80 | opClose, 2, 0x03, 0xe8} // 1000
	got := make([]byte, len(want))
	if _, err := io.ReadFull(raw, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("answer to an empty close as the first frame = %x, %v; want %x", got, err, want)
	}

	raw = dialEcho(t, srv).UnderlyingConn()
	var w []byte
	w = append(w, clientFrame(false, opText, "fi")...)
	w = append(w, clientFrame(true, opPing, "p1")...)
	w = append(w, clientFrame(true, 0, "rst")...)
	if _, err := raw.Write(w); err != nil {
		t.Fatal(err)
	}
	want = append([]byte{0x80 | opPong, 2}, "p1"...)
	want = append(want, 0x80|opText, 5)
	want = append(want, "first"...)
	got = make([]byte, len(want))
	if _, err := io.ReadFull(raw, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("answer to a ping inside the first message = %q, %v; want %q", got, err, want)
	}
}
