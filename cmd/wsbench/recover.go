package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/gorilla/websocket"
)

// The recover scenario measures a recovery storm (issue 10): -n members of
// one group connect, learn the group's epoch and offset from their
// welcome, and disconnect; one sender then sends -missed messages to the
// group; then every member reconnects at once with
// /ws/chat/?since=<its offset>&epoch=<epoch> and must get "recovered": true
// and exactly the missed messages: every offset after since once, in
// order, each with the text that was sent at that offset.
//
//	wsbench recover -n 5000 -missed 100 -server-pid PID

// recoverConfig is the recover scenario's command line.
type recoverConfig struct {
	N      int
	Missed int
	Conc   int // storm dials in flight; 0: all at once
	Prefix string
	serverFlags
}

func parseRecoverFlags(args []string, getenv func(string) string, stderr io.Writer) (recoverConfig, error) {
	var c recoverConfig
	fs := flag.NewFlagSet("wsbench recover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.N, "n", 5000, "members that disconnect and reconnect together")
	fs.IntVar(&c.Missed, "missed", 100, "messages sent to the group while they are away")
	fs.IntVar(&c.Conc, "conc", 0, "reconnects in flight at once (0: every member at once)")
	fs.StringVar(&c.Prefix, "prefix", "r", "username prefix; its first character names the group (chat-r)")
	c.serverFlags.register(fs, getenv, "server process id, for its CPU during the storm", 10*time.Minute)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case c.N < 1 || c.N > maxSockets:
		return c, fmt.Errorf("-n %d: want 1..%d", c.N, maxSockets)
	case c.Missed < 1 || c.Missed > 100_000:
		return c, fmt.Errorf("-missed %d: want 1..100000", c.Missed)
	case c.Conc < 0:
		return c, errors.New("-conc must not be negative")
	case c.Prefix == "":
		return c, errors.New("-prefix must not be empty")
	case c.Timeout <= 0 || c.Timeout > maxTimeout:
		return c, fmt.Errorf("-timeout %s: want at most %s", c.Timeout, maxTimeout)
	}
	return c, nil
}

// recoverResult is a recovery storm's figures, printed as a table and as
// the RESULT line.
type recoverResult struct {
	Scenario        string            `json:"scenario"` // "recover"
	URL             string            `json:"url"`
	Members         int               `json:"members"`
	Missed          int               `json:"missed"` // per member
	Conc            int               `json:"conc"`   // 0: all at once
	Epoch           string            `json:"epoch"`
	Since           uint64            `json:"since"` // the group's offset when the members left
	Reconnected     int               `json:"reconnected"`
	Recovered       int               `json:"recovered"`     // welcomes with recovered: true
	NotRecovered    int               `json:"not_recovered"` // recovered: false or missing
	ConnectFailures map[string]int    `json:"connect_failures,omitempty"`
	FailureSamples  map[string]string `json:"failure_samples,omitempty"`
	Expected        int64             `json:"expected"`  // members × missed
	Delivered       int64             `json:"delivered"` // distinct (member, offset) received
	Lost            int64             `json:"lost"`
	Duplicates      int64             `json:"duplicates"`
	OutOfOrder      int64             `json:"out_of_order"`
	Mismatched      int64             `json:"mismatched"` // an offset's text is not the one sent at it
	Unexpected      map[string]int    `json:"unexpected_closes,omitempty"`
	StormSeconds    float64           `json:"storm_s"` // first reconnect → last member has everything
	DeliveriesPerS  float64           `json:"deliveries_per_s"`
	WelcomeMs       quantiles         `json:"welcome_ms"`  // storm start → a member's welcome
	CompleteMs      quantiles         `json:"complete_ms"` // storm start → a member has every missed message
	ServerCPUMs     int64             `json:"server_cpu_ms,omitempty"`
	ServerCPUPct    float64           `json:"server_cpu_pct,omitempty"`
	ServerRSSKiB    int64             `json:"server_rss_kib,omitempty"` // after the storm
	ToolCPUPct      float64           `json:"tool_cpu_pct"`
	LoadStart       float64           `json:"loadavg_start"`
	TimedOut        bool              `json:"timed_out"`
	WallSeconds     float64           `json:"wall_s"`
	OK              bool              `json:"ok"`
}

// recoverRun is `wsbench recover …`.
func recoverRun(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return scenario[recoverConfig, recoverResult]{
		parse: parseRecoverFlags,
		bench: recoverBench,
		print: printRecover,
		ok:    func(r *recoverResult) bool { return r.OK },
	}.run(ctx, args, getenv, stdout, stderr)
}

// chatFrame is what the storm reads of a server frame.
type chatFrame struct {
	Type      string  `json:"type"`
	User      string  `json:"user"`
	Text      string  `json:"text"`
	Group     string  `json:"group"`
	Epoch     string  `json:"epoch"`
	Offset    *uint64 `json:"offset"`
	Recovered *bool   `json:"recovered"`
}

// stormConn dials the chat of one member and reads its welcome.
type stormDialer struct {
	d     *websocket.Dialer
	wsURL string
}

func newStormDialer(wsURL, source string) *stormDialer {
	nd := &net.Dialer{Timeout: welcomeTimeout}
	if source != "" {
		nd.LocalAddr = &net.TCPAddr{IP: net.ParseIP(source)}
	}
	return &stormDialer{wsURL: wsURL, d: &websocket.Dialer{NetDialContext: nd.DialContext, HandshakeTimeout: welcomeTimeout,
		ReadBufferSize: 4 << 10, WriteBufferPool: &sync.Pool{}}}
}

// dial opens /ws/chat/ with token (and since/epoch when epoch is set) and
// returns the socket and its welcome.
func (sd *stormDialer) dial(ctx context.Context, token, epoch string, since uint64) (*websocket.Conn, chatFrame, error) {
	u := sd.wsURL + "/ws/chat/?token=" + url.QueryEscape(token)
	if epoch != "" {
		u += "&since=" + strconv.FormatUint(since, 10) + "&epoch=" + url.QueryEscape(epoch)
	}
	var w chatFrame
	conn, resp, err := sd.d.DialContext(ctx, u, nil)
	if err != nil {
		return nil, w, fmt.Errorf("%s: %w", dialFailure(err, resp), err)
	}
	conn.SetReadDeadline(time.Now().Add(welcomeTimeout))
	if err := conn.ReadJSON(&w); err != nil {
		conn.Close()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return nil, w, fmt.Errorf("%s: %w", closeKey(ce.Code, ce.Text), err)
		}
		return nil, w, fmt.Errorf("no welcome: %w", err)
	}
	conn.SetReadDeadline(time.Time{})
	if w.Type != "welcome" {
		conn.Close()
		return nil, w, fmt.Errorf("bad welcome: first frame is %q", w.Type)
	}
	return conn, w, nil
}

// politeClose closes conn with 1000 and waits (at most 3 s) for the server
// to close TCP first, so that TIME_WAIT stays on the server's side.
func politeClose(conn *websocket.Conn) {
	conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bench done"), time.Now().Add(2*time.Second))
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		if _, _, err := conn.NextReader(); err != nil {
			break
		}
	}
	conn.Close()
}

// recoverBench runs the storm: prepare, leave, miss, come back.
func recoverBench(ctx context.Context, cfg recoverConfig, stderr io.Writer) (*recoverResult, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	started := time.Now()
	logf := progressLog(cfg.Quiet, stderr)
	httpURL, wsURL, v4, err := cfg.check(ctx)
	if err != nil {
		return nil, err
	}
	names := append(memberNames(cfg.Prefix, cfg.N), cfg.Prefix+"sender")
	logf("preparing %d users", len(names))
	users, secret, err := usersAndSecret(ctx, cfg.DB, cfg.JWTSecret, names)
	if err != nil {
		return nil, err
	}
	tokens := make([]string, len(names))
	for i, n := range names {
		if tokens[i], err = mintToken(secret, users[n], n, time.Now(), cfg.Timeout+10*time.Minute); err != nil {
			return nil, err
		}
	}
	source := func(k int) string {
		if !v4 {
			return ""
		}
		return sourceAddr(k)
	}
	res := &recoverResult{Scenario: "recover", URL: httpURL, Members: cfg.N, Missed: cfg.Missed, Conc: cfg.Conc,
		LoadStart: loadAverage(), ConnectFailures: map[string]int{}, FailureSamples: map[string]string{}, Unexpected: map[string]int{}}
	defer func() { res.WallSeconds = round3(time.Since(started).Seconds()) }()

	// The sender stays connected throughout.
	sender, sw, err := newStormDialer(wsURL, source(0)).dial(ctx, tokens[cfg.N], "", 0)
	if err != nil {
		return res, fmt.Errorf("sender: %w", err)
	}
	defer sender.Close()
	group := sw.Group
	if sw.Epoch == "" || sw.Offset == nil {
		return res, errors.New("the welcome has no epoch or offset: is history off (HISTORY_SIZE=0)?")
	}
	senderFrames := make(chan chatFrame, cfg.Missed+1024)
	go func() {
		defer close(senderFrames)
		for {
			var f chatFrame
			if err := sender.ReadJSON(&f); err != nil {
				return
			}
			if f.Type == "message" && f.User == names[cfg.N] {
				senderFrames <- f
			}
		}
	}()

	// 1. Every member joins, learns epoch and offset, and leaves.
	logf("connecting %d members to %s", cfg.N, group)
	epochs := make([]string, cfg.N)
	sinces := make([]uint64, cfg.N)
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		key := err.Error()
		if k, _, ok := cutColon(key); ok {
			key = k
		}
		res.ConnectFailures[key]++
		res.FailureSamples[key] = truncate(err.Error(), 160)
	}
	first := newStormDialer(wsURL, source(1))
	conns := make([]*websocket.Conn, cfg.N)
	forEach(ctx, cfg.N, 64, func(i int) {
		conn, w, err := first.dial(ctx, tokens[i], "", 0)
		if err != nil {
			fail(fmt.Errorf("first connect: %w", err))
			return
		}
		if w.Group != group || w.Epoch == "" || w.Offset == nil {
			fail(fmt.Errorf("first connect: welcome to %q epoch %q", w.Group, w.Epoch))
			conn.Close()
			return
		}
		epochs[i], sinces[i], conns[i] = w.Epoch, *w.Offset, conn
	})
	if len(res.ConnectFailures) > 0 {
		return res, errors.New("members failed to connect before the storm")
	}
	// Frames after the welcome (presence) are not read: the members leave.
	logf("all %d joined; leaving", cfg.N)
	forEach(ctx, cfg.N, 256, func(i int) { politeClose(conns[i]) })
	since := sinces[0]
	for i := range sinces {
		since = max(since, sinces[i])
	}
	res.Epoch, res.Since = epochs[0], since

	// 2. The sender sends -missed messages; each is stored once its copy
	// comes back, and its offset is where the members must find it.
	logf("sending %d messages while they are away", cfg.Missed)
	texts := map[uint64]string{}
	for k := 1; k <= cfg.Missed; k++ {
		if err := sender.WriteMessage(websocket.TextMessage, []byte("missed|"+strconv.Itoa(k))); err != nil {
			return res, fmt.Errorf("sender: %w", err)
		}
	}
	timeout := time.After(time.Minute)
	var last uint64
	for len(texts) < cfg.Missed {
		select {
		case f, ok := <-senderFrames:
			if !ok {
				return res, errors.New("sender: socket closed before its messages came back")
			}
			if f.Offset != nil {
				texts[*f.Offset] = f.Text
				last = max(last, *f.Offset)
			}
		case <-timeout:
			return res, fmt.Errorf("sender: %d of %d messages came back within a minute", len(texts), cfg.Missed)
		}
	}
	if last != since+uint64(cfg.Missed) {
		return res, fmt.Errorf("the sender's messages end at offset %d, want %d (since %d + %d): someone else sends to %s",
			last, since+uint64(cfg.Missed), since, cfg.Missed, group)
	}

	// 3. The storm: every member reconnects at once with since/epoch.
	logf("storm: %d members reconnect with since/epoch", cfg.N)
	var welcomeH, completeH histogram
	var recovered, notRecovered, reconnected, delivered, lost, dups, ooo, mismatched atomic.Int64
	storm := newStormDialer(wsURL, source(2))
	conc := cfg.Conc
	if conc == 0 {
		conc = cfg.N
	}
	var s0 procSample
	if cfg.ServerPID > 0 {
		s0, _ = readProc(cfg.ServerPID)
	}
	cpu0 := selfCPU()
	t0 := time.Now()
	var hmu sync.Mutex
	forEach(ctx, cfg.N, conc, func(i int) {
		conn, w, err := storm.dial(ctx, tokens[i], epochs[i], sinces[i])
		if err != nil {
			fail(fmt.Errorf("reconnect: %w", err))
			lost.Add(int64(cfg.Missed))
			return
		}
		conns[i] = conn
		reconnected.Add(1)
		hmu.Lock()
		welcomeH.Record(time.Since(t0))
		hmu.Unlock()
		if w.Recovered == nil || !*w.Recovered {
			notRecovered.Add(1)
			lost.Add(int64(cfg.Missed))
			return
		}
		recovered.Add(1)
		next, end := sinces[i]+1, since+uint64(cfg.Missed)
		conn.SetReadDeadline(time.Now().Add(welcomeTimeout))
		for next <= end {
			var f chatFrame
			if err := conn.ReadJSON(&f); err != nil {
				key := "read error"
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					key = closeKey(ce.Code, ce.Text)
				}
				mu.Lock()
				res.Unexpected[key]++
				mu.Unlock()
				break
			}
			if (f.Type != "message" && f.Type != "publish") || f.Offset == nil {
				continue // presence
			}
			switch off := *f.Offset; {
			case off < next:
				dups.Add(1)
				continue
			case off > next:
				ooo.Add(1)
				lost.Add(int64(off - next))
			}
			if texts[*f.Offset] != f.Text {
				mismatched.Add(1)
			}
			delivered.Add(1)
			next = *f.Offset + 1
		}
		if next <= end {
			lost.Add(int64(end - next + 1))
			return
		}
		hmu.Lock()
		completeH.Record(time.Since(t0))
		hmu.Unlock()
	})
	stormTime := time.Since(t0)
	toolCPU := selfCPU() - cpu0
	if cfg.ServerPID > 0 {
		if s1, err := readProc(cfg.ServerPID); err == nil {
			res.ServerCPUMs = (s1.CPU - s0.CPU).Milliseconds()
			res.ServerCPUPct = round1(100 * float64(s1.CPU-s0.CPU) / float64(stormTime))
			res.ServerRSSKiB = s1.RSSKiB
		}
	}
	res.TimedOut = ctx.Err() != nil
	logf("storm over in %.2f s; closing", stormTime.Seconds())
	forEach(context.Background(), cfg.N, 256, func(i int) {
		if conns[i] != nil {
			politeClose(conns[i])
		}
	})

	res.Reconnected = int(reconnected.Load())
	res.Recovered, res.NotRecovered = int(recovered.Load()), int(notRecovered.Load())
	res.Expected = int64(cfg.N) * int64(cfg.Missed)
	res.Delivered, res.Lost, res.Duplicates, res.OutOfOrder, res.Mismatched = delivered.Load(), lost.Load(), dups.Load(), ooo.Load(), mismatched.Load()
	res.StormSeconds = round3(stormTime.Seconds())
	if stormTime > 0 {
		res.DeliveriesPerS = round1(float64(res.Delivered) / stormTime.Seconds())
		res.ToolCPUPct = round1(100 * float64(toolCPU) / float64(stormTime))
	}
	res.WelcomeMs, res.CompleteMs = quantilesOf(&welcomeH), quantilesOf(&completeH)
	res.OK = !res.TimedOut && len(res.ConnectFailures) == 0 && len(res.Unexpected) == 0 && res.Recovered == cfg.N &&
		res.Lost == 0 && res.Duplicates == 0 && res.OutOfOrder == 0 && res.Mismatched == 0 && res.Delivered == res.Expected
	return res, nil
}

// cutColon splits "key: detail" at its first ": ".
func cutColon(s string) (string, string, bool) {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == ':' && s[i+1] == ' ' {
			return s[:i], s[i+2:], true
		}
	}
	return s, "", false
}

// forEach calls fn(i) for i in [0, n), at most conc at a time, and
// waits for them all; it stops starting new calls once ctx is done.
func forEach(ctx context.Context, n, conc int, fn func(i int)) {
	sem := make(chan struct{}, max(1, conc))
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}

// printRecover prints the storm's table and its RESULT line.
func printRecover(w io.Writer, r *recoverResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	q := func(x quantiles) string { return fmt.Sprintf("%.1f / %.1f / %.1f", x.P50, x.P99, x.Max) }
	fmt.Fprintf(tw, "members\t%d, %d messages missed each (since %d, epoch %s)\n", r.Members, r.Missed, r.Since, r.Epoch)
	fmt.Fprintf(tw, "reconnected\t%d (%d recovered, %d not)\n", r.Reconnected, r.Recovered, r.NotRecovered)
	fmt.Fprintf(tw, "delivered\t%d / %d\n", r.Delivered, r.Expected)
	fmt.Fprintf(tw, "lost / dup / out of order / wrong text\t%d / %d / %d / %d\n", r.Lost, r.Duplicates, r.OutOfOrder, r.Mismatched)
	fmt.Fprintf(tw, "storm s\t%.3f (%.0f deliveries/s)\n", r.StormSeconds, r.DeliveriesPerS)
	fmt.Fprintf(tw, "welcome ms p50 / p99 / max\t%s\n", q(r.WelcomeMs))
	fmt.Fprintf(tw, "complete ms p50 / p99 / max\t%s\n", q(r.CompleteMs))
	fmt.Fprintf(tw, "server CPU\t%d ms (%.0f%% of one core)\n", r.ServerCPUMs, r.ServerCPUPct)
	fmt.Fprintf(tw, "connect failures\t%s\n", countsString(r.ConnectFailures))
	fmt.Fprintf(tw, "unexpected closes\t%s\n", countsString(r.Unexpected))
	fmt.Fprintf(tw, "ok\t%v\n", r.OK)
	tw.Flush()
	b, _ := json.Marshal(r)
	fmt.Fprintf(w, "RESULT %s\n", b)
}
