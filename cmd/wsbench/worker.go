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
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// A plan is one worker's share of a run: its members and publishers, and
// the whole group layout (to know what every member must receive).
type plan struct {
	Worker     int           `json:"worker"`
	Via        string        `json:"via"`
	HTTPURLs   []string      `json:"http_urls"`
	WSURLs     []string      `json:"ws_urls"`
	APIKey     string        `json:"api_key,omitempty"`
	Groups     []planGroup   `json:"groups"`
	Members    []planMember  `json:"members"`
	Publishers []planPub     `json:"publishers,omitempty"`
	Senders    int           `json:"senders"` // in all groups, for -rate's schedule
	Conc       int           `json:"conc"`
	Window     int           `json:"window"`
	Rate       float64       `json:"rate"`
	Deadline   int64         `json:"deadline"` // unix ns: connecting, settling and sending end by then
	Settle     time.Duration `json:"settle"`
}

type planGroup struct {
	Name    string       `json:"name"`
	Members []int        `json:"-"`
	Senders []planSender `json:"senders"`
}

type planSender struct {
	Name   string `json:"name"`
	Msgs   int    `json:"msgs"`
	Order  int    `json:"order"`  // position in -rate's interleaving
	Member int    `json:"member"` // global member index; -1 for a publisher
	Ack    int    `json:"ack"`    // member whose receipt frees the sender's window
}

type planMember struct {
	Index  int    `json:"i"`
	Name   string `json:"name"`
	Token  string `json:"token"`
	Group  int    `json:"g"`
	URL    int    `json:"u"`
	Source string `json:"src,omitempty"`
	Sender int    `json:"s"` // index in the group's senders, -1 if none
}

type planPub struct {
	Group  int `json:"g"`
	Sender int `json:"s"`
	URL    int `json:"u"`
}

// Worker events (worker → coordinator), one line each: "<kind> <json>".
type (
	connectedEvent struct {
		Connected int               `json:"connected"`
		Failures  map[string]int    `json:"failures,omitempty"`
		Samples   map[string]string `json:"samples,omitempty"`
		Start     int64             `json:"start"`
		End       int64             `json:"end"`
	}
	settledEvent struct {
		Frames  int64 `json:"frames"`
		RSSKiB  int64 `json:"rss_kib"`
		Settled bool  `json:"settled"`
	}
	completeEvent struct {
		End        int64 `json:"end"`
		TimedOut   bool  `json:"timed_out"`
		Sent       int64 `json:"sent"`
		SendErrors int64 `json:"send_errors"`
		CPUNs      int64 `json:"cpu_ns"`
		LagMaxNs   int64 `json:"lag_max_ns"`
	}
	doneEvent struct {
		Members      int               `json:"members"`
		Connected    int               `json:"connected"`
		Expected     int64             `json:"expected"`
		Deliveries   int64             `json:"deliveries"`
		Distinct     int64             `json:"distinct"`
		Duplicates   int64             `json:"duplicates"`
		OutOfOrder   int64             `json:"out_of_order"`
		Foreign      int64             `json:"foreign"`
		Invalid      int64             `json:"invalid"`
		Presence     int64             `json:"presence"`
		Unexpected   map[string]int    `json:"unexpected_closes,omitempty"`
		Samples      map[string]string `json:"samples,omitempty"`
		SendFailures map[string]int    `json:"send_failures,omitempty"`
		SendSamples  map[string]string `json:"send_samples,omitempty"`
		Latency      histJSON          `json:"latency"`
		Handshake    histJSON          `json:"handshake"`
		Ready        histJSON          `json:"ready"`
		CPUNs        int64             `json:"cpu_ns"`
		RSSKiB       int64             `json:"rss_kib"`
	}
)

// counter is a map of named counts with one sample message each.
type counter struct {
	mu      sync.Mutex
	counts  map[string]int
	samples map[string]string
}

func (c *counter) add(key, sample string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts, c.samples = map[string]int{}, map[string]string{}
	}
	c.counts[key]++
	if _, ok := c.samples[key]; !ok && sample != "" {
		c.samples[key] = sample
	}
}

func (c *counter) snapshot() (map[string]int, map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps(c.counts), smaps(c.samples)
}

func maps(m map[string]int) map[string]int {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func smaps(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

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
	win        chan struct{}   // this member's send window, when it sends
	acks       []chan struct{} // acks[s]: window freed when sender s's message arrives here
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
			nd := &net.Dialer{Timeout: 10 * time.Second}
			if spec.Source != "" {
				nd.LocalAddr = &net.TCPAddr{IP: net.ParseIP(spec.Source)}
			}
			w.dialers[spec.Source] = &websocket.Dialer{
				NetDialContext:   nd.DialContext,
				HandshakeTimeout: 10 * time.Second,
				ReadBufferSize:   readBufferSize(len(p.Members)),
				WriteBufferPool:  pool, // no write buffer held by idle sockets
			}
		}
	}
	// Send windows: a sender may have this many messages out that its
	// acknowledging member has not received yet.
	for _, grp := range p.Groups {
		win := p.Window
		if win == 0 {
			win = max(1, 512/max(1, len(grp.Senders)))
		}
		for s, snd := range grp.Senders {
			ack := w.byIndex[snd.Ack]
			if ack == nil {
				continue // not ours
			}
			ch := make(chan struct{}, win)
			ack.acks[s] = ch
			if snd.Member >= 0 {
				if m := w.byIndex[snd.Member]; m != nil {
					m.win = ch
				}
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
	timer := time.NewTimer(10 * time.Second)
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
		w.failures.add("no welcome in 10s", "")
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
		if first {
			first = false
			m.checkWelcome(buf)
			close(m.welcome)
			if !m.okay {
				return
			}
			continue
		}
		switch frameKind(buf) {
		case 'm':
			if t, ok := stringField(buf, keyText); ok {
				m.deliver(t)
			} else {
				m.invalid++
			}
		case 'p':
			if t, ok := stringField(buf, keyData); ok {
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
	sum := func() int64 {
		var n int64
		for _, m := range w.members {
			n += m.frames.Load()
		}
		return n
	}
	last, quiet := sum(), time.Now()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return last, false
		case now := <-t.C:
			if n := sum(); n != last {
				last, quiet = n, now
			} else if now.Sub(quiet) >= w.p.Settle {
				return last, true
			}
		}
	}
}

// localSender is a sender this worker drives.
type localSender struct {
	spec  planSender
	order int
	win   chan struct{}
	send  func(buf []byte) error
}

func (w *worker) localSenders() []*localSender {
	var out []*localSender
	for _, m := range w.members {
		if m.spec.Sender < 0 || !m.okay {
			continue
		}
		spec := w.p.Groups[m.spec.Group].Senders[m.spec.Sender]
		conn := m.conn
		out = append(out, &localSender{spec: spec, order: spec.Order, win: m.win,
			send: func(b []byte) error { return conn.WriteMessage(websocket.TextMessage, b) }})
	}
	if len(w.p.Publishers) > 0 {
		client := &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				Proxy:               nil,
				MaxIdleConnsPerHost: len(w.p.Publishers),
				DisableCompression:  true,
			},
		}
		for _, pub := range w.p.Publishers {
			spec := w.p.Groups[pub.Group].Senders[pub.Sender]
			var win chan struct{}
			if ack := w.byIndex[spec.Ack]; ack != nil {
				win = ack.acks[pub.Sender]
			}
			endpoint := w.p.HTTPURLs[pub.URL] + "/api/groups/" + url.PathEscape(w.p.Groups[pub.Group].Name) + "/messages"
			out = append(out, &localSender{spec: spec, order: spec.Order, win: win,
				send: func(text []byte) error { return publish(client, endpoint, w.p.APIKey, text) }})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].order < out[j].order })
	return out
}

// publish POSTs {"data":"<text>"} and wants 202.
func publish(client *http.Client, endpoint, key string, text []byte) error {
	body := make([]byte, 0, len(text)+12)
	body = append(body, `{"data":"`...)
	body = append(body, text...)
	body = append(body, `"}`...)
	req, err := http.NewRequest(http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Api-Key "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return &publishError{resp.StatusCode, truncate(string(msg), 200)}
	}
	return nil
}

type publishError struct {
	status int
	body   string
}

func (e *publishError) Error() string { return fmt.Sprintf("publish: HTTP %d: %s", e.status, e.body) }

// send runs the send phase from t0 and returns when every local member has
// received everything it is owed, or at the deadline.
func (w *worker) send(ctx context.Context, t0 time.Time) completeEvent {
	ctx, cancel := context.WithCancel(ctx)
	senders := w.localSenders()
	cpu0 := selfCPU()
	var lagMax atomic.Int64
	var wg sync.WaitGroup
	fail := func(err error) {
		w.sendErrs.Add(1)
		key := "send error"
		var pe *publishError
		if errors.As(err, &pe) {
			key = "publish HTTP " + strconv.Itoa(pe.status)
		}
		w.sendFails.add(key, err.Error())
	}
	sleepUntil := func(t time.Time) bool {
		d := time.Until(t)
		if d <= 0 {
			if lag := int64(-d); lag > lagMax.Load() {
				lagMax.Store(lag)
			}
			return ctx.Err() == nil
		}
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-timer.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if w.p.Rate > 0 {
		// One dispatcher sends every local message at its slot in the
		// global schedule: message q of the sender at position o goes at
		// t0 + ((q-1)·senders + o) / rate.
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 64)
			for q := 1; ; q++ {
				more := false
				for _, s := range senders {
					if q > s.spec.Msgs {
						continue
					}
					more = true
					slot := float64((q-1)*w.p.Senders+s.order) / w.p.Rate
					if !sleepUntil(t0.Add(time.Duration(slot * float64(time.Second)))) {
						return
					}
					buf = appendText(buf[:0], s.spec.Name, q, time.Now().UnixNano())
					if err := s.send(buf); err != nil {
						fail(err)
						continue
					}
					w.sent.Add(1)
				}
				if !more {
					return
				}
			}
		}()
	} else if sleepUntil(t0) {
		for _, s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 0, 64)
				for q := 1; q <= s.spec.Msgs; q++ {
					if s.win != nil {
						select {
						case s.win <- struct{}{}:
						case <-ctx.Done():
							return
						}
					}
					buf = appendText(buf[:0], s.spec.Name, q, time.Now().UnixNano())
					if err := s.send(buf); err != nil {
						fail(err)
						return
					}
					w.sent.Add(1)
				}
			}()
		}
	}
	timedOut := !w.waitDone(ctx)
	end := w.doneAt.Load()
	if timedOut || end == 0 {
		end = time.Now().UnixNano()
	}
	cancel()
	wg.Wait()
	return completeEvent{End: end, TimedOut: timedOut, Sent: w.sent.Load(), SendErrors: w.sendErrs.Load(),
		CPUNs: int64(selfCPU() - cpu0), LagMaxNs: lagMax.Load()}
}

// waitDone waits until every local member has what it is owed. It gives
// up at the deadline, or when no frame has arrived for a while after the
// start (a lost message or a failed sender would otherwise hold the phase
// until the deadline).
func (w *worker) waitDone(ctx context.Context) bool {
	stall := 10 * time.Second
	if w.p.Rate > 0 {
		stall += time.Duration(2 / w.p.Rate * float64(time.Second))
	}
	sum := func() int64 {
		var n int64
		for _, m := range w.members {
			n += m.frames.Load()
		}
		return n
	}
	last, moved := sum(), time.Now()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-w.allDone:
			return true
		case <-ctx.Done():
			return false
		case now := <-t.C:
			if n := sum(); n != last {
				last, moved = n, now
			} else if now.Sub(moved) > stall {
				return false
			}
		}
	}
}

// teardown closes every socket with 1000 and waits for the server to
// close TCP (so TIME_WAIT stays on the server's side), at most 10 s.
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
	limit := time.NewTimer(10 * time.Second)
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

// readBufferSize is each socket's read buffer: large enough that a busy
// member drains a burst of frames in one read, unless there are so many
// sockets that the buffers themselves would dominate the tool's memory.
func readBufferSize(sockets int) int {
	if sockets <= 4000 {
		return 16 << 10
	}
	return 4 << 10
}
