package handlers_test

// rfc6455_test.go speaks raw RFC 6455 to the running server over a plain
// net.Conn (its own HTTP upgrade, masked-frame writer and frame reader), so
// it can send what no polite client library sends: a Ping and a Close in one
// TCP segment, a Close in the middle of a burst, fragments with control
// frames between them, reserved bits, unknown opcodes, unmasked frames.
// Section numbers are RFC 6455's.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"switchboard/handlers"
	"switchboard/models"
	"switchboard/ws"
)

// Opcodes (§5.2).
const (
	opCont   byte = 0x0
	opText   byte = 0x1
	opBinary byte = 0x2
	opClose  byte = 0x8
	opPing   byte = 0x9
	opPong   byte = 0xA
)

// rawReadTimeout bounds every read of the raw client.
const rawReadTimeout = 5 * time.Second

// wsFrame is one frame as it was on the wire.
type wsFrame struct {
	fin     bool
	rsv     byte // the RSV1..3 bits, in place (0x70 mask)
	op      byte
	payload []byte
}

func (f wsFrame) String() string {
	p := f.payload
	if len(p) > 40 {
		p = p[:40]
	}
	return fmt.Sprintf("{fin=%v rsv=%#x op=%#x len=%d %q}", f.fin, f.rsv, f.op, len(f.payload), p)
}

// closeCode returns the status code of a close frame: 1005 when the payload
// is empty (§7.1.5), -1 when it is malformed (one byte).
func (f wsFrame) closeCode() (int, string) {
	switch len(f.payload) {
	case 0:
		return websocket.CloseNoStatusReceived, ""
	case 1:
		return -1, ""
	}
	return int(binary.BigEndian.Uint16(f.payload)), string(f.payload[2:])
}

// encodeFrame builds a client frame. masked false makes the unmasked frame
// a server would send, which a server must refuse from a client (§5.1).
func encodeFrame(fin bool, rsv, op byte, payload []byte, masked bool) []byte {
	b0 := rsv | op
	if fin {
		b0 |= 0x80
	}
	var maskBit byte
	if masked {
		maskBit = 0x80
	}
	h := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		h = append(h, maskBit|byte(n))
	case n <= 0xFFFF:
		h = append(h, maskBit|126)
		h = binary.BigEndian.AppendUint16(h, uint16(n))
	default:
		h = append(h, maskBit|127)
		h = binary.BigEndian.AppendUint64(h, uint64(n))
	}
	if !masked {
		return append(h, payload...)
	}
	var key [4]byte
	if _, err := rand.Read(key[:]); err != nil {
		panic(err)
	}
	h = append(h, key[:]...)
	for i, b := range payload {
		h = append(h, b^key[i%4])
	}
	return h
}

// masked is a final, masked frame: what a conforming client sends.
func masked(op byte, payload []byte) []byte { return encodeFrame(true, 0, op, payload, true) }

// closeBody is a close frame payload: code then reason (§5.5.1).
func closeBody(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// rawWS is one raw client connection.
type rawWS struct {
	c  net.Conn
	br *bufio.Reader
}

// dialRaw opens a TCP connection to the env's server, performs the opening
// handshake by hand (§4.1) and checks Sec-WebSocket-Accept. rcvbuf > 0
// pins the client's socket receive buffer (no autotuning), so a client
// that stops reading makes the server's writes block soon.
func dialRaw(t *testing.T, e *env, path string, rcvbuf int) *rawWS {
	t.Helper()
	u, err := url.Parse(e.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", u.Host, err)
	}
	t.Cleanup(func() { c.Close() })
	if rcvbuf > 0 {
		if err := c.(*net.TCPConn).SetReadBuffer(rcvbuf); err != nil {
			t.Fatal(err)
		}
	}
	var nonce [16]byte
	rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := "GET " + path + " HTTP/1.1\r\n" +
		"Host: " + u.Host + "\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\n" +
		"Sec-WebSocket-Version: 13\r\n\r\n"
	c.SetDeadline(time.Now().Add(rawReadTimeout))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("GET %s: write handshake: %v", redactToken(path), err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("GET %s: read handshake: %v", redactToken(path), err)
	}
	resp.Body.Close()
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	accept := base64.StdEncoding.EncodeToString(sum[:])
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") ||
		resp.Header.Get("Sec-WebSocket-Accept") != accept {
		t.Fatalf("GET %s = %d Upgrade %q Accept %q, want 101 websocket %q",
			redactToken(path), resp.StatusCode, resp.Header.Get("Upgrade"), resp.Header.Get("Sec-WebSocket-Accept"), accept)
	}
	c.SetDeadline(time.Time{})
	return &rawWS{c: c, br: br}
}

func redactToken(path string) string {
	if i := strings.Index(path, "token="); i >= 0 {
		return path[:i] + "token=…"
	}
	return path
}

// write sends b in one Write call (one TCP segment for small b on
// loopback), bounded by a deadline.
func (w *rawWS) write(t *testing.T, b ...[]byte) {
	t.Helper()
	w.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := w.c.Write(bytes.Join(b, nil)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// next reads one frame within rawReadTimeout. Server frames must be
// unmasked (§5.1).
func (w *rawWS) next() (wsFrame, error) {
	w.c.SetReadDeadline(time.Now().Add(rawReadTimeout))
	var h [2]byte
	if _, err := io.ReadFull(w.br, h[:]); err != nil {
		return wsFrame{}, err
	}
	f := wsFrame{fin: h[0]&0x80 != 0, rsv: h[0] & 0x70, op: h[0] & 0x0F}
	if h[1]&0x80 != 0 {
		return f, errors.New("server frame is masked (RFC 6455 §5.1)")
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(w.br, b[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(w.br, b[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 16<<20 {
		return f, fmt.Errorf("frame length %d", n)
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(w.br, f.payload); err != nil {
		return f, err
	}
	return f, nil
}

// mustNext reads one frame and fails the test on an error.
func (w *rawWS) mustNext(t *testing.T) wsFrame {
	t.Helper()
	f, err := w.next()
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return f
}

// readJSON reads one text frame holding a JSON object.
func (w *rawWS) readJSON(t *testing.T) map[string]any {
	t.Helper()
	f := w.mustNext(t)
	if f.op != opText || !f.fin {
		t.Fatalf("frame %v, want one final text frame", f)
	}
	var m map[string]any
	if err := json.Unmarshal(f.payload, &m); err != nil {
		t.Fatalf("frame %q is not JSON: %v", f.payload, err)
	}
	return m
}

// expectClose reads until a close frame, checks its code (and that the
// frame is well formed: FIN, no RSV, payload ≤ 125, reason valid UTF-8,
// §5.5 and §5.5.1), and returns the data frames read before it. Control
// frames other than close before it fail the test.
func (w *rawWS) expectClose(t *testing.T, want int) []wsFrame {
	t.Helper()
	var data []wsFrame
	for {
		f, err := w.next()
		if err != nil {
			t.Fatalf("after %d data frames: %v, want a close frame %d", len(data), err, want)
		}
		switch f.op {
		case opText, opBinary, opCont:
			data = append(data, f)
			continue
		case opClose:
		default:
			t.Fatalf("frame %v before the close frame, want close %d", f, want)
		}
		code, reason := f.closeCode()
		if !f.fin || f.rsv != 0 || len(f.payload) > 125 || !utf8.ValidString(reason) {
			t.Fatalf("close frame %v is malformed", f)
		}
		if code != want {
			t.Fatalf("close frame code %d %q, want %d", code, reason, want)
		}
		return data
	}
}

// expectEOF checks that the server closes TCP cleanly (FIN, not RST)
// within rawReadTimeout and sends nothing more.
func (w *rawWS) expectEOF(t *testing.T) {
	t.Helper()
	f, err := w.next()
	if err == nil {
		t.Fatalf("frame %v after the close frame, want EOF", f)
	}
	if err != io.EOF {
		t.Fatalf("after the close frame: %v, want EOF (a clean TCP close)", err)
	}
}

// rawSocket is one kind of socket: open dials it raw and reads what the
// server sends first, so the next frame is an answer to the test.
type rawSocket struct {
	name string
	open func(t *testing.T, e *env, rcvbuf int) *rawWS
}

// userSeq makes user names unique within an env.
var userSeq atomic.Int64

var rawSockets = []rawSocket{
	{"echo", func(t *testing.T, e *env, rcvbuf int) *rawWS {
		return dialRaw(t, e, "/ws/echo/", rcvbuf)
	}},
	{"chat", func(t *testing.T, e *env, rcvbuf int) *rawWS {
		u := e.createUser(t, fmt.Sprintf("alice%d", userSeq.Add(1)), false)
		w := dialRaw(t, e, "/ws/chat/?token="+url.QueryEscape(e.token(t, u)), rcvbuf)
		if m := w.readJSON(t); m["type"] != "welcome" {
			t.Fatalf("chat: first frame %v, want welcome", m)
		}
		if m := w.readJSON(t); m["type"] != "join" {
			t.Fatalf("chat: second frame %v, want join", m)
		}
		return w
	}},
	{"status", func(t *testing.T, e *env, rcvbuf int) *rawWS {
		u := e.createUser(t, fmt.Sprintf("sam%d", userSeq.Add(1)), false)
		w := dialRaw(t, e, "/ws/status/system/?token="+url.QueryEscape(e.token(t, u)), rcvbuf)
		if m := w.readJSON(t); m["type"] != "status" {
			t.Fatalf("status: first frame %v, want status", m)
		}
		return w
	}},
}

func rawSocketNamed(name string) rawSocket {
	for _, s := range rawSockets {
		if s.name == name {
			return s
		}
	}
	panic("no raw socket " + name)
}

// TestRFC6455ClientCloseIsEchoed: a client's Close is answered with a
// Close echoing its status code (§5.5.1), and only then does the server
// close TCP (§7.1.1), on every kind of socket.
func TestRFC6455ClientCloseIsEchoed(t *testing.T) {
	closes := []struct {
		name string
		body []byte
		want int
	}{
		{"1000 bye", closeBody(1000, "bye"), 1000},
		{"4000", closeBody(4000, "app-defined"), 4000},
		{"1001 going away", closeBody(1001, ""), 1001},
		{"123-byte reason", closeBody(1000, strings.Repeat("r", 123)), 1000},
		// No status code: §5.5.1 lets the reply carry none or 1000; we
		// send 1000.
		{"empty payload", nil, 1000},
	}
	for _, s := range rawSockets {
		for _, tc := range closes {
			t.Run(s.name+"/"+tc.name, func(t *testing.T) {
				e := newEnv(t, models.SQLite)
				w := s.open(t, e, 0)
				w.write(t, masked(opClose, tc.body))
				if data := w.expectClose(t, tc.want); len(data) > 0 {
					t.Errorf("data frames %v before the close reply, want none", data)
				}
				w.expectEOF(t)
			})
		}
	}
}

// TestRFC6455PingAndCloseInOneSegment: frames before a Close are still
// handled, so a Ping written in the same TCP segment as the Close gets its
// Pong, with the same payload, before the server's Close (§5.5.2, §5.5.3).
func TestRFC6455PingAndCloseInOneSegment(t *testing.T) {
	for _, s := range rawSockets {
		t.Run(s.name, func(t *testing.T) {
			e := newEnv(t, models.SQLite)
			for i := 0; i < 10; i++ {
				w := s.open(t, e, 0)
				payload := []byte("ping-" + strconv.Itoa(i))
				w.write(t, masked(opPing, payload), masked(opClose, closeBody(1000, "bye")))
				f := w.mustNext(t)
				if f.op != opPong || !bytes.Equal(f.payload, payload) {
					t.Fatalf("round %d: first frame %v, want pong %q", i, f, payload)
				}
				w.expectClose(t, 1000)
				w.expectEOF(t)
			}
		})
	}
}

// TestRFC6455CloseDuringBurst: a client that stops reading while the
// server is writing a burst to it, then sends Close, still gets every
// frame the server had started, whole and in order, then a Close and a
// clean TCP close (not a reset). The client's receive buffer is pinned
// small, so the server's writer is blocked on the socket when the Close
// arrives.
func TestRFC6455CloseDuringBurst(t *testing.T) {
	noRateLimit := withClient(func(c *ws.ClientConfig) { c.RateLimit = 0 })

	t.Run("echo", func(t *testing.T) {
		e := newEnv(t, models.SQLite, noRateLimit)
		w := dialRaw(t, e, "/ws/echo/", 32<<10)
		const n = 200 // 200 × 60 kB: far more than both sockets' buffers
		sent := make([][]byte, n)
		var burst [][]byte
		for i := range sent {
			sent[i] = []byte(fmt.Sprintf("%04d:%s", i, strings.Repeat("e", 60000)))
			burst = append(burst, masked(opText, sent[i]))
		}
		w.write(t, burst...)
		w.write(t, masked(opClose, closeBody(1000, "bye")))
		got := w.expectClose(t, 1000)
		for i, f := range got {
			if f.op != opText || !f.fin || !bytes.Equal(f.payload, sent[i]) {
				t.Fatalf("echo %d = %v, want the text sent %d-th", i, f, i)
			}
		}
		w.expectEOF(t)
		t.Logf("%d of %d echoes arrived before the close frame", len(got), n)
	})

	t.Run("chat", func(t *testing.T) {
		e := newEnv(t, models.SQLite, noRateLimit)
		alice := e.createUser(t, "alice", false)
		w := dialRaw(t, e, "/ws/chat/?token="+url.QueryEscape(e.token(t, alice)), 32<<10)
		if m := w.readJSON(t); m["type"] != "welcome" {
			t.Fatalf("first frame %v, want welcome", m)
		}
		anna := e.chat(t, e.createUser(t, "anna", false)) // chat-a too; never reads
		before := e.hub.Stats.MessagesOut.Load()
		const n = 300 // 300 × 30 kB to alice
		sent := make([]string, n)
		for i := range sent {
			sent[i] = fmt.Sprintf("%04d:%s", i, strings.Repeat("c", 30000))
			anna.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := anna.WriteMessage(websocket.TextMessage, []byte(sent[i])); err != nil {
				t.Fatalf("anna sends %d: %v", i, err)
			}
		}
		// Every message has been queued to both members (and alice's
		// writer is stuck on her full socket).
		deadline := time.Now().Add(10 * time.Second)
		for e.hub.Stats.MessagesOut.Load() < before+2*n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d of %d frames queued", e.hub.Stats.MessagesOut.Load()-before, 2*n)
			}
			time.Sleep(5 * time.Millisecond)
		}
		w.write(t, masked(opClose, closeBody(1000, "bye")))
		got := w.expectClose(t, 1000)
		next := 0
		for _, f := range got {
			var m map[string]any
			if f.op != opText || !f.fin || json.Unmarshal(f.payload, &m) != nil {
				t.Fatalf("frame %v, want a JSON text frame", f)
			}
			if m["type"] != "message" {
				continue // anna's join
			}
			if next >= n || m["text"] != sent[next] {
				t.Fatalf("message %d = %.40q…, want the %d-th sent", next, m["text"], next)
			}
			next++
		}
		w.expectEOF(t)
		t.Logf("%d of %d messages arrived before the close frame", next, n)
	})
}

// TestRFC6455ServerClosesFirst: a violation makes the server close first
// with its code; the client's reply Close is accepted and the server then
// closes TCP at once (long before CloseGrace). A client that never
// replies is dropped after CloseGrace.
func TestRFC6455ServerClosesFirst(t *testing.T) {
	tooBig := masked(opText, bytes.Repeat([]byte("x"), 64<<10+1))
	tests := []struct {
		socket string
		name   string
		frame  []byte
		want   int
	}{
		{"chat", "binary frame", masked(opBinary, []byte{1, 2, 3}), 1003},
		{"status", "binary frame", masked(opBinary, []byte{1, 2, 3}), 1003},
		{"echo", "invalid utf-8", masked(opText, []byte("ok \xff\xfe")), 1007},
		{"chat", "invalid utf-8", masked(opText, []byte("ok \xc3\x28")), 1007},
		{"status", "invalid utf-8", masked(opText, []byte("\xed\xa0\x80")), 1007}, // a surrogate
		{"echo", "over WS_MAX_MESSAGE_BYTES", tooBig, 1009},
		{"chat", "over WS_MAX_MESSAGE_BYTES", tooBig, 1009},
	}
	const grace = 2 * time.Second
	for _, tc := range tests {
		t.Run(tc.socket+"/"+tc.name, func(t *testing.T) {
			e := newEnv(t, models.SQLite, withClient(func(c *ws.ClientConfig) { c.CloseGrace = grace }))
			w := rawSocketNamed(tc.socket).open(t, e, 0)
			w.write(t, tc.frame)
			w.expectClose(t, tc.want)
			start := time.Now()
			w.write(t, masked(opClose, closeBody(tc.want, "")))
			w.expectEOF(t)
			if d := time.Since(start); d > grace/2 {
				t.Errorf("TCP closed %v after the reply close, want at once", d)
			}
		})
	}

	// A socket refused after the upgrade (Client.Reject) closes first too.
	rejects := []struct {
		name string
		path func(t *testing.T, e *env) string
		want int
	}{
		{"chat/bad token", func(*testing.T, *env) string { return "/ws/chat/?token=not-a-jwt" }, 4001},
		{"chat/no token", func(*testing.T, *env) string { return "/ws/chat/" }, 4001},
		{"status/bad key", func(t *testing.T, e *env) string {
			return "/ws/status/a*b/?token=" + url.QueryEscape(e.token(t, e.createUser(t, "sam", false)))
		}, 4000},
	}
	for _, tc := range rejects {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, models.SQLite, withClient(func(c *ws.ClientConfig) { c.CloseGrace = grace }))
			w := dialRaw(t, e, tc.path(t, e), 0)
			w.expectClose(t, tc.want)
			start := time.Now()
			w.write(t, masked(opClose, closeBody(tc.want, "")))
			w.expectEOF(t)
			if d := time.Since(start); d > grace/2 {
				t.Errorf("TCP closed %v after the reply close, want at once", d)
			}
		})
	}

	t.Run("echo/peer never replies", func(t *testing.T) {
		e := newEnv(t, models.SQLite, withClient(func(c *ws.ClientConfig) {
			c.CloseGrace, c.WriteTimeout = 200*time.Millisecond, 500*time.Millisecond
		}))
		w := dialRaw(t, e, "/ws/echo/", 0)
		w.write(t, masked(opText, []byte("\xff")))
		w.expectClose(t, 1007)
		w.expectEOF(t) // within rawReadTimeout
	})
}

// TestRFC6455PingPong: pings are answered with their payload up to the
// 125-byte limit of control frames (§5.5, §5.5.2); an unsolicited pong is
// ignored (§5.5.3); a longer ping is a protocol error (1002).
func TestRFC6455PingPong(t *testing.T) {
	for _, s := range rawSockets {
		t.Run(s.name, func(t *testing.T) {
			e := newEnv(t, models.SQLite)
			w := s.open(t, e, 0)
			for _, size := range []int{0, 1, 125} {
				p := bytes.Repeat([]byte{'p'}, size)
				w.write(t, masked(opPing, p))
				if f := w.mustNext(t); f.op != opPong || !f.fin || !bytes.Equal(f.payload, p) {
					t.Fatalf("ping of %d bytes answered with %v, want a pong with its payload", size, f)
				}
			}
			// Unsolicited pong: no answer, the connection stays open.
			w.write(t, masked(opPong, []byte("unsolicited")), masked(opPing, []byte("probe")))
			if f := w.mustNext(t); f.op != opPong || string(f.payload) != "probe" {
				t.Fatalf("after an unsolicited pong, got %v, want only the pong to the probe", f)
			}
			w.write(t, masked(opPing, bytes.Repeat([]byte{'p'}, 126)))
			w.expectClose(t, websocket.CloseProtocolError)
			w.expectEOF(t)
		})
	}
}

// TestRFC6455Fragmentation: a fragmented message is reassembled, and
// control frames may be injected between its fragments (§5.4): the pong
// comes first, then the whole message.
func TestRFC6455Fragmentation(t *testing.T) {
	t.Run("echo text with ping", func(t *testing.T) {
		e := newEnv(t, models.SQLite)
		w := dialRaw(t, e, "/ws/echo/", 0)
		w.write(t,
			encodeFrame(false, 0, opText, []byte("Hel"), true),
			masked(opPing, []byte("mid")),
			encodeFrame(false, 0, opCont, []byte("lo, "), true),
			encodeFrame(true, 0, opCont, []byte("wörld"), true))
		if f := w.mustNext(t); f.op != opPong || string(f.payload) != "mid" {
			t.Fatalf("first frame %v, want pong \"mid\"", f)
		}
		if f := w.mustNext(t); f.op != opText || !f.fin || string(f.payload) != "Hello, wörld" {
			t.Fatalf("echo %v, want text \"Hello, wörld\"", f)
		}
	})
	t.Run("echo binary with unsolicited pong", func(t *testing.T) {
		e := newEnv(t, models.SQLite)
		w := dialRaw(t, e, "/ws/echo/", 0)
		w.write(t,
			encodeFrame(false, 0, opBinary, []byte{0, 1}, true),
			masked(opPong, nil),
			encodeFrame(true, 0, opCont, []byte{2, 0xff}, true))
		if f := w.mustNext(t); f.op != opBinary || !bytes.Equal(f.payload, []byte{0, 1, 2, 0xff}) {
			t.Fatalf("echo %v, want binary 00 01 02 ff", f)
		}
	})
	t.Run("echo utf-8 split inside a character", func(t *testing.T) {
		e := newEnv(t, models.SQLite)
		w := dialRaw(t, e, "/ws/echo/", 0)
		é := []byte("é")
		w.write(t,
			encodeFrame(false, 0, opText, []byte{'a', é[0]}, true),
			encodeFrame(true, 0, opCont, []byte{é[1], 'b'}, true))
		if f := w.mustNext(t); f.op != opText || string(f.payload) != "aéb" {
			t.Fatalf("echo %v, want text \"aéb\"", f)
		}
	})
	t.Run("chat text with ping", func(t *testing.T) {
		e := newEnv(t, models.SQLite)
		w := rawSocketNamed("chat").open(t, e, 0)
		w.write(t,
			encodeFrame(false, 0, opText, []byte("frag"), true),
			masked(opPing, []byte("x")),
			encodeFrame(true, 0, opCont, []byte("mented"), true))
		if f := w.mustNext(t); f.op != opPong || string(f.payload) != "x" {
			t.Fatalf("first frame %v, want pong \"x\"", f)
		}
		if m := w.readJSON(t); m["type"] != "message" || m["text"] != "fragmented" {
			t.Fatalf("frame %v, want message \"fragmented\"", m)
		}
	})
}

// TestRFC6455ProtocolErrors: frames RFC 6455 forbids fail the connection
// with 1002 on every kind of socket, then TCP closes.
func TestRFC6455ProtocolErrors(t *testing.T) {
	tests := []struct {
		name   string
		frames [][]byte
	}{
		{"RSV1 without an extension (§5.2)", [][]byte{encodeFrame(true, 0x40, opText, []byte("x"), true)}},
		{"RSV2 (§5.2)", [][]byte{encodeFrame(true, 0x20, opText, []byte("x"), true)}},
		{"RSV3 (§5.2)", [][]byte{encodeFrame(true, 0x10, opText, []byte("x"), true)}},
		{"RSV on a ping", [][]byte{encodeFrame(true, 0x10, opPing, nil, true)}},
		{"opcode 0x3 (§5.2)", [][]byte{masked(0x3, []byte("x"))}},
		{"opcode 0x7", [][]byte{masked(0x7, nil)}},
		{"opcode 0xB", [][]byte{masked(0xB, []byte("x"))}},
		{"opcode 0xF", [][]byte{masked(0xF, nil)}},
		{"unmasked text (§5.1)", [][]byte{encodeFrame(true, 0, opText, []byte("hi"), false)}},
		{"unmasked ping (§5.1)", [][]byte{encodeFrame(true, 0, opPing, nil, false)}},
		{"continuation without a start (§5.4)", [][]byte{masked(opCont, []byte("x"))}},
		{"data frame inside a fragmented message (§5.4)", [][]byte{
			encodeFrame(false, 0, opText, []byte("a"), true), masked(opText, []byte("b"))}},
		{"fragmented ping (§5.5)", [][]byte{encodeFrame(false, 0, opPing, []byte("p"), true)}},
		{"ping of 126 bytes (§5.5)", [][]byte{masked(opPing, bytes.Repeat([]byte{'p'}, 126))}},
		{"close code 1005 on the wire (§7.4.1)", [][]byte{masked(opClose, closeBody(1005, ""))}},
		{"close code 999", [][]byte{masked(opClose, closeBody(999, ""))}},
		{"close code 5000", [][]byte{masked(opClose, closeBody(5000, ""))}},
		{"close reason not utf-8 (§5.5.1)", [][]byte{masked(opClose, closeBody(1000, "\xff"))}},
	}
	for _, s := range rawSockets {
		for _, tc := range tests {
			t.Run(s.name+"/"+tc.name, func(t *testing.T) {
				e := newEnv(t, models.SQLite)
				w := s.open(t, e, 0)
				w.write(t, tc.frames...)
				w.expectClose(t, websocket.CloseProtocolError)
				w.expectEOF(t)
			})
		}
	}
}

// socketCloses scrapes switchboard_socket_closes_total from the Prometheus
// handler over the env's hub (newEnv serves no /metrics route).
func socketCloses(t *testing.T, e *env) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	handlers.NewMetrics(e.hub, nil).Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d, want 200", rec.Code)
	}
	out := map[string]float64{}
	const prefix = `switchboard_socket_closes_total{code="`
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		code, value, ok := strings.Cut(rest, `"} `)
		if !ok {
			t.Fatalf("metrics line %q", line)
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[code] = v
	}
	return out
}

// TestRFC6455CloseMetrics: switchboard_socket_closes_total counts a
// client-initiated clean close under the peer's code (1000 for an empty
// close), never as a dropped connection (1006); a protocol error counts
// under the 1002 the server sent.
func TestRFC6455CloseMetrics(t *testing.T) {
	e := newEnv(t, models.SQLite)
	for _, c := range []struct {
		socket string
		body   []byte
		want   int
	}{
		{"echo", closeBody(1000, "bye"), 1000},
		{"chat", closeBody(1000, "bye"), 1000},
		{"status", closeBody(1000, "bye"), 1000},
		{"echo", nil, 1000},
		{"chat", closeBody(4000, ""), 4000},
	} {
		w := rawSocketNamed(c.socket).open(t, e, 0)
		w.write(t, masked(opClose, c.body))
		w.expectClose(t, c.want)
		w.expectEOF(t)
	}
	w := rawSocketNamed("echo").open(t, e, 0)
	w.write(t, masked(0x3, nil))
	w.expectClose(t, websocket.CloseProtocolError)
	w.expectEOF(t)

	want := map[string]float64{"1000": 4, "4000": 1, "1002": 1}
	// The server counts when it sees the connection end; allow it a moment.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := socketCloses(t, e)
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("switchboard_socket_closes_total = %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRFC6455PoliteClientClose: a client library that closes politely
// (Python websockets' close(), a browser's ws.close()) sends Close and
// waits for the reply; gorilla's client doing the same must see close
// 1000, not 1006 (an abnormal closure), on every kind of socket.
func TestRFC6455PoliteClientClose(t *testing.T) {
	for _, s := range []string{"chat", "echo", "status"} {
		t.Run(s, func(t *testing.T) {
			e := newEnv(t, models.SQLite)
			var conn *websocket.Conn
			switch s {
			case "chat":
				conn = e.chat(t, e.createUser(t, "alice", false))
			case "echo":
				conn = e.dial(t, "/ws/echo/")
			case "status":
				conn = e.dial(t, "/ws/status/system/?token="+url.QueryEscape(e.token(t, e.createUser(t, "sam", false))))
			}
			msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
			if err := conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(5*time.Second)); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				_, _, err := conn.ReadMessage()
				if err == nil {
					continue // welcome, join, status: sent before our close
				}
				var ce *websocket.CloseError
				if !errors.As(err, &ce) || ce.Code != websocket.CloseNormalClosure {
					t.Fatalf("ReadMessage after our close = %v, want *websocket.CloseError 1000", err)
				}
				return
			}
		})
	}
}
