package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/gorilla/websocket"
)

// The publish scenario measures the publish API (issue 13): -clients HTTP
// clients with keep-alive send, each as soon as its previous request was
// answered, for -duration, with the API key:
//
//   - kind group: POST /api/groups/chat-<prefix>/messages {"data":"<text>"}
//     → 202, to a group with -subscribers members on /ws/chat/;
//   - kind status: PUT /api/status/<key> {"value":"<text>"} → 200 with the
//     stored version, to a key with -subscribers sockets on /ws/status/<key>/.
//
// It reports requests/s, request latency, server CPU per request and what
// the subscribers got. A group subscriber must get every publish of every
// client, in the order that client sent them: anything else is lost,
// duplicated or out of order. A status subscriber drops any version it has
// passed (the server sends a newer value only), so it may skip versions
// ("coalesced", counted, not a loss); lost there means a subscriber that
// does not end at the last version any PUT returned, with that PUT's
// value, and "backwards" a version not above the one before it.
//
//	wsbench publish -kind group -clients 8 -subscribers 10 -duration 10s -api-key KEY
//	wsbench publish -kind status -clients 8 -subscribers 10 -duration 10s -api-key KEY

// publishConfig is the publish scenario's command line.
type publishConfig struct {
	URL         string
	Kind        string // group or status
	Clients     int
	Subscribers int
	Duration    time.Duration
	APIKey      string
	Prefix      string // subscribers' usernames; the group is chat-<first character>
	Key         string // status key
	CPUProfile  string
	serverFlags
}

func parsePublishFlags(args []string, getenv func(string) string, stderr io.Writer) (publishConfig, error) {
	var c publishConfig
	fs := flag.NewFlagSet("wsbench publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Kind, "kind", "group", "group (POST /api/groups/{g}/messages) or status (PUT /api/status/{key})")
	fs.IntVar(&c.Clients, "clients", 8, "concurrent HTTP clients (keep-alive), each with one request in flight")
	fs.IntVar(&c.Subscribers, "subscribers", 10, "sockets that receive the publishes (members of the group, or status subscribers)")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "how long the clients send")
	fs.StringVar(&c.APIKey, "api-key", getenv("PUBLISH_API_KEY"), "publish API key (default $PUBLISH_API_KEY)")
	fs.StringVar(&c.Prefix, "prefix", "p", "subscribers' username prefix; its first character names the group (chat-p)")
	fs.StringVar(&c.Key, "key", "wsbench", "status key (kind status)")
	c.serverFlags.register(fs, getenv, "server process id, for its CPU per request", 5*time.Minute)
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write this process's CPU profile here")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case c.Kind != "group" && c.Kind != "status":
		return c, fmt.Errorf("-kind %q: want group or status", c.Kind)
	case c.Clients < 1 || c.Clients > 1000:
		return c, fmt.Errorf("-clients %d: want 1..1000", c.Clients)
	case c.Subscribers < 0 || c.Subscribers > 10_000:
		return c, fmt.Errorf("-subscribers %d: want 0..10000", c.Subscribers)
	case c.Duration <= 0:
		return c, errors.New("-duration must be positive")
	case c.APIKey == "":
		return c, errors.New("no API key: give -api-key or PUBLISH_API_KEY (the server's)")
	case c.Prefix == "":
		return c, errors.New("-prefix must not be empty")
	case c.Key == "":
		return c, errors.New("-key must not be empty")
	case c.Timeout <= c.Duration || c.Timeout > maxTimeout:
		return c, fmt.Errorf("-timeout %s: want more than -duration and at most %s", c.Timeout, maxTimeout)
	}
	return c, nil
}

// publishResult is a publish run's figures, printed as a table and as the
// RESULT line.
type publishResult struct {
	Scenario    string  `json:"scenario"` // "publish"
	Kind        string  `json:"kind"`
	URL         string  `json:"url"`
	Target      string  `json:"target"` // group or status key
	Clients     int     `json:"clients"`
	Subscribers int     `json:"subscribers"`
	Subscribed  int     `json:"subscribed"`
	Requests    int64   `json:"requests"` // answered with the expected status
	Errors      int64   `json:"errors"`
	SendSeconds float64 `json:"send_s"`
	RequestsPS  float64 `json:"requests_per_s"`

	RequestMs  quantiles `json:"request_ms"`  // request sent → response read
	DeliveryMs quantiles `json:"delivery_ms"` // request sent → a subscriber has it

	Expected   int64  `json:"expected"`  // group: requests × subscribers; status: subscribers at the last version
	Delivered  int64  `json:"delivered"` // frames of ours the subscribers got
	Lost       int64  `json:"lost"`
	Duplicates int64  `json:"duplicates"`
	OutOfOrder int64  `json:"out_of_order"`
	Backwards  int64  `json:"backwards"` // status: a version not above the one before
	Coalesced  int64  `json:"coalesced"` // status: versions a subscriber skipped (it got a newer one)
	FirstVer   uint64 `json:"first_version,omitempty"`
	LastVer    uint64 `json:"last_version,omitempty"`

	ServerCPUMs      int64   `json:"server_cpu_ms,omitempty"`
	ServerCPUPct     float64 `json:"server_cpu_pct,omitempty"`
	ServerCPUUsPerRq float64 `json:"server_cpu_us_per_request,omitempty"`
	ToolCPUPct       float64 `json:"tool_cpu_pct"`

	RequestFailures  map[string]int    `json:"request_failures,omitempty"`
	RequestSamples   map[string]string `json:"request_failure_samples,omitempty"`
	ConnectFailures  map[string]int    `json:"connect_failures,omitempty"`
	UnexpectedCloses map[string]int    `json:"unexpected_closes,omitempty"`

	LoadStart   float64 `json:"loadavg_start"`
	LoadEnd     float64 `json:"loadavg_end"`
	TimedOut    bool    `json:"timed_out"`
	WallSeconds float64 `json:"wall_s"`
	OK          bool    `json:"ok"`
}

// publishRun is `wsbench publish …`.
func publishRun(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "markdown" {
		return publishMarkdown(args[1:], stdout)
	}
	return scenario[publishConfig, publishResult]{
		parse:   parsePublishFlags,
		profile: func(c publishConfig) string { return c.CPUProfile },
		bench:   publishBench,
		print:   printPublish,
		ok:      func(r *publishResult) bool { return r.OK },
	}.run(ctx, args, getenv, stdout, stderr)
}

// pubSub is one subscriber's view of the run.
type pubSub struct {
	conn *websocket.Conn
	mu   sync.Mutex // the reader's counts, polled by complete
	// group: the next seq owed by each client; status: the first and the
	// last version.
	next    []int
	first   uint64
	version uint64
	value   []byte
	closing atomic.Bool // the run is over and we close: a read error now is the end
	got     int64
	dups    int64
	ooo     int64
	lost    int64
	back    int64
}

// publishTarget is what the clients need to address the run's target.
type publishTarget struct {
	method, endpoint string
	want             int
	field            []byte // the frame and request field carrying the text
}

// publishBench connects the subscribers, sends for the duration, then
// waits until every subscriber has what it is owed (or nothing moves for
// 10 s).
func publishBench(ctx context.Context, cfg publishConfig, stderr io.Writer) (*publishResult, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	started := time.Now()
	logf := progressLog(cfg.Quiet, stderr)
	httpURL, wsURL, v4, err := cfg.check(ctx)
	if err != nil {
		return nil, err
	}
	group := "chat-" + string([]rune(cfg.Prefix)[:1])
	res := &publishResult{Scenario: "publish", Kind: cfg.Kind, URL: httpURL, Clients: cfg.Clients,
		Subscribers: cfg.Subscribers, LoadStart: loadAverage(), ConnectFailures: map[string]int{}, UnexpectedCloses: map[string]int{}}
	defer func() { res.WallSeconds = round3(time.Since(started).Seconds()) }()
	tgt := publishTarget{method: http.MethodPost, endpoint: httpURL + "/api/groups/" + url.PathEscape(group) + "/messages",
		want: http.StatusAccepted, field: keyData}
	res.Target = group
	if cfg.Kind == "status" {
		tgt = publishTarget{method: http.MethodPut, endpoint: httpURL + "/api/status/" + url.PathEscape(cfg.Key),
			want: http.StatusOK, field: keyValue}
		res.Target = cfg.Key
	}

	// Subscribers.
	subs := make([]*pubSub, cfg.Subscribers)
	if cfg.Subscribers > 0 {
		names := memberNames(cfg.Prefix, cfg.Subscribers)
		logf("preparing %d subscribers", len(names))
		users, secret, err := usersAndSecret(ctx, cfg.DB, cfg.JWTSecret, names)
		if err != nil {
			return res, err
		}
		src := ""
		if v4 {
			src = sourceAddr(0)
		}
		sd := newStormDialer(wsURL, src)
		var mu sync.Mutex
		forEach(ctx, len(names), 16, func(i int) {
			token, err := mintToken(secret, users[names[i]], names[i], time.Now(), cfg.Timeout+10*time.Minute)
			if err == nil {
				subs[i], err = subscribe(ctx, sd, cfg, token, group)
			}
			if err != nil {
				mu.Lock()
				key, _, _ := cutColon(err.Error())
				res.ConnectFailures[key]++
				mu.Unlock()
			}
		})
		if len(res.ConnectFailures) > 0 {
			closeSubs(subs)
			return res, errors.New("subscribers failed to connect")
		}
		res.Subscribed = len(subs)
	}
	if cfg.Kind == "status" && len(subs) > 0 {
		res.FirstVer = subs[0].version
		for _, s := range subs {
			res.FirstVer = min(res.FirstVer, s.version)
		}
	}

	// Readers: one goroutine per subscriber, counting as frames arrive.
	var delivery histogram
	var frames atomic.Int64
	var rwg sync.WaitGroup
	var closeMu sync.Mutex
	for _, s := range subs {
		s.next = make([]int, cfg.Clients)
		for c := range s.next {
			s.next[c] = 1
		}
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			err := s.read(cfg.Kind, tgt.field, &delivery, &frames)
			if s.closing.Load() {
				return // our own close, answered or not
			}
			key := "read error"
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				key = closeKey(ce.Code, ce.Text)
			}
			closeMu.Lock()
			res.UnexpectedCloses[key]++
			closeMu.Unlock()
		}()
	}

	// Clients.
	logf("%d clients send to %s %s for %s", cfg.Clients, tgt.method, tgt.endpoint, cfg.Duration)
	hostport := strings.TrimPrefix(strings.TrimPrefix(httpURL, "http://"), "https://")
	if strings.HasPrefix(httpURL, "https://") {
		return res, errors.New("publish: plain http only (the clients speak HTTP/1.1 on TCP)")
	}
	path := strings.TrimPrefix(tgt.endpoint, httpURL)
	var reqH histogram
	var fails counter
	sent := make([]int, cfg.Clients)       // requests answered as wanted
	lastVer := make([]uint64, cfg.Clients) // status: the highest version each client got
	lastVal := make([][]byte, cfg.Clients)
	var errs atomic.Int64
	var s0 procSample
	if cfg.ServerPID > 0 {
		s0, _ = readProc(cfg.ServerPID)
	}
	cpu0 := selfCPU()
	t0 := time.Now()
	stop := t0.Add(cfg.Duration)
	var cwg sync.WaitGroup
	for c := range cfg.Clients {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			name := "pub" + strconv.Itoa(c)
			hc := &httpConn{addr: hostport}
			defer hc.close()
			var text, body []byte
			for q := 1; time.Now().Before(stop) && ctx.Err() == nil; q++ {
				start := time.Now()
				text = appendText(text[:0], name, q, start.UnixNano())
				body = append(append(append(append(body[:0], `{"`...), tgt.field[1:len(tgt.field)-3]...), `":"`...), text...)
				body = append(body, `"}`...)
				resp, err := hc.do(tgt.method, path, cfg.APIKey, body, tgt.want)
				if err != nil {
					errs.Add(1)
					key := "request error"
					var pe *publishError
					if errors.As(err, &pe) {
						key = "HTTP " + strconv.Itoa(pe.status)
					}
					fails.add(key, truncate(err.Error(), 200))
					time.Sleep(10 * time.Millisecond) // a failing server is not hammered
					q--                               // the text was not sent: its seq is reused
					continue
				}
				reqH.Record(time.Since(start))
				sent[c] = q
				if cfg.Kind == "status" {
					if v, ok := numberField(resp, keyVersion); ok && v > lastVer[c] {
						lastVer[c], lastVal[c] = v, append(lastVal[c][:0], text...)
					}
				}
			}
		}()
	}
	cwg.Wait()
	sendTime := time.Since(t0)
	toolCPU := selfCPU() - cpu0
	if cfg.ServerPID > 0 {
		if s1, err := readProc(cfg.ServerPID); err == nil {
			res.ServerCPUMs = (s1.CPU - s0.CPU).Milliseconds()
			res.ServerCPUPct = round1(100 * float64(s1.CPU-s0.CPU) / float64(sendTime))
		}
	}
	for c := range cfg.Clients {
		res.Requests += int64(sent[c])
	}
	res.Errors = errs.Load()
	res.RequestFailures, res.RequestSamples = fails.snapshot()
	res.SendSeconds = round3(sendTime.Seconds())
	res.RequestsPS = round1(float64(res.Requests) / sendTime.Seconds())
	res.ToolCPUPct = round1(100 * float64(toolCPU) / float64(sendTime))
	if res.Requests > 0 && res.ServerCPUMs > 0 {
		res.ServerCPUUsPerRq = round3(float64(res.ServerCPUMs) * 1000 / float64(res.Requests))
	}
	res.RequestMs = quantilesOf(&reqH)
	var finalVal []byte
	for c := range cfg.Clients {
		if lastVer[c] > res.LastVer {
			res.LastVer, finalVal = lastVer[c], lastVal[c]
		}
	}

	// Wait until every subscriber has everything, or nothing moves.
	logf("%d requests in %.1f s; waiting for the subscribers", res.Requests, sendTime.Seconds())
	done := func() bool {
		for _, s := range subs {
			if !s.complete(cfg.Kind, sent, res.LastVer) {
				return false
			}
		}
		return true
	}
	last, moved := frames.Load(), time.Now()
	for !done() && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		if n := frames.Load(); n != last {
			last, moved = n, time.Now()
		} else if time.Since(moved) > 10*time.Second {
			break
		}
	}
	res.TimedOut = ctx.Err() != nil
	// Each reader is the only one reading its socket: send the close
	// frames, let the readers see the server's answer (or a deadline),
	// then close.
	for _, s := range subs {
		s.closing.Store(true)
		s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bench done"), time.Now().Add(2*time.Second))
		s.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	}
	rwg.Wait()
	for _, s := range subs {
		s.conn.Close()
	}

	for _, s := range subs {
		res.Delivered += s.got
		res.Duplicates += s.dups
		res.OutOfOrder += s.ooo
		res.Lost += s.lost
		res.Backwards += s.back
		if cfg.Kind == "group" {
			for c := range sent {
				if owed := sent[c] - (s.next[c] - 1); owed > 0 {
					res.Lost += int64(owed)
				}
			}
			continue
		}
		// status: the subscriber must end at the last version with its value.
		if s.version != res.LastVer || !bytes.Equal(s.value, finalVal) {
			res.Lost++
		}
		if seen := int64(s.version - s.first); seen > s.got {
			res.Coalesced += seen - s.got
		}
	}
	if cfg.Kind == "group" {
		res.Expected = res.Requests * int64(len(subs))
	} else {
		res.Expected = int64(len(subs))
	}
	res.DeliveryMs = quantilesOf(&delivery)
	res.LoadEnd = loadAverage()
	res.OK = !res.TimedOut && res.Errors == 0 && res.Requests > 0 && len(res.ConnectFailures) == 0 &&
		len(res.UnexpectedCloses) == 0 && res.Lost == 0 && res.Duplicates == 0 && res.OutOfOrder == 0 && res.Backwards == 0
	if cfg.Kind == "group" && res.Delivered != res.Expected {
		res.OK = false
	}
	return res, nil
}

// subscribe opens one subscriber's socket and reads its first frame: the
// welcome (group) or the current value (status).
func subscribe(ctx context.Context, sd *stormDialer, cfg publishConfig, token, group string) (*pubSub, error) {
	if cfg.Kind == "group" {
		conn, w, err := sd.dial(ctx, token, "", 0)
		if err != nil {
			return nil, err
		}
		if w.Group != group {
			conn.Close()
			return nil, fmt.Errorf("welcome: group %q, want %q", w.Group, group)
		}
		return &pubSub{conn: conn}, nil
	}
	u := sd.wsURL + "/ws/status/" + url.PathEscape(cfg.Key) + "/?token=" + url.QueryEscape(token)
	conn, resp, err := sd.d.DialContext(ctx, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dialFailure(err, resp), err)
	}
	conn.SetReadDeadline(time.Now().Add(welcomeTimeout))
	_, first, err := conn.ReadMessage()
	conn.SetReadDeadline(time.Time{})
	if err != nil || frameKind(first) != 's' {
		conn.Close()
		return nil, fmt.Errorf("no current value: %q %v", truncate(string(first), 100), err)
	}
	v, _ := numberField(first, keyVersion)
	return &pubSub{conn: conn, first: v, version: v}, nil
}

// read counts s's frames until its socket closes.
func (s *pubSub) read(kind string, field []byte, delivery *histogram, frames *atomic.Int64) error {
	for {
		_, f, err := s.conn.ReadMessage()
		if err != nil {
			return err
		}
		frames.Add(1)
		if kind == "group" && (frameKind(f) != 'p' || isPresence(f)) || kind == "status" && frameKind(f) != 's' {
			continue // presence and other frames
		}
		text, ok := stringField(f, field)
		if !ok {
			continue
		}
		name, seq, ts, ok := parseText(text)
		c, err := strconv.Atoi(string(bytes.TrimPrefix(name, []byte("pub"))))
		if !ok || err != nil || c < 0 || c >= len(s.next) {
			continue // not ours
		}
		delivery.Record(time.Duration(time.Now().UnixNano() - ts))
		s.mu.Lock()
		s.count(kind, f, text, c, seq)
		s.mu.Unlock()
	}
}

// count records one of our frames (s.mu held): text from client c with
// sequence number seq.
func (s *pubSub) count(kind string, f, text []byte, c, seq int) {
	s.got++
	if kind == "status" {
		v, _ := numberField(f, keyVersion)
		if v <= s.version {
			s.back++
			return
		}
		s.version, s.value = v, append(s.value[:0], text...)
		return
	}
	switch {
	case seq < s.next[c]:
		s.dups++
		return
	case seq > s.next[c]:
		s.ooo++
		s.lost += int64(seq - s.next[c])
	}
	s.next[c] = seq + 1
}

// complete reports whether s has what it is owed: every client's sent
// publishes (group), or the last version (status).
func (s *pubSub) complete(kind string, sent []int, last uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if kind == "status" {
		return s.version >= last
	}
	for c := range sent {
		if s.next[c]-1 < sent[c] {
			return false
		}
	}
	return true
}

// closeSubs closes subscribers whose readers have not started.
func closeSubs(subs []*pubSub) {
	forEach(context.Background(), len(subs), 64, func(i int) {
		if subs[i] != nil {
			politeClose(subs[i].conn)
		}
	})
}

var (
	keyValue   = []byte(`"value":"`)
	keyVersion = []byte(`"version":`)
)

// numberField returns the unsigned integer after key (given as
// `"name":`) in b.
func numberField(b, key []byte) (uint64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	rest := b[i+len(key):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	n, ok := atoi(rest[:j])
	return uint64(n), ok
}

// apiCall sends body as JSON with the API key and returns the response
// body (its first 4 KiB) when the status is want.
func apiCall(client *http.Client, method, endpoint, key string, body []byte, want int) ([]byte, error) {
	req, err := http.NewRequest(method, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Api-Key "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	msg, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	io.Copy(io.Discard, resp.Body) // the rest, so the connection is reused
	resp.Body.Close()
	if resp.StatusCode != want {
		return nil, &publishError{resp.StatusCode, truncate(string(msg), 200)}
	}
	return msg, err
}

// httpConn is one keep-alive HTTP/1.1 connection with one request in
// flight: a request is one write, its answer is read with one buffered
// reader, on the calling goroutine. net/http's client (two goroutines per
// connection and a channel hand-off per request) cost the load tool more
// CPU per request than the server spent on it, on a core of its own: the
// tool, not the server, would set the rate.
type httpConn struct {
	addr string
	conn net.Conn
	br   *bufio.Reader
	req  []byte
	body []byte
}

// do sends one request and returns the response body (valid until the
// next call) when the status is want. On any error the connection is
// closed, and the next call dials again.
func (h *httpConn) do(method, path, key string, body []byte, want int) ([]byte, error) {
	if h.conn == nil {
		conn, err := net.DialTimeout("tcp", h.addr, 10*time.Second)
		if err != nil {
			return nil, err
		}
		h.conn, h.br = conn, bufio.NewReaderSize(conn, 8<<10)
	}
	h.req = append(h.req[:0], method...)
	h.req = append(h.req, ' ')
	h.req = append(h.req, path...)
	h.req = append(h.req, " HTTP/1.1\r\nHost: "...)
	h.req = append(h.req, h.addr...)
	h.req = append(h.req, "\r\nUser-Agent: wsbench\r\nContent-Type: application/json\r\nAuthorization: Api-Key "...)
	h.req = append(h.req, key...)
	h.req = append(h.req, "\r\nContent-Length: "...)
	h.req = strconv.AppendInt(h.req, int64(len(body)), 10)
	h.req = append(h.req, "\r\n\r\n"...)
	h.req = append(h.req, body...)
	h.conn.SetDeadline(time.Now().Add(10 * time.Second))
	status, resp, err := h.roundTrip()
	if err != nil {
		h.close()
		return nil, err
	}
	if status != want {
		return nil, &publishError{status, truncate(string(resp), 200)}
	}
	return resp, nil
}

// roundTrip writes h.req and reads the response: status line, headers
// (Content-Length, or chunked for answers flushed early), body.
func (h *httpConn) roundTrip() (int, []byte, error) {
	if _, err := h.conn.Write(h.req); err != nil {
		return 0, nil, err
	}
	line, err := h.br.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, nil, fmt.Errorf("bad status line %q", truncate(string(line), 80))
	}
	status, ok := atoi(line[9:12])
	if !ok {
		return 0, nil, fmt.Errorf("bad status line %q", truncate(string(line), 80))
	}
	length, closing, chunked := int64(-1), false, false
	for {
		line, err := h.br.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, ok = atoi(value); !ok || length > 1<<20 {
				return 0, nil, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Connection")) && bytes.EqualFold(value, []byte("close")):
			closing = true
		case bytes.EqualFold(name, []byte("Transfer-Encoding")) && bytes.EqualFold(value, []byte("chunked")):
			chunked = true
		}
	}
	if chunked { // some error answers are flushed before they end
		body, err := io.ReadAll(io.LimitReader(httputil.NewChunkedReader(h.br), 1<<20))
		if err != nil {
			return 0, nil, err
		}
		if closing {
			h.close()
		}
		h.body = append(h.body[:0], body...)
		return int(status), h.body, nil
	}
	if length < 0 {
		return 0, nil, errors.New("response without Content-Length or chunked encoding")
	}
	if int64(cap(h.body)) < length {
		h.body = make([]byte, length)
	}
	h.body = h.body[:length]
	if _, err := io.ReadFull(h.br, h.body); err != nil {
		return 0, nil, err
	}
	if closing {
		h.close()
	}
	return int(status), h.body, nil
}

func (h *httpConn) close() {
	if h.conn != nil {
		h.conn.Close()
		h.conn = nil
	}
}

// printPublish prints a publish run's table and its RESULT line.
func printPublish(w io.Writer, r *publishResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	q := func(x quantiles) string { return fmt.Sprintf("%.3f / %.3f / %.3f", x.P50, x.P99, x.Max) }
	fmt.Fprintf(tw, "publish\t%s %s: %d clients, %d subscribers (%d connected)\n", r.Kind, r.Target, r.Clients, r.Subscribers, r.Subscribed)
	fmt.Fprintf(tw, "requests\t%d in %.3f s: %.0f/s, %d errors\n", r.Requests, r.SendSeconds, r.RequestsPS, r.Errors)
	fmt.Fprintf(tw, "request ms p50 / p99 / max\t%s\n", q(r.RequestMs))
	fmt.Fprintf(tw, "delivery ms p50 / p99 / max\t%s\n", q(r.DeliveryMs))
	fmt.Fprintf(tw, "server CPU\t%d ms (%.0f%% of one core), %.1f µs per request\n", r.ServerCPUMs, r.ServerCPUPct, r.ServerCPUUsPerRq)
	fmt.Fprintf(tw, "tool CPU\t%.0f%% of one core\n", r.ToolCPUPct)
	fmt.Fprintf(tw, "delivered\t%d (expected %d)\n", r.Delivered, r.Expected)
	fmt.Fprintf(tw, "lost / dup / out of order / backwards\t%d / %d / %d / %d\n", r.Lost, r.Duplicates, r.OutOfOrder, r.Backwards)
	if r.Kind == "status" {
		fmt.Fprintf(tw, "versions\t%d → %d, %d coalesced at the subscribers\n", r.FirstVer, r.LastVer, r.Coalesced)
	}
	fmt.Fprintf(tw, "request failures\t%s\n", countsString(r.RequestFailures))
	fmt.Fprintf(tw, "connect failures / closes\t%s / %s\n", countsString(r.ConnectFailures), countsString(r.UnexpectedCloses))
	fmt.Fprintf(tw, "load\t%.2f → %.2f\n", r.LoadStart, r.LoadEnd)
	fmt.Fprintf(tw, "ok\t%v\n", r.OK)
	tw.Flush()
	b, _ := json.Marshal(r)
	fmt.Fprintf(w, "RESULT %s\n", b)
}
