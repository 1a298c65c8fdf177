package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// These tests drive the chat page in a real headless Chromium against one
// real switchboard process. Each user has a browser context of their own,
// so cookies and sessionStorage (where the page keeps its token) are not
// shared.

const (
	browserBudget = 90 * time.Second // the whole browser part of the test
	waitShort     = 2 * time.Second  // what the page promises, e.g. the disabled reason
	waitStep      = 10 * time.Second // one UI step: a login, a message round trip
	pollEvery     = 50 * time.Millisecond
)

// chromiumPath returns the browser to drive, or skips the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	path := os.Getenv("TEST_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		t.Skipf("Skipping browser test: no Chromium at %s (set TEST_CHROMIUM to its path): %v", path, err)
	}
	return path
}

// startBrowser starts one headless Chromium bound to ctx and returns a
// context that owns it; users get their own browser contexts inside it.
func startBrowser(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true), // small /dev/shm in containers
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 800),
	)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return browserCtx
}

// browserUser is one person with a tab in a browser context of their own.
type browserUser struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu         sync.Mutex
	dialogs    []string // messages of JavaScript dialogs that opened
	exceptions []string // uncaught exceptions of the page
}

// newBrowserUser opens a tab for name in a fresh browser context and loads
// the chat page. Every JavaScript dialog is recorded and dismissed, so a
// dialog cannot block the test, and so is every uncaught exception.
func newBrowserUser(t *testing.T, browserCtx context.Context, name, pageURL string) *browserUser {
	t.Helper()
	return openTab(t, browserCtx, name, pageURL, chromedp.WithNewBrowserContext())
}

// newTab opens a second tab of u's browser context (same cookies; its own
// sessionStorage, as browsers keep it per tab) on pageURL.
func (u *browserUser) newTab(pageURL string) *browserUser {
	u.t.Helper()
	return openTab(u.t, u.ctx, u.name, pageURL)
}

// openTab opens a tab for name under parent (opts choose its browser
// context) and loads pageURL, recording dialogs and exceptions.
func openTab(t *testing.T, parent context.Context, name, pageURL string, opts ...chromedp.ContextOption) *browserUser {
	t.Helper()
	u := &browserUser{t: t, name: name}
	ctx, cancel := chromedp.NewContext(parent, append(opts,
		chromedp.WithListener(func(ev any) {
			// Runs in the tab's event loop: record, and send commands elsewhere.
			switch ev := ev.(type) {
			case *page.EventJavascriptDialogOpening:
				u.mu.Lock()
				u.dialogs = append(u.dialogs, fmt.Sprintf("%s(%q)", ev.Type, ev.Message))
				u.mu.Unlock()
				go chromedp.Call(u.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
			case *runtime.EventExceptionThrown:
				u.mu.Lock()
				u.exceptions = append(u.exceptions, exceptionText(ev.ExceptionDetails))
				u.mu.Unlock()
			}
		}))...,
	)
	u.ctx = ctx
	t.Cleanup(cancel)
	u.do("open the page",
		chromedp.EmulateViewport(1200, 800),
		chromedp.Navigate(pageURL),
		chromedp.WaitVisible(chromedp.ID("login-form")),
	)
	return u
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "exception"
	}
	s := d.Text
	if d.Exception != nil && d.Exception.Description != "" {
		s += " " + d.Exception.Description
	}
	return fmt.Sprintf("%s at %s:%d", s, d.URL, d.LineNumber+1)
}

// do runs actions in u's tab and fails the test on an error.
func (u *browserUser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	u.t.Helper()
	if err := chromedp.Do(u.ctx, actions...); err != nil {
		u.t.Fatalf("%s: %s: %v\n%s", u.name, what, err, u.state())
	}
}

// evalIn evaluates expr in u's page into T.
func evalIn[T any](u *browserUser, expr string) T {
	u.t.Helper()
	v, err := chromedp.Run(u.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		u.t.Fatalf("%s: evaluate %s: %v", u.name, expr, err)
	}
	return v
}

// waitFor polls the JavaScript function fn(...args) in u's page until it
// returns a truthy value, for at most d.
func (u *browserUser) waitFor(d time.Duration, what, fn string, args ...any) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.ctx, d+time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.PollFunction[chromedp.Void](fn,
		chromedp.WithPollingArgs(args...),
		chromedp.WithPollingInterval(pollEvery),
		chromedp.WithPollingTimeout(d)))
	if err != nil {
		u.t.Fatalf("%s: %s within %v: %v\n%s", u.name, what, d, err, u.state())
	}
}

// state describes what u's page shows, for failure messages.
func (u *browserUser) state() string {
	ctx, cancel := context.WithTimeout(u.ctx, 2*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		const txt = (id) => { const n = document.getElementById(id); return n ? n.textContent.trim() : '<missing>'; };
		const shown = (id) => { const n = document.getElementById(id); return n && !n.hidden ? 'shown' : 'hidden'; };
		return [
			'auth ' + shown('auth') + ', chat ' + shown('chat'),
			'auth-notice: ' + txt('auth-notice') + ' | auth-error: ' + txt('auth-error'),
			'close-reason: ' + txt('close-reason'),
			'conn-status [' + document.getElementById('conn-status').dataset.state + ']: ' + txt('conn-status'),
			'group: ' + txt('group-name') + ' | online: ' + [...document.querySelectorAll('#online li')].map(li => li.dataset.user).join(','),
			'status [' + document.getElementById('status-conn').dataset.state + '] v' + txt('status-version') + ': ' + txt('status-value'),
			'messages:', ...[...document.querySelectorAll('#messages li')].map(li => '  ' + li.className + ' ' + (li.dataset.user || '') + ': ' + li.textContent),
			...(window.sbt ? ['client events (TestBrowserClient, last 40):', ...window.sbt.log.slice(-40).map(e => '  ' + e.client + ' ' + e.socket + ' ' + e.ev + ' ' + JSON.stringify(e.d))] : []),
		].join('\n');
	})()`))
	if err != nil {
		s = fmt.Sprintf("(unavailable: %v)", err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return fmt.Sprintf("page of %s:\n%s\ndialogs: %q\nuncaught exceptions: %q", u.name, s, u.dialogs, u.exceptions)
}

// setField types value into the input with id, after emptying it.
// (SetValue refuses "" and a plain string selector also matches text, so
// the field is emptied with JavaScript and found by id.)
func (u *browserUser) setField(id, value string) {
	u.t.Helper()
	u.do("empty #"+id, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.getElementById(%q).value = ''`, id)))
	u.do("type into #"+id, chromedp.SendKeys(chromedp.ID(id), value))
}

// register creates an account through the page's register form; the page
// then shows the login form.
func (u *browserUser) register(password string) {
	u.t.Helper()
	u.do("show the register form",
		chromedp.Click(chromedp.ID("show-register")),
		chromedp.WaitVisible(chromedp.ID("register-form")),
	)
	u.setField("username", u.name)
	u.setField("password", password)
	u.setField("email", u.name+"@example.com")
	u.do("submit the register form", chromedp.Click(chromedp.ID("register-submit")))
	u.waitFor(waitStep, "register and see the login form", `(name) =>
		!document.getElementById('login-form').hidden &&
		document.getElementById('auth-notice').textContent.includes('Account created for ' + name)`, u.name)
}

// login logs in through the page's login form and waits until the chat
// socket is connected and the group is known.
func (u *browserUser) login(password, wantGroup string) {
	u.t.Helper()
	u.do("wait for the login form", chromedp.WaitVisible(chromedp.ID("login-form")))
	u.setField("username", u.name)
	u.setField("password", password)
	u.do("submit the login form", chromedp.Click(chromedp.ID("login-submit")))
	u.waitFor(waitStep, "log in and connect", `(group) =>
		!document.getElementById('chat').hidden &&
		document.getElementById('conn-status').dataset.state === 'connected' &&
		document.getElementById('group-name').textContent === group`, wantGroup)
	if got := evalIn[string](u, `document.getElementById('me').textContent`); got != u.name {
		u.t.Errorf("%s: #me = %q, want %q", u.name, got, u.name)
	}
}

// send types text into #message-input and presses Enter, then waits for
// the server to echo it back as the user's own message.
func (u *browserUser) send(text string) {
	u.t.Helper()
	u.do("type a message", chromedp.SendKeys(chromedp.ID("message-input"), text+"\n"))
	u.waitMessage(u.name, text, true)
	if got := evalIn[string](u, `document.getElementById('message-input').value`); got != "" {
		u.t.Errorf("%s: #message-input = %q after sending, want it empty", u.name, got)
	}
}

// waitMessage waits for a message from user with exactly this text, shown
// as li.msg.mine or li.msg.theirs.
func (u *browserUser) waitMessage(user, text string, mine bool) {
	u.t.Helper()
	cls := "theirs"
	if mine {
		cls = "mine"
	}
	u.waitFor(waitStep, fmt.Sprintf("see %s's message %q as li.msg.%s", user, text, cls), `(user, text, cls) =>
		[...document.querySelectorAll('#messages li.msg.' + cls)].some(li =>
			li.dataset.user === user && li.querySelector('.text') && li.querySelector('.text').textContent === text)`,
		user, text, cls)
}

// shownMessage is one li.msg of #messages.
type shownMessage struct {
	User  string `json:"user"`
	Mine  bool   `json:"mine"`
	Text  string `json:"text"`
	Class string `json:"class"`
}

func (u *browserUser) messages() []shownMessage {
	u.t.Helper()
	return evalIn[[]shownMessage](u, `[...document.querySelectorAll('#messages li.msg')].map(li => ({
		user: li.dataset.user || '',
		mine: li.classList.contains('mine'),
		text: li.querySelector('.text') ? li.querySelector('.text').textContent : '',
		class: li.className,
	}))`)
}

// waitOnline waits until #online lists exactly users (li[data-user]).
func (u *browserUser) waitOnline(users ...string) {
	u.t.Helper()
	u.waitFor(waitStep, fmt.Sprintf("see online %v", users), `(...want) => {
		const got = [...document.querySelectorAll('#online li[data-user]')].map(li => li.dataset.user).sort();
		return got.length === want.length && [...want].sort().every((w, i) => got[i] === w) &&
			document.getElementById('online-count').textContent === String(want.length);
	}`, anySlice(users)...)
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// checkClean fails the test if a JavaScript dialog opened in u's page
// (other than allowed ones) or the page threw an uncaught exception.
func (u *browserUser) checkClean(allowedDialogs ...string) {
	u.t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, d := range u.dialogs {
		ok := false
		for _, a := range allowedDialogs {
			ok = ok || d == a
		}
		if !ok {
			u.t.Errorf("%s: a JavaScript dialog opened: %s", u.name, d)
		}
	}
	for _, e := range u.exceptions {
		u.t.Errorf("%s: uncaught exception in the page: %s", u.name, e)
	}
}

func (u *browserUser) dialogCount() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.dialogs)
}

// screenshot captures u's viewport at width×height and writes it to
// docs/name (from the repository root) when SAVE_SCREENSHOT=1. It is taken
// in every run, so CI checks that it works; only the file is optional.
func (u *browserUser) screenshot(name string, width, height int64, scale float64, mobile bool) {
	u.t.Helper()
	opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(scale)}
	if mobile {
		opts = append(opts, chromedp.EmulateMobile)
	}
	u.do("resize for "+name,
		chromedp.EmulateViewport(width, height, opts...),
		// Let animations (the status flash) end and the layout settle, and
		// keep the newest message in view.
		chromedp.Evaluate[chromedp.Void](`Promise.all(document.getAnimations().map(a => a.finished)).then(() =>
			new Promise(r => requestAnimationFrame(() => {
				const m = document.getElementById('messages'); m.scrollTop = m.scrollHeight;
				if (document.activeElement) document.activeElement.blur();
				requestAnimationFrame(() => r());
			})))`, chromedp.EvalAwaitPromise),
	)
	png, err := chromedp.Run(u.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		u.t.Fatalf("%s: screenshot %s: %v", u.name, name, err)
	}
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		u.t.Fatalf("%s: screenshot %s is not a PNG (%d bytes)", u.name, name, len(png))
	}
	u.do("restore the viewport", chromedp.EmulateViewport(1200, 800))
	if os.Getenv("SAVE_SCREENSHOT") != "1" {
		return
	}
	path := filepath.Join("..", "..", "docs", name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		u.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		u.t.Fatal(err)
	}
	u.t.Logf("wrote %s (%d bytes)", path, len(png))
}

// TestBrowserChat drives the chat page for three users in a real browser:
// register and log in through the forms, live messages in a group and not
// across groups, text never interpreted as HTML, the online list, a
// disabled account's reason, live status updates, and "Log out everywhere"
// closing the user's other tab with its reason. The page speaks
// switchboard.v1, so no token appears in any URL (the access log shows).
func TestBrowserChat(t *testing.T) {
	chromiumPath(t) // skip early, before building the server
	c := newCluster(t, "")
	c.extra = []string{"LOG_LEVEL=info"} // the access log, checked for tokens
	p := c.start("web")

	ctx, cancel := context.WithTimeout(context.Background(), browserBudget)
	t.Cleanup(cancel) // after the tabs and the browser close (cleanups run last-in first-out)
	started := time.Now()

	// bob (group chat-b) and the staff user root are made through the API.
	rootTok, _ := p.register("root", true)
	p.register("bob", false)

	browser := startBrowser(t, ctx)
	alice := newBrowserUser(t, browser, "alice", p.url("/"))
	anna := newBrowserUser(t, browser, "anna", p.url("/"))
	bob := newBrowserUser(t, browser, "bob", p.url("/"))

	// The dialog detector works: a dialog in bob's page is seen (and dismissed).
	const probe = `alert("dialog-probe")`
	bob.do("open a probe dialog", chromedp.Evaluate[chromedp.Void](`setTimeout(() => alert('dialog-probe'), 0)`))
	for deadline := time.Now().Add(5 * time.Second); bob.dialogCount() == 0; time.Sleep(pollEvery) {
		if time.Now().After(deadline) {
			t.Fatal("bob: the probe alert() was not reported as Page.javascriptDialogOpening")
		}
	}

	const password = "password123"
	for _, u := range []*browserUser{alice, anna} {
		u.register(password)
		u.login(password, "chat-a")
	}
	bob.login(password, "chat-b")
	t.Logf("three users logged in after %v", time.Since(started).Round(time.Millisecond))

	// Each chat-a member sees both; bob sees only himself.
	alice.waitOnline("alice", "anna")
	anna.waitOnline("alice", "anna")
	bob.waitOnline("bob")

	// The status panel is live before anything is published, so the value
	// below can only arrive by push.
	for _, u := range []*browserUser{alice, anna} {
		u.waitFor(waitStep, "connect the status panel", `() =>
			document.getElementById('status-conn').dataset.state === 'connected' &&
			document.getElementById('status-version').textContent === '0'`)
	}

	conversation := []struct {
		from *browserUser
		to   *browserUser
		text string
	}{
		{alice, anna, "Morning Anna! Is the 2.4 release still on for today?"},
		{anna, alice, "Yes, the build is green. Rolling out to staging now."},
		{alice, anna, "Great, I'll watch the status panel."},
		{anna, alice, "Staging looks good, promoting to production."},
		{alice, anna, "Nice work, thanks Anna!"},
		{anna, alice, "Any time. Lunch at noon?"},
	}
	for _, m := range conversation {
		m.from.send(m.text)
		m.to.waitMessage(m.from.name, m.text, false)
	}

	// A status update shows up without a reload.
	status := map[string]any{"deploy": "2.4", "build": "green", "errors": 0}
	code, body := p.call("PUT", "/api/status/system", "Api-Key "+c.apiKey, map[string]any{"value": status})
	if code != 200 {
		t.Fatalf("PUT /api/status/system = %d %s, want 200", code, body)
	}
	var put struct{ Version uint64 }
	if err := json.Unmarshal(body, &put); err != nil || put.Version == 0 {
		t.Fatalf("PUT /api/status/system body %s: version missing (%v)", body, err)
	}
	want, _ := json.Marshal(status)
	for _, u := range []*browserUser{alice, anna} {
		u.waitFor(waitStep, "show the status update", `(want, version) => {
			let got;
			try { got = JSON.parse(document.getElementById('status-value').textContent); } catch (e) { return false; }
			const sorted = (o) => JSON.stringify(Object.keys(o).sort().reduce((a, k) => (a[k] = o[k], a), {}));
			return document.getElementById('status-version').textContent === String(version) &&
				got !== null && typeof got === 'object' && sorted(got) === sorted(JSON.parse(want));
		}`, string(want), put.Version)
	}

	alice.screenshot("chat.png", 1200, 800, 1, false)
	alice.screenshot("chat-phone.png", 375, 812, 2, true)

	// A message is text, never HTML: no element is made and no script runs.
	const xss = `<img src=x onerror=alert(1)>`
	anna.send(xss)
	alice.waitMessage("anna", xss, false)
	for _, u := range []*browserUser{alice, anna} {
		if n := evalIn[int](u, `document.querySelectorAll('#messages img, #messages script').length`); n != 0 {
			t.Errorf("%s: #messages has %d <img>/<script> elements after the XSS message, want 0", u.name, n)
		}
		last := u.messages()
		if got := last[len(last)-1]; got.User != "anna" || got.Text != xss {
			t.Errorf("%s: last message = %+v, want anna's %q as text", u.name, got, xss)
		}
	}

	// Groups are separate: bob's own message arrives, and nothing of
	// chat-a reaches him (his round trip went through the same hub after
	// theirs), nor his message them.
	bob.send("Anyone in chat-b?")
	for _, m := range bob.messages() {
		if m.User != "bob" || !m.Mine {
			t.Errorf("bob: #messages shows %+v, want only bob's own messages", m)
		}
	}
	for _, u := range []*browserUser{alice, anna} {
		for _, m := range u.messages() {
			if m.User == "bob" {
				t.Errorf("%s: #messages shows bob's message %+v from chat-b", u.name, m)
			}
		}
	}
	if got, want := len(alice.messages()), len(conversation)+1; got != want {
		t.Errorf("alice: %d messages shown, want %d", got, want)
	}

	// Disabling anna through the API signs her out with the reason, within 2 s.
	code, body = p.call("GET", "/api/users/?limit=1000", "JWT "+rootTok, nil)
	var list struct {
		Results []struct {
			ID       int64  `json:"id"`
			Username string `json:"username"`
		} `json:"results"`
	}
	if code != 200 || json.Unmarshal(body, &list) != nil {
		t.Fatalf("GET /api/users/ = %d %s, want 200", code, body)
	}
	var annaID int64
	for _, r := range list.Results {
		if r.Username == "anna" {
			annaID = r.ID
		}
	}
	if annaID == 0 {
		t.Fatalf("GET /api/users/: no anna in %s", body)
	}
	disabledAt := time.Now()
	code, body = p.call("PATCH", fmt.Sprintf("/api/users/%d", annaID), "JWT "+rootTok, map[string]any{"is_active": false})
	if code != 200 {
		t.Fatalf("PATCH /api/users/%d {is_active: false} = %d %s, want 200", annaID, code, body)
	}
	anna.waitFor(waitShort-time.Since(disabledAt), "show the disabled reason", `() =>
		document.getElementById('close-reason').textContent === 'Your account was disabled' &&
		!document.getElementById('auth').hidden && document.getElementById('chat').hidden`)
	t.Logf("anna saw the disabled reason %v after the PATCH", time.Since(disabledAt).Round(time.Millisecond))
	if tok := evalIn[*string](anna, `sessionStorage.getItem('switchboard.token')`); tok != nil {
		t.Errorf("anna: the token is still in sessionStorage after she was disabled")
	}
	alice.waitOnline("alice")

	// "Log out everywhere" in one of alice's tabs ends her session in the
	// other within 2 s, with the plain-language reason, and her tokens are
	// refused from then on.
	alice2 := alice.newTab(p.url("/"))
	alice2.login(password, "chat-a")
	tokens := []string{
		evalIn[string](alice, `sessionStorage.getItem('switchboard.token')`),
		evalIn[string](alice2, `sessionStorage.getItem('switchboard.token')`),
	}
	if tokens[0] == "" || tokens[1] == "" || tokens[0] == tokens[1] {
		t.Fatalf("alice's two tabs hold tokens %q and %q, want two different ones", tokens[0], tokens[1])
	}
	clickedAt := time.Now()
	alice.do("click Log out everywhere", chromedp.Click(chromedp.ID("logout-all")))
	alice.waitFor(waitStep, "show the login form with the logged-out-everywhere notice", `() =>
		!document.getElementById('auth').hidden && document.getElementById('chat').hidden &&
		document.getElementById('auth-notice').textContent === 'You have logged out on every device.' &&
		document.getElementById('close-reason').textContent === ''`)
	alice2.waitFor(waitShort-time.Since(clickedAt), "show the revoked reason in the other tab", `() =>
		document.getElementById('close-reason').textContent === 'You were logged out everywhere, please log in again' &&
		!document.getElementById('auth').hidden && document.getElementById('chat').hidden`)
	t.Logf("alice's other tab showed the revoked reason %v after the click", time.Since(clickedAt).Round(time.Millisecond))
	for i, u := range []*browserUser{alice, alice2} {
		if tok := evalIn[*string](u, `sessionStorage.getItem('switchboard.token')`); tok != nil {
			t.Errorf("alice's tab %d: the token is still in sessionStorage after logging out everywhere", i+1)
		}
		if code, body := p.call("GET", "/api/users/me", "JWT "+tokens[i], nil); code != 401 || !strings.Contains(string(body), "token revoked") {
			t.Errorf("alice's tab %d token after logging out everywhere: GET /api/users/me = %d %s, want 401 token revoked", i+1, code, body)
		}
	}
	// She can log in again at once.
	alice2.login(password, "chat-a")
	alice2.send("back after logging out everywhere")

	// switchboard.v1 keeps the token out of every URL: no socket request
	// carries one, so the access log has no token= at all.
	if log := p.log.String(); !strings.Contains(log, "path=/ws/chat/") || strings.Contains(log, "token=") {
		t.Errorf("access log: want socket requests and no token= query:\n%s", log)
	}
	checkLogHasNoTokens(t, p, tokens)

	alice.checkClean()
	alice2.checkClean()
	anna.checkClean()
	bob.checkClean(probe)
	t.Logf("browser part took %v", time.Since(started).Round(time.Millisecond))
}

// clientHarness is loaded into a page by TestBrowserClient: it imports
// switchboard.js as any front end would and logs every event of the
// clients it starts into window.sbt.log, as JSON-safe records.
const clientHarness = `(async () => {
	const m = await import('/switchboard.js');
	const sbt = window.sbt = { m, log: [], clients: {}, offCalls: 0 };
	sbt.start = (name, opts) => {
		const c = new m.Switchboard(Object.assign({ reconnectAfterMs: () => 200 }, opts));
		sbt.clients[name] = c;
		for (const ev of ['connecting', 'open', 'close', 'welcome', 'message', 'join', 'leave', 'publish', 'status', 'refreshed', 'error']) {
			c.on(ev, (d, conn) => sbt.log.push({ ev, client: name, socket: conn.kind, d: JSON.parse(JSON.stringify(d)) }));
		}
		for (const ev of ['token', 'expiring', 'logout']) {
			c.on(ev, (d) => sbt.log.push({ ev, client: name, socket: '', d: JSON.parse(JSON.stringify(d)) }));
		}
		return c;
	};
	sbt.count = (client, ev, socket) => sbt.log.filter(e => e.client === client && e.ev === ev && (!socket || e.socket === socket)).length;
})()`

// clientEvent is one record of window.sbt.log.
type clientEvent struct {
	Ev     string         `json:"ev"`
	Client string         `json:"client"`
	Socket string         `json:"socket"`
	D      map[string]any `json:"d"`
}

// clientEvents returns what client logged, event names in evs (all if none).
func clientEvents(u *browserUser, client string, evs ...string) []clientEvent {
	u.t.Helper()
	all := evalIn[[]clientEvent](u, `window.sbt.log`)
	var out []clientEvent
	for _, e := range all {
		if e.Client == client && (len(evs) == 0 || slices.Contains(evs, e.Ev)) {
			out = append(out, e)
		}
	}
	return out
}

// TestBrowserClient drives web/switchboard.js, the reusable client module,
// in a real browser against a real server, with no page code involved:
// the close-code mapping, listener removal, chat, publish and presence
// events, token refresh at 80% of a short lifetime handed to the open
// sockets in-band (switchboard.v1: no reconnect, and they outlive the first
// token's exp + grace), message ids, no token in any URL, reconnection
// after a server restart (1001), a refused token (4001, then "logout"),
// "log out everywhere" (4004, then "logout" of kind "revoked"), the legacy
// protocol option, and a disabled account (4003).
func TestBrowserClient(t *testing.T) {
	chromiumPath(t)
	c := newCluster(t, "")
	c.extra = append(c.extra, "JWT_EXPIRATION=6s", "WS_TOKEN_GRACE=1s", "LOG_LEVEL=info")
	p := c.start("client")

	ctx, cancel := context.WithTimeout(context.Background(), browserBudget)
	t.Cleanup(cancel)

	p.register("root", true)
	carolTok, carolID := p.register("carol", false)
	caraTok, _ := p.register("cara", false)

	browser := startBrowser(t, ctx)
	u := newBrowserUser(t, browser, "module", p.url("/"))
	u.do("load switchboard.js", chromedp.Evaluate[chromedp.Void](clientHarness, chromedp.EvalAwaitPromise))

	// The close-code mapping is by code, as the README's table says.
	kinds := []struct {
		code   int
		kind   string
		action string
	}{
		{1000, "normal", "stop"},
		{1001, "going-away", "reconnect"},
		{1003, "violation", "stop"},
		{1006, "lost", "reconnect"},
		{1007, "violation", "stop"},
		{1008, "violation", "stop"},
		{1009, "violation", "stop"},
		{1011, "server-error", "reconnect"},
		{1013, "overloaded", "reconnect"},
		{4000, "bad-name", "stop"},
		{4001, "auth", "refresh"},
		{4003, "forbidden", "logout"},
		{4004, "revoked", "logout"},
		{1002, "violation", "stop"},
		{4999, "lost", "reconnect"}, // unknown codes: retried with backoff
	}
	for _, k := range kinds {
		got := evalIn[map[string]any](u, fmt.Sprintf(`sbt.m.describeClose(%d)`, k.code))
		if got["kind"] != k.kind || got["action"] != k.action || got["text"] == "" {
			t.Errorf("describeClose(%d) = %v, want kind %q, action %q and a text", k.code, got, k.kind, k.action)
		}
	}
	if got := evalIn[string](u, `sbt.m.describeClose(4003).text`); got != "Your account was disabled" {
		t.Errorf("describeClose(4003).text = %q, want the page's disabled reason", got)
	}
	if got := evalIn[string](u, `sbt.m.describeClose(4004).text`); got != "You were logged out everywhere, please log in again" {
		t.Errorf("describeClose(4004).text = %q, want the revoked reason", got)
	}
	if got := evalIn[string](u, `[new sbt.m.Switchboard({}).protocol, new sbt.m.Switchboard({ protocol: 'legacy' }).protocol,
		(() => { try { new sbt.m.Switchboard({ protocol: 'v2' }); return 'accepted'; } catch (e) { return e.name; } })()].join(' ')`); got != "switchboard.v1 legacy TypeError" {
		t.Errorf("protocol option: default, legacy, unknown = %q, want %q", got, "switchboard.v1 legacy TypeError")
	}
	if bad := evalIn[[]float64](u, `Array.from({length: 12}, (_, i) => sbt.m.backoff(i + 1)).filter(ms => ms < 1000 || ms > 30000)`); len(bad) != 0 {
		t.Errorf("backoff(1..12) has delays outside [1s, 30s]: %v", bad)
	}

	// carol's chat and status connect; cara joins the same group. Their
	// tokens are minted now: the browser's start-up may have used most of
	// a 6 s lifetime.
	carolTok, caraTok = p.login("carol"), p.login("cara")
	u.do("start carol", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
		const c = sbt.start('carol', { token: () => %q });
		c.connectChat();
		c.connectStatus('system');
		const off = c.on('message', () => sbt.offCalls++);
		off(); off(); // removed, and removing twice is harmless
	})()`, carolTok)))
	u.waitFor(waitStep, "carol's chat and status open", `() =>
		sbt.count('carol', 'welcome') === 1 && sbt.count('carol', 'open', 'status') === 1 && sbt.count('carol', 'status') === 1`)
	if w := clientEvents(u, "carol", "welcome"); len(w) != 1 || w[0].D["user"] != "carol" || w[0].D["group"] != "chat-c" {
		t.Errorf("carol's welcome = %+v, want user carol in chat-c", w)
	}
	u.do("start cara", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`void sbt.start('cara', { token: %q }).connectChat()`, caraTok)))
	u.waitFor(waitStep, "carol sees cara join", `() => sbt.log.some(e => e.client === 'carol' && e.ev === 'join' && e.d.user === 'cara')`)

	if ok := evalIn[bool](u, `sbt.clients.carol.send('hello from the module', 'm-1')`); !ok {
		t.Fatal("carol: client.send() = false on an open chat")
	}
	u.waitFor(waitStep, "cara gets carol's message", `() =>
		sbt.log.some(e => e.client === 'cara' && e.ev === 'message' && e.d.user === 'carol' && e.d.text === 'hello from the module')`)
	// The id comes back in carol's own copy only.
	u.waitFor(waitStep, "carol gets her own message with its id", `() =>
		sbt.log.some(e => e.client === 'carol' && e.ev === 'message' && e.d.text === 'hello from the module' && e.d.id === 'm-1')`)
	if n := evalIn[int](u, `sbt.log.filter(e => e.client === 'cara' && e.ev === 'message' && 'id' in e.d).length`); n != 0 {
		t.Errorf("cara got %d messages with an id, want none (ids are only in the sender's copy)", n)
	}
	if code, body := p.call("POST", "/api/groups/chat-c/messages", "Api-Key "+c.apiKey, map[string]any{"data": map[string]any{"n": 1}}); code != 202 {
		t.Fatalf("POST /api/groups/chat-c/messages = %d %s, want 202", code, body)
	}
	u.waitFor(waitStep, "carol gets the publish", `() => sbt.log.some(e => e.client === 'carol' && e.ev === 'publish' && e.d.data && e.d.data.n === 1)`)
	if n := evalIn[int](u, `sbt.offCalls`); n != 0 {
		t.Errorf("a removed listener was called %d times", n)
	}
	u.do("close cara", chromedp.Evaluate[chromedp.Void](`sbt.clients.cara.close()`))
	u.waitFor(waitStep, "carol sees cara leave", `() => sbt.log.some(e => e.client === 'carol' && e.ev === 'leave' && e.d.user === 'cara')`)
	if n := len(clientEvents(u, "cara", "close")); n != 0 {
		t.Errorf("cara: %d close events after client.close(), want none", n)
	}

	// The token (6 s) is refreshed at 80% of its lifetime, by POST
	// /api-token-refresh/, and the new one is announced. The restart below
	// follows at once, well within the fresh token's lifetime.
	u.waitFor(8*time.Second, "carol's token refreshed", `(old) => sbt.log.some(e =>
		e.client === 'carol' && e.ev === 'token' && e.d.token !== old && sbt.clients.carol.token === e.d.token)`, carolTok)

	// The new token reaches both open sockets in-band ("refreshed" with
	// its exp), and they stay open past the first token's exp + grace
	// (WS_TOKEN_GRACE=1s): no close, no second welcome, the chat works.
	u.waitFor(waitStep, "carol's sockets answer the in-band refresh", `() => {
		const tok = sbt.log.find(e => e.client === 'carol' && e.ev === 'token');
		const exp = sbt.m.decodeToken(tok.d.token).exp;
		return ['chat', 'status'].every(s => sbt.log.some(e => e.client === 'carol' && e.ev === 'refreshed' && e.socket === s && e.d.exp === exp));
	}`)
	time.Sleep(time.Until(tokenExp(t, carolTok).Add(2500 * time.Millisecond)))
	if n := len(clientEvents(u, "carol", "close")); n != 0 || len(clientEvents(u, "carol", "welcome")) != 1 {
		t.Errorf("carol: %d closes and %d welcomes past the first token's exp + grace, want none and one (no reconnect)", n, len(clientEvents(u, "carol", "welcome")))
	}
	u.do("carol sends after her first token expired", chromedp.Evaluate[chromedp.Void](`void sbt.clients.carol.send('still connected')`))
	u.waitFor(waitStep, "carol's message after her first token expired", `() =>
		sbt.log.some(e => e.client === 'carol' && e.ev === 'message' && e.d.text === 'still connected')`)
	// switchboard.v1: no token in any socket URL, so none in the access log.
	if log := p.log.String(); !strings.Contains(log, "path=/ws/chat/") || strings.Contains(log, "token=") {
		t.Errorf("access log: want socket requests and no token= query:\n%s", log)
	}
	var seen []string
	for _, e := range clientEvents(u, "carol", "token") {
		seen = append(seen, e.D["token"].(string))
	}
	checkLogHasNoTokens(t, p, append(seen, carolTok, caraTok))
	// The restart below starts right after a refresh, so it happens well
	// within the fresh token's lifetime.
	u.waitFor(8*time.Second, "carol's token refreshed again", `(n) => sbt.count('carol', 'token') > n`, len(seen))

	// A restart closes with 1001 "going away"; the client reconnects by
	// itself, through attempts that fail while the server is down.
	p.stop()
	p.run()
	u.waitFor(waitStep, "carol reconnected after the restart", `() =>
		sbt.count('carol', 'welcome') === 2 && sbt.count('carol', 'open', 'status') === 2`)
	closes := clientEvents(u, "carol", "close")
	if len(closes) == 0 || closes[0].D["code"] != float64(1001) || closes[0].D["kind"] != "going-away" || closes[0].D["reconnect"] != true {
		t.Errorf("carol's first close = %+v, want 1001 going-away with reconnect", closes)
	}
	var codes []any
	for _, e := range closes {
		codes = append(codes, e.Socket, e.D["code"])
		if e.D["reconnect"] != true {
			t.Errorf("carol: close %+v during a restart did not reconnect", e.D)
		}
	}
	t.Logf("carol's closes during the restart (socket, code): %v", codes)

	// A token the server refuses (4001) that cannot be refreshed ends the
	// session: "close" then "logout" of kind "auth", and nothing retries.
	u.do("start a client with a bad token", chromedp.Evaluate[chromedp.Void](`void sbt.start('bad', { token: 'not.a.token' }).connectChat()`))
	u.waitFor(waitStep, "the bad token's logout", `() => sbt.count('bad', 'logout') === 1`)
	if got := clientEvents(u, "bad", "close", "logout"); len(got) != 2 || got[0].D["code"] != float64(4001) || got[0].D["action"] != "logout" || got[1].D["kind"] != "auth" {
		t.Errorf("bad token: events %+v, want close 4001 (logout), then logout auth", got)
	}
	if !evalIn[bool](u, `sbt.clients.bad.closed`) {
		t.Error("bad token: the client is not closed after logout")
	}

	// "Log out everywhere" closes cody's chat and status with 4004: one
	// "logout" of kind "revoked" with its text, and the client is closed.
	codyTok, _ := p.register("cody", false)
	u.do("start cody", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
		const c = sbt.start('cody', { token: %q });
		c.connectChat();
		c.connectStatus('system');
	})()`, codyTok)))
	u.waitFor(waitStep, "cody's chat and status open", `() => sbt.count('cody', 'welcome') === 1 && sbt.count('cody', 'status') === 1`)
	revokedAt := time.Now()
	if code, body := p.call("POST", "/api/users/me/logout-all", "JWT "+codyTok, nil); code != 204 {
		t.Fatalf("POST /api/users/me/logout-all = %d %s, want 204", code, body)
	}
	u.waitFor(waitShort, "cody's logout", `() => sbt.count('cody', 'logout') === 1`)
	t.Logf("cody's client logged out %v after logout-all", time.Since(revokedAt).Round(time.Millisecond))
	if got := clientEvents(u, "cody", "logout"); got[0].D["kind"] != "revoked" || got[0].D["code"] != float64(4004) || got[0].D["text"] != "You were logged out everywhere, please log in again" {
		t.Errorf("cody's logout = %+v, want kind revoked, code 4004 and the revoked text", got[0].D)
	}
	if got := clientEvents(u, "cody", "close"); len(got) == 0 || got[0].D["code"] != float64(4004) || got[0].D["action"] != "logout" || got[0].D["reconnect"] != false {
		t.Errorf("cody's closes = %+v, want 4004 with action logout and no reconnect", got)
	}
	if !evalIn[bool](u, `sbt.clients.cody.closed`) {
		t.Error("cody: the client is not closed after logout")
	}

	// protocol: 'legacy' speaks the seed's protocol: the token in ?token=
	// (redacted in the access log), plain text frames.
	legTok := p.login("cara")
	u.do("start a legacy client", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`void sbt.start('leg', { token: %q, protocol: 'legacy' }).connectChat()`, legTok)))
	u.waitFor(waitStep, "the legacy client's welcome", `() => sbt.count('leg', 'welcome') === 1`)
	u.do("send in legacy", chromedp.Evaluate[chromedp.Void](`void sbt.clients.leg.send('{"type":"message","text":"raw"}')`))
	u.waitFor(waitStep, "the legacy text comes back as sent", `() =>
		sbt.log.some(e => e.client === 'leg' && e.ev === 'message' && e.d.text === '{"type":"message","text":"raw"}')`)
	if !strings.Contains(p.log.String(), "token=REDACTED") {
		t.Errorf("access log: no redacted ?token= for the legacy client:\n%s", p.log)
	}
	checkLogHasNoTokens(t, p, []string{legTok, codyTok})
	u.do("close the legacy client", chromedp.Evaluate[chromedp.Void](`sbt.clients.leg.close()`))

	// Disabling carol closes both her sockets with 4003: one "logout" of
	// kind "forbidden" with the disabled text, and the client is closed.
	if code, body := p.call("PATCH", fmt.Sprintf("/api/users/%d", carolID), "JWT "+p.login("root"), map[string]any{"is_active": false}); code != 200 {
		t.Fatalf("PATCH /api/users/%d = %d %s, want 200", carolID, code, body)
	}
	u.waitFor(waitShort, "carol's logout", `() => sbt.count('carol', 'logout') === 1`)
	if got := clientEvents(u, "carol", "logout"); got[0].D["kind"] != "forbidden" || got[0].D["text"] != "Your account was disabled" {
		t.Errorf("carol's logout = %+v, want kind forbidden, text %q", got[0].D, "Your account was disabled")
	}
	before := evalIn[int](u, `sbt.log.length`)
	time.Sleep(500 * time.Millisecond) // over two reconnect delays: nothing follows a logout
	if after := evalIn[[]clientEvent](u, `sbt.log`); len(after) != before {
		t.Errorf("events after the logout: %+v", after[before:])
	}
	u.checkClean()
}
