package main

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
)

// These tests drive the chat page through a server restart while a Go
// client keeps sending to the page's group: the page must show exactly the
// messages the group got, in order, once each (issue 10, "The page").

// chatSender is a Go client that keeps sending numbered texts to its chat
// group across restarts. Each text is sent until the server has it (the
// sender's own copy comes back with an offset); after a disconnect it
// reconnects with since/epoch, so a text the server stored but whose copy
// was lost is recovered rather than sent twice. texts is therefore exactly
// what the group got from it, in offset order.
type chatSender struct {
	t       *testing.T
	url     string // /ws/chat/?token=… of the process
	user    string
	prefix  string
	every   time.Duration
	epoch   string // only the run goroutine touches these four
	since   uint64
	n       int
	pending string

	mu    sync.Mutex
	texts []string
	errs  []string
}

func newChatSender(t *testing.T, p *proc, tok, user, prefix string) *chatSender {
	return &chatSender{t: t, url: p.wsURL("/ws/chat/?token=" + url.QueryEscape(tok)), user: user, prefix: prefix, every: 20 * time.Millisecond}
}

func (s *chatSender) errorf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, fmt.Sprintf(format, args...))
}

// sent returns the texts the group has from the sender, in offset order.
func (s *chatSender) sent() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.texts)
}

func (s *chatSender) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.texts)
}

// start runs the sender until the returned function is called; that
// function waits until nothing is pending, then reports the sender's
// errors on t.
func (s *chatSender) start() (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.run(quit)
	}()
	return func() {
		s.t.Helper()
		close(quit)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			s.t.Fatalf("%s: still sending 30s after stop (pending %q)", s.user, s.pending)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, e := range s.errs {
			s.t.Errorf("%s: %s", s.user, e)
		}
		s.errs = nil
	}
}

func (s *chatSender) run(quit <-chan struct{}) {
	for {
		select {
		case <-quit:
			if s.pending == "" {
				return
			}
		default:
		}
		conn, err := s.connect()
		if err != nil {
			time.Sleep(50 * time.Millisecond) // the server is restarting
			continue
		}
		s.session(conn, quit)
		conn.Close()
	}
}

// connect dials, reads the welcome and, on a reconnect, the replay of what
// the sender missed.
func (s *chatSender) connect() (*websocket.Conn, error) {
	u := s.url
	if s.epoch != "" {
		u += fmt.Sprintf("&since=%d&epoch=%s", s.since, url.QueryEscape(s.epoch))
	}
	conn, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		return nil, err
	}
	var w struct {
		Type      string
		Epoch     string
		Offset    *uint64
		Recovered *bool
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := conn.ReadJSON(&w); err != nil || w.Type != "welcome" || w.Epoch == "" || w.Offset == nil {
		conn.Close()
		if err == nil {
			s.errorf("first frame %+v, want a welcome with epoch and offset", w)
		}
		return nil, fmt.Errorf("welcome: %v", err)
	}
	switch {
	case s.epoch == "":
		s.epoch, s.since = w.Epoch, *w.Offset
	case w.Recovered == nil || !*w.Recovered || w.Epoch != s.epoch:
		s.errorf("reconnect since %d epoch %s: welcome epoch %s recovered %v, want recovered true", s.since, s.epoch, w.Epoch, w.Recovered)
		s.epoch, s.since = w.Epoch, *w.Offset
	default:
		for s.since < *w.Offset {
			if err := s.read(conn); err != nil {
				conn.Close()
				return nil, err
			}
		}
	}
	return conn, nil
}

// session sends texts one at a time, each after the previous came back.
func (s *chatSender) session(conn *websocket.Conn, quit <-chan struct{}) {
	for {
		if s.pending == "" {
			select {
			case <-quit:
				return
			default:
			}
			s.pending = fmt.Sprintf("%s %03d", s.prefix, s.n)
			s.n++
		}
		if err := conn.WriteMessage(websocket.TextMessage, []byte(s.pending)); err != nil {
			return
		}
		for s.pending != "" {
			if err := s.read(conn); err != nil {
				return
			}
		}
		time.Sleep(s.every)
	}
}

// read takes one frame: a message must have the next offset.
func (s *chatSender) read(conn *websocket.Conn) error {
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var f struct {
		Type   string
		User   string
		Text   string
		Offset uint64
	}
	if err := conn.ReadJSON(&f); err != nil {
		return err
	}
	if f.Type != "message" && f.Type != "publish" {
		return nil
	}
	if f.Offset != s.since+1 {
		s.errorf("message %q has offset %d after %d: want the next one (no gap, no repeat)", f.Text, f.Offset, s.since)
	}
	if f.Offset > s.since {
		s.since = f.Offset
	}
	if f.Type == "message" && f.User == s.user {
		s.mu.Lock()
		s.texts = append(s.texts, f.Text)
		s.mu.Unlock()
		if f.Text == s.pending {
			s.pending = ""
		}
	}
	return nil
}

// socketSwitch replaces the page's WebSocket before it logs in (the client
// takes the constructor when it is made): while sbtest.blocked is true
// every new socket goes to a closed port, so the page stays away from the
// server for as long as the test wants. It records the chat URLs the page
// opened and every welcome it got.
const socketSwitch = `(() => {
	const Real = window.WebSocket;
	const t = window.sbtest = { blocked: false, chatURLs: [], welcomes: [] };
	function Switched(url, protocols) {
		const u = String(url);
		if (u.includes('/ws/chat/')) t.chatURLs.push(u);
		const target = t.blocked ? 'ws://127.0.0.1:9/blocked' : u;
		const ws = protocols === undefined ? new Real(target) : new Real(target, protocols);
		ws.addEventListener('message', (e) => {
			try {
				const f = JSON.parse(e.data);
				if (f && f.type === 'welcome') t.welcomes.push(f);
			} catch (err) { /* not JSON */ }
		});
		return ws;
	}
	Switched.prototype = Real.prototype;
	for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) Switched[k] = Real[k];
	window.WebSocket = Switched;
})()`

// transcript is what #messages shows: message texts in order, and the
// text of a gap marker as "[gap]".
func (u *browserUser) transcript() []string {
	u.t.Helper()
	return evalIn[[]string](u, `[...document.querySelectorAll('#messages li')]
		.filter(li => li.classList.contains('msg') || li.classList.contains('gap'))
		.map(li => li.classList.contains('gap') ? '[gap]' : li.querySelector('.text').textContent)`)
}

// waitMessages waits until the page shows n messages (li.msg).
func (u *browserUser) waitMessages(n int, d time.Duration) {
	u.t.Helper()
	u.waitFor(d, fmt.Sprintf("show %d messages", n), `(n) => document.querySelectorAll('#messages li.msg').length >= n`, n)
}

// reconnectPage lets the page's sockets through again and presses
// "Reconnect now" until the chat is connected.
func (u *browserUser) reconnectPage() {
	u.t.Helper()
	u.do("unblock the sockets", chromedp.Evaluate[chromedp.Void](`sbtest.blocked = false`))
	u.waitFor(waitStep, "reconnect", `() => {
		const b = document.getElementById('reconnect');
		if (!b.hidden) b.click();
		return document.getElementById('conn-status').dataset.state === 'connected';
	}`)
}

// restartAway restarts p while u's page cannot reach it, and keeps it away
// until s has sent missed more messages to the restarted server.
func restartAway(t *testing.T, p *proc, u *browserUser, s *chatSender, missed int) {
	t.Helper()
	u.do("block the sockets", chromedp.Evaluate[chromedp.Void](`sbtest.blocked = true`))
	p.stop()
	p.run()
	u.waitFor(waitStep, "see the chat disconnected", `() => document.getElementById('conn-status').dataset.state !== 'connected'`)
	from := s.count()
	deadline := time.Now().Add(waitStep)
	for s.count() < from+missed {
		if time.Now().After(deadline) {
			t.Fatalf("the sender got %d messages through in %v after the restart, want %d", s.count()-from, waitStep, missed)
		}
		time.Sleep(pollEvery)
	}
}

func lastWelcome(u *browserUser) map[string]any {
	u.t.Helper()
	ws := evalIn[[]map[string]any](u, `sbtest.welcomes`)
	if len(ws) == 0 {
		u.t.Fatalf("%s: the page got no welcome", u.name)
	}
	return ws[len(ws)-1]
}

// TestBrowserHistoryRecoveryAcrossRestart: the chat opens on the group's
// last 50 messages; a restart while a Go client keeps sending loses
// nothing: the page reconnects with since/epoch, the missed messages
// appear in place, and the transcript is exactly what was sent, in order,
// once each.
func TestBrowserHistoryRecoveryAcrossRestart(t *testing.T) {
	chromiumPath(t)
	c := newCluster(t, "")
	c.extra = append(c.extra, "WS_RATE_LIMIT=0")
	p := c.start("history")

	ctx, cancel := context.WithTimeout(context.Background(), browserBudget)
	t.Cleanup(cancel)

	p.register("alice", false)
	annaTok, _ := p.register("anna", false)
	anna := newChatSender(t, p, annaTok, "anna", "from anna")

	// 60 messages before the page opens: it shows the last 50.
	stop := anna.start()
	for anna.count() < 60 {
		time.Sleep(pollEvery)
	}
	stop()
	seeded := anna.sent()

	browser := startBrowser(t, ctx)
	alice := newBrowserUser(t, browser, "alice", p.url("/"))
	alice.do("switch the page's sockets", chromedp.Evaluate[chromedp.Void](socketSwitch))
	alice.login("password123", "chat-a")
	alice.waitMessages(50, waitStep)
	if got, want := alice.transcript(), seeded[len(seeded)-50:]; !slices.Equal(got, want) {
		t.Fatalf("the opened chat shows %d messages %q…, want the last 50 sent %q…", len(got), head(got), head(want))
	}

	// anna keeps sending through the restart; alice's page is kept away
	// until 30 messages went to the restarted server, then reconnects
	// while anna is still sending.
	stop = anna.start()
	alice.waitMessages(60, waitStep)
	restartAway(t, p, alice, anna, 30)
	alice.reconnectPage()
	more := anna.count() + 20
	for anna.count() < more {
		time.Sleep(pollEvery)
	}
	stop()

	all := anna.sent()
	want := all[len(seeded)-50:]
	alice.waitMessages(len(want), waitStep)
	time.Sleep(200 * time.Millisecond) // a duplicate would show up now
	got := alice.transcript()
	if !slices.Equal(got, want) {
		t.Errorf("alice's transcript has %d entries, want exactly the %d sent, in order:\n%s", len(got), len(want), diffLines(got, want))
	}
	w := lastWelcome(alice)
	if w["recovered"] != true {
		t.Errorf("the page's last welcome = %v, want recovered: true", w)
	}
	urls := evalIn[[]string](alice, `sbtest.chatURLs`)
	if last := urls[len(urls)-1]; !strings.Contains(last, "since=") || !strings.Contains(last, "epoch="+url.QueryEscape(fmt.Sprint(w["epoch"]))) {
		t.Errorf("the page reconnected to %s, want since and the group's epoch in the query", last)
	}
	t.Logf("%d messages in all, %d sent while alice was away or reconnecting; alice reconnected to %s",
		len(all), len(all)-len(seeded), strings.SplitN(urls[len(urls)-1], "?", 2)[0])
	alice.checkClean()
}

// TestBrowserHistoryGapMarker: when the server cannot recover what the
// page missed (more than HISTORY_RECOVERY_MAX), the welcome says
// recovered: false, and the page shows a marker where messages may be
// missing, then the group's latest 50 messages, then live ones.
func TestBrowserHistoryGapMarker(t *testing.T) {
	chromiumPath(t)
	c := newCluster(t, "")
	c.extra = append(c.extra, "WS_RATE_LIMIT=0", "HISTORY_RECOVERY_MAX=5")
	p := c.start("gap")

	ctx, cancel := context.WithTimeout(context.Background(), browserBudget)
	t.Cleanup(cancel)

	p.register("alice", false)
	annaTok, _ := p.register("anna", false)
	anna := newChatSender(t, p, annaTok, "anna", "from anna")

	browser := startBrowser(t, ctx)
	alice := newBrowserUser(t, browser, "alice", p.url("/"))
	alice.do("switch the page's sockets", chromedp.Evaluate[chromedp.Void](socketSwitch))
	alice.login("password123", "chat-a")

	stop := anna.start()
	alice.waitMessages(3, waitStep)
	restartAway(t, p, alice, anna, 60)
	stop()
	shownBefore := len(alice.transcript())
	alice.reconnectPage()
	alice.waitFor(waitStep, "show the gap marker", `() => document.querySelectorAll('#messages li.notice.gap').length === 1`)
	if w := lastWelcome(alice); w["recovered"] != false {
		t.Errorf("the page's last welcome = %v, want recovered: false", w)
	}

	// The latest 50 are loaded (anna is quiet, so they are known), then
	// live messages follow them.
	reloaded := anna.count()
	alice.waitMessages(shownBefore+50, waitStep)
	stop = anna.start()
	more := anna.count() + 5
	for anna.count() < more {
		time.Sleep(pollEvery)
	}
	stop()
	all := anna.sent()
	want := append(append(slices.Clone(all[:shownBefore]), "[gap]"), all[reloaded-50:]...)
	alice.waitMessages(len(want)-1, waitStep)
	time.Sleep(200 * time.Millisecond)
	if got := alice.transcript(); !slices.Equal(got, want) {
		t.Errorf("alice's transcript after recovered: false has %d entries, want the %d shown before, the gap marker, the latest 50 and the 5 live:\n%s",
			len(got), shownBefore, diffLines(got, want))
	}
	if text := evalIn[string](alice, `document.querySelector('#messages li.notice.gap').textContent`); !strings.Contains(text, "may be missing") {
		t.Errorf("gap marker text = %q, want it to say messages may be missing", text)
	}
	alice.checkClean()
}

func head(s []string) []string {
	return s[:min(3, len(s))]
}

// diffLines lists got and want side by side where they differ (at most 20 lines).
func diffLines(got, want []string) string {
	var b strings.Builder
	n := 0
	for i := 0; i < max(len(got), len(want)) && n < 20; i++ {
		g, w := "<none>", "<none>"
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			fmt.Fprintf(&b, "  [%d] got %q, want %q\n", i, g, w)
			n++
		}
	}
	if b.Len() == 0 {
		return "  (same)"
	}
	return b.String()
}
