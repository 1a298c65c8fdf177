package ws

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

// ClientConfig holds the per-socket limits. Every field but CloseGrace is
// an environment setting (WS_*), so an operator or a benchmark can change
// it.
type ClientConfig struct {
	MaxMessageBytes int64         // larger frames close with 1009
	RateLimit       float64       // frames per second a client may send...
	RateBurst       int           // ...with this burst; beyond, close 1008
	SendQueue       int           // frames queued for a member; beyond, close 1013
	PingInterval    time.Duration // how often the server pings
	PongTimeout     time.Duration // silence after which the peer is dead
	WriteTimeout    time.Duration // longest a single write may block
	CloseGrace      time.Duration // how long to wait for the peer's close reply (fixed)
	AuthTimeout     time.Duration // switchboard.v1 without ?token=: wait this long for the auth frame
	TokenGrace      time.Duration // a token is enforced this long after its exp...
	EnforceExpiry   bool          // ...when this is true (WS_TOKEN_EXPIRY=enforce)
}

// DefaultClientConfig returns the limits the issues fix as defaults.
func DefaultClientConfig() ClientConfig {
	return ClientConfig{
		MaxMessageBytes: 64 << 10,
		RateLimit:       20,
		RateBurst:       40,
		SendQueue:       1024,
		PingInterval:    30 * time.Second,
		PongTimeout:     60 * time.Second,
		WriteTimeout:    10 * time.Second,
		CloseGrace:      2 * time.Second,
		AuthTimeout:     10 * time.Second,
		TokenGrace:      30 * time.Second,
		EnforceExpiry:   true,
	}
}

// Client is one WebSocket connection.
//
// Its read loop (Serve) is the only reader. Writes go through queue: the
// hub's fan-out appends shared Frames and, when no writer is running,
// starts one; writeLoop is the only goroutine that writes frames to the
// connection and it exits when the queue is empty, so an idle socket holds
// one goroutine and no write buffer. gorilla's own writes are limited to
// protocol-error closes, each a single atomic Write of one whole frame.
//
// A Hub binds itself to a client with bind (stats, and what to do when the
// connection ends) and stops one with Close or kill; it never touches the
// connection or those fields itself.
type Client struct {
	conn *websocket.Conn
	// br is the buffered reader gorilla reads conn through when the
	// client came from Accept (nil from NewClient): the idle read loop
	// waits in br.Peek, a shallow call, instead of deep inside gorilla.
	br  *bufio.Reader
	raw net.Conn
	rc  syscall.RawConn // raw's file descriptor, for writes that must not block; nil if it has none
	cfg *ClientConfig   // shared by every client; never written

	// UserID and Username identify the authenticated user (zero for
	// /ws/echo/ and before a switchboard.v1 auth frame). Hub.Identify sets
	// them, under the hub's lock, before the client joins a group.
	UserID   int64
	Username string

	// expires is when the token stops being valid, unix seconds (0: never
	// checked); version is the token's version. Both change on refresh.
	expires atomic.Int64
	version atomic.Int64

	mu      sync.Mutex
	queue   [][]byte // Frames waiting for the writer
	spare   [][]byte // a small finished batch's array, reused by the next queue
	writing bool     // a writer (the flusher or a writeLoop goroutine) owns the queue
	held    bool     // Hold is in effect: no writer takes a batch until Release
	inWrite bool     // a writeLoop is inside a write to the socket
	closing bool     // a close frame is queued or sent; no more data frames
	// closeSent is made by Close and closed by the writer once the close
	// frame is written (or writing failed), so Serve tears the connection
	// down only after the close frame has gone out (RFC 6455 §7.1.2).
	closeSent chan struct{}
	lastSeq   uint64 // highest Message.Seq queued, to drop stale pushes
	channels  []string

	// deadline is the write deadline set on raw, as time since clockBase
	// (the writer only): 8 bytes where a time.Time takes 24.
	deadline time.Duration
	hub      *Hub // set by bind: Serve's end removes c from it
	// OnFinish, if set before Serve, runs when the connection has ended,
	// before the hub lets Shutdown return (a leave announcement).
	OnFinish func()
	stats    *Stats // set by bind; nil for a client outside a hub
}

// ReadBufferSize is the size of the buffered reader Accept gives each
// connection, which every idle socket holds: the smallest gorilla takes
// over (more than 256 bytes) and a Go size class. A frame header fits
// many times over; a longer message is read through it in more reads.
const ReadBufferSize = 288

// Accept upgrades the request with u and wraps the connection in a
// Client whose idle read loop parks on a shallow stack (see Serve).
// u.ReadBufferSize must be 0: gorilla then reads through the buffered
// reader Accept hands it at the hijack (ReadBufferSize bytes; gorilla
// takes a hijacked reader of more than 256 bytes as its own), so the read
// loop can wait in that reader's Peek, a few frames deep, rather than in
// gorilla's NextReader. With any other u.ReadBufferSize the client works
// as one from NewClient. On error the upgrader has answered.
func Accept(u *websocket.Upgrader, w http.ResponseWriter, r *http.Request, cfg *ClientConfig) (*Client, error) {
	h := &hijacker{ResponseWriter: w}
	conn, err := u.Upgrade(h, r, nil)
	if err != nil {
		return nil, err
	}
	c := NewClient(conn, cfg)
	if u.ReadBufferSize == 0 {
		c.br = h.br
	}
	return c, nil
}

// hijacker hands gorilla a buffered reader of ReadBufferSize bytes in
// place of net/http's 4 KiB one, and keeps it for the Client.
type hijacker struct {
	http.ResponseWriter
	br *bufio.Reader
}

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("websocket: response does not implement http.Hijacker")
	}
	conn, brw, err := hj.Hijack()
	if err != nil || brw.Reader.Buffered() > 0 {
		// gorilla refuses a client that sent data before the handshake
		// ended: let it see net/http's reader with those bytes.
		return conn, brw, err
	}
	h.br = bufio.NewReaderSize(conn, ReadBufferSize)
	return conn, bufio.NewReadWriter(h.br, brw.Writer), nil
}

// NewClient wraps an upgraded connection. cfg is shared, not copied: every
// byte a client holds is multiplied by the sockets a process keeps open.
func NewClient(conn *websocket.Conn, cfg *ClientConfig) *Client {
	c := &Client{conn: conn, raw: conn.NetConn(), cfg: cfg}
	if sc, ok := c.raw.(syscall.Conn); ok {
		c.rc, _ = sc.SyscallConn()
	}
	return c
}

// setControlHandlers replaces gorilla's ping, pong and close handlers,
// which gorilla calls only from inside NextReader: the read loop sets
// them before its first NextReader, so a socket that never sends a
// message (the idle read loop takes pings and pongs itself, see control)
// keeps gorilla's two default closures, not three of ours.
func (c *Client) setControlHandlers() {
	conn := c.conn
	// Answer pings and close frames through our writer: gorilla's default
	// handlers would write from the reader goroutine.
	conn.SetPingHandler(func(data string) error {
		c.enqueueControl(makeFrame(opPong, []byte(data)))
		return nil
	})
	// The peer's Close is answered with a Close echoing its status code
	// (RFC 6455 §5.5.1); Serve then waits for that frame to be written
	// before closing TCP.
	conn.SetCloseHandler(func(code int, text string) error {
		if code == websocket.CloseNoStatusReceived {
			code = websocket.CloseNormalClosure
		}
		c.Close(CloseReason{Code: code})
		return nil
	})
	conn.SetPongHandler(func(string) error { return c.extendDeadline() })
}

// Subprotocol returns the subprotocol negotiated at the upgrade ("" for
// none).
func (c *Client) Subprotocol() string { return c.conn.Subprotocol() }

// SetExpiry records when the current token expires (zero: not
// enforced), for the hub's expiry sweep. Hub.Identify records its version.
func (c *Client) SetExpiry(exp time.Time) {
	var unix int64
	if !exp.IsZero() {
		unix = exp.Unix()
	}
	c.expires.Store(unix)
}

func (c *Client) tokenVersion() int64 { return c.version.Load() }

// expiredAt reports whether the token expired more than TokenGrace before
// now.
func (c *Client) expiredAt(now time.Time) bool {
	exp := c.expires.Load()
	return exp != 0 && now.After(time.Unix(exp, 0).Add(c.cfg.TokenGrace))
}

// CountProtocolError counts a malformed or unknown switchboard.v1 frame.
func (c *Client) CountProtocolError() { c.count(func(s *Stats) { s.ProtocolErrors.Add(1) }) }

// bind attaches the hub, whose stats c counts in and which removes c when
// the read loop ends (after OnFinish): a pointer, not a closure, so an
// idle socket holds no allocation for it. The hub calls it before c is
// visible to anything that may Close it.
func (c *Client) bind(h *Hub) {
	c.stats, c.hub = &h.Stats, h
}

// kill drops the connection at once, without a close handshake: what
// shutdown does to a socket whose peer never answered.
func (c *Client) kill() { c.raw.Close() }

// Reject closes c with r and drains its reads in the background until the
// peer answers or CloseGrace passes: the one way a handler refuses a socket
// it has accepted (bad token, bad group, shutdown).
func (c *Client) Reject(r CloseReason) {
	c.Close(r)
	go c.Serve(func([]byte) {}, func([]byte) {})
}

// Hold stops the writer from starting until Release, so frames queued in
// between (a welcome, then whatever the group sends once the client has
// joined) go out together and in order: a client that has read its
// welcome is already a member.
// A writer already running (frames sent before, e.g. switchboard.v1
// error frames) stops at its next batch.
func (c *Client) Hold() {
	c.mu.Lock()
	c.held = true
	c.mu.Unlock()
}

// Release undoes Hold and starts the writer for whatever is queued.
func (c *Client) Release() {
	c.mu.Lock()
	c.held = false
	if len(c.queue) > 0 {
		c.startWriterLocked()
	}
	c.mu.Unlock()
}

// SendFirst queues text frames for this client alone ahead of everything
// queued: while Hold is in effect, a welcome and a history replay built
// after joining (their offsets known only then) still go out before the
// live messages that arrived meanwhile.
func (c *Client) SendFirst(payloads ...[]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	q := make([][]byte, 0, len(payloads)+len(c.queue))
	for _, p := range payloads {
		q = append(q, TextFrame(p))
	}
	c.queue = append(q, c.queue...)
	c.startWriterLocked()
}

// Send queues one text frame for this client alone.
func (c *Client) Send(payload []byte) { c.enqueue(TextFrame(payload), 0) }

// SendBinary queues one binary frame for this client alone.
func (c *Client) SendBinary(payload []byte) { c.enqueue(makeFrame(opBinary, payload), 0) }

// SendSeq queues one text frame carrying seq; see Message.Seq.
func (c *Client) SendSeq(payload []byte, seq uint64) { c.enqueue(TextFrame(payload), seq) }

// enqueue appends f for the writer. seq, when non-zero, must grow: an
// older or repeated seq is dropped, so a subscriber never sees a stale
// status after a newer one. A full queue closes this client alone (1013):
// the fan-out never waits for a slow reader. It reports whether f was
// queued.
func (c *Client) enqueue(f Frame, seq uint64) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		c.count(func(s *Stats) { s.FramesDropped.Add(1) })
		return false
	}
	if seq != 0 {
		if seq <= c.lastSeq {
			c.mu.Unlock()
			return false
		}
		c.lastSeq = seq
	}
	// Slow means the peer is not reading: the queue is full while the
	// writer is stuck in a write (the socket buffer is full). A queue that
	// is full only because the writer has not been scheduled yet (a burst
	// on a busy process) may grow up to burstFactor times the limit.
	if n := len(c.queue); n >= c.cfg.SendQueue && (c.inWrite || n >= burstFactor*c.cfg.SendQueue) {
		c.mu.Unlock()
		c.count(func(s *Stats) { s.FramesDropped.Add(1) })
		c.Close(CloseSlowConsumer)
		return false
	}
	if c.queue == nil && c.spare != nil {
		c.queue, c.spare = c.spare[:0], nil
	}
	c.queue = append(c.queue, f)
	c.startWriterLocked()
	c.mu.Unlock()
	return true
}

// enqueueControl queues a ping or pong; control frames bypass the bound.
func (c *Client) enqueueControl(f Frame) {
	c.mu.Lock()
	if !c.closing {
		c.queue = append(c.queue, f)
		c.startWriterLocked()
	}
	c.mu.Unlock()
}

func (c *Client) count(f func(*Stats)) {
	if c.stats != nil {
		f(c.stats)
	}
}

// startWriterLocked hands c to the flusher when it has frames to write and
// no writer: the flusher's few goroutines write for every socket whose
// peer keeps up, so a delivery costs no goroutine start. A connection
// without a file descriptor gets its own writeLoop.
func (c *Client) startWriterLocked() {
	if !c.writing && (!c.held || c.closing) {
		c.writing = true
		if c.rc != nil {
			flush.push(c)
		} else {
			go c.writeLoop(nil, nil, false)
		}
	}
}

// Close closes the connection with r: queued data frames are dropped, the
// close frame is sent after whatever write is in flight, and the socket is
// torn down when the peer answers or CloseGrace (plus WriteTimeout) passes.
// It never blocks and is safe from any goroutine; the first call wins.
func (c *Client) Close(r CloseReason) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.closeSent = make(chan struct{})
	// Queued data frames are dropped; pongs stay, so a Ping that came
	// before a Close is answered before it (RFC 6455 §5.5.2).
	kept := c.queue[:0]
	for _, f := range c.queue {
		if len(f) > 0 && f[0] == finBit|opPong {
			kept = append(kept, f)
		}
	}
	dropped := len(c.queue) - len(kept)
	clear(c.queue[len(kept):])
	c.queue = append(kept, closeFrame(r.Code, r.Reason))
	c.startWriterLocked()
	c.mu.Unlock()
	c.count(func(s *Stats) {
		s.FramesDropped.Add(int64(dropped))
		s.closed(r.Code)
		if r == CloseSlowConsumer {
			s.SlowConsumers.Add(1)
		}
	})
	time.AfterFunc(c.cfg.CloseGrace+c.cfg.WriteTimeout, func() { c.raw.Close() })
}

// takeBatch takes the whole queue for the writer; ok is false, and c no
// longer has a writer, when there is nothing to write (or Hold is in
// effect). blocking says the writer may block in the write: only then is
// a full queue a slow peer's (see enqueue).
func (c *Client) takeBatch(blocking bool) (batch [][]byte, closing, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	batch = c.queue
	if len(batch) == 0 || c.held && !c.closing {
		c.writing = false
		return nil, false, false
	}
	c.queue = nil
	c.inWrite = blocking
	return batch, c.closing, true
}

// endBatch records that batch was written (or failed with err) and
// reports whether writing goes on: a failed write or a sent close frame
// ends it for good.
func (c *Client) endBatch(batch [][]byte, closing bool, err error) bool {
	c.mu.Lock()
	c.inWrite = false
	clear(batch)
	if c.spare == nil && cap(batch) <= maxSpare {
		c.spare = batch[:0]
	}
	if err != nil || closing {
		// A failed write or a sent close frame ends all writing; the
		// reader sees the connection go and cleans up.
		c.closing = true
		c.queue = nil
		c.writing = false
		if c.closeSent != nil {
			close(c.closeSent)
			c.closeSent = nil
		}
		c.mu.Unlock()
		if err != nil {
			c.raw.Close()
		}
		return false
	}
	c.mu.Unlock()
	return true
}

// writeLoop writes c's queue, batch after batch, until it is empty,
// blocking in the write when the peer does not read (up to WriteTimeout).
// The flusher starts it with the unwritten rest of a batch (rest, or the
// whole batch when rest is nil) when a write would block; without a file
// descriptor it is c's only writer.
func (c *Client) writeLoop(rest []byte, batch [][]byte, closing bool) {
	if batch == nil {
		// Let every goroutine that is ready to run (other senders' read
		// loops) go first: whatever they publish meanwhile joins this
		// batch. When the process is idle, Gosched returns at once.
		runtime.Gosched()
	} else {
		c.extendWriteDeadline()
		var err error
		if rest != nil {
			_, err = c.raw.Write(rest)
		} else {
			err = c.writeBatch(batch)
		}
		if !c.endBatch(batch, closing, err) {
			return
		}
	}
	for {
		batch, closing, ok := c.takeBatch(true)
		if !ok {
			return
		}
		c.extendWriteDeadline()
		if !c.endBatch(batch, closing, c.writeBatch(batch)) {
			return
		}
	}
}

// extendWriteDeadline keeps a blocking write from waiting longer than
// WriteTimeout. Moving the deadline costs a timer update: it is done only
// once half of WriteTimeout has been used, so no write waits longer than
// WriteTimeout and at least half of it.
func (c *Client) extendWriteDeadline() {
	if now := time.Since(clockBase); now > c.deadline-c.cfg.WriteTimeout/2 {
		c.deadline = now + c.cfg.WriteTimeout
		c.raw.SetWriteDeadline(clockBase.Add(c.deadline))
	}
}

// clockBase is the origin of Client.deadline; time.Since reads the
// monotonic clock, so a wall-clock jump does not stop the extensions.
var clockBase = time.Now()

// flushOnce is the flusher's turn at c (c's writer is the flusher): it
// writes c's queue without blocking and reports whether c has more to
// write, in which case it stays c's writer and c goes back in line. What a
// full socket buffer (or an expired write deadline) keeps from being
// written goes to a writeLoop goroutine that may block: a slow peer never
// holds the flusher up.
func (c *Client) flushOnce() (more bool) {
	batch, closing, ok := c.takeBatch(false)
	if !ok {
		return false
	}
	size := 0
	for _, f := range batch {
		size += len(f)
	}
	if size > writeBufferSize {
		go c.writeLoop(nil, batch, closing)
		return false
	}
	bp := writeBuffers.Get().(*[]byte)
	buf := (*bp)[:0]
	for _, f := range batch {
		buf = append(buf, f...)
	}
	n, err := c.tryWrite(buf)
	if n < len(buf) && (err == nil || errors.Is(err, os.ErrDeadlineExceeded)) {
		// The socket buffer is full: the rest waits for the peer on a
		// goroutine of its own, which counts as being stuck in a write.
		rest := bytes.Clone(buf[n:])
		*bp = buf[:0]
		writeBuffers.Put(bp)
		c.mu.Lock()
		c.inWrite = true
		c.mu.Unlock()
		go c.writeLoop(rest, batch, closing)
		return false
	}
	*bp = buf[:0]
	writeBuffers.Put(bp)
	if !c.endBatch(batch, closing, err) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 || c.held && !c.closing {
		c.writing = false
		return false
	}
	return true
}

// tryWrite writes b to the socket as far as it goes without waiting: n <
// len(b) with a nil error means the socket buffer is full.
func (c *Client) tryWrite(b []byte) (n int, err error) {
	var werr error
	err = c.rc.Write(func(fd uintptr) bool {
		for n < len(b) {
			m, e := syscall.Write(int(fd), b[n:])
			switch {
			case e == syscall.EINTR:
				continue
			case e == syscall.EAGAIN:
				return true
			case e != nil:
				werr = e
				return true
			}
			n += m
		}
		return true
	})
	if err == nil {
		err = werr
	}
	return n, err
}

func (c *Client) extendDeadline() error {
	return c.conn.SetReadDeadline(time.Now().Add(c.cfg.PongTimeout))
}

// Ping queues a ping; Hub.RunPinger calls it for every client every
// PingInterval (one ticker for the process, not a timer per socket).
func (c *Client) Ping() { c.enqueueControl(pingFrame) }

// burstFactor is how far past SendQueue a queue may grow while its writer
// is merely waiting for a CPU rather than for the peer.
const burstFactor = 8

// writeBuffers hold a batch copied into one buffer for one write.
var writeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, writeBufferSize); return &b }}

const writeBufferSize = 64 << 10

// writeBatch sends frames with as few syscalls as possible: they are
// copied into a pooled buffer and written together (a copy of a few
// hundred bytes costs far less than a syscall). It uses plain writes, not
// writev, because writev leaves an iovec array behind on every socket
// that ever sent a large batch, and idle sockets must stay small.
func (c *Client) writeBatch(frames [][]byte) error {
	bp := writeBuffers.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() { *bp = buf[:0]; writeBuffers.Put(bp) }()
	for _, f := range frames {
		if len(buf)+len(f) > writeBufferSize && len(buf) > 0 {
			if _, err := c.raw.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		if len(f) > writeBufferSize {
			if _, err := c.raw.Write(f); err != nil {
				return err
			}
			continue
		}
		buf = append(buf, f...)
	}
	if len(buf) > 0 {
		_, err := c.raw.Write(buf)
		return err
	}
	return nil
}

// maxSpare bounds the batch array a client keeps between bursts, so a
// member that once fell behind does not hold a large array while idle.
const maxSpare = 8

// errTooBig marks a message over MaxMessageBytes.
var errTooBig = errors.New("message too big")

// Serve runs the read loop until the connection ends. Each valid text frame
// is passed to onText (binary frames to onBinary; nil onBinary refuses
// them with 1003). A violation closes this client with its code and the
// loop keeps draining until the peer answers, so the close frame is read
// before the TCP connection goes. When the peer closes first, the loop
// waits (at most WriteTimeout) for the echoed close frame to be written.
// Then it closes the connection, runs OnFinish and leaves the hub.
//
// Start it on a goroutine of its own (go c.Serve(...)). The loop may move
// to a fresh goroutine (see reader.run), so Serve can return while the
// connection is still open; OnFinish marks the end.
func (c *Client) Serve(onText func([]byte), onBinary func([]byte)) {
	c.extendDeadline()
	(&reader{c: c, onText: onText, onBinary: onBinary}).run()
}

// reader is a read loop's state, handed from goroutine to goroutine.
type reader struct {
	c                *Client
	onText, onBinary func([]byte)
	limiter          *rate.Limiter // made at the first data frame
	broken           bool          // a read failed: skip Peek, NextReader reports it
	handlers         bool          // setControlHandlers has run
	// mid: the last message was not read to its end (a drain while
	// closing, a flood, one too big), so the next bytes in br may be its
	// payload, not a frame header: control leaves them to gorilla.
	mid bool
}

// run reads frames until the connection ends.
//
// An idle socket's cost is mostly its parked read goroutine's stack. A
// goroutine starts with 2 KiB and never gets back below what it grew to
// (the GC halves a stack only when under a quarter of it is in use).
// Parked inside gorilla's NextReader, the wait is about a dozen frames
// deep and, with the read under it, needs more than 2 KiB, so every idle
// socket held 4 KiB (21 MB of stacks for 5,000, in BENCHMARKS.md);
// handling a frame (a chat message, an auth frame) grows it further.
// So, between messages (nothing of the next one read yet), run waits in
// br.Peek, a few frames deep, and when its stack has been moved (grown,
// or shrunk by the GC) since it started, it goes on in a fresh goroutine,
// which starts small, and this one ends: a goroutine start per wake-up
// that needed more stack, against 2 KiB or more per idle socket.
func (rd *reader) run() {
	c := rd.c
	var anchor byte // its address changes when the runtime moves the stack
	base := uintptr(unsafe.Pointer(&anchor))
	for {
		if c.br != nil && !rd.broken {
			if uintptr(unsafe.Pointer(&anchor)) != base {
				go rd.run()
				return
			}
			// gorilla reads through br and has consumed all it took from
			// it: Peek waits for the next message's first byte. Its error,
			// if any, comes again from NextReader's read.
			c.br.Peek(1)
			// A ping or pong is taken here, so the loop waits in Peek
			// again rather than in NextReader (see control).
			if !rd.mid && rd.control() {
				continue
			}
		}
		if !rd.next() {
			break
		}
	}
	c.awaitCloseSent()
	c.raw.Close()
	if c.OnFinish != nil {
		c.OnFinish()
	}
	if c.hub != nil {
		c.hub.done(c)
	}
}

// next reads and handles one message; false means the connection ended.
func (rd *reader) next() bool {
	c := rd.c
	if !rd.handlers {
		c.setControlHandlers()
		rd.handlers = true
	}
	typ, r, err := c.conn.NextReader()
	if err != nil {
		c.mu.Lock()
		if !c.closing {
			// Peer vanished (EOF, reset, pong timeout) without a close
			// handshake, or broke the protocol (gorilla has answered
			// with its own close): nothing more can be sent.
			c.closing = true
			code := readErrorCode(err)
			c.count(func(s *Stats) { s.closed(code) })
		}
		c.mu.Unlock()
		return false
	}
	rd.mid = true
	c.mu.Lock()
	closing := c.closing
	c.mu.Unlock()
	if closing {
		return true // drain until the peer's close reply
	}
	c.extendDeadline()
	c.count(func(s *Stats) { s.MessagesIn.Add(1) })
	if c.cfg.RateLimit > 0 {
		if rd.limiter == nil {
			// Made at the first frame rather than at connect: it starts
			// full either way, and most sockets never send.
			rd.limiter = rate.NewLimiter(rate.Limit(c.cfg.RateLimit), c.cfg.RateBurst)
		}
		if !rd.limiter.Allow() {
			c.Close(CloseFlooding)
			return true
		}
	}
	msg, err := readLimited(r, c.cfg.MaxMessageBytes)
	switch {
	case errors.Is(err, errTooBig):
		c.Close(CloseTooBig)
		return true
	case err != nil:
		// gorilla keeps the error: the next NextReader reports it at once,
		// where a wait in Peek could block on a socket that stays open.
		rd.broken = true
		return true
	}
	rd.mid = false
	if typ == websocket.TextMessage {
		if !utf8.Valid(msg) {
			c.Close(CloseInvalidUTF8)
			return true
		}
		rd.onText(msg)
	} else if rd.onBinary != nil {
		rd.onBinary(msg)
	} else {
		c.Close(CloseUnsupported)
	}
	return true
}

// control answers a ping or takes a pong that comes next in br, at a
// frame boundary, as the handlers of setControlHandlers do when gorilla
// reads one, and reports whether it did. Handed to gorilla, the control frame would be read by
// NextReader, which then waits for the next data frame deep inside
// gorilla, on a stack grown to 4 KiB: every idle socket whose client
// answers the server's ping (every PingInterval) would park there again.
// Only well-formed frames are taken (FIN, no RSV bits, masked, at most 125
// bytes: RFC 6455 §5.5); anything else, a close frame included, goes to
// gorilla.
func (rd *reader) control() bool {
	br := rd.c.br
	h, err := br.Peek(2)
	if err != nil {
		return false
	}
	n := int(h[1] &^ 0x80)
	if h[0] != finBit|opPing && h[0] != finBit|opPong || h[1]&0x80 == 0 || n > 125 {
		return false
	}
	// The rest of the frame, if it has not all come yet, is waited for
	// here too (6+125 bytes fit in br). An error is NextReader's to report.
	f, err := br.Peek(6 + n)
	if err != nil {
		return false
	}
	if f[0] == finBit|opPing {
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = f[6+i] ^ f[2+i%4]
		}
		rd.c.enqueueControl(makeFrame(opPong, payload))
	} else {
		rd.c.extendDeadline()
	}
	br.Discard(6 + n)
	return true
}

// readErrorCode is the close code to count for a read error that ended
// the connection before any close frame was queued. gorilla fails the
// connection on a protocol violation (reserved bits, unknown opcode,
// unmasked or fragmented or over-125-byte control frame, bad continuation,
// bad close code: RFC 6455 §7.1.7) by writing its own 1002 close frame and
// returning a plain error; a dropped connection is a net.Error, an EOF, or
// gorilla's 1006 CloseError. Counting the former as 1006 would report a
// close the server sent as one it never saw.
func readErrorCode(err error) int {
	var ce *websocket.CloseError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		return ce.Code
	case errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, websocket.ErrReadLimit): // a 64-bit length with its top bit set: no close frame sent
		return websocket.CloseAbnormalClosure
	}
	return websocket.CloseProtocolError
}

// awaitCloseSent waits until a queued close frame has been written, or
// WriteTimeout, so the connection is not torn down under it.
func (c *Client) awaitCloseSent() {
	c.mu.Lock()
	sent := c.closeSent
	c.mu.Unlock()
	if sent == nil {
		return
	}
	t := time.NewTimer(c.cfg.WriteTimeout)
	defer t.Stop()
	select {
	case <-sent:
	case <-t.C:
	}
}

// readLimited reads one message of at most max bytes without ever holding
// more than max+1 in memory, whatever length the frame header claims.
func readLimited(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, errTooBig
	}
	return b, nil
}
