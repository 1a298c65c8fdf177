package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

type senderRef struct{ group, idx int32 }

// worker holds one process's sockets.
type worker struct {
	p        *plan
	out      io.Writer
	members  []*member
	byIndex  map[int]*member
	senders  map[string]senderRef
	msgs     [][]int32 // msgs[group][sender]
	latency  shardedHist
	hs, rdy  histogram
	dialers  map[string]*websocket.Dialer
	failures counter // connect failures
	closes   counter // unexpected closes after the welcome
	stopping atomic.Bool

	pending atomic.Int64 // members still owed messages
	allDone chan struct{}
	doneAt  atomic.Int64

	sent, sendErrs atomic.Int64
	sendFails      counter
}

// member is one socket: its reader goroutine alone touches the tracking
// state below until the reader has exited.
type member struct {
	w       *worker
	spec    planMember
	conn    *websocket.Conn
	hist    *histogram
	welcome chan struct{} // closed by the reader on the first frame
	done    chan struct{} // closed when the reader has exited
	okay    bool          // first frame was the expected welcome
	why     string        // otherwise, what it was
	code    int           // close code when the reader ended
	reason  string

	frames     atomic.Int64 // all frames, for settling
	finished   atomic.Bool
	win        chan struct{}   // its group's send window, when it sends
	acks       []chan struct{} // acks[s]: the window a message of sender s frees here
	words      int             // bitmap words per sender
	seen       []uint64        // which (sender, seq) arrived
	last       []int32         // highest seq per sender
	expected   int64
	remaining  int64
	deliveries int64
	dups, ooo  int64
	foreign    int64
	invalid    int64
	presence   int64
}

// workerMain runs one worker: its plan is the first line of in; then it
// obeys "settle", "go <t0>" and "stop" lines and reports on out.
func workerMain(ctx context.Context, in io.Reader, out io.Writer) error {
	br := bufio.NewReaderSize(in, 1<<20)
	line, err := br.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("worker: read plan: %w", err)
	}
	var p plan
	if err := json.Unmarshal(line, &p); err != nil {
		return fmt.Errorf("worker: decode plan: %w", err)
	}
	cmds := make(chan string, 4)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(cmds)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				cancel() // the coordinator is gone
				return
			}
			cmds <- strings.TrimSpace(line)
		}
	}()
	if p.Storm != nil {
		return newStormWorker(&p, out).run(ctx, cmds)
	}
	w := newWorker(&p, out)
	return w.run(ctx, cmds)
}

func newWorker(p *plan, out io.Writer) *worker {
	w := &worker{
		p: p, out: out,
		byIndex: map[int]*member{},
		senders: map[string]senderRef{},
		latency: newShardedHist(8),
		dialers: map[string]*websocket.Dialer{},
		allDone: make(chan struct{}),
	}
	w.msgs = make([][]int32, len(p.Groups))
	for g, grp := range p.Groups {
		w.msgs[g] = make([]int32, len(grp.Senders))
		for s, snd := range grp.Senders {
			w.senders[snd.Name] = senderRef{int32(g), int32(s)}
			w.msgs[g][s] = int32(snd.Msgs)
		}
	}
	pool := &sync.Pool{}
	for i, spec := range p.Members {
		m := &member{w: w, spec: spec, hist: w.latency[i%len(w.latency)],
			welcome: make(chan struct{}), done: make(chan struct{})}
		grp := p.Groups[spec.Group]
		maxMsgs := 0
		for _, s := range grp.Senders {
			maxMsgs = max(maxMsgs, s.Msgs)
			m.expected += int64(s.Msgs)
		}
		m.remaining = m.expected
		m.words = (maxMsgs + 63) / 64
		m.seen = make([]uint64, m.words*len(grp.Senders))
		m.last = make([]int32, len(grp.Senders))
		m.acks = make([]chan struct{}, len(grp.Senders))
		w.members = append(w.members, m)
		w.byIndex[spec.Index] = m
		if _, ok := w.dialers[spec.Source]; !ok {
			nd := &net.Dialer{Timeout: welcomeTimeout}
			if spec.Source != "" {
				nd.LocalAddr = &net.TCPAddr{IP: net.ParseIP(spec.Source)}
			}
			w.dialers[spec.Source] = &websocket.Dialer{
				NetDialContext:   nd.DialContext,
				HandshakeTimeout: welcomeTimeout,
				ReadBufferSize:   readBufferSize(len(p.Members)),
				WriteBufferPool:  pool, // no write buffer held by idle sockets
			}
		}
	}
	// Send windows: the senders of a group that this worker drives share
	// Window slots. A sender takes one per message; the message's
	// acknowledging member (the sender's own socket, or a member chosen for
	// a publisher) gives it back when the message arrives. This bounds the
	// server's queues without slowing a group down to its slowest sender.
	for _, grp := range p.Groups {
		var win chan struct{}
		for s, snd := range grp.Senders {
			ack := w.byIndex[snd.Ack]
			if ack == nil {
				continue // not ours
			}
			if win == nil {
				win = make(chan struct{}, p.Window)
			}
			ack.acks[s] = win
			if m := w.byIndex[snd.Member]; m != nil {
				m.win = win
			}
		}
	}
	w.pending.Store(int64(len(w.members)))
	if len(w.members) == 0 {
		close(w.allDone)
	}
	return w
}

func (w *worker) emit(kind string, v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintf(w.out, "%s %s\n", kind, b)
}

func (w *worker) run(ctx context.Context, cmds <-chan string) error {
	deadline := time.Unix(0, w.p.Deadline)
	work, cancelWork := context.WithDeadline(ctx, deadline)
	defer cancelWork()
	cpu0 := selfCPU()

	start := time.Now()
	w.connectAll(work)
	fails, samples := w.failures.snapshot()
	connected := 0
	for _, m := range w.members {
		if m.okay {
			connected++
		}
	}
	w.emit("connected", connectedEvent{Connected: connected, Failures: fails, Samples: samples,
		Start: start.UnixNano(), End: time.Now().UnixNano()})

	var rss int64
	for {
		var cmd string
		select {
		case c, ok := <-cmds:
			if !ok {
				cmd = "stop"
			} else {
				cmd = c
			}
		case <-ctx.Done():
			cmd = "stop"
		}
		switch {
		case cmd == "settle":
			frames, ok := w.settle(work)
			rss = selfRSS()
			w.emit("settled", settledEvent{Frames: frames, RSSKiB: rss, Settled: ok})
		case strings.HasPrefix(cmd, "go "):
			t0, err := strconv.ParseInt(strings.TrimPrefix(cmd, "go "), 10, 64)
			if err != nil {
				return fmt.Errorf("worker: bad command %q", cmd)
			}
			w.emit("complete", w.send(work, time.Unix(0, t0)))
		case cmd == "stop":
			w.teardown()
			w.emit("done", w.report(selfCPU()-cpu0, max(rss, selfRSS())))
			return nil
		default:
			return fmt.Errorf("worker: unknown command %q", cmd)
		}
	}
}

// connectAll dials every member, at most Conc at a time.
func (w *worker) connectAll(ctx context.Context) {
	sem := make(chan struct{}, w.p.Conc)
	var wg sync.WaitGroup
	for _, m := range w.members {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			w.failures.add("deadline", "run deadline before dialing")
			m.finish()
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			w.connect(ctx, m)
		}()
	}
	wg.Wait()
}

func (w *worker) connect(ctx context.Context, m *member) {
	start := time.Now()
	u := w.p.WSURLs[m.spec.URL] + "/ws/chat/?token=" + url.QueryEscape(m.spec.Token)
	conn, resp, err := w.dialers[m.spec.Source].DialContext(ctx, u, nil)
	if err != nil {
		key := dialFailure(err, resp)
		w.failures.add(key, err.Error())
		m.finish()
		return
	}
	w.hs.Record(time.Since(start))
	m.conn = conn
	go m.read()
	timer := time.NewTimer(welcomeTimeout)
	defer timer.Stop()
	select {
	case <-m.welcome: // the reader closes it on the first frame or on its end
		switch {
		case m.okay:
			w.rdy.Record(time.Since(start))
			if m.expected == 0 {
				m.finish()
			}
		case m.why != "":
			w.failures.add("bad welcome", m.why)
			conn.Close()
			m.finish()
		default:
			w.failures.add(closeKey(m.code, m.reason), m.reason)
		}
	case <-timer.C:
		w.failures.add("no welcome in "+welcomeTimeout.String(), "")
		conn.Close()
		m.finish()
	case <-ctx.Done():
		w.failures.add("deadline", "run deadline while waiting for the welcome")
		conn.Close()
		m.finish()
	}
}

// dialFailure names a failed dial for the failure table.
func dialFailure(err error, resp *http.Response) string {
	switch {
	case resp != nil:
		return "http " + strconv.Itoa(resp.StatusCode)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EADDRINUSE):
		return "no source port (add -sources)"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files (ulimit -n, -procs)"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, websocket.ErrBadHandshake):
		return "handshake failed"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "dial error"
}

func closeKey(code int, reason string) string {
	s := "close " + strconv.Itoa(code)
	if reason != "" {
		s += " " + reason
	}
	return s
}

// finish marks m as owed nothing more (all received, or it is gone).
func (m *member) finish() {
	if m.finished.CompareAndSwap(false, true) {
		if m.w.pending.Add(-1) == 0 {
			m.w.doneAt.Store(time.Now().UnixNano())
			close(m.w.allDone)
		}
	}
}

// read is the member's only reader: every frame goes into one reused
// buffer and is classified by its type's first letter.
func (m *member) read() {
	defer close(m.done)
	buf := make([]byte, 0, 512)
	first := true
	for {
		_, r, err := m.conn.NextReader()
		if err != nil {
			m.ended(err, first)
			return
		}
		buf, err = readInto(r, buf[:0])
		if err != nil {
			m.ended(err, first)
			return
		}
		m.frames.Add(1)
		// A frame may carry several messages joined by newlines, as
		// gorilla's chat example (the reference hub) sends what queued up
		// while it wrote; switchboard's JSON frames never contain one.
		for rest := buf; rest != nil; {
			msg := rest
			if i := bytes.IndexByte(rest, '\n'); i >= 0 {
				msg, rest = rest[:i], rest[i+1:]
			} else {
				rest = nil
			}
			if first {
				first = false
				m.checkWelcome(msg)
				close(m.welcome)
				if !m.okay {
					return
				}
				continue
			}
			m.classify(msg)
		}
	}
}

// classify counts one server message by its type's first letter.
func (m *member) classify(msg []byte) {
	switch frameKind(msg) {
	case 'm':
		if t, ok := stringField(msg, keyText); ok {
			m.deliver(t)
		} else {
			m.invalid++
		}
	case 'p':
		if isPresence(msg) { // count mode: {"type":"presence","mode":…}
			m.presence++
		} else if t, ok := stringField(msg, keyData); ok {
			m.deliver(t)
		} else {
			m.invalid++
		}
	case 'j', 'l':
		m.presence++
	default:
		m.invalid++
	}
}

func readInto(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

func (m *member) checkWelcome(f []byte) {
	if frameKind(f) != 'w' {
		m.why = "first frame is not a welcome: " + truncate(string(f), 100)
		return
	}
	want := m.w.p.Groups[m.spec.Group].Name
	if g, ok := stringField(f, keyGroup); !ok || string(g) != want {
		m.why = fmt.Sprintf("welcome to group %q, want %q", g, want)
		return
	}
	m.okay = true
}

// ended records why the reader stopped and, when the server closed the
// socket, lets the server close TCP first (no TIME_WAIT on our ports).
func (m *member) ended(err error, beforeWelcome bool) {
	m.code = websocket.CloseAbnormalClosure
	var ce *websocket.CloseError
	isClose := errors.As(err, &ce)
	if isClose {
		m.code, m.reason = ce.Code, ce.Text
	} else {
		m.reason = truncate(err.Error(), 80)
	}
	if beforeWelcome {
		close(m.welcome)
	} else if m.okay && !m.w.stopping.Load() {
		m.w.closes.add(closeKey(m.code, ""), m.reason)
	}
	if isClose {
		nc := m.conn.NetConn()
		nc.SetReadDeadline(time.Now().Add(3 * time.Second))
		io.Copy(io.Discard, nc)
	}
	m.conn.Close()
	m.finish()
}

// deliver records one chat or publish message.
func (m *member) deliver(text []byte) {
	now := time.Now().UnixNano()
	m.deliveries++
	name, seq, ts, ok := parseText(text)
	if !ok {
		m.invalid++
		return
	}
	ref, ok := m.w.senders[string(name)]
	if !ok {
		m.invalid++
		return
	}
	if int(ref.group) != m.spec.Group {
		m.foreign++
		return
	}
	s := int(ref.idx)
	if seq < 1 || seq > int(m.w.msgs[ref.group][s]) {
		m.invalid++
		return
	}
	m.hist.Record(time.Duration(now - ts))
	word, bit := s*m.words+(seq-1)/64, uint64(1)<<((seq-1)%64)
	if m.seen[word]&bit != 0 {
		m.dups++
		return
	}
	m.seen[word] |= bit
	if int32(seq) < m.last[s] {
		m.ooo++
	} else {
		m.last[s] = int32(seq)
	}
	if ack := m.acks[s]; ack != nil {
		select {
		case <-ack:
		default:
		}
	}
	m.remaining--
	if m.remaining == 0 {
		m.finish()
	}
}

// settle waits until no frame has arrived for Settle: the join storm of
// the connect phase is over. It reports the frames seen.
func (w *worker) settle(ctx context.Context) (int64, bool) {
	last, quiet := w.frames(), time.Now()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return last, false
		case now := <-t.C:
			if n := w.frames(); n != last {
				last, quiet = n, now
			} else if now.Sub(quiet) >= w.p.Settle {
				return last, true
			}
		}
	}
}

// frames is how many frames this worker's members have received so far.
func (w *worker) frames() int64 {
	var n int64
	for _, m := range w.members {
		n += m.frames.Load()
	}
	return n
}

// teardown closes every socket with 1000 and waits for the server to
// close TCP (so TIME_WAIT stays on the server's side), at most Teardown;
// then it closes what is left itself.
func (w *worker) teardown() {
	w.stopping.Store(true)
	deadline := time.Now().Add(2 * time.Second)
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bench done")
	for _, m := range w.members {
		if m.conn != nil {
			select {
			case <-m.done:
			default:
				m.conn.WriteControl(websocket.CloseMessage, msg, deadline)
			}
		}
	}
	limit := time.NewTimer(w.p.Teardown)
	defer limit.Stop()
	expired := false
	for _, m := range w.members {
		if m.conn == nil {
			continue
		}
		if !expired {
			select {
			case <-m.done:
				continue
			case <-limit.C:
				expired = true
			}
		}
		m.conn.Close()
		<-m.done
	}
}

func (w *worker) report(cpu time.Duration, rss int64) doneEvent {
	ev := doneEvent{Members: len(w.members), CPUNs: int64(cpu), RSSKiB: rss}
	for _, m := range w.members {
		if m.conn == nil {
			continue
		}
		<-m.done
		if m.okay {
			ev.Connected++
			ev.Expected += m.expected
		}
		ev.Deliveries += m.deliveries
		ev.Distinct += m.expected - m.remaining
		ev.Duplicates += m.dups
		ev.OutOfOrder += m.ooo
		ev.Foreign += m.foreign
		ev.Invalid += m.invalid
		ev.Presence += m.presence
	}
	ev.Unexpected, ev.Samples = w.closes.snapshot()
	ev.SendFailures, ev.SendSamples = w.sendFails.snapshot()
	ev.Latency = w.latency.merged().export()
	ev.Handshake = w.hs.export()
	ev.Ready = w.rdy.export()
	return ev
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// welcomeTimeout bounds a connection attempt: TCP connect, upgrade and
// the welcome frame. A server busy with a join storm can be slow to answer.
const welcomeTimeout = 30 * time.Second

// readBufferSize is each socket's read buffer: large enough that a busy
// member drains a burst of frames in one read, unless there are so many
// sockets that the buffers themselves would dominate the tool's memory.
func readBufferSize(sockets int) int {
	if sockets <= 4000 {
		return 16 << 10
	}
	return 4 << 10
}
