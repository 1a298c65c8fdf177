package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

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
			win := w.byIndex[spec.Ack].acks[pub.Sender] // publishers run beside their ack member
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
	_, err := apiCall(client, http.MethodPost, endpoint, key, body, http.StatusAccepted)
	return err
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
	sched := &schedule{ctx: ctx}
	var wg sync.WaitGroup
	if w.p.Rate > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.sendPaced(sched, senders, t0)
		}()
	} else if sched.sleepUntil(t0) {
		for _, s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.sendFast(ctx, s)
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
		CPUNs: int64(selfCPU() - cpu0), LagMaxNs: sched.lagMax.Load()}
}

// schedule sleeps until send times, and remembers how late it was at
// most for a time that had already passed.
type schedule struct {
	ctx    context.Context
	lagMax atomic.Int64
}

// sleepUntil waits until t and reports false if ctx ended first.
func (s *schedule) sleepUntil(t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		if lag := int64(-d); lag > s.lagMax.Load() {
			s.lagMax.Store(lag)
		}
		return s.ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// sendPaced is the one dispatcher of a paced run: it sends every local
// message at its slot in the global schedule, message q of the sender at
// position o at t0 + ((q-1)·senders + o) / rate. A failed message is
// counted and the next one is sent on time.
func (w *worker) sendPaced(sched *schedule, senders []*localSender, t0 time.Time) {
	buf := make([]byte, 0, 64)
	for q := 1; ; q++ {
		more := false
		for _, s := range senders {
			if q > s.spec.Msgs {
				continue
			}
			more = true
			slot := float64((q-1)*w.p.Senders+s.order) / w.p.Rate
			if !sched.sleepUntil(t0.Add(time.Duration(slot * float64(time.Second)))) {
				return
			}
			buf, _ = w.sendOne(s, buf, q)
		}
		if !more {
			return
		}
	}
}

// sendFast sends s's messages as fast as its window allows; it stops at
// the first failure.
func (w *worker) sendFast(ctx context.Context, s *localSender) {
	buf := make([]byte, 0, 64)
	for q := 1; q <= s.spec.Msgs; q++ {
		if s.win != nil {
			select {
			case s.win <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
		var ok bool
		if buf, ok = w.sendOne(s, buf, q); !ok {
			return
		}
	}
}

// sendOne sends message q of s, stamped with the time now, in buf (which
// it returns for reuse), and counts it as sent or failed.
func (w *worker) sendOne(s *localSender, buf []byte, q int) ([]byte, bool) {
	buf = appendText(buf[:0], s.spec.Name, q, time.Now().UnixNano())
	if err := s.send(buf); err != nil {
		w.sendFailed(err)
		return buf, false
	}
	w.sent.Add(1)
	return buf, true
}

// sendFailed counts a failed message by kind (HTTP status for publish).
func (w *worker) sendFailed(err error) {
	w.sendErrs.Add(1)
	key := "send error"
	var pe *publishError
	if errors.As(err, &pe) {
		key = "publish HTTP " + strconv.Itoa(pe.status)
	}
	w.sendFails.add(key, err.Error())
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
	last, moved := w.frames(), time.Now()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-w.allDone:
			return true
		case <-ctx.Done():
			return false
		case now := <-t.C:
			if n := w.frames(); n != last {
				last, moved = n, now
			} else if now.Sub(moved) > stall {
				return false
			}
		}
	}
}
