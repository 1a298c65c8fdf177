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

// bench runs one scenario and returns its result.
func bench(ctx context.Context, cfg config, stderr io.Writer) (*result, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	started := time.Now()
	stderr = &syncWriter{w: stderr} // workers' stderr copiers share it
	logf := func(format string, args ...any) {
		if !cfg.Quiet {
			fmt.Fprintf(stderr, "wsbench: "+format+"\n", args...)
		}
	}

	var httpURLs, wsURLs []string
	allV4 := true
	for _, u := range cfg.URLs {
		h, w, v4, err := checkLoopback(ctx, u)
		if err != nil {
			return nil, err
		}
		httpURLs, wsURLs = append(httpURLs, h), append(wsURLs, w)
		allV4 = allV4 && v4
	}
	if cfg.Via == "publish" && cfg.APIKey == "" {
		return nil, errors.New("-via publish needs -api-key (or PUBLISH_API_KEY): the server's key")
	}
	if cfg.Via == "publish" {
		// Fail before connecting thousands of sockets if the endpoint or
		// the key is wrong. The probe group has no members.
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
		err := publish(client, httpURLs[0]+"/api/groups/wsbench-probe/messages", cfg.APIKey, []byte("probe"))
		if err != nil {
			return nil, fmt.Errorf("publish API check: %w", err)
		}
	}
	servers := serverSet(cfg.ServerPIDs)
	if _, err := servers.sample(); err != nil {
		return nil, err
	}
	lay, err := buildLayout(cfg)
	if err != nil {
		return nil, err
	}

	names := make([]string, len(lay.members))
	for i, m := range lay.members {
		names[i] = m.Name
	}
	logf("preparing %d users", len(names))
	ids, target, err := ensureUsers(ctx, cfg.DB, names)
	if err != nil {
		return nil, err
	}
	secret, err := loadSecret(cfg.JWTSecret, target)
	if err != nil {
		return nil, err
	}

	// One plan per worker: member i goes to worker i mod procs.
	// The last part of the run is kept for closing the sockets.
	reserve := min(45*time.Second, cfg.Timeout/4)
	plans := make([]*plan, cfg.Procs)
	totalSenders := 0
	for _, g := range lay.groups {
		totalSenders += len(g.Senders)
	}
	// Fast senders keep at most 256 messages in flight per group (a
	// member's queue on the server stays at a quarter of WS_SEND_QUEUE's
	// default) and about 256k deliveries in all: enough to keep the server
	// busy and its writes batched.
	window := cfg.Window
	if window == 0 {
		window = min(256, max(1, 262144/cfg.N))
	}
	window = max(1, window/cfg.Procs)
	for w := range plans {
		plans[w] = &plan{Worker: w, Via: cfg.Via, HTTPURLs: httpURLs, WSURLs: wsURLs, APIKey: cfg.APIKey,
			Groups: lay.groups, Senders: totalSenders, Conc: cfg.Conc, Window: window, Rate: cfg.Rate,
			Deadline: started.Add(cfg.Timeout - reserve).UnixNano(), Settle: cfg.Settle,
			Teardown: reserve - reserve/8}
	}
	now := time.Now()
	for i, m := range lay.members {
		tok, err := mintToken(secret, ids[m.Name], m.Name, now, cfg.Timeout+10*time.Minute)
		if err != nil {
			return nil, err
		}
		src := m.Source
		if !allV4 {
			src = ""
		}
		p := plans[i%cfg.Procs]
		p.Members = append(p.Members, planMember{Index: i, Name: m.Name, Token: tok, Group: m.Group,
			URL: m.URL, Source: src, Sender: m.Sender})
	}
	if cfg.Via == "publish" {
		for g, grp := range lay.groups {
			for j, s := range grp.Senders {
				p := plans[s.Ack%cfg.Procs]
				p.Publishers = append(p.Publishers, planPub{Group: g, Sender: j, URL: (g + j) % len(httpURLs)})
			}
		}
	}

	res := &result{Scenario: cfg.Scenario, URLs: httpURLs, Procs: cfg.Procs, Sockets: cfg.N, Groups: cfg.Groups,
		Senders: totalSenders, Rate: cfg.Rate, LoadStart: loadAverage()}
	if allV4 {
		res.Sources = cfg.Sources
	}
	if cfg.Scenario != "idle" {
		res.Via, res.Window = cfg.Via, window*cfg.Procs
		for _, g := range lay.groups {
			for _, s := range g.Senders {
				res.Messages += int64(s.Msgs)
			}
		}
	}
	s0, _ := servers.sample()

	logf("connecting %d sockets (%d group(s), %d source address(es), %d process(es))", cfg.N, cfg.Groups, max(res.Sources, 1), cfg.Procs)
	hs := make([]*workerHandle, cfg.Procs)
	wctx, wcancel := context.WithTimeout(context.Background(), cfg.Timeout+10*time.Second)
	defer wcancel()
	for w := range hs {
		if hs[w], err = startWorker(wctx, w, plans[w], cfg.Procs == 1, stderr); err != nil {
			for _, h := range hs[:w] {
				h.in.Close()
			}
			return nil, err
		}
	}
	stopAll := func() {
		for _, h := range hs {
			h.command("stop")
		}
	}
	finish := func(err error) (*result, error) {
		stopAll()
		dctx, dcancel := context.WithTimeout(context.Background(), reserve+5*time.Second)
		defer dcancel()
		done, derr := collect[doneEvent](dctx, hs, "done")
		for _, h := range hs {
			h.in.Close()
		}
		for _, h := range hs {
			for range h.events { // drain to the exit event
			}
		}
		if derr == nil {
			res.addDone(done)
		}
		if err == nil {
			err = derr
		}
		res.finish(time.Since(started))
		return res, err
	}

	conns, err := collect[connectedEvent](ctx, hs, "connected")
	if err != nil {
		return finish(err)
	}
	res.addConnected(conns)
	s1, _ := servers.sample()
	logf("connected %d/%d in %.2f s", res.Connected, cfg.N, res.ConnectSeconds)

	for _, h := range hs {
		h.command("settle")
	}
	settled, err := collect[settledEvent](ctx, hs, "settled")
	if err != nil {
		return finish(err)
	}
	res.Settled = true
	for _, s := range settled {
		res.SettleFrames += s.Frames
		res.Settled = res.Settled && s.Settled
	}
	s2, _ := servers.sample()
	logf("settled: %d frames so far", res.SettleFrames)
	res.initServers(servers, s0, s1, s2)

	if cfg.Scenario == "idle" {
		logf("holding for %s", cfg.Hold)
		hold := time.NewTimer(cfg.Hold)
		tick := time.NewTicker(time.Second)
	holding:
		for {
			select {
			case <-tick.C:
				if s, err := servers.sample(); err == nil {
					res.holdSample(s)
				}
			case <-hold.C:
				break holding
			case <-ctx.Done():
				break holding
			}
		}
		tick.Stop()
		if s, err := servers.sample(); err == nil {
			res.holdSample(s)
		}
		return finish(nil)
	}

	t0 := time.Now().Add(100 * time.Millisecond)
	logf("sending %d messages (%d senders)", res.Messages, totalSenders)
	for _, h := range hs {
		h.command("go " + strconv.FormatInt(t0.UnixNano(), 10))
	}
	complete, err := collect[completeEvent](ctx, hs, "complete")
	if err != nil {
		return finish(err)
	}
	s3, _ := servers.sample()
	res.addComplete(t0, complete, s2, s3)
	logf("send phase over in %.2f s", res.SendSeconds)
	return finish(nil)
}
