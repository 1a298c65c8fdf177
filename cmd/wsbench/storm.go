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
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gorilla/websocket"
)

// The storm scenario measures a reconnect storm (issue 13): -n members of
// one group connect over -sources loopback addresses from -procs
// processes; -missed messages are published to the group (POST
// /api/groups/{g}/messages, each stored before its 202); right after the
// last 202 the server is killed (SIGKILL) and -restart-cmd starts it
// again on the same address. Every member sees its socket cut and does
// what web/switchboard.js does: wait backoff(1) (1 s doubling to 30 s,
// ±20% jitter, never under 1 s), ask GET /api/users/me whether its token
// is still good when a handshake failed, and reconnect with
// ?since=<offset of the last message it read>&epoch=<its epoch>. Each
// must be welcomed with "recovered": true and then get every offset it
// had not read before the cut, once, in order, with the text published
// at it.
//
//	wsbench storm -n 15000 -procs 2 -sources 4 -missed 100 \
//	    -server-pid PID -restart-cmd ./restart.sh -api-key KEY
//
// -restart-cmd runs with sh -c once the killed server is gone. It must
// start the server in the background on the same address and print the
// new server's process id on its first line of output, then exit; the
// id is where the restarted server's CPU and peak RSS are read.

// stormConfig is the storm scenario's command line.
type stormConfig struct {
	N          int
	Missed     int
	Procs      int
	Sources    int
	Conc       int
	Prefix     string
	RestartCmd string
	APIKey     string
	RefRate    float64
	CheckToken bool
	serverFlags
}

// stormProcSockets is how many sockets one worker process holds by
// default: well under a per-process open-file limit of 20,000 with room
// for the reconnects.
const stormProcSockets = 7500

func parseStormFlags(args []string, getenv func(string) string, stderr io.Writer) (stormConfig, error) {
	var c stormConfig
	fs := flag.NewFlagSet("wsbench storm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.N, "n", 15000, "members of one group, all cut at once")
	fs.IntVar(&c.Missed, "missed", 100, "messages published to the group just before the cut")
	fs.IntVar(&c.Procs, "procs", 0, "worker processes holding the sockets (default: one per 7,500 sockets)")
	fs.IntVar(&c.Sources, "sources", 0, "loopback source addresses 127.0.0.2, .3, … (default: one per 5,000 sockets)")
	fs.IntVar(&c.Conc, "conc", 64, "first connects in flight per process (the reconnects are not limited: every member has its own timer)")
	fs.StringVar(&c.Prefix, "prefix", "s", "username prefix; its first character names the group (chat-s)")
	fs.StringVar(&c.RestartCmd, "restart-cmd", "", "shell command that starts the server again on the same address in the background and prints its process id")
	fs.StringVar(&c.APIKey, "api-key", getenv("PUBLISH_API_KEY"), "publish API key (default $PUBLISH_API_KEY)")
	fs.Float64Var(&c.RefRate, "ref-rate", 0, "W1's connects/s at this many sockets, measured in the same run: the target is all back within n / rate × 1.5 s")
	fs.BoolVar(&c.CheckToken, "check-token", true, "after a failed handshake ask GET /api/users/me whether the token is good before retrying, as the page does")
	c.serverFlags.register(fs, getenv, "the server to kill (SIGKILL) at the cut", 10*time.Minute)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.Procs == 0 {
		c.Procs = (c.N + stormProcSockets - 1) / stormProcSockets
	}
	if c.Sources == 0 {
		c.Sources = (c.N + 4999) / 5000
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case c.N < 1 || c.N > maxSockets:
		return c, fmt.Errorf("-n %d: want 1..%d", c.N, maxSockets)
	case c.Missed < 0 || c.Missed > 100_000:
		return c, fmt.Errorf("-missed %d: want 0..100000", c.Missed)
	case c.Procs < 1 || c.Procs > maxProcs:
		return c, fmt.Errorf("-procs %d: want 1..%d", c.Procs, maxProcs)
	case c.Sources < 1 || c.Sources > 250:
		return c, fmt.Errorf("-sources %d: want 1..250", c.Sources)
	case c.Conc < 1 || c.Conc > 10000:
		return c, fmt.Errorf("-conc %d: want 1..10000", c.Conc)
	case c.Prefix == "":
		return c, errors.New("-prefix must not be empty")
	case c.ServerPID <= 0:
		return c, errors.New("-server-pid: the server to kill is required")
	case strings.TrimSpace(c.RestartCmd) == "":
		return c, errors.New("-restart-cmd: a command that starts the server again is required")
	case c.Missed > 0 && c.APIKey == "":
		return c, errors.New("-api-key (or PUBLISH_API_KEY) is needed to publish the missed messages")
	case c.RefRate < 0:
		return c, errors.New("-ref-rate must not be negative")
	case c.Timeout <= 0 || c.Timeout > maxTimeout:
		return c, fmt.Errorf("-timeout %s: want at most %s", c.Timeout, maxTimeout)
	}
	return c, nil
}

// pageBackoff is web/switchboard.js's backoff(tries) with Math.random()
// given as rnd in [0, 1): 1 s doubling to 30 s, ±20% jitter, never under
// 1 s (so the first retry comes 1.0 to 1.2 s after a cut).
func pageBackoff(tries int, rnd float64) time.Duration {
	n := max(1, tries)
	base := math.Min(30000, 1000*math.Pow(2, float64(n-1)))
	jittered := base * (0.8 + rnd*0.4)
	ms := math.Round(math.Min(30000, math.Max(1000, jittered)))
	return time.Duration(ms) * time.Millisecond
}

// pageStops is the close codes after which web/switchboard.js does not
// reconnect with backoff (stop, log out, or refresh the token first);
// every other code is retried.
var pageStops = map[int]bool{1000: true, 1002: true, 1003: true, 1007: true, 1008: true, 1009: true,
	4000: true, 4001: true, 4003: true, 4004: true}

// stormResult is a storm's figures, printed as a table and as the RESULT
// line. Times are from the cut (the SIGKILL) unless said otherwise.
type stormResult struct {
	Scenario string `json:"scenario"` // "storm"
	URL      string `json:"url"`
	Members  int    `json:"members"`
	Procs    int    `json:"procs"`
	Sources  int    `json:"sources"`
	Missed   int    `json:"missed"` // messages published just before the cut
	Group    string `json:"group"`
	Epoch    string `json:"epoch"`
	Base     uint64 `json:"base"` // the group's offset before them
	End      uint64 `json:"end"`  // and after

	Connected       int               `json:"connected"` // before the cut
	ConnectFailures map[string]int    `json:"connect_failures,omitempty"`
	ConnectSeconds  float64           `json:"connect_s"`
	ConnectsPerSec  float64           `json:"connects_per_s"`
	PublishSeconds  float64           `json:"publish_s"`
	UnreadMembers   int               `json:"unread_members"`  // members that had not read every message at the cut
	UnreadMessages  int64             `json:"unread_messages"` // and how many they had not read, in all
	CutCloses       map[string]int    `json:"cut_closes,omitempty"`
	RestartMs       float64           `json:"restart_ms"` // the restart command printed the new id
	DownMs          float64           `json:"down_ms"`    // the address accepts TCP again
	Welcomed        int               `json:"welcomed"`   // members welcomed again after the cut
	Recovered       int               `json:"recovered"`
	NotRecovered    int               `json:"not_recovered"` // welcomes without recovered: true
	Attempts        int64             `json:"attempts"`      // reconnect dials in all
	Retried         int               `json:"retried"`       // members that needed more than one
	TokenChecks     int64             `json:"token_checks"`  // GET /api/users/me after a failed handshake
	CutFailures     map[string]int    `json:"cut_failures,omitempty"`
	Failures        map[string]int    `json:"failures,omitempty"` // beyond the cut: dials started once the address accepted TCP again
	FailureSamples  map[string]string `json:"failure_samples,omitempty"`
	Unexpected      map[string]int    `json:"unexpected_closes,omitempty"` // closes not caused by the cut
	Expected        int64             `json:"expected"`                    // = unread_messages
	Delivered       int64             `json:"delivered"`                   // of them, after the cut
	Lost            int64             `json:"lost"`
	Duplicates      int64             `json:"duplicates"`
	Mismatched      int64             `json:"mismatched"` // an offset's data is not the one published at it
	Invalid         int64             `json:"invalid"`    // frames that are neither presence nor our publishes
	BackSeconds     float64           `json:"back_s"`     // the last member welcomed again
	BackAfterUpS    float64           `json:"back_after_up_s"`
	CompleteSeconds float64           `json:"complete_s"` // the last member has everything
	RetryMs         quantiles         `json:"retry_ms"`   // the first reconnect attempt (the backoff)
	UpgradeMs       quantiles         `json:"upgrade_ms"` // the 101 of the socket that was welcomed
	WelcomeMs       quantiles         `json:"welcome_ms"`
	CompleteMs      quantiles         `json:"complete_ms"`

	ServerPID        int     `json:"server_pid"` // the restarted server
	ServerCPUMs      int64   `json:"server_cpu_ms"`
	ServerCPUMsPer1k float64 `json:"server_cpu_ms_per_1k_reconnects"`
	ServerRSSKiB     int64   `json:"server_rss_kib"`
	ServerPeakRSSKiB int64   `json:"server_peak_rss_kib"`
	ToolCPUMs        int64   `json:"tool_cpu_ms"`
	RefRate          float64 `json:"ref_rate,omitempty"`
	TargetSeconds    float64 `json:"target_s,omitempty"`
	TargetMet        *bool   `json:"target_met,omitempty"`
	LoadStart        float64 `json:"loadavg_start"`
	LoadEnd          float64 `json:"loadavg_end"`
	TimedOut         bool    `json:"timed_out"`
	WallSeconds      float64 `json:"wall_s"`
	OK               bool    `json:"ok"`

	cut, up time.Time // the SIGKILL; the address accepting TCP again
}

// stormRun is `wsbench storm …`.
func stormRun(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "markdown" {
		return stormMarkdown(args[1:], stdout)
	}
	return scenario[stormConfig, stormResult]{
		parse: parseStormFlags,
		bench: stormBench,
		print: printStorm,
		ok:    func(r *stormResult) bool { return r.OK },
	}.run(ctx, args, getenv, stdout, stderr)
}

// Storm worker events (worker → coordinator).
type (
	stormConnectedEvent struct {
		connectedEvent
		Group     string   `json:"group"`
		Epochs    []string `json:"epochs"`
		MinOffset uint64   `json:"min_offset"`
		MaxOffset uint64   `json:"max_offset"`
	}
	stormArmedEvent struct {
		Members int `json:"members"`
	}
	stormCompleteEvent struct {
		TimedOut bool `json:"timed_out"`
	}
	stormDoneEvent struct {
		Members        int               `json:"members"`
		Welcomed       int               `json:"welcomed"`
		Recovered      int               `json:"recovered"`
		NotRecovered   int               `json:"not_recovered"`
		Complete       int               `json:"complete"`
		UnreadMembers  int               `json:"unread_members"`
		UnreadMessages int64             `json:"unread_messages"`
		Delivered      int64             `json:"delivered"`
		Lost           int64             `json:"lost"`
		Duplicates     int64             `json:"duplicates"`
		Mismatched     int64             `json:"mismatched"`
		Invalid        int64             `json:"invalid"`
		Attempts       int64             `json:"attempts"`
		Retried        int               `json:"retried"`
		TokenChecks    int64             `json:"token_checks"`
		CutCloses      map[string]int    `json:"cut_closes,omitempty"`
		CutFailures    map[string]int    `json:"cut_failures,omitempty"`
		Failures       map[string]int    `json:"failures,omitempty"`
		Samples        map[string]string `json:"samples,omitempty"`
		Unexpected     map[string]int    `json:"unexpected,omitempty"`
		Retry          histJSON          `json:"retry_hist"`    // cut → first reconnect attempt
		Upgrade        histJSON          `json:"upgrade_hist"`  // cut → the 101 before the welcome
		Welcome        histJSON          `json:"welcome_hist"`  // cut → welcome
		CompleteH      histJSON          `json:"complete_hist"` // cut → everything read
		LastWelcome    int64             `json:"last_welcome"`
		LastComplete   int64             `json:"last_complete"`
		CPUNs          int64             `json:"cpu_ns"`
	}
)

// stormWorker holds one process's members through the storm.
type stormWorker struct {
	p       *plan
	outMu   sync.Mutex
	out     io.Writer
	members []*stormMember
	dialers map[string]*stormDialer
	client  *http.Client // the page's token check
	checks  bool

	armed    atomic.Bool   // the cut is coming: closes from now on are the cut's
	end      atomic.Uint64 // the group's offset after the missed messages
	cutAt    atomic.Int64  // unix ns of the SIGKILL
	upAt     atomic.Int64  // unix ns when the address accepted TCP again
	stopping atomic.Bool

	pending atomic.Int64 // members not yet complete after the cut
	allDone chan struct{}

	first      counter // first connect failures
	cutCloses  counter
	unexpected counter
	attempts   atomic.Int64
	checksDone atomic.Int64
	failMu     sync.Mutex
	failed     []failedDial
}

// failedDial is one reconnect attempt that did not end in a welcome.
type failedDial struct {
	kind, sample string
	start        int64 // unix ns
}

// stormMember is one page: its goroutine alone touches the fields below
// until done is closed.
type stormMember struct {
	w        *stormWorker
	spec     planMember
	conn     atomic.Pointer[websocket.Conn]
	done     chan struct{}
	ready    chan struct{} // closed after the first connect, welcome or not
	rnd      *rand.Rand
	okay     bool // first connect welcomed
	epoch    string
	base     uint64 // offset of its first welcome: the data at base+k is "storm|k"
	last     uint64 // offset of the last message read (the page's position)
	cut      bool   // its socket was cut
	unread   int64  // messages it had not read when cut
	tries    int    // reconnect attempts since the cut
	welcomed int64  // unix ns of its first welcome after the cut
	retried  int64  // unix ns of its first reconnect attempt
	upgraded int64  // unix ns of the 101 that led to that welcome
	complete int64  // unix ns when it had read up to end
	recov    bool
	notRecov bool
	gone     bool // stopped reconnecting (a code or token check the page stops at)
	finished bool // counted off the worker's pending members

	lastUpgrade int64 // unix ns of the last 101

	delivered, lost, dups, mismatched, invalid int64
}

func newStormWorker(p *plan, out io.Writer) *stormWorker {
	w := &stormWorker{p: p, out: out, dialers: map[string]*stormDialer{}, allDone: make(chan struct{}), checks: p.Storm.CheckToken,
		client: &http.Client{Timeout: welcomeTimeout, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}}}
	for i, spec := range p.Members {
		if _, ok := w.dialers[spec.Source]; !ok {
			w.dialers[spec.Source] = newStormDialer(p.WSURLs[0], spec.Source)
		}
		w.members = append(w.members, &stormMember{w: w, spec: spec, done: make(chan struct{}), ready: make(chan struct{}),
			rnd: rand.New(rand.NewPCG(uint64(spec.Index), uint64(time.Now().UnixNano())+uint64(i)))})
	}
	w.pending.Store(int64(len(w.members)))
	if len(w.members) == 0 {
		close(w.allDone)
	}
	return w
}

func (w *stormWorker) emit(kind string, v any) {
	b, _ := json.Marshal(v)
	w.outMu.Lock()
	defer w.outMu.Unlock()
	fmt.Fprintf(w.out, "%s %s\n", kind, b)
}

// run connects the members, then obeys "cut <end>", "cutat <ns>",
// "up <ns>" and "stop"; it reports "connected", "armed", "complete" and
// "done".
func (w *stormWorker) run(ctx context.Context, cmds <-chan string) error {
	work, cancelWork := context.WithDeadline(ctx, time.Unix(0, w.p.Deadline))
	defer cancelWork()
	cpu0 := selfCPU()
	start := time.Now()
	sem := make(chan struct{}, w.p.Conc)
	for _, m := range w.members {
		go m.life(work, sem)
	}
	for _, m := range w.members {
		select {
		case <-m.ready:
		case <-work.Done():
		}
	}
	w.emit("connected", w.connected(start))

	for {
		var cmd string
		select {
		case c, ok := <-cmds:
			cmd = c
			if !ok {
				cmd = "stop"
			}
		case <-ctx.Done():
			cmd = "stop"
		}
		verb, arg, _ := strings.Cut(cmd, " ")
		n, _ := strconv.ParseUint(arg, 10, 64)
		switch verb {
		case "cut":
			w.end.Store(n)
			w.armed.Store(true)
			w.emit("armed", stormArmedEvent{Members: len(w.members)})
			go func() {
				select {
				case <-w.allDone:
					w.emit("complete", stormCompleteEvent{})
				case <-work.Done():
					w.emit("complete", stormCompleteEvent{TimedOut: true})
				}
			}()
		case "cutat":
			w.cutAt.Store(int64(n))
		case "up":
			w.upAt.Store(int64(n))
		case "stop":
			w.teardown(cancelWork)
			w.emit("done", w.report(selfCPU()-cpu0))
			return nil
		default:
			return fmt.Errorf("storm worker: unknown command %q", cmd)
		}
	}
}

// teardown closes every socket with 1000 and lets the server close TCP
// first (TIME_WAIT stays on its side), within the plan's Teardown; then
// it closes what is left itself. Members waiting to reconnect stop.
func (w *stormWorker) teardown(cancelWork context.CancelFunc) {
	w.stopping.Store(true)
	cancelWork()
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bench done")
	deadline := time.Now().Add(2 * time.Second)
	for _, m := range w.members {
		if c := m.conn.Load(); c != nil {
			c.WriteControl(websocket.CloseMessage, msg, deadline)
		}
	}
	limit := time.NewTimer(w.p.Teardown)
	defer limit.Stop()
	expired := false
	for _, m := range w.members {
		if !expired {
			select {
			case <-m.done:
				continue
			case <-limit.C:
				expired = true
			}
		}
		if c := m.conn.Load(); c != nil {
			c.Close()
		}
		<-m.done
	}
}

func (w *stormWorker) connected(start time.Time) stormConnectedEvent {
	ev := stormConnectedEvent{connectedEvent: connectedEvent{Start: start.UnixNano(), End: time.Now().UnixNano()}}
	epochs := map[string]bool{}
	for _, m := range w.members {
		select {
		case <-m.ready:
		default:
			continue // the run's deadline came first
		}
		if !m.okay {
			continue
		}
		if ev.Connected == 0 || m.base < ev.MinOffset {
			ev.MinOffset = m.base
		}
		ev.MaxOffset = max(ev.MaxOffset, m.base)
		ev.Connected++
		epochs[m.epoch] = true
	}
	for e := range epochs {
		ev.Epochs = append(ev.Epochs, e)
	}
	ev.Failures, ev.Samples = w.first.snapshot()
	if len(w.members) > 0 {
		ev.Group = w.p.Groups[0].Name
	}
	return ev
}

// life is one page: the first connect (at most Conc at a time), then
// reading, and after every close the page's backoff and reconnect with
// since/epoch, until the run stops.
func (m *stormMember) life(ctx context.Context, sem chan struct{}) {
	defer close(m.done)
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		m.w.first.add("deadline", "run deadline before dialing")
		close(m.ready)
		m.finish()
		return
	}
	conn, wf, kind, err := m.dial(ctx, false)
	<-sem
	if err == nil && (wf.Epoch == "" || wf.Offset == nil || wf.Group != m.w.p.Groups[0].Name) {
		conn.Close()
		kind, err = "bad welcome", fmt.Errorf("welcome to %q, epoch %q: is history off (HISTORY_SIZE=0)?", wf.Group, wf.Epoch)
	}
	if err != nil {
		m.w.first.add(kind, truncate(err.Error(), 160))
		close(m.ready)
		m.finish()
		return
	}
	m.okay, m.epoch, m.base, m.last = true, wf.Epoch, *wf.Offset, *wf.Offset
	m.conn.Store(conn)
	close(m.ready)
	for {
		code := m.read(conn)
		if m.w.stopping.Load() || ctx.Err() != nil {
			return
		}
		m.conn.Store(nil)
		if !m.w.armed.Load() || m.cut {
			// Not the cut: a close of its own, before the cut or after
			// the member was welcomed again.
			m.w.unexpected.add(closeKey(code, ""), "")
		} else if !m.cut {
			m.cut = true
			m.w.cutCloses.add(closeKey(code, ""), "")
			m.unread = int64(m.w.end.Load() - min(m.last, m.w.end.Load()))
		}
		if pageStops[code] {
			m.gone = true
			m.finish()
			return
		}
		if conn = m.reconnect(ctx); conn == nil {
			m.finish()
			return
		}
	}
}

// reconnect retries as the page does until a welcome, a close the page
// stops at, or the end of the run.
func (m *stormMember) reconnect(ctx context.Context) *websocket.Conn {
	for tries := 1; ; tries++ {
		t := time.NewTimer(pageBackoff(tries, m.rnd.Float64()))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
		m.tries++
		m.w.attempts.Add(1)
		start := time.Now().UnixNano()
		if m.cut && m.retried == 0 {
			m.retried = start
		}
		conn, wf, kind, err := m.dial(ctx, true)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			m.w.fail(kind, err, start)
			var ce *websocket.CloseError
			if errors.As(err, &ce) && pageStops[ce.Code] {
				m.gone = true
				return nil
			}
			if !errors.As(err, &ce) && m.w.checks && m.tokenRefused(ctx) {
				m.w.fail("token refused by GET /api/users/me", err, start)
				m.gone = true
				return nil
			}
			continue
		}
		if m.cut && m.welcomed == 0 {
			m.welcomed, m.upgraded = time.Now().UnixNano(), m.lastUpgrade
		}
		if wf.Recovered != nil && *wf.Recovered && wf.Epoch == m.epoch {
			m.recov = true
		} else {
			// The page starts over from the welcome's position; whatever
			// lay between is a gap.
			m.notRecov = true
			if wf.Offset != nil && *wf.Offset > m.last {
				m.lost += int64(*wf.Offset - m.last)
				m.last = *wf.Offset
			}
			m.epoch = wf.Epoch
		}
		m.conn.Store(conn)
		m.checkComplete()
		return conn
	}
}

// tokenRefused is the page's check after a failed handshake: GET
// /api/users/me with the token; 401 or 403 mean retrying cannot help.
func (m *stormMember) tokenRefused(ctx context.Context) bool {
	m.w.checksDone.Add(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.w.p.HTTPURLs[0]+"/api/users/me", nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+m.spec.Token)
	resp, err := m.w.client.Do(req)
	if err != nil {
		return false // unreachable: try again later
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden
}

func (w *stormWorker) fail(kind string, err error, start int64) {
	w.failMu.Lock()
	defer w.failMu.Unlock()
	w.failed = append(w.failed, failedDial{kind: kind, sample: truncate(err.Error(), 160), start: start})
}

// dial opens the member's chat socket, with since/epoch on a reconnect,
// and reads its welcome. kind names a failure for the tables.
func (m *stormMember) dial(ctx context.Context, recover bool) (*websocket.Conn, chatFrame, string, error) {
	sd := m.w.dialers[m.spec.Source]
	u := sd.wsURL + "/ws/chat/?token=" + url.QueryEscape(m.spec.Token)
	if recover {
		u += "&since=" + strconv.FormatUint(m.last, 10) + "&epoch=" + url.QueryEscape(m.epoch)
	}
	var wf chatFrame
	conn, resp, err := sd.d.DialContext(ctx, u, nil)
	if err != nil {
		return nil, wf, dialFailure(err, resp), err
	}
	m.lastUpgrade = time.Now().UnixNano()
	conn.SetReadDeadline(time.Now().Add(welcomeTimeout))
	if err := conn.ReadJSON(&wf); err != nil {
		conn.Close()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return nil, wf, closeKey(ce.Code, ce.Text), err
		}
		return nil, wf, "no welcome", err
	}
	conn.SetReadDeadline(time.Time{})
	if wf.Type != "welcome" {
		conn.Close()
		return nil, wf, "bad welcome", fmt.Errorf("first frame is %q", wf.Type)
	}
	return conn, wf, "", nil
}

var keyOffset = []byte(`"offset":`)

// read reads conn until it fails and returns the close code (1006 when
// the connection just ended), tracking the page's position.
func (m *stormMember) read(conn *websocket.Conn) int {
	buf := make([]byte, 0, 256)
	for {
		_, r, err := conn.NextReader()
		if err == nil {
			buf, err = readInto(r, buf[:0])
		}
		if err != nil {
			var ce *websocket.CloseError
			code := websocket.CloseAbnormalClosure
			if errors.As(err, &ce) {
				code = ce.Code
				// The server closed: let it close TCP first.
				nc := conn.NetConn()
				nc.SetReadDeadline(time.Now().Add(3 * time.Second))
				io.Copy(io.Discard, nc)
			}
			conn.Close()
			return code
		}
		if frameKind(buf) != 'p' || isPresence(buf) {
			if frameKind(buf) != 'p' && frameKind(buf) != 'j' && frameKind(buf) != 'l' {
				m.invalid++ // nobody sends chat messages here
			}
			continue
		}
		off, ok1 := uintField(buf, keyOffset)
		data, ok2 := stringField(buf, keyData)
		if !ok1 || !ok2 {
			m.invalid++
			continue
		}
		m.track(off, data)
	}
}

// track is the page's _track for one publish, plus the checks: each
// offset once, none skipped, with the data published at it.
func (m *stormMember) track(off uint64, data []byte) {
	switch {
	case off <= m.last:
		m.dups++
		return
	case off > m.last+1:
		m.lost += int64(off - m.last - 1)
	}
	if string(data) != "storm|"+strconv.FormatUint(off-m.base, 10) {
		m.mismatched++
	}
	if m.cut {
		m.delivered++
	}
	m.last = off
	m.checkComplete()
}

// checkComplete finishes the member once it is back after the cut and has
// read everything up to the end.
func (m *stormMember) checkComplete() {
	if m.complete == 0 && m.cut && m.welcomed != 0 && m.last >= m.w.end.Load() {
		m.complete = time.Now().UnixNano()
		m.finish()
	}
}

func (m *stormMember) finish() {
	if m.finished {
		return
	}
	m.finished = true
	if m.w.pending.Add(-1) == 0 {
		close(m.w.allDone)
	}
}

// uintField returns the unsigned number after key (given as `"name":`).
func uintField(frame, key []byte) (uint64, bool) {
	i := bytes.Index(frame, key)
	if i < 0 {
		return 0, false
	}
	j := i + len(key)
	k := j
	for k < len(frame) && frame[k] >= '0' && frame[k] <= '9' {
		k++
	}
	v, err := strconv.ParseUint(string(frame[j:k]), 10, 64)
	return v, err == nil
}

func (w *stormWorker) report(cpu time.Duration) stormDoneEvent {
	ev := stormDoneEvent{Members: len(w.members), CPUNs: int64(cpu), Attempts: w.attempts.Load(), TokenChecks: w.checksDone.Load()}
	cut := w.cutAt.Load()
	var welcome, complete, retry, upgrade histogram
	end := w.end.Load()
	for _, m := range w.members {
		if m.retried != 0 {
			retry.Record(time.Duration(m.retried - cut))
		}
		if m.upgraded != 0 {
			upgrade.Record(time.Duration(m.upgraded - cut))
		}
		if m.welcomed != 0 {
			ev.Welcomed++
			welcome.Record(time.Duration(m.welcomed - cut))
			ev.LastWelcome = max(ev.LastWelcome, m.welcomed)
		}
		if m.complete != 0 {
			ev.Complete++
			complete.Record(time.Duration(m.complete - cut))
			ev.LastComplete = max(ev.LastComplete, m.complete)
		}
		if m.recov && !m.notRecov {
			ev.Recovered++
		}
		if m.notRecov {
			ev.NotRecovered++
		}
		if m.unread > 0 {
			ev.UnreadMembers++
			ev.UnreadMessages += m.unread
		}
		if m.tries > 1 {
			ev.Retried++
		}
		lost := m.lost
		if m.okay && m.complete == 0 && m.last < end {
			lost += int64(end - m.last) // never came back, or not all the way
		}
		ev.Delivered += m.delivered
		ev.Lost += lost
		ev.Duplicates += m.dups
		ev.Mismatched += m.mismatched
		ev.Invalid += m.invalid
	}
	ev.Welcome, ev.CompleteH = welcome.export(), complete.export()
	ev.Retry, ev.Upgrade = retry.export(), upgrade.export()
	ev.CutCloses, _ = w.cutCloses.snapshot()
	ev.Unexpected, _ = w.unexpected.snapshot()
	// A dial started before the address accepted TCP again is the cut
	// itself; any later failure is not.
	up := w.upAt.Load()
	var cutF, after counter
	for _, f := range w.failed {
		if up == 0 || f.start < up {
			cutF.add(f.kind, f.sample)
		} else {
			after.add(f.kind, f.sample)
		}
	}
	ev.CutFailures, _ = cutF.snapshot()
	ev.Failures, ev.Samples = after.snapshot()
	return ev
}

// stormBench runs the storm: connect, publish, cut, restart, come back.
func stormBench(ctx context.Context, cfg stormConfig, stderr io.Writer) (*stormResult, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	started := time.Now()
	stderr = &syncWriter{w: stderr}
	logf := progressLog(cfg.Quiet, stderr)
	httpURL, wsURL, v4, err := cfg.check(ctx)
	if err != nil {
		return nil, err
	}
	names := memberNames(cfg.Prefix, cfg.N)
	logf("preparing %d users", len(names))
	users, secret, err := usersAndSecret(ctx, cfg.DB, cfg.JWTSecret, names)
	if err != nil {
		return nil, err
	}
	reserve := min(45*time.Second, cfg.Timeout/4)
	plans := make([]*plan, cfg.Procs)
	for w := range plans {
		plans[w] = &plan{Worker: w, HTTPURLs: []string{httpURL}, WSURLs: []string{wsURL}, Conc: cfg.Conc,
			Groups:   []planGroup{{Name: "chat-" + strings.ToLower(string([]rune(cfg.Prefix)[0]))}},
			Deadline: started.Add(cfg.Timeout - reserve).UnixNano(), Teardown: reserve - reserve/8,
			Storm: &stormPlan{CheckToken: cfg.CheckToken}}
	}
	now := time.Now()
	for i, n := range names {
		tok, err := mintToken(secret, users[n], n, now, cfg.Timeout+10*time.Minute)
		if err != nil {
			return nil, err
		}
		src := ""
		if v4 {
			src = sourceAddr(i % cfg.Sources)
		}
		p := plans[i%cfg.Procs]
		p.Members = append(p.Members, planMember{Index: i, Name: n, Token: tok, Source: src, Sender: -1})
	}
	res := &stormResult{Scenario: "storm", URL: httpURL, Members: cfg.N, Procs: cfg.Procs, Sources: cfg.Sources, Missed: cfg.Missed,
		RefRate: cfg.RefRate, LoadStart: loadAverage()}
	defer func() { res.WallSeconds = round3(time.Since(started).Seconds()) }()

	logf("connecting %d members (%d process(es), %d source address(es))", cfg.N, cfg.Procs, cfg.Sources)
	wctx, wcancel := context.WithTimeout(context.Background(), cfg.Timeout+10*time.Second)
	defer wcancel()
	hs, err := startWorkers(wctx, plans, stderr)
	if err != nil {
		return nil, err
	}
	broadcast := func(cmd string) {
		for _, h := range hs {
			h.command(cmd)
		}
	}
	cpu0 := selfCPU()
	err = stormDrive(ctx, cfg, httpURL, hs, broadcast, res, logf)
	// Stop the workers and collect their reports within the reserve.
	broadcast("stop")
	dctx, dcancel := context.WithTimeout(context.Background(), reserve+5*time.Second)
	defer dcancel()
	done, derr := collect[stormDoneEvent](dctx, hs, "done")
	for _, h := range hs {
		h.in.Close()
	}
	for _, h := range hs {
		for range h.events {
		}
	}
	if derr == nil {
		res.addDone(done, cfg)
	}
	if err == nil {
		err = derr
	}
	res.ToolCPUMs = (selfCPU() - cpu0).Milliseconds()
	for _, d := range done {
		res.ToolCPUMs += time.Duration(d.CPUNs).Milliseconds()
	}
	if cfg.Procs == 1 {
		res.ToolCPUMs = (selfCPU() - cpu0).Milliseconds() // the worker ran in this process
	}
	res.LoadEnd = loadAverage()
	res.TimedOut = res.TimedOut || ctx.Err() != nil
	res.OK = err == nil && !res.TimedOut && res.Connected == cfg.N && len(res.ConnectFailures) == 0 && res.Welcomed == cfg.N &&
		res.Recovered == cfg.N && res.NotRecovered == 0 && len(res.Failures) == 0 && len(res.Unexpected) == 0 &&
		res.Lost == 0 && res.Duplicates == 0 && res.Mismatched == 0 && res.Invalid == 0 && res.Delivered == res.Expected
	return res, err
}

// stormDrive is the coordinator's part between the workers' start and
// their stop.
func stormDrive(ctx context.Context, cfg stormConfig, httpURL string, hs []*workerHandle, broadcast func(string),
	res *stormResult, logf func(string, ...any)) error {
	conns, err := collect[stormConnectedEvent](ctx, hs, "connected")
	if err != nil {
		return err
	}
	var start, end int64
	epochs := map[string]bool{}
	for i, ev := range conns {
		res.Connected += ev.Connected
		res.ConnectFailures, _ = mergeCounts(res.ConnectFailures, nil, ev.Failures, nil)
		if i == 0 || ev.Start < start {
			start = ev.Start
		}
		end = max(end, ev.End)
		for _, e := range ev.Epochs {
			epochs[e] = true
		}
		if ev.Connected > 0 {
			if res.Group == "" || ev.MinOffset < res.Base {
				res.Base = ev.MinOffset
			}
			res.End = max(res.End, ev.MaxOffset)
		}
		res.Group = ev.Group
	}
	res.ConnectSeconds = round3(float64(end-start) / 1e9)
	if res.ConnectSeconds > 0 {
		res.ConnectsPerSec = round1(float64(res.Connected) / res.ConnectSeconds)
	}
	logf("connected %d/%d in %.2f s", res.Connected, cfg.N, res.ConnectSeconds)
	if res.Connected != cfg.N {
		return fmt.Errorf("%d of %d members connected before the cut: %s", res.Connected, cfg.N, countsString(res.ConnectFailures))
	}
	if len(epochs) != 1 || res.Base != res.End {
		return fmt.Errorf("the members' welcomes disagree (epochs %d, offsets %d..%d): someone else sends to %s", len(epochs), res.Base, res.End, res.Group)
	}
	for e := range epochs {
		res.Epoch = e
	}

	// The missed messages: each stored before its 202, so each must come
	// back to every member that had not read it when the cut came.
	logf("publishing %d messages to %s", cfg.Missed, res.Group)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}
	endpoint := httpURL + "/api/groups/" + url.PathEscape(res.Group) + "/messages"
	p0 := time.Now()
	for k := 1; k <= cfg.Missed; k++ {
		if err := publish(client, endpoint, cfg.APIKey, []byte("storm|"+strconv.Itoa(k))); err != nil {
			return fmt.Errorf("publish %d: %w", k, err)
		}
	}
	res.PublishSeconds = round3(time.Since(p0).Seconds())
	res.End = res.Base + uint64(cfg.Missed)
	client.CloseIdleConnections()

	broadcast("cut " + strconv.FormatUint(res.End, 10))
	if _, err := collect[stormArmedEvent](ctx, hs, "armed"); err != nil {
		return err
	}
	// The cut.
	cut := time.Now()
	if err := syscall.Kill(cfg.ServerPID, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill server %d: %w", cfg.ServerPID, err)
	}
	broadcast("cutat " + strconv.FormatInt(cut.UnixNano(), 10))
	logf("killed server %d; restarting", cfg.ServerPID)
	host := strings.TrimPrefix(httpURL, "http://")
	if err := waitDead(ctx, cfg.ServerPID, host); err != nil {
		return err
	}
	pid, err := restartServer(ctx, cfg.RestartCmd, logWriter(logf))
	if err != nil {
		return err
	}
	res.ServerPID = pid
	res.RestartMs = round1(float64(time.Since(cut)) / 1e6)
	if err := waitListening(ctx, host, pid); err != nil {
		return fmt.Errorf("restarted server (pid %d) does not listen on %s: %w", pid, host, err)
	}
	up := time.Now()
	broadcast("up " + strconv.FormatInt(up.UnixNano(), 10))
	res.DownMs = round1(float64(up.Sub(cut)) / 1e6)
	logf("listening again after %.0f ms (pid %d); waiting for every member", res.DownMs, pid)

	// A restarted server that exits (it could not bind, say) ends the run
	// instead of leaving the members retrying until -timeout.
	wait, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var serverGone atomic.Bool
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-wait.Done():
				return
			case <-t.C:
				if exited(pid) {
					serverGone.Store(true)
					stopWatch()
					return
				}
			}
		}
	}()
	complete, err := collect[stormCompleteEvent](wait, hs, "complete")
	if serverGone.Load() {
		err = fmt.Errorf("the restarted server (pid %d) exited during the storm: see its log", pid)
	}
	if s, perr := readProc(pid); perr == nil {
		res.ServerCPUMs, res.ServerRSSKiB = s.CPU.Milliseconds(), s.RSSKiB
	}
	res.ServerPeakRSSKiB = peakRSS(pid)
	for _, c := range complete {
		res.TimedOut = res.TimedOut || c.TimedOut
	}
	// Times relative to the cut, and to the address accepting TCP again.
	res.cut, res.up = cut, up
	return err
}

// logWriter adapts logf for the restart command's output (one line each).
func logWriter(logf func(string, ...any)) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
			logf("restart-cmd: %s", l)
		}
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// waitDead waits (10 s at most) until pid has exited and its listening
// socket on host is gone: the process is gone or a zombie its parent has
// not reaped yet, and a connect to host is refused. The process alone is
// not enough: its main thread turns zombie while other threads still
// hold its files (a restart then fails with "address already in use").
func waitDead(ctx context.Context, pid int, host string) error {
	deadline := time.Now().Add(10 * time.Second)
	d := net.Dialer{Timeout: 200 * time.Millisecond}
	for {
		if exited(pid) {
			c, err := d.DialContext(ctx, "tcp", host)
			if err == nil {
				c.Close()
			} else if errors.Is(err, syscall.ECONNREFUSED) {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("server %d (or its listener on %s) still there 10 s after SIGKILL", pid, host)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// restartServer runs cmd with sh -c and returns the process id printed on
// the first line of its output (30 s at most).
func restartServer(ctx context.Context, cmd string, logw io.Writer) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	c.Stderr = logw
	c.WaitDelay = time.Second
	out, err := c.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := c.Start(); err != nil {
		return 0, fmt.Errorf("restart-cmd: %w", err)
	}
	line, rerr := bufio.NewReader(out).ReadString('\n')
	go io.Copy(io.Discard, out)
	werr := c.Wait()
	pid, perr := strconv.Atoi(strings.TrimSpace(line))
	switch {
	case perr != nil || pid <= 0:
		return 0, fmt.Errorf("restart-cmd printed %q, want the new server's process id (read: %v, exit: %v)", truncate(line, 80), rerr, werr)
	case werr != nil:
		return 0, fmt.Errorf("restart-cmd: %w", werr)
	}
	if _, err := readProc(pid); err != nil {
		return 0, fmt.Errorf("restart-cmd: process %d: %w", pid, err)
	}
	return pid, nil
}

// exited tells whether pid is gone or a zombie.
func exited(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && len(b) > i+2 && (b[i+2] == 'Z' || b[i+2] == 'X')
}

// waitListening dials host until it accepts TCP (every 5 ms), or the
// server pid has exited.
func waitListening(ctx context.Context, host string, pid int) error {
	d := net.Dialer{Timeout: 200 * time.Millisecond}
	for {
		c, err := d.DialContext(ctx, "tcp", host)
		if err == nil {
			c.Close()
			return nil
		}
		if exited(pid) {
			return errors.New("it exited: see its log")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// peakRSS is VmHWM of pid in KiB: the most it was resident at any time.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return 0
}

func (r *stormResult) addDone(evs []stormDoneEvent, cfg stormConfig) {
	var welcome, complete, retry, upgrade histogram
	var lastW, lastC int64
	for _, ev := range evs {
		r.Welcomed += ev.Welcomed
		r.Recovered += ev.Recovered
		r.NotRecovered += ev.NotRecovered
		r.UnreadMembers += ev.UnreadMembers
		r.UnreadMessages += ev.UnreadMessages
		r.Delivered += ev.Delivered
		r.Lost += ev.Lost
		r.Duplicates += ev.Duplicates
		r.Mismatched += ev.Mismatched
		r.Invalid += ev.Invalid
		r.Attempts += ev.Attempts
		r.Retried += ev.Retried
		r.TokenChecks += ev.TokenChecks
		r.CutCloses, _ = mergeCounts(r.CutCloses, nil, ev.CutCloses, nil)
		r.CutFailures, _ = mergeCounts(r.CutFailures, nil, ev.CutFailures, nil)
		r.Failures, r.FailureSamples = mergeCounts(r.Failures, r.FailureSamples, ev.Failures, ev.Samples)
		r.Unexpected, _ = mergeCounts(r.Unexpected, nil, ev.Unexpected, nil)
		welcome.merge(ev.Welcome)
		retry.merge(ev.Retry)
		upgrade.merge(ev.Upgrade)
		complete.merge(ev.CompleteH)
		lastW, lastC = max(lastW, ev.LastWelcome), max(lastC, ev.LastComplete)
	}
	r.Expected = r.UnreadMessages
	r.WelcomeMs, r.CompleteMs = quantilesOf(&welcome), quantilesOf(&complete)
	r.RetryMs, r.UpgradeMs = quantilesOf(&retry), quantilesOf(&upgrade)
	if !r.cut.IsZero() {
		if lastW > 0 {
			r.BackSeconds = round3(float64(lastW-r.cut.UnixNano()) / 1e9)
			r.BackAfterUpS = round3(float64(lastW-r.up.UnixNano()) / 1e9)
		}
		if lastC > 0 {
			r.CompleteSeconds = round3(float64(lastC-r.cut.UnixNano()) / 1e9)
		}
	}
	if r.Welcomed > 0 && r.ServerCPUMs > 0 {
		r.ServerCPUMsPer1k = round1(float64(r.ServerCPUMs) * 1000 / float64(r.Welcomed))
	}
	if cfg.RefRate > 0 {
		r.TargetSeconds = round3(float64(cfg.N) / cfg.RefRate * 1.5)
		met := r.Welcomed == cfg.N && r.BackSeconds > 0 && r.BackSeconds <= r.TargetSeconds
		r.TargetMet = &met
	}
}

// printStorm prints the storm's table and its RESULT line.
func printStorm(w io.Writer, r *stormResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	q := func(x quantiles) string { return fmt.Sprintf("%.0f / %.0f / %.0f", x.P50, x.P99, x.Max) }
	fmt.Fprintf(tw, "members\t%d in %s over %d process(es), %d source address(es)\n", r.Members, r.Group, r.Procs, r.Sources)
	fmt.Fprintf(tw, "first connect\t%d in %.2f s (%.0f/s)\n", r.Connected, r.ConnectSeconds, r.ConnectsPerSec)
	fmt.Fprintf(tw, "published before the cut\t%d in %.2f s (offsets %d..%d, epoch %s)\n", r.Missed, r.PublishSeconds, r.Base+1, r.End, r.Epoch)
	fmt.Fprintf(tw, "unread at the cut\t%d members, %d messages\n", r.UnreadMembers, r.UnreadMessages)
	fmt.Fprintf(tw, "closes at the cut\t%s\n", countsString(r.CutCloses))
	fmt.Fprintf(tw, "server back\tpid %d printed after %.0f ms, listening after %.0f ms\n", r.ServerPID, r.RestartMs, r.DownMs)
	fmt.Fprintf(tw, "welcomed again\t%d (%d recovered, %d not), last %.3f s after the cut (%.3f s after listening)\n", r.Welcomed, r.Recovered, r.NotRecovered, r.BackSeconds, r.BackAfterUpS)
	fmt.Fprintf(tw, "all caught up\t%.3f s after the cut\n", r.CompleteSeconds)
	fmt.Fprintf(tw, "first retry ms p50 / p99 / max\t%s (from the cut)\n", q(r.RetryMs))
	fmt.Fprintf(tw, "upgrade (101) ms p50 / p99 / max\t%s\n", q(r.UpgradeMs))
	fmt.Fprintf(tw, "welcome ms p50 / p99 / max\t%s\n", q(r.WelcomeMs))
	fmt.Fprintf(tw, "complete ms p50 / p99 / max\t%s\n", q(r.CompleteMs))
	fmt.Fprintf(tw, "reconnect attempts\t%d (%d members retried; %d token checks)\n", r.Attempts, r.Retried, r.TokenChecks)
	fmt.Fprintf(tw, "failures while down\t%s\n", countsString(r.CutFailures))
	fmt.Fprintf(tw, "failures beyond the cut\t%s\n", countsString(r.Failures))
	fmt.Fprintf(tw, "unexpected closes\t%s\n", countsString(r.Unexpected))
	fmt.Fprintf(tw, "delivered after the cut\t%d / %d\n", r.Delivered, r.Expected)
	fmt.Fprintf(tw, "lost / dup / wrong data / invalid\t%d / %d / %d / %d\n", r.Lost, r.Duplicates, r.Mismatched, r.Invalid)
	fmt.Fprintf(tw, "restarted server\tCPU %d ms (%.1f ms per 1k reconnects), RSS %d KiB, peak %d KiB\n", r.ServerCPUMs, r.ServerCPUMsPer1k, r.ServerRSSKiB, r.ServerPeakRSSKiB)
	if r.TargetMet != nil {
		fmt.Fprintf(tw, "target\tall back within %d / %.1f × 1.5 = %.2f s: %v\n", r.Members, r.RefRate, r.TargetSeconds, *r.TargetMet)
	}
	fmt.Fprintf(tw, "load\t%.2f → %.2f\n", r.LoadStart, r.LoadEnd)
	fmt.Fprintf(tw, "ok\t%v\n", r.OK)
	tw.Flush()
	b, _ := json.Marshal(r)
	fmt.Fprintf(w, "RESULT %s\n", b)
}

// stormPlan marks a worker's plan as a storm's (the rest of the plan
// gives its members, URLs, Conc, Deadline and Teardown).
type stormPlan struct {
	CheckToken bool `json:"check_token"`
}
