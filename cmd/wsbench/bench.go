package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// syncWriter serialises writes from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// workerHandle is the coordinator's side of one worker, in this process
// or a child: commands go in as lines, events come out as lines.
type workerHandle struct {
	id     int
	in     io.WriteCloser
	events chan event
	wait   func() error
}

type event struct {
	worker int
	kind   string
	data   []byte
	err    error // set with kind "exit"
}

func (h *workerHandle) command(s string) { io.WriteString(h.in, s+"\n") }

// startWorker starts worker id with plan p: in-process when inProc, else
// as a child process of this executable (WSBENCH_WORKER=1).
func startWorker(ctx context.Context, id int, p *plan, inProc bool, stderr io.Writer) (*workerHandle, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	h := &workerHandle{id: id, events: make(chan event, 8)}
	var out io.Reader
	if inProc {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		errc := make(chan error, 1)
		go func() {
			err := workerMain(ctx, inR, outW)
			outW.Close()
			inR.Close()
			errc <- err
		}()
		h.in, out = inW, outR
		h.wait = func() error { return <-errc }
	} else {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("start worker: %w", err)
		}
		cmd := exec.CommandContext(ctx, exe)
		cmd.Env = append(os.Environ(), workerEnv+"=1")
		cmd.Stderr = stderr
		cmd.WaitDelay = 5 * time.Second
		if h.in, err = cmd.StdinPipe(); err != nil {
			return nil, err
		}
		pipe, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start worker: %w", err)
		}
		out, h.wait = pipe, cmd.Wait
	}
	go func() {
		br := bufio.NewReaderSize(out, 1<<16)
		for {
			line, err := br.ReadBytes('\n')
			if err != nil {
				h.events <- event{worker: id, kind: "exit", err: h.wait()}
				close(h.events)
				return
			}
			kind, data, _ := strings.Cut(strings.TrimSpace(string(line)), " ")
			h.events <- event{worker: id, kind: kind, data: []byte(data)}
		}
	}()
	go func() {
		h.in.Write(append(b, '\n'))
	}()
	return h, nil
}

// collect waits for one kind event from every worker and decodes each
// into a new T.
func collect[T any](ctx context.Context, hs []*workerHandle, kind string) ([]T, error) {
	out := make([]T, len(hs))
	for i := 0; i < len(hs); i++ {
		h := hs[i]
		select {
		case ev, ok := <-h.events:
			if !ok || ev.kind == "exit" {
				err := ev.err
				if err == nil {
					err = errors.New("exited early")
				}
				return nil, fmt.Errorf("worker %d: %w (waiting for %q)", h.id, err, kind)
			}
			if ev.kind != kind {
				// A phase's event from a worker that was ahead when another
				// failed: skip it and wait on.
				i--
				continue
			}
			if err := json.Unmarshal(ev.data, &out[i]); err != nil {
				return nil, fmt.Errorf("worker %d: decode %s: %w", h.id, kind, err)
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %q from worker %d: %w", kind, h.id, ctx.Err())
		}
	}
	return out, nil
}

// serverSet samples the -server-pid processes.
type serverSet []int

func (s serverSet) sample() ([]procSample, error) {
	out := make([]procSample, len(s))
	for i, pid := range s {
		var err error
		if out[i], err = readProc(pid); err != nil {
			return nil, fmt.Errorf("server pid %d: %w", pid, err)
		}
	}
	return out, nil
}

// bench runs one scenario and returns its result: it checks the servers,
// prepares users, tokens and plans, starts the workers and drives them
// through the run's phases.
func bench(ctx context.Context, cfg config, stderr io.Writer) (*result, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	started := time.Now()
	stderr = &syncWriter{w: stderr} // workers' stderr copiers share it
	logf := progressLog(cfg.Quiet, stderr)

	tg, err := checkTargets(ctx, cfg)
	if err != nil {
		return nil, err
	}
	servers := serverSet(cfg.ServerPIDs)
	if _, err := servers.sample(); err != nil {
		return nil, err
	}
	lay, err := buildLayout(cfg)
	if err != nil {
		return nil, err
	}
	tokens, err := memberTokens(ctx, cfg, lay, logf)
	if err != nil {
		return nil, err
	}

	// The last part of the run is kept for closing the sockets.
	reserve := min(45*time.Second, cfg.Timeout/4)
	window := sendWindow(cfg)
	plans := makePlans(cfg, lay, tg, tokens, window, started.Add(cfg.Timeout-reserve), reserve)
	res := newResult(cfg, lay, tg, window)
	s0, _ := servers.sample()

	logf("connecting %d sockets (%d group(s), %d source address(es), %d process(es))", cfg.N, cfg.Groups, max(res.Sources, 1), cfg.Procs)
	wctx, wcancel := context.WithTimeout(context.Background(), cfg.Timeout+10*time.Second)
	defer wcancel()
	hs, err := startWorkers(wctx, plans, stderr)
	if err != nil {
		return nil, err
	}
	c := &coordinator{cfg: cfg, hs: hs, res: res, servers: servers, started: started, reserve: reserve, logf: logf}
	return c.finish(c.drive(ctx, s0))
}

// targets are the servers of a run, as checkLoopback resolved them.
type targets struct {
	httpURLs, wsURLs []string
	allV4            bool // every server is on an IPv4 address: -sources apply
}

// checkTargets refuses anything but loopback servers and, with -via
// publish, checks the publish endpoint and key before any socket is
// connected.
func checkTargets(ctx context.Context, cfg config) (targets, error) {
	tg := targets{allV4: true}
	for _, u := range cfg.URLs {
		h, w, v4, err := checkLoopback(ctx, u)
		if err != nil {
			return tg, err
		}
		tg.httpURLs, tg.wsURLs = append(tg.httpURLs, h), append(tg.wsURLs, w)
		tg.allV4 = tg.allV4 && v4
	}
	if cfg.Via == "publish" && cfg.APIKey == "" {
		return tg, errors.New("-via publish needs -api-key (or PUBLISH_API_KEY): the server's key")
	}
	if cfg.Via == "publish" {
		// Fail before connecting thousands of sockets if the endpoint or
		// the key is wrong. The probe group has no members.
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
		err := publish(client, tg.httpURLs[0]+"/api/groups/wsbench-probe/messages", cfg.APIKey, []byte("probe"))
		if err != nil {
			return tg, fmt.Errorf("publish API check: %w", err)
		}
	}
	return tg, nil
}

// memberTokens creates the members' users where missing and signs one
// token per member (indexed like lay.members) with the server's secret.
func memberTokens(ctx context.Context, cfg config, lay *layout, logf func(string, ...any)) ([]string, error) {
	names := make([]string, 0, len(lay.members))
	seen := make(map[string]bool, len(lay.members))
	for _, m := range lay.members {
		if !seen[m.Name] { // with -users, several members are one user
			seen[m.Name] = true
			names = append(names, m.Name)
		}
	}
	logf("preparing %d users", len(names))
	users, secret, err := usersAndSecret(ctx, cfg.DB, cfg.JWTSecret, names)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tokens := make([]string, len(lay.members))
	for i, m := range lay.members {
		if tokens[i], err = mintToken(secret, users[m.Name], m.Name, now, cfg.Timeout+10*time.Minute); err != nil {
			return nil, err
		}
	}
	return tokens, nil
}

// sendWindow is how many messages a group's fast senders may have in
// flight in one worker. By default fast senders keep at most 256 messages
// in flight per group (a member's queue on the server stays at a quarter
// of WS_SEND_QUEUE's default) and about 256k deliveries in all: enough to
// keep the server busy and its writes batched.
func sendWindow(cfg config) int {
	window := cfg.Window
	if window == 0 {
		window = min(256, max(1, 262144/cfg.N))
	}
	return max(1, window/cfg.Procs)
}

// makePlans deals the layout out to the workers: member i goes to worker
// i mod procs, a publisher to the worker of its acknowledging member.
func makePlans(cfg config, lay *layout, tg targets, tokens []string, window int, deadline time.Time, reserve time.Duration) []*plan {
	plans := make([]*plan, cfg.Procs)
	for w := range plans {
		plans[w] = &plan{Worker: w, Via: cfg.Via, HTTPURLs: tg.httpURLs, WSURLs: tg.wsURLs, APIKey: cfg.APIKey,
			Groups: lay.groups, Senders: lay.senderCount(), Conc: cfg.Conc, Window: window, Rate: cfg.Rate,
			Deadline: deadline.UnixNano(), Settle: cfg.Settle,
			Teardown: reserve - reserve/8}
	}
	for i, m := range lay.members {
		src := m.Source
		if !tg.allV4 {
			src = ""
		}
		p := plans[i%cfg.Procs]
		p.Members = append(p.Members, planMember{Index: i, Name: m.Name, Token: tokens[i], Group: m.Group,
			URL: m.URL, Source: src, Sender: m.Sender})
	}
	if cfg.Via == "publish" {
		for g, grp := range lay.groups {
			for j, s := range grp.Senders {
				p := plans[s.Ack%cfg.Procs]
				p.Publishers = append(p.Publishers, planPub{Group: g, Sender: j, URL: (g + j) % len(tg.httpURLs)})
			}
		}
	}
	return plans
}

// newResult is a run's result before anything has happened: what was
// planned.
func newResult(cfg config, lay *layout, tg targets, window int) *result {
	res := &result{Scenario: cfg.Scenario, URLs: tg.httpURLs, Procs: cfg.Procs, Sockets: cfg.N, Users: cfg.Users, Groups: cfg.Groups,
		Senders: lay.senderCount(), Rate: cfg.Rate, LoadStart: loadAverage()}
	if tg.allV4 {
		res.Sources = cfg.Sources
	}
	if cfg.Scenario != "idle" {
		res.Via, res.Window = cfg.Via, window*cfg.Procs
		res.Messages = lay.messageCount()
	}
	return res
}

// startWorkers starts one worker per plan: in this process when there is
// one, else as child processes. On failure it closes those it started.
func startWorkers(ctx context.Context, plans []*plan, stderr io.Writer) ([]*workerHandle, error) {
	hs := make([]*workerHandle, len(plans))
	for w := range hs {
		var err error
		if hs[w], err = startWorker(ctx, w, plans[w], len(plans) == 1, stderr); err != nil {
			for _, h := range hs[:w] {
				h.in.Close()
			}
			return nil, err
		}
	}
	return hs, nil
}

// coordinator drives the started workers of one run through its phases
// (connect, settle, then hold or send) and collects their events into res.
type coordinator struct {
	cfg     config
	hs      []*workerHandle
	res     *result
	servers serverSet
	started time.Time
	reserve time.Duration
	logf    func(format string, args ...any)
}

// drive runs the phases; s0 is the servers' sample before connecting.
func (c *coordinator) drive(ctx context.Context, s0 []procSample) error {
	conns, err := collect[connectedEvent](ctx, c.hs, "connected")
	if err != nil {
		return err
	}
	c.res.addConnected(conns)
	s1, _ := c.servers.sample()
	c.logf("connected %d/%d in %.2f s", c.res.Connected, c.cfg.N, c.res.ConnectSeconds)

	c.broadcast("settle")
	settled, err := collect[settledEvent](ctx, c.hs, "settled")
	if err != nil {
		return err
	}
	c.res.addSettled(settled)
	s2, _ := c.servers.sample()
	c.logf("settled: %d frames so far", c.res.SettleFrames)
	c.res.initServers(c.servers, s0, s1, s2)

	if c.cfg.Scenario == "idle" {
		c.hold(ctx)
		return nil
	}
	return c.send(ctx, s2)
}

// broadcast sends one command to every worker.
func (c *coordinator) broadcast(cmd string) {
	for _, h := range c.hs {
		h.command(cmd)
	}
}

// hold keeps the idle sockets open for -hold, sampling the servers' RSS
// every second.
func (c *coordinator) hold(ctx context.Context) {
	c.logf("holding for %s", c.cfg.Hold)
	hold := time.NewTimer(c.cfg.Hold)
	tick := time.NewTicker(time.Second)
holding:
	for {
		select {
		case <-tick.C:
			if s, err := c.servers.sample(); err == nil {
				c.res.holdSample(s)
			}
		case <-hold.C:
			break holding
		case <-ctx.Done():
			break holding
		}
	}
	tick.Stop()
	if s, err := c.servers.sample(); err == nil {
		c.res.holdSample(s)
	}
}

// sendStart is when the send phase starts: at (-start-unix-ms) unless it
// is zero or earlier than earliest, then earliest; late says at had passed.
func sendStart(earliest, at time.Time) (start time.Time, late bool) {
	if at.IsZero() || at.Before(earliest) {
		return earliest, !at.IsZero()
	}
	return at, false
}

// send starts every worker's senders at one common time and waits until
// every member has what it is owed; s2 is the servers' sample before, taken
// again shortly before a start that is far off, so the server CPU counted
// is the send phase's.
func (c *coordinator) send(ctx context.Context, s2 []procSample) error {
	t0, late := sendStart(time.Now().Add(100*time.Millisecond), c.cfg.StartAt)
	if late {
		c.res.StartLate = true
		c.logf("-start-unix-ms has passed: sending now, not at the time given")
	}
	if wait := time.Until(t0) - 100*time.Millisecond; wait > 100*time.Millisecond {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		if s, err := c.servers.sample(); err == nil {
			s2 = s
		}
	}
	c.logf("sending %d messages (%d senders)", c.res.Messages, c.res.Senders)
	c.broadcast("go " + strconv.FormatInt(t0.UnixNano(), 10))
	complete, err := collect[completeEvent](ctx, c.hs, "complete")
	if err != nil {
		return err
	}
	s3, _ := c.servers.sample()
	c.res.addComplete(t0, complete, s2, s3)
	c.logf("send phase over in %.2f s", c.res.SendSeconds)
	return nil
}

// finish stops the workers, collects their final reports (within the
// reserve) and completes the result. err is the phases' error, if any.
func (c *coordinator) finish(err error) (*result, error) {
	c.broadcast("stop")
	dctx, dcancel := context.WithTimeout(context.Background(), c.reserve+5*time.Second)
	defer dcancel()
	done, derr := collect[doneEvent](dctx, c.hs, "done")
	for _, h := range c.hs {
		h.in.Close()
	}
	for _, h := range c.hs {
		for range h.events { // drain to the exit event
		}
	}
	if derr == nil {
		c.res.addDone(done)
	}
	if err == nil {
		err = derr
	}
	c.res.finish(time.Since(c.started))
	return c.res, err
}
