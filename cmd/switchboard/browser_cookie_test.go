package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestBrowserCookieAuth (issue 14) drives headless Chromium against a
// switchboard process with JWT_AUTH_COOKIE=jwt. A page served by
// switchboard logs in with fetch and drops the token the body carries,
// reloads, and then calls the API and opens its chat socket on the cookie
// alone: the token is in no URL the browser requested (every request and
// WebSocket URL is recorded through DevTools) and nowhere JavaScript can
// see it (document.cookie, sessionStorage, localStorage). A page on
// another origin in the same browser cannot use the cookie: its socket to
// switchboard is refused at the upgrade, and its cross-site POST is
// refused. That origin is a second 127.0.0.1 server on another port: the
// same site for the browser (SameSite ignores ports), so the browser does
// attach the Lax cookie to its handshake and only the server's Origin check
// stands in the way, which is the case cross-site WebSocket hijacking is
// about.
func TestBrowserCookieAuth(t *testing.T) {
	chromiumPath(t) // skip early, before building the server
	c := newCluster(t, "")
	c.extra = append(c.extra, "JWT_AUTH_COOKIE=jwt", "LOG_LEVEL=info")
	p := c.start("cookie")
	p.register("alice", false)

	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<!doctype html><title>another origin</title><p>Not switchboard.</p>\n")
	}))
	t.Cleanup(other.Close)

	ctx, cancel := context.WithTimeout(context.Background(), browserBudget)
	t.Cleanup(cancel)
	browser := startBrowser(t, ctx)

	var (
		mu   sync.Mutex
		urls []string // every request and WebSocket URL of both tabs
	)
	record := chromedp.WithListener(func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			urls = append(urls, ev.Request.URL)
		case *network.EventWebSocketCreated:
			urls = append(urls, ev.URL)
		}
	})
	tab, cancelTab := chromedp.NewContext(browser, chromedp.WithNewBrowserContext(), record)
	t.Cleanup(cancelTab)
	do := func(ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	do(tab, "open switchboard's page", chromedp.Navigate(p.url("/")))

	// Log in as a cookie page does: the token in the body is dropped.
	if got := evalPage[float64](t, tab, `fetch('/api-token-auth/', {method: 'POST',
		headers: {'Content-Type': 'application/json'},
		body: JSON.stringify({username: 'alice', password: 'password123'})}).then(r => r.status)`); got != 200 {
		t.Fatalf("login from the page = %v, want 200", got)
	}
	do(tab, "reload", chromedp.Reload())

	var seen []string // every value the cookie had
	cookie := func() *network.Cookie {
		t.Helper()
		res, err := chromedp.Call(tab, network.GetCookies, network.GetCookiesParams{URLs: []string{p.url("/")}})
		if err != nil {
			t.Fatal(err)
		}
		for _, ck := range res.Cookies {
			if ck.Name == "jwt" {
				seen = append(seen, ck.Value)
				return ck
			}
		}
		t.Fatalf("the browser has no jwt cookie for %s after the login (cookies %+v)", p.url("/"), res.Cookies)
		return nil
	}
	if ck := cookie(); !ck.HTTPOnly || ck.SameSite != network.CookieSameSiteLax || ck.Path != "/" || ck.Secure {
		t.Errorf("cookie = %+v, want HttpOnly, SameSite Lax, Path /, not Secure (plain HTTP)", ck)
	}

	// After the reload, the cookie alone: the API, a refresh with no body
	// (the page never reads the token), and the chat socket with no token
	// in its URL and no auth frame.
	if got := evalPage[string](t, tab, `fetch('/api/users/me').then(r => r.json()).then(u => u.username)`); got != "alice" {
		t.Errorf("GET /api/users/me from the page = %q, want alice", got)
	}
	if got := evalPage[float64](t, tab, `fetch('/api-token-refresh/', {method: 'POST'}).then(r => r.status)`); got != 200 {
		t.Errorf("POST /api-token-refresh/ with no body from the page = %v, want 200", got)
	}
	cookie()
	welcome := evalPage[map[string]any](t, tab, `new Promise((resolve, reject) => {
		const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws/chat/');
		ws.onmessage = (e) => { resolve(JSON.parse(e.data)); ws.close(); };
		ws.onclose = (e) => reject(new Error('closed ' + e.code + ' ' + e.reason));
		setTimeout(() => reject(new Error('no frame within 5 s')), 5000);
	})`)
	if welcome["type"] != "welcome" || welcome["user"] != "alice" || welcome["group"] != "chat-a" {
		t.Errorf("first frame of the page's chat socket = %v, want welcome alice in chat-a", welcome)
	}
	visible := evalPage[string](t, tab, `JSON.stringify({cookie: document.cookie,
		session: Object.entries(sessionStorage), local: Object.entries(localStorage)})`)

	// Another origin, in the same browser (so with the same cookie jar).
	elsewhere, cancelElsewhere := chromedp.NewContext(tab, record)
	t.Cleanup(cancelElsewhere)
	do(elsewhere, "open the other origin's page", chromedp.Navigate(other.URL+"/"))
	hijack := evalPage[map[string]any](t, elsewhere, fmt.Sprintf(`new Promise((resolve) => {
		const frames = [];
		const ws = new WebSocket(%q);
		ws.onmessage = (e) => frames.push(e.data);
		ws.onclose = (e) => resolve({code: e.code, frames: frames});
		setTimeout(() => resolve({code: -1, frames: frames}), 5000);
	})`, p.wsURL("/ws/chat/")))
	if frames, _ := hijack["frames"].([]any); len(frames) != 0 || hijack["code"] != float64(1006) {
		t.Errorf("the other origin's socket to switchboard = %v, want refused at the upgrade (1006, no frame)", hijack)
	}
	if !logHas(p, "path=/ws/chat/", "status=403") {
		t.Errorf("the access log has no /ws/chat/ handshake refused 403:\n%s", p.log)
	}
	// The browser does send the cookie from there: a GET (safe, so no
	// same-host rule) is authenticated by it.
	evalPage[any](t, elsewhere, fmt.Sprintf(`fetch(%q, {mode: 'no-cors', credentials: 'include'}).then(() => null, () => null)`,
		p.url("/api/users/me?from=elsewhere")))
	if !logHas(p, "path=/api/users/me", "from=elsewhere", "status=200") {
		t.Errorf("the other origin's GET did not carry the cookie (no 200 in the access log), so the socket test proves nothing:\n%s", p.log)
	}
	// A cross-site POST carrying the cookie changes nothing.
	evalPage[any](t, elsewhere, fmt.Sprintf(`fetch(%q, {method: 'POST', mode: 'no-cors', credentials: 'include'}).then(() => null, () => null)`,
		p.url("/api/users/me/logout-all")))
	if got := evalPage[string](t, tab, `fetch('/api/users/me').then(r => r.json()).then(u => u.username)`); got != "alice" {
		t.Errorf("GET /api/users/me after the other origin's logout-all = %q, want alice (still logged in)", got)
	}
	if !logHas(p, "path=/api/users/me/logout-all", "status=403") {
		t.Errorf("the access log has no logout-all refused 403:\n%s", p.log)
	}

	// The token was nowhere JavaScript or a URL could show it.
	mu.Lock()
	defer mu.Unlock()
	if len(urls) == 0 {
		t.Fatal("no request URL was recorded")
	}
	for _, tok := range seen {
		if strings.Contains(visible, tok) {
			t.Errorf("the token is visible to JavaScript: %s", visible)
		}
		for _, u := range urls {
			if strings.Contains(u, tok) || strings.Contains(u, "token=") {
				t.Errorf("a URL carries the token: %s", u)
			}
		}
	}
	if strings.Contains(visible, "jwt=") {
		t.Errorf("document.cookie shows the token cookie: %s", visible)
	}
	t.Logf("%d URLs requested, none with a token; JavaScript sees %s", len(urls), visible)
}

// evalPage evaluates expr in tab, awaiting a promise, into T.
func evalPage[T any](t *testing.T, tab context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %.80s…: %v", expr, err)
	}
	return v
}

// logHas reports whether one line of p's log contains every part.
func logHas(p *proc, parts ...string) bool {
	for _, line := range strings.Split(p.log.String(), "\n") {
		all := true
		for _, part := range parts {
			all = all && strings.Contains(line, part)
		}
		if all {
			return true
		}
	}
	return false
}
