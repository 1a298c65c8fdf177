package handlers_test

// Issue 9, items 3, 6, 7 and 8: HEAD on every GET route, form bodies on the
// Django-shaped endpoints, CORS for ALLOWED_ORIGINS, and a 413 that reaches
// a client still sending. Every test talks to a real server over TCP
// (newEnv's httptest server), most of them with a raw socket so nothing in
// a client library hides what the server sent.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/internal/testenv"
	"switchboard/models"
)

// rawResponse is one HTTP/1.1 response read off a raw socket.
type rawResponse struct {
	status  int
	header  map[string]string // lower-case name → value (repeated names joined by ", ")
	rest    []byte            // everything after the header block, as sent
	body    []byte            // the decoded body (GET); nil for HEAD
	rawHead string
}

// rawRequest sends one request with Connection: close on a fresh TCP
// connection and reads everything the server sends until it closes.
func rawRequest(t *testing.T, base, method, path string, header map[string]string, body []byte) rawResponse {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, path, u.Host)
	for k, v := range header {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	if body != nil {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatalf("%s %s: write: %v", method, path, err)
	}
	if body != nil {
		if _, err := conn.Write(body); err != nil {
			t.Fatalf("%s %s: write body: %v", method, path, err)
		}
	}
	raw, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("%s %s: read: %v (got %q)", method, path, err, raw)
	}
	return parseRaw(t, method+" "+path, method, raw)
}

func parseRaw(t *testing.T, req, method string, raw []byte) rawResponse {
	t.Helper()
	head, rest, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("%s: no complete header block in %q", req, raw)
	}
	r := rawResponse{header: map[string]string{}, rest: rest, rawHead: string(head)}
	lines := strings.Split(string(head), "\r\n")
	var proto string
	if _, err := fmt.Sscanf(lines[0], "%s %d", &proto, &r.status); err != nil {
		t.Fatalf("%s: status line %q: %v", req, lines[0], err)
	}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ":")
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if old, dup := r.header[k]; dup {
			v = old + ", " + v
		}
		r.header[k] = v
	}
	if method != http.MethodHead {
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), &http.Request{Method: method})
		if err != nil {
			t.Fatalf("%s: %v", req, err)
		}
		r.body, err = io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s: body: %v", req, err)
		}
	}
	return r
}

// TestHeadOnEveryGetRoute: HEAD answers every GET route (and the errors
// GET would give: 401, 404, 400) with GET's status and headers, including
// the Content-Length of the body GET sends, and no body. A HEAD carrying
// WebSocket upgrade headers is never upgraded: it gets what a GET without
// them gets (400 from the upgrader).
func TestHeadOnEveryGetRoute(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			staff := e.createUser(t, "root", true)
			plain := e.createUser(t, "alice", false)
			jwt := map[string]string{"Authorization": "JWT " + e.token(t, staff)}
			upgrade := map[string]string{
				"Connection":            "Upgrade",
				"Upgrade":               "websocket",
				"Sec-WebSocket-Version": "13",
				"Sec-WebSocket-Key":     "dGhlIHNhbXBsZSBub25jZQ==",
			}
			tests := []struct {
				name, path string
				header     map[string]string // sent with HEAD
				getHeader  map[string]string // sent with GET; header when nil
				wantStatus int
			}{
				{"healthz", "/healthz", nil, nil, 200},
				{"readyz", "/readyz", nil, nil, 200},
				{"me", "/api/users/me", jwt, nil, 200},
				{"me without token", "/api/users/me", nil, nil, 401},
				{"list users", "/api/users/?limit=2", jwt, nil, 200},
				{"list users bad limit", "/api/users/?limit=0", jwt, nil, 400},
				{"user by id", fmt.Sprintf("/api/users/%d", plain.ID), jwt, nil, 200},
				{"user not found", "/api/users/999999", jwt, nil, 404},
				{"presence", "/api/groups/chat-a/presence", jwt, nil, 200},
				{"no such route", "/no/such/route", nil, nil, 404},
				{"echo socket", "/ws/echo/", upgrade, map[string]string{}, 400},
				{"chat socket", "/ws/chat/?token=x", upgrade, map[string]string{}, 400},
				{"status socket", "/ws/status/system/?token=x", upgrade, map[string]string{}, 400},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					gh := tt.getHeader
					if gh == nil {
						gh = tt.header
					}
					get := rawRequest(t, e.srv.URL, http.MethodGet, tt.path, gh, nil)
					head := rawRequest(t, e.srv.URL, http.MethodHead, tt.path, tt.header, nil)
					if get.status != tt.wantStatus {
						t.Fatalf("GET %s = %d, want %d", tt.path, get.status, tt.wantStatus)
					}
					if head.status != get.status {
						t.Fatalf("HEAD %s = %d, want %d as GET\n%s", tt.path, head.status, get.status, head.rawHead)
					}
					if len(head.rest) != 0 {
						t.Errorf("HEAD %s sent a body %q, want none", tt.path, head.rest)
					}
					if want := strconv.Itoa(len(get.body)); head.header["content-length"] != want {
						t.Errorf("HEAD %s Content-Length = %q, want %s (GET's body length)", tt.path, head.header["content-length"], want)
					}
					for k, v := range get.header {
						if k == "date" {
							continue
						}
						if head.header[k] != v {
							t.Errorf("HEAD %s header %s = %q, want %q as GET", tt.path, k, head.header[k], v)
						}
					}
					for k := range head.header {
						if _, ok := get.header[k]; !ok {
							t.Errorf("HEAD %s has header %s that GET has not", tt.path, k)
						}
					}
				})
			}
		})
	}
}

// TestHeadIsLoggedAsHead: the access log names the method the client
// sent, though the router saw a GET.
func TestHeadIsLoggedAsHead(t *testing.T) {
	var logs testenv.Buffer
	e := newEnv(t, models.SQLite, withLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	rawRequest(t, e.srv.URL, http.MethodHead, "/healthz", nil, nil)
	if got := logs.String(); !strings.Contains(got, "method=HEAD") || strings.Contains(got, "method=GET") {
		t.Errorf("access log after HEAD /healthz = %q, want method=HEAD", got)
	}
}

// TestHeadIsListedInAllow: a 405 on a GET route names HEAD as allowed too.
func TestHeadIsListedInAllow(t *testing.T) {
	e := newEnv(t, models.SQLite)
	r := rawRequest(t, e.srv.URL, http.MethodPost, "/healthz", map[string]string{"Content-Type": "application/json"}, []byte("{}"))
	if r.status != 405 {
		t.Fatalf("POST /healthz = %d, want 405", r.status)
	}
	allow := strings.Split(strings.ReplaceAll(r.header["allow"], " ", ""), ",")
	if !contains(allow, "GET") || !contains(allow, "HEAD") {
		t.Errorf("POST /healthz Allow = %q, want GET and HEAD", r.header["allow"])
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// multipartBody encodes fields as multipart/form-data, as a browser's
// FormData does, and returns the body and its Content-Type.
func multipartBody(t *testing.T, fields map[string]string) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for k, v := range fields {
		if err := w.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), w.FormDataContentType()
}

func formBody(fields map[string]string) []byte {
	v := url.Values{}
	for k, s := range fields {
		v.Set(k, s)
	}
	return []byte(v.Encode())
}

// postAs sends fields to path in one of the three encodings DRF parses.
func postAs(t *testing.T, e *env, encoding, path string, fields map[string]string) (int, map[string]any) {
	t.Helper()
	var body []byte
	var ct string
	switch encoding {
	case "json":
		body, _ = json.Marshal(fields)
		ct = "application/json"
	case "urlencoded":
		body, ct = formBody(fields), "application/x-www-form-urlencoded"
	case "multipart":
		body, ct = multipartBody(t, fields)
	default:
		t.Fatalf("unknown encoding %q", encoding)
	}
	return postRaw(t, e, path, ct, body)
}

func postRaw(t *testing.T, e *env, path, contentType string, body []byte) (int, map[string]any) {
	t.Helper()
	r := rawRequest(t, e.srv.URL, http.MethodPost, path, map[string]string{"Content-Type": contentType}, body)
	var out map[string]any
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatalf("POST %s (%s) = %d with non-JSON body %q", path, contentType, r.status, r.body)
	}
	return r.status, out
}

// TestFormBodiesOnDjangoEndpoints: registration and the three token
// endpoints take JSON, url-encoded and multipart bodies alike (DRF's
// default parsers); other types are 415 and bodies over 1 MiB 413, in the
// multipart case too.
func TestFormBodiesOnDjangoEndpoints(t *testing.T) {
	for _, dialect := range testenv.Dialects(t) {
		t.Run(string(dialect), func(t *testing.T) {
			e := newEnv(t, dialect)
			for _, enc := range []string{"json", "urlencoded", "multipart"} {
				t.Run(enc, func(t *testing.T) {
					name := "u_" + enc
					st, body := postAs(t, e, enc, "/api/users/", map[string]string{"username": name, "password": "correct-horse", "email": name + "@example.com"})
					if st != 201 || body["username"] != name || body["email"] != name+"@example.com" {
						t.Fatalf("POST /api/users/ (%s) = %d %v, want 201 with the user", enc, st, body)
					}
					st, body = postAs(t, e, enc, "/api-token-auth/", map[string]string{"username": name, "password": "correct-horse"})
					tok, _ := body["token"].(string)
					if st != 200 || tok == "" {
						t.Fatalf("POST /api-token-auth/ (%s) = %d %v, want 200 with a token", enc, st, body)
					}
					for _, path := range []string{"/api-token-verify/", "/api-token-refresh/"} {
						st, body = postAs(t, e, enc, path, map[string]string{"token": tok})
						if got, _ := body["token"].(string); st != 200 || got == "" {
							t.Errorf("POST %s (%s) = %d %v, want 200 with a token", path, enc, st, body)
						}
					}
					st, body = postAs(t, e, enc, "/api-token-auth/", map[string]string{"username": name, "password": "wrong-horse"})
					if st != 400 || !isBadCredentials(body) {
						t.Errorf("POST /api-token-auth/ (%s) wrong password = %d %v, want 400 non_field_errors", enc, st, body)
					}
					st, body = postAs(t, e, enc, "/api-token-auth/", map[string]string{"username": name})
					if pw, _ := body["password"].([]any); st != 400 || len(pw) != 1 || pw[0] != "This field is required." {
						t.Errorf("POST /api-token-auth/ (%s) without password = %d %v, want 400 password required", enc, st, body)
					}
				})
			}

			big := strings.Repeat("a", 2<<20)
			mpBig, mpBigType := multipartBody(t, map[string]string{"username": big, "password": "x", "token": big})
			mpNoBoundary := "multipart/form-data"
			for _, path := range []string{"/api/users/", "/api-token-auth/", "/api-token-refresh/", "/api-token-verify/"} {
				for _, ct := range []string{"text/plain", "application/xml", ""} {
					st, body := postRaw(t, e, path, ct, []byte("username=a&password=b"))
					if st != 415 || errorCode(t, "POST "+path, body) != "unsupported_media_type" {
						t.Errorf("POST %s Content-Type %q = %d %v, want 415 unsupported_media_type", path, ct, st, body)
					}
				}
				st, body := postRaw(t, e, path, mpBigType, mpBig)
				if st != 413 || errorCode(t, "POST "+path, body) != "too_large" {
					t.Errorf("POST %s multipart 2 MiB = %d %v, want 413 too_large", path, st, body)
				}
				st, body = postRaw(t, e, path, mpNoBoundary, []byte("username=a"))
				if st != 400 || errorCode(t, "POST "+path, body) != "invalid" {
					t.Errorf("POST %s multipart without boundary = %d %v, want 400 invalid", path, st, body)
				}
			}
		})
	}
}

// corsHeaders returns the response's Access-Control-* headers.
func corsHeaders(h map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		if strings.HasPrefix(k, "access-control-") {
			out[k] = v
		}
	}
	return out
}

// TestCORS: with ALLOWED_ORIGINS set, a listed origin's preflight is 204
// with the origin, methods, Authorization and Content-Type and a max age,
// and its actual responses (errors too) carry the origin and Vary: Origin;
// other origins and requests without Origin get no CORS headers; nothing
// ever allows credentials. Unset, no request gets CORS headers.
func TestCORS(t *testing.T) {
	const app, evil = "http://app.example.test", "http://evil.example.test"
	e := newEnv(t, models.SQLite, withOrigins(app, "https://other.example.test"))
	e.createUser(t, "alice", false)

	preflight := func(e *env, origin, path, method, headers string) rawResponse {
		return rawRequest(t, e.srv.URL, http.MethodOptions, path, map[string]string{
			"Origin":                         origin,
			"Access-Control-Request-Method":  method,
			"Access-Control-Request-Headers": headers,
		}, nil)
	}

	for _, tt := range []struct{ path, method, headers string }{
		{"/api-token-auth/", "POST", "content-type"},
		{"/api/users/", "POST", "content-type"},
		{"/api/users/me", "GET", "authorization"},
		{"/api/users/7", "PATCH", "authorization,content-type"},
		{"/api/users/7", "DELETE", "authorization"},
		{"/api/status/system", "PUT", "authorization,content-type"},
	} {
		r := preflight(e, app, tt.path, tt.method, tt.headers)
		req := "OPTIONS " + tt.path + " from " + app
		if r.status != 204 {
			t.Errorf("%s = %d, want 204", req, r.status)
		}
		if got := r.header["access-control-allow-origin"]; got != app {
			t.Errorf("%s Access-Control-Allow-Origin = %q, want %q", req, got, app)
		}
		methods := strings.Split(r.header["access-control-allow-methods"], ",")
		for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} {
			if !contains(methods, m) {
				t.Errorf("%s Access-Control-Allow-Methods = %q, want %s in it", req, r.header["access-control-allow-methods"], m)
			}
		}
		headers := strings.Split(strings.ToLower(r.header["access-control-allow-headers"]), ",")
		if !contains(headers, "authorization") || !contains(headers, "content-type") {
			t.Errorf("%s Access-Control-Allow-Headers = %q, want Authorization and Content-Type", req, r.header["access-control-allow-headers"])
		}
		if age, err := strconv.Atoi(r.header["access-control-max-age"]); err != nil || age <= 0 {
			t.Errorf("%s Access-Control-Max-Age = %q, want a positive number of seconds", req, r.header["access-control-max-age"])
		}
		if _, ok := r.header["access-control-allow-credentials"]; ok {
			t.Errorf("%s allows credentials, want never", req)
		}
		if !strings.Contains(r.header["vary"], "Origin") {
			t.Errorf("%s Vary = %q, want Origin in it", req, r.header["vary"])
		}
	}

	// Actual requests from the listed origin, successful and refused.
	login := []byte(`{"username":"alice","password":"password123"}`)
	for _, tt := range []struct {
		method, path string
		body         []byte
		want         int
	}{
		{"POST", "/api-token-auth/", login, 200},
		{"GET", "/api/users/me", nil, 401},
		{"GET", "/healthz", nil, 200},
	} {
		h := map[string]string{"Origin": "https://other.example.test"}
		if tt.body != nil {
			h["Content-Type"] = "application/json"
		}
		r := rawRequest(t, e.srv.URL, tt.method, tt.path, h, tt.body)
		req := tt.method + " " + tt.path + " from https://other.example.test"
		if r.status != tt.want {
			t.Errorf("%s = %d, want %d", req, r.status, tt.want)
		}
		if got := r.header["access-control-allow-origin"]; got != "https://other.example.test" {
			t.Errorf("%s Access-Control-Allow-Origin = %q, want the origin", req, got)
		}
		if !strings.Contains(r.header["vary"], "Origin") {
			t.Errorf("%s Vary = %q, want Origin", req, r.header["vary"])
		}
		if _, ok := r.header["access-control-allow-credentials"]; ok {
			t.Errorf("%s allows credentials, want never", req)
		}
	}

	// Other origins, no Origin, and a server without ALLOWED_ORIGINS: no
	// CORS headers at all, and the preflight is not answered with 204.
	unset := newEnv(t, models.SQLite)
	for _, tt := range []struct {
		name   string
		e      *env
		origin string
	}{
		{"unlisted origin", e, evil},
		{"look-alike origin", e, app + ".evil.test"},
		{"ALLOWED_ORIGINS unset", unset, app},
	} {
		r := preflight(tt.e, tt.origin, "/api-token-auth/", "POST", "content-type")
		if r.status == 204 || len(corsHeaders(r.header)) != 0 {
			t.Errorf("%s: OPTIONS /api-token-auth/ = %d with %v, want no CORS answer", tt.name, r.status, corsHeaders(r.header))
		}
		r = rawRequest(t, tt.e.srv.URL, http.MethodPost, "/api-token-auth/", map[string]string{"Origin": tt.origin, "Content-Type": "application/json"}, login)
		if len(corsHeaders(r.header)) != 0 {
			t.Errorf("%s: POST /api-token-auth/ has CORS headers %v, want none", tt.name, corsHeaders(r.header))
		}
	}
	r := rawRequest(t, e.srv.URL, http.MethodGet, "/healthz", nil, nil)
	if len(corsHeaders(r.header)) != 0 {
		t.Errorf("GET /healthz without Origin has CORS headers %v, want none", corsHeaders(r.header))
	}
}

// sendLargeBody plays Python's urllib posting a 5 MB JSON body: it writes
// the whole body at a steady pace (about a second, well past net/http's
// 500 ms before it closes an unread connection), failing on any write
// error as urllib would, and only then reads the response.
func sendLargeBody(base, path string, size, chunk int, pause time.Duration) (int, []byte, error) {
	u, err := url.Parse(base)
	if err != nil {
		return 0, nil, err
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n{\"username\":\"", path, u.Host, size)
	if _, err := io.WriteString(conn, head); err != nil {
		return 0, nil, fmt.Errorf("write head: %w", err)
	}
	buf := bytes.Repeat([]byte("a"), chunk)
	for sent := len(`{"username":"`); sent < size; {
		n := min(chunk, size-sent)
		if _, err := conn.Write(buf[:n]); err != nil {
			return 0, nil, fmt.Errorf("write body after %d bytes: %w", sent, err)
		}
		sent += n
		time.Sleep(pause)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodPost})
	if err != nil {
		return 0, nil, fmt.Errorf("read response: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, raw, fmt.Errorf("read body: %w", err)
	}
	return resp.StatusCode, raw, nil
}

// TestTooLargeBodyReachesSendingClient: twenty clients each send 5 MB
// while the server has long answered; every one of them finishes sending
// and reads the answer: the 413 of the JSON and token endpoints (which stop
// reading at 1 MiB), and as much the 401 and 405 given without reading the
// body at all.
func TestTooLargeBodyReachesSendingClient(t *testing.T) {
	e := newEnv(t, models.SQLite)
	cases := []struct {
		path, code string
		status     int
	}{
		{"/api/users/", "too_large", 413},
		{"/api-token-auth/", "too_large", 413},
		{"/api/groups/chat-a/messages", "unauthorized", 401},
		{"/healthz", "method_not_allowed", 405},
	}
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			tc := cases[i%len(cases)]
			st, raw, err := sendLargeBody(e.srv.URL, tc.path, 5_000_000, 50_000, 10*time.Millisecond)
			if err != nil {
				errs <- fmt.Sprintf("client %d: POST %s 5 MB: %v", i, tc.path, err)
				return
			}
			var body struct {
				Error struct{ Code string } `json:"error"`
			}
			json.Unmarshal(raw, &body)
			if st != tc.status || body.Error.Code != tc.code {
				errs <- fmt.Sprintf("client %d: POST %s 5 MB = %d %q, want %d %s", i, tc.path, st, raw, tc.status, tc.code)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
}

// TestTooLargeBodyDrainIsBounded: the server's patience has limits. A
// client announcing 1 GiB and sending as fast as it can is cut off after
// about 16 MiB (it may never see the 413), and one that stops sending is
// cut off after about 5 s; neither holds the connection open.
func TestTooLargeBodyDrainIsBounded(t *testing.T) {
	e := newEnv(t, models.SQLite)
	u, _ := url.Parse(e.srv.URL)

	t.Run("size", func(t *testing.T) {
		t.Parallel()
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(conn, "POST /api/users/ HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", u.Host, 1<<30)
		buf := bytes.Repeat([]byte("a"), 256<<10)
		sent := 0
		for sent < 1<<30 {
			n, err := conn.Write(buf)
			sent += n
			if err != nil {
				break
			}
		}
		if sent >= 256<<20 {
			t.Errorf("server read %d MiB of a refused body, want it cut off near 16 MiB", sent>>20)
		}
	})

	t.Run("time", func(t *testing.T) {
		t.Parallel()
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(conn, "POST /api/users/ HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", u.Host, 4<<20)
		conn.Write(bytes.Repeat([]byte("a"), 2<<20))
		start := time.Now()
		// The client now stalls; the server answers 413 and, after its
		// lingering read times out, closes.
		resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodPost})
		if err != nil {
			t.Fatalf("read 413: %v", err)
		}
		if resp.StatusCode != 413 {
			t.Errorf("stalled client got %d, want 413", resp.StatusCode)
		}
		io.Copy(io.Discard, resp.Body)
		_, err = conn.Read(make([]byte, 1))
		if d := time.Since(start); err == nil || d > 10*time.Second {
			t.Errorf("stalled client: connection still open after %v (read err %v), want closed within ~5 s", d, err)
		}
	})
}
