package handlers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"switchboard/internal/testenv"
)

// fuzzPaths are the unauthenticated endpoints that read a request body.
var fuzzPaths = []string{"/api/users/", "/api-token-auth/", "/api-token-refresh/", "/api-token-verify/"}

// FuzzCreateUser posts arbitrary bodies and content types to the open
// endpoints (registration first, the token endpoints too), on SQLite and,
// when TEST_DATABASE_URL is set, PostgreSQL: the answer is never a 5xx and
// always a JSON object. Internal errors are logged at
// error level, so the log must stay free of them as well.
func FuzzCreateUser(f *testing.F) {
	seeds := []struct {
		path        uint8
		contentType string
		body        string
	}{
		{0, "application/json", `{"username":"alice","password":"password123","email":"a@example.com"}`},
		{0, "application/json", `{"username":"éva","password":"password123"}`},
		{0, "application/json", `{"username":"日本","password":"password123"}`},
		{0, "application/json", `{"username":"<script>","password":"password123"}`},
		{0, "application/json", `{"username":"a b","password":"x"}`},
		{0, "application/json", `{"username":"a\u0000b","password":"password123","email":"\u0000@x.io"}`},
		{0, "application/json", `{"username":"nul","password":"pass\u0000word","email":"\"a\\\u0000b\"@x.io"}`},
		{0, "application/json", `{"username":"q","password":"password123","email":"\"quoted local\"@example.com"}`},
		{0, "application/json", `{"username":"r","password":"password123","email":"ü@ü.de"}`},
		{0, "application/json", `{"username":1,"password":2,"email":3}`},
		{0, "application/json", `{"username":null,"password":[],"email":{}}`},
		{0, "application/json", `{"username":"` + strings.Repeat("a", 151) + `","password":"password123"}`},
		{0, "application/json", `{"username":"a"} trailing`},
		{0, "application/json", `[`},
		{0, "application/json", `null`},
		{0, "application/json", "\xff\xfe"},
		{0, "application/json; charset=utf-16", `{}`},
		{0, "text/plain", `hello`},
		{0, "", ``},
		{0, "application/json", `{"username":"dup","password":"password123"}`},
		{0, "application/json", `{"username":"dup","password":"password123"}`},
		{1, "application/json", `{"username":"alice","password":"password123"}`},
		{1, "application/json", `{"username":"alice","password":"wrong"}`},
		{1, "application/x-www-form-urlencoded", `username=alice&password=password123`},
		{1, "application/x-www-form-urlencoded", `username=%zz&password=%`},
		{1, "application/x-www-form-urlencoded", `username=a;b&password=c`},
		{1, "application/x-www-form-urlencoded", `username=%ff&password=password123`},
		{1, "application/x-www-form-urlencoded", `username=alice%00&password=password123`},
		{1, "application/json", `{"username":"alice","password":"` + strings.Repeat("p", 200) + `"}`},
		{1, "application/json", `{"username":"\u0000","password":"\u0000"}`},
		{1, "multipart/form-data; boundary=x", "--x\r\n\r\n--x--"},
		{2, "application/json", `{"token":"a.b.c"}`},
		{2, "application/json", `{"token":"eyJhbGciOiJub25lIn0.eyJ1c2VyX2lkIjoxfQ."}`},
		{2, "application/x-www-form-urlencoded", `token=...`},
		{3, "application/json", `{"token":"eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoxZTMwMCwiZXhwIjo5ZTE4LCJvcmlnX2lhdCI6MH0.x"}`},
		{3, "application/json", `{"token":` + strings.Repeat(`[`, 50) + `}`},
	}
	for _, s := range seeds {
		f.Add(s.path, s.contentType, []byte(s.body))
	}
	var logBuf testenv.Buffer
	logger := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelError}))
	var servers []*env
	for _, dialect := range testenv.Dialects(f) {
		servers = append(servers, newEnv(f, dialect, withLogger(logger)))
	}
	f.Fuzz(func(t *testing.T, path uint8, contentType string, body []byte) {
		p := fuzzPaths[int(path)%len(fuzzPaths)]
		if strings.ContainsAny(contentType, "\r\n\x00") {
			contentType = "application/json" // not a header the client can send
		}
		for _, s := range servers {
			req := fmt.Sprintf("%s: POST %s Content-Type %q body %q", s.dialect, p, contentType, body)
			resp, err := s.send(t, http.MethodPost, p, testenv.Headers("Content-Type", contentType), body)
			if err != nil {
				t.Skipf("client refused the request: %v", err) // e.g. an invalid header value
			}
			raw := resp.body
			if resp.status >= 500 {
				t.Fatalf("%s = %d %s, want < 500\nlog: %s", req, resp.status, raw, logBuf.String())
			}
			var obj map[string]any
			if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
				t.Fatalf("%s = %d with body %q, want a JSON object", req, resp.status, raw)
			}
			if ct := resp.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("%s = %d with Content-Type %q, want application/json", req, resp.status, ct)
			}
			switch {
			case resp.status == 201 && (obj["id"] == nil || obj["username"] == nil):
				t.Fatalf("%s = 201 %s, want a user", req, raw)
			case resp.status == 200 && obj["token"] == nil:
				t.Fatalf("%s = 200 %s, want a token", req, raw)
			case bytes.Contains(raw, []byte("password_hash")), bytes.Contains(raw, []byte("$2a$")):
				t.Fatalf("%s = %d %s leaks a password hash", req, resp.status, raw)
			}
			if l := logBuf.String(); l != "" {
				t.Fatalf("%s logged an error:\n%s", req, l)
			}
		}
	})
}
